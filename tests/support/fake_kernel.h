// The one kernel of the unit tests (no root): every batch the writer commits
// is decoded message by message with the parser the drift check reads the
// real kernel's dump with (nft::TableContent), so the fake holds what a
// kernel would. Tests configure refusals and play foreign changes (edit
// `content`, dropTable(), bump `gen`) and the datapath (count()). The real
// kernel is exercised by the privileged tests.
#pragma once

#include <libmnl/libmnl.h>
#include <libnftnl/rule.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/nft/counters.h"
#include "bulkhead/nft/kernel.h"
#include "bulkhead/nft/objects.h"
#include "bulkhead/nft/table_content.h"

namespace bulkhead::testing {

class FakeKernel : public nft::NftKernel, public nft::CounterReader {
 public:
  explicit FakeKernel(std::string table = "bulkhead") : content(std::move(table)) {}

  Status commit(const nft::Batch& batch) override {
    ++commits;
    lastMessages = batch.messageCount();
    if (recordBatches) batches.push_back(batch);
    if (Status st = refusal(batch); !st) return st;
    // The kernel applies a transaction whole or not at all: so does the fake.
    nft::TableContent next = content;
    auto rules = rules_;
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data());
    int len = static_cast<int>(batch.bytes.size());
    for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
      if (Status st = next.apply(nlh); !st) return st;
      track(nlh, rules, nextHandle_);
    }
    std::erase_if(rules, [&](const auto& chain) { return !next.chains.count(chain.first); });
    if (messages(batch, NFT_MSG_DELCHAIN)) ++chainDeletes;
    content = std::move(next);
    rules_ = std::move(rules);
    ++gen;
    return {};
  }
  Result<bool> tableExists(const std::string&) override { return content.exists; }
  // Bumped by every accepted commit; tests bump it to play a foreign commit.
  Result<uint32_t> generation() override { return gen; }
  Result<nft::TableContent> readTable(const std::string& name) override {
    if (!readable) return NftKernel::readTable(name);
    ++reads;
    nft::TableContent copy = content;
    copy.normalize();
    for (auto& [setName, set] : copy.sets)
      if (!set.elements.empty()) {
        if (shortRead()) set.elements.pop_back();
        break;
      }
    return copy;
  }
  Result<nft::TableContent> readDeclarations(const std::string& table) override {
    if (!readable) return NftKernel::readDeclarations(table);
    ++declarationReads;
    nft::TableContent copy(content.table());
    copy.exists = content.exists;
    copy.chains = content.chains;
    for (const auto& [name, set] : content.sets)
      copy.sets[name] = nft::SetContent{set.declaration, set.dynamic, {}};
    return copy;
  }
  Result<std::vector<std::string>> readElements(const std::string& table,
                                                const std::string& set) override {
    if (!readable) return NftKernel::readElements(table, set);
    ++elementReads;
    auto it = content.sets.find(set);
    if (!content.exists || it == content.sets.end())
      return makeError(ErrorCode::kKernel, "kernel refused to dump the elements of " + set, ENOENT);
    std::vector<std::string> elements = it->second.elements;
    std::sort(elements.begin(), elements.end());
    if (!elements.empty() && shortRead()) elements.pop_back();
    return elements;
  }
  uint32_t nextSeq(uint32_t count) override {
    const uint32_t s = seq;
    seq += count;
    return s;
  }

  // The counted rules (a comment and a counter) with what count() added;
  // a rewritten chain's rules are new rules with new handles, counting from
  // zero, as in the kernel.
  Result<nft::RuleCounters> readRuleCounters(const std::string&) override {
    if (counterError) return *counterError;
    nft::RuleCounters out;
    if (!content.exists) return out;
    for (const auto& [chain, rules] : rules_)
      for (const Rule& r : rules)
        if (r.counted) out[{chain, r.handle}] = r.packets;
    return out;
  }

  // The datapath: `packets` more through rule `index` of `chain`.
  void count(const std::string& chain, size_t index, uint64_t packets) {
    rules_.at(chain).at(index).packets += packets;
  }
  // Someone deleted the table behind the agent's back.
  void dropTable() {
    content = nft::TableContent(content.table());
    rules_.clear();
    ++gen;
  }

  // What the kernel holds.
  nft::TableContent content;
  uint32_t gen = 1;
  uint32_t seq = 1;
  // What was asked of it.
  int commits = 0;           // tried, refused ones included
  int chainDeletes = 0;      // accepted transactions that deleted a chain
  int reads = 0;             // readTable() answered
  int declarationReads = 0;  // readDeclarations() answered
  int elementReads = 0;      // readElements() answered
  size_t lastMessages = 0;
  bool recordBatches = false;
  std::vector<nft::Batch> batches;  // with recordBatches: every one tried
  // How it answers.
  int refuse = 0;  // refuse the next n transactions with `refusalError`
  Error refusalError{ErrorCode::kKernel, ENOENT, "kernel refused add element"};
  // Kernels before 6.2: deleting a chain in the transaction that also
  // removes the dispatch element pointing at it fails, as still referenced.
  bool busyOnChainDelete = false;
  bool readable = true;  // false: a kernel that cannot read a table back
  // The next n reads of a table, or of a set's elements, miss an element
  // (a hash set dumped mid-rehash).
  int shortReads = 0;
  std::optional<Error> counterError;  // readRuleCounters() fails with it

 private:
  bool shortRead() {
    if (shortReads == 0) return false;
    --shortReads;
    return true;
  }
  struct Rule {
    uint64_t handle = 0;
    bool counted = false;
    uint64_t packets = 0;
  };
  using Rules = std::map<std::string, std::vector<Rule>>;

  static bool messages(const nft::Batch& batch, uint16_t type) {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data());
    int len = static_cast<int>(batch.bytes.size());
    for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
      if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | type)) return true;
    return false;
  }

  Status refusal(const nft::Batch& batch) {
    if (busyOnChainDelete && messages(batch, NFT_MSG_DELCHAIN) &&
        messages(batch, NFT_MSG_DELSETELEM))
      return makeError(ErrorCode::kKernel, "kernel refused delete chain", EBUSY);
    if (refuse > 0) {
      --refuse;
      return refusalError;
    }
    return {};
  }

  // Rule handles and counted flags beside `content` (which has no handles);
  // rules of deleted chains are dropped after the batch.
  static void track(const nlmsghdr* nlh, Rules& rules, uint64_t& nextHandle) {
    if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return;
    const int type = nlh->nlmsg_type & 0xff;
    if (type == NFT_MSG_DELTABLE) rules.clear();
    if (type != NFT_MSG_NEWRULE && type != NFT_MSG_DELRULE) return;
    nft::RulePtr r(nftnl_rule_alloc());
    if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return;
    const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
    if (!chain) return;
    if (type == NFT_MSG_DELRULE) {
      rules[chain].clear();
      return;
    }
    rules[chain].push_back(Rule{nextHandle++, nft::isCountedRule(r.get()), 0});
  }

  Rules rules_;
  uint64_t nextHandle_ = 1;
};

}  // namespace bulkhead::testing
