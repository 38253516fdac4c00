#include "bulkhead/nft/writer.h"

#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <algorithm>
#include <map>
#include <span>
#include <variant>
#include <vector>

#include "bulkhead/nft/batch.h"
#include "bulkhead/nft/objects.h"

namespace bulkhead::nft {

namespace {

using compiler::Element;
using compiler::Ruleset;
using compiler::RulesetDiff;

// Element messages are cut at this many (estimated) bytes: far below the
// 64 KiB an attribute can hold, and still hundreds of elements per message,
// where the kernel's per-message cost stops mattering.
constexpr size_t kElemBudgetBytes = 32 * 1024;

class Builder {
 public:
  Builder(const RulesetDiff& diff, uint32_t firstSeq, const Ruleset* target)
      : diff_(diff), table_(diff.table), b_(firstSeq), target_(target) {}

  Result<Batch> build(bool replaceTable);

 private:
  Status removeOld(const std::vector<const compiler::Set*>& shapes);
  Status addNew(const std::vector<const compiler::Set*>& shapes);
  std::vector<const compiler::Set*> setsByUse() const;
  std::string obj(const char* kind, const std::string& name) const {
    return std::string(kind) + " inet " + table_ + " " + name;
  }

  void tableMsg(uint16_t type, uint16_t flags, const char* verb) {
    TablePtr t = makeTable(table_);
    nlmsghdr* nlh =
        b_.begin(type, NFPROTO_INET, flags, std::string(verb) + " table inet " + table_);
    nftnl_table_nlmsg_build_payload(nlh, t.get());
  }
  void chainMsg(uint16_t type, uint16_t flags, const compiler::Chain* chain,
                const std::string& name, const char* verb) {
    ChainPtr c = chain ? makeChain(table_, *chain) : makeChainRef(table_, name);
    nlmsghdr* nlh = b_.begin(type, NFPROTO_INET, flags, std::string(verb) + obj(" chain", name));
    nftnl_chain_nlmsg_build_payload(nlh, c.get());
  }
  void flushChain(const std::string& name) {
    // DELRULE with only table and chain removes every rule of the chain.
    RulePtr r(nftnl_rule_alloc());
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, name.c_str());
    nlmsghdr* nlh = b_.begin(NFT_MSG_DELRULE, NFPROTO_INET, 0, "flush" + obj(" chain", name));
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
  }
  Status elements(uint16_t type, const compiler::Set& shape, std::span<const Element> els);
  Status rules(const compiler::Chain& chain);
  Result<const compiler::Set*> shapeOf(const std::string& set, std::span<const Element> add,
                                       std::span<const Element> remove);

