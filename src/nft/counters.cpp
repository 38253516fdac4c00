#include "bulkhead/nft/counters.h"

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "bulkhead/nft/netlink_socket.h"
#include "bulkhead/nft/objects.h"

namespace bulkhead::nft {

namespace {

constexpr int kTimeoutMs = 5000;

bool isCounter(const nftnl_expr* e) {
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  return name && std::strcmp(name, "counter") == 0;
}

bool hasComment(const nftnl_rule* r) {
  if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)) return false;
  uint32_t len = 0;
  const void* data = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
  // The comment is a TLV in the rule's userdata, as nft writes it.
  UdataPtr buf(nftnl_udata_buf_alloc(len));
  if (!buf) return false;
  nftnl_udata_buf_put(buf.get(), data, len);
  bool found = false;
  nftnl_udata* attr;
  nftnl_udata_for_each(buf.get(), attr) {
    if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT) found = true;
  }
  return found;
}

// libnftnl's iterators take a non-const rule but do not change it.
template <typename Fn>
void forEachExpr(const nftnl_rule* r, Fn fn) {
  nftnl_expr_foreach(
      const_cast<nftnl_rule*>(r),
      [](nftnl_expr* e, void* d) -> int {
        (*static_cast<Fn*>(d))(e);
        return MNL_CB_OK;
      },
      &fn);
}

int onRule(const nlmsghdr* nlh, void* data) {
  auto* out = static_cast<RuleCounters*>(data);
  RulePtr r(nftnl_rule_alloc());
  if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return MNL_CB_OK;
  if (!isCountedRule(r.get())) return MNL_CB_OK;
  const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
  const uint64_t handle = nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE);
  (*out)[{chain ? chain : "", handle}] = rulePackets(r.get());
  return MNL_CB_OK;
}

Result<RuleCounters> dumpOnce(const std::string& table) {
  auto nl = NetlinkSocket::open(NETLINK_NETFILTER);
  if (!nl) return nl.takeError();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, 1);
  RulePtr filter(nftnl_rule_alloc());
  nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_nlmsg_build_payload(nlh, filter.get());

  RuleCounters out;
  auto err =
      nl->exchange(nlh, "the rules of table inet " + table, kTimeoutMs, [&](const nlmsghdr* reply) {
        onRule(reply, &out);
        return Status{};
      });
  if (!err) return err.takeError();
  // A table that does not exist (yet, or deleted by someone) has no counters.
  if (*err == 0 || *err == ENOENT) return out;
  return makeError(ErrorCode::kKernel, "rule dump of table inet " + table, *err);
}

}  // namespace

bool isCountedRule(const nftnl_rule* rule) {
  bool counted = false;
  forEachExpr(rule, [&](const nftnl_expr* e) { counted |= isCounter(e); });
  return counted && hasComment(rule);
}

uint64_t rulePackets(const nftnl_rule* rule) {
  uint64_t packets = 0;
  forEachExpr(rule, [&](const nftnl_expr* e) {
    if (isCounter(e)) packets += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
  });
  return packets;
}

Result<RuleCounters> MnlCounterReader::readRuleCounters(const std::string& table) {
  return dumpUninterrupted([&] { return dumpOnce(table); });
}

void SeenCounter::sample(const RuleCounters& counters) {
  for (const auto& [rule, packets] : counters) {
    auto it = last_.find(rule);
    const uint64_t before = it == last_.end() ? 0 : it->second;
    total_ += packets >= before ? packets - before : packets;
  }
  last_ = counters;
}

Status AttemptCounter::sample() {
  std::lock_guard sampling(sampling_);
  auto counters = reader_.readRuleCounters(table_);
  if (!counters) return counters.takeError();
  std::lock_guard lock(mu_);
  seen_.sample(*counters);
  return {};
}

uint64_t AttemptCounter::total() const {
  std::lock_guard lock(mu_);
  return seen_.total();
}

}  // namespace bulkhead::nft