  const RulesetDiff& diff_;
  const std::string& table_;
  BatchBuilder b_;
  const Ruleset* target_;
  SetIds setIds_;
  std::vector<std::unique_ptr<compiler::Set>> inferred_;
};

Status Builder::elements(uint16_t type, const compiler::Set& shape, std::span<const Element> els) {
  const bool add = type == NFT_MSG_NEWSETELEM;
  // A removal needs only the key (and the end the kernel matches on).
  compiler::Set keyOnly;
  if (!add) {
    keyOnly.name = shape.name;
    keyOnly.fields = shape.fields;
    keyOnly.interval = shape.interval;
  }
  const compiler::Set& decl = add ? shape : keyOnly;
  size_t begin = 0;
  while (begin < els.size()) {
    size_t end = begin, bytes = 0;
    while (end < els.size() &&
           (end == begin || bytes + elementWireBytes(decl, els[end]) <= kElemBudgetBytes)) {
      bytes += elementWireBytes(decl, els[end]);
      ++end;
    }
    SetPtr s = makeSetRef(table_, shape.name);
    if (auto it = setIds_.find(shape.name); it != setIds_.end()) {
      nftnl_set_set_u32(s.get(), NFTNL_SET_ID, it->second);
    }
    if (Status st = addElements(s.get(), decl, els.subspan(begin, end - begin)); !st) return st;
    std::string what = std::string(add ? "add" : "delete") + " elements " +
                       std::to_string(begin + 1) + "-" + std::to_string(end) + " of " +
                       std::to_string(els.size()) + (add ? " to" : " from") +
                       obj(" set", shape.name);
    // EXCL: adding an element the kernel already holds is a drift we want
    // to hear about (sync() then falls back to a full replace).
    nlmsghdr* nlh =
        b_.begin(type, NFPROTO_INET, add ? NLM_F_CREATE | NLM_F_EXCL : 0, std::move(what));
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    begin = end;
  }
  return {};
}

Status Builder::rules(const compiler::Chain& chain) {
  for (size_t i = 0; i < chain.rules.size(); ++i) {
    const compiler::Rule& rule = chain.rules[i];
    Result<RulePtr> r = makeRule(table_, chain.name, rule, setIds_);
    if (!r) {
      Error e = r.takeError();
      e.message = obj("chain", chain.name) + " rule " + std::to_string(i + 1) + ": " + e.message;
      return e;
    }
    std::string what = "add rule " + std::to_string(i + 1) + obj(" in chain", chain.name);
    if (!rule.comment.empty()) what += " (\"" + rule.comment + "\")";
    nlmsghdr* nlh =
        b_.begin(NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND, std::move(what));
    nftnl_rule_nlmsg_build_payload(nlh, r->get());
  }
  return {};
}

// The layout of an existing set's elements. The diff names the set only; the
// target ruleset (when the caller has it) has its declaration, otherwise it
// is inferred from the elements: a range means an interval set, a verdict
// other than a bare accept means a verdict map.
Result<const compiler::Set*> Builder::shapeOf(const std::string& set, std::span<const Element> add,
                                              std::span<const Element> remove) {
  if (target_) {
    if (const compiler::Set* s = target_->findSet(set)) return s;
  }
  auto shape = std::make_unique<compiler::Set>();
  shape->name = set;
  const Element* first =
      !add.empty() ? &add.front() : (!remove.empty() ? &remove.front() : nullptr);
  if (!first) return static_cast<const compiler::Set*>(nullptr);
  const compiler::Verdict plainAccept{};
  for (auto list : {add, remove}) {
    for (const Element& e : list) {
      if (e.keyEnd.len != 0 && e.keyEnd != e.key) shape->interval = true;
      if (e.verdict != plainAccept) shape->verdictMap = true;
    }
  }
  inferred_.push_back(std::move(shape));
  return inferred_.back().get();
}

// The kernel keeps a table's sets in a list in creation order and finds one
// by name walking it from the head (nft_set_lookup), for every rule and
// element message that names it. A set that every app chain references (a
// GlobalPolicy rule's, or the log budget's meter) created after 2,000
// per-app sets cost 2,000 steps per reference; so did each workload
// registration's elements into @registered. Sets go in as: those most
// element changes touch (Set::lookedUpOften), then by how many rules of the
// diff name them, most first; the rest in the diff's order.
std::vector<const compiler::Set*> Builder::setsByUse() const {
  std::map<std::string, size_t> uses;
  for (const auto* chains : {&diff_.addChains, &diff_.replaceChains})
    for (const compiler::Chain& c : *chains)
      for (const compiler::Rule& r : c.rules)
        for (const compiler::Expr& e : r.exprs) {
          if (const auto* l = std::get_if<compiler::expr::Lookup>(&e)) ++uses[l->set];
          if (const auto* v = std::get_if<compiler::expr::Vmap>(&e)) ++uses[v->map];
          if (const auto* m = std::get_if<compiler::expr::Meter>(&e)) ++uses[m->set];
        }
  // Ranked once per set, not once per comparison.
  using Rank = std::pair<bool, size_t>;
  std::vector<std::pair<Rank, const compiler::Set*>> ranked;
  for (const compiler::Set& s : diff_.addSets) {
    const auto u = uses.find(s.name);
    ranked.push_back({{s.lookedUpOften, u == uses.end() ? 0 : u->second}, &s});
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<const compiler::Set*> out;
  for (const auto& [rank, s] : ranked)
    out.push_back(s);
  return out;
}

Result<Batch> Builder::build(bool replaceTable) {
  if (replaceTable && !diff_.createTable) {
    return makeError(ErrorCode::kInternal, "a table replace needs a full diff");
  }
  // Set ids are per batch; the kernel finds new sets by id for rules that
  // reference them in the same batch.
  uint32_t nextId = 1;
  for (const compiler::Set& s : diff_.addSets)
    setIds_[s.name] = nextId++;

  // 1. The table. For a replace: add (so the delete cannot fail on a
  // missing table), delete, then create it afresh below.
  if (replaceTable) {
    tableMsg(NFT_MSG_NEWTABLE, NLM_F_CREATE, "add");
    tableMsg(NFT_MSG_DELTABLE, 0, "delete");
  }
  if (diff_.createTable) tableMsg(NFT_MSG_NEWTABLE, NLM_F_CREATE, "add");

  // Shapes of the sets whose elements change, resolved once.
  std::vector<const compiler::Set*> shapes;
  for (const compiler::ElementChanges& ch : diff_.elements) {
    Result<const compiler::Set*> s = shapeOf(ch.set, ch.add, ch.remove);
    if (!s) return s.takeError();
    shapes.push_back(*s);
  }

  if (Status st = removeOld(shapes); !st) return st.takeError();
  if (Status st = addNew(shapes); !st) return st.takeError();
  return b_.finish();
}

// Steps 2-5 of the transaction: what goes, before anything is added.
Status Builder::removeOld(const std::vector<const compiler::Set*>& shapes) {
  // 2. Element removals (before adds: a changed range is removed, then re-added).
  for (size_t i = 0; i < diff_.elements.size(); ++i) {
    const auto& ch = diff_.elements[i];
    if (ch.remove.empty()) continue;
    if (Status s = elements(NFT_MSG_DELSETELEM, *shapes[i], ch.remove); !s) return s;
  }
  // 3. Flush the rules of replaced and deleted chains: a chain can only be
  // deleted once nothing in it (and nothing jumping to it) remains.
  for (const compiler::Chain& c : diff_.replaceChains)
    flushChain(c.name);
  for (const std::string& c : diff_.deleteChains)
    flushChain(c);
  // 4. Delete chains. Kernels before 6.2 may refuse to delete a chain whose
  // last jump is removed in the same transaction (EBUSY); the diff is
  // expected to leave such chains for a later transaction on those kernels.
  for (const std::string& c : diff_.deleteChains)
    chainMsg(NFT_MSG_DELCHAIN, 0, nullptr, c, "delete");
  // 5. Delete sets (their referencing rules were flushed above).
  for (const std::string& s : diff_.deleteSets) {
    SetPtr set = makeSetRef(table_, s);
    nlmsghdr* nlh = b_.begin(NFT_MSG_DELSET, NFPROTO_INET, 0, "delete" + obj(" set", s));
    nftnl_set_nlmsg_build_payload(nlh, set.get());
  }
  return {};
}

// Steps 6-9: what comes.
Status Builder::addNew(const std::vector<const compiler::Set*>& shapes) {
  // 6. Add sets, declarations only, the most referenced first.
  for (const compiler::Set* sp : setsByUse()) {
    const compiler::Set& s = *sp;
    Result<SetPtr> set = makeSet(table_, s, setIds_[s.name]);
    if (!set) return set.takeError();
    nlmsghdr* nlh = b_.begin(NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_EXCL,
                             "add" + obj(" set", s.name));
    nftnl_set_nlmsg_build_payload(nlh, set->get());
  }
  // 7. Add chains (before elements: verdict map elements jump to them).
  for (const compiler::Chain& c : diff_.addChains) {
    chainMsg(NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, &c, c.name, "add");
  }
  // 8. Add elements: of new sets, then of existing ones.
  for (const compiler::Set& s : diff_.addSets) {
    if (Status st = elements(NFT_MSG_NEWSETELEM, s, s.elements); !st) return st;
  }
  for (size_t i = 0; i < diff_.elements.size(); ++i) {
    const auto& ch = diff_.elements[i];
    if (ch.add.empty()) continue;
    if (Status s = elements(NFT_MSG_NEWSETELEM, *shapes[i], ch.add); !s) return s;
  }
  // 9. Rules of added and replaced chains.
  for (const compiler::Chain& c : diff_.addChains) {
    if (Status s = rules(c); !s) return s;
  }
  for (const compiler::Chain& c : diff_.replaceChains) {
    if (Status s = rules(c); !s) return s;
  }
  return {};
}

}  // namespace

Result<Batch> buildBatch(const compiler::RulesetDiff& diff, uint32_t firstSeq, bool replaceTable) {
  return buildBatch(diff, firstSeq, replaceTable, nullptr);
}

Result<Batch> buildBatch(const compiler::RulesetDiff& diff, uint32_t firstSeq, bool replaceTable,
                         const compiler::Ruleset* target) {
  if (diff.table.empty()) return makeError(ErrorCode::kInvalidInput, "diff without a table name");
  Builder builder(diff, firstSeq, target);
  return builder.build(replaceTable);
}

namespace {

// Builds, takes sequence numbers from the kernel object, commits.
Status commitDiff(NftKernel& kernel, const RulesetDiff& diff, bool replaceTable,
                  const Ruleset* target) {
  Result<Batch> batch = buildBatch(diff, 0, replaceTable, target);
  if (!batch) return batch.takeError();
  renumberBatch(*batch, kernel.nextSeq(static_cast<uint32_t>(batch->messageCount())));
  return kernel.commit(*batch);
}

}  // namespace

Status Writer::apply(const compiler::RulesetDiff& diff) {
  if (diff.empty()) return {};
  return commitDiff(kernel_, diff, /*replaceTable=*/false, nullptr);
}

Status Writer::apply(const compiler::RulesetDiff& diff, const compiler::Ruleset& target) {
  if (diff.empty()) return {};
  return commitDiff(kernel_, diff, /*replaceTable=*/false, &target);
}

Status Writer::replace(const compiler::Ruleset& ruleset) {
  return commitDiff(kernel_, compiler::fullRuleset(ruleset), /*replaceTable=*/true, &ruleset);
}

Status Writer::sync(const compiler::Ruleset* applied, const compiler::Ruleset& next) {
  if (applied == nullptr || applied->table != next.table) return replace(next);
  Result<bool> exists = kernel_.tableExists(next.table);
  if (!exists) return exists.takeError();
  if (!*exists) return replace(next);
  return apply(compiler::diffRulesets(*applied, next), next);
}

}  // namespace bulkhead::nft
