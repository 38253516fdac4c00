// Internal to the compiler: the state of one compilation, kept alive by
// IncrementalCompiler so that workload changes recompute only what depends
// on them. Not installed; only src/compiler includes it.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/compiler/intervals.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::compiler {

// Destination boxes of one rule or app, by family.
struct Dests {
  std::vector<DestBox> v4, v6;
  // Whether every box the set can ever hold, whatever workloads come and go,
  // is one address, one protocol and at most kExactPorts ports: such a set
  // is kept as a hash of single keys instead of intervals (see destSet).
  bool exact4 = true, exact6 = true;

  void add(const AddrRange& range, const policy::PortSpec& port);
  // Every range with every port spec: an empty `ports` adds nothing.
  void addAll(const std::vector<AddrRange>& ranges, const std::vector<policy::PortSpec>& ports);
  // The shape an app's addresses with `ports` give, before or without any
  // workload: single addresses, so only the ports decide.
  void expectAddresses(const std::vector<policy::PortSpec>& ports);
  void append(const Dests& o);
};

// The most ports of one spec a hash set spells out key by key.
inline constexpr unsigned kExactPorts = 16;

class Compilation {
 public:
  Compilation(policy::Bundle bundle, std::vector<policy::Workload> apiWorkloads,
              CompileOptions options, RemoteWorkloads remotes = {});

  // Indexes everything and builds the whole ruleset.
  Status run();

  const Ruleset& ruleset() const { return out_; }
  Ruleset takeRuleset() { return std::move(out_); }
  const policy::Bundle& bundle() const { return bundle_; }
  const std::vector<policy::Workload>& apiWorkloads() const { return apiWorkloads_; }
  const RemoteWorkloads& remotes() const { return remotes_; }
  const CompileOptions& options() const { return options_; }

  // Incremental changes (incremental.cpp). Each checks everything before it
  // changes anything: on error the state is as before.
  const policy::Workload* findApiWorkload(const std::string& name) const;
  const policy::App* findDocumentedApp(const std::string& name) const {
    auto it = apps_.find(name);
    return it == apps_.end() || it->second.implicit ? nullptr : &it->second;
  }
  bool isBundleWorkload(const std::string& name) const { return bundleWorkloads_.count(name) > 0; }
  // True when the change needs a full compile: it adds or empties an app that
  // has no App document (a chain appears or goes).
  bool changesAppSet(const policy::Workload* before, const policy::Workload* after) const;
  Result<RulesetDiff> replaceWorkload(const policy::Workload* before,
                                      const policy::Workload* after);
  // True when a remote change needs a full compile: its app becomes
  // selectable (no App document, no local workload, no remote one yet) or
  // stops being so. The kernel still sees element changes only: such an
  // app has no chain or set of its own.
  bool changesRemoteApps(const policy::Workload* before, const policy::Workload* after) const;
  // Replaces remote `before` (nullptr: none) with `after` (nullptr: removal)
  // under `id`: destination set elements only.
  Result<RulesetDiff> replaceRemote(const RemoteId& id, const policy::Workload* before,
                                    const policy::Workload* after);
  // Moves up to `limit` staged interfaces into the dispatch map (one diff).
  RulesetDiff promoteStaged(size_t limit);
  size_t stagedCount() const { return staged_.size(); }

 private:
  struct OrderedRule {
    const policy::GlobalPolicy* policy;
    size_t index;
  };
  // Who must be recomputed when an app's addresses change.
  struct Dependents {
    std::set<std::string> apps;  // apps whose allow sets hold the addresses
    std::set<size_t> rules;      // indexes into globalRules_
  };

  Status indexWorkloads();
  void indexApps();
  Status claim(const policy::Workload& w, const std::string* exceptName) const;

  Dests serviceDests(const policy::Service& service,
                     const std::vector<policy::PortSpec>& narrow) const;
  // `ports` is explicit here (empty: nothing), as narrowPorts returns it.
  Dests appDests(const std::string& app, const std::vector<policy::PortSpec>& ports) const;
  Dests selectedAppDests(const policy::Selector& selector,
                         const std::vector<policy::PortSpec>& ports) const;
  Dests namedDests(const std::string& name, const std::vector<policy::PortSpec>& narrow) const;
  Dests globalRuleDests(const policy::GlobalRule& rule) const;
  Dests appEgressDests(const policy::App& app) const;
  const std::vector<std::string>& selectedApps(const policy::Selector& selector) const;
  // An app's (a GlobalPolicy rule's, by index into globalRules_)
  // destinations, recorded in dependents_.
  Dests recordAppDests(const std::string& name, const policy::App& app);
  Dests recordRuleDests(size_t rule);

  std::vector<Set> appDestSets(const std::string& app) const;
  static std::vector<Set> appDestSets(const std::string& app, const Dests& dests);
  std::vector<Set> ruleDestSets(size_t rule) const;
  std::vector<Set> ruleDestSets(size_t rule, const Dests& dests) const;
  void addWorkloadSets();
  Chain preChain() const;
  Chain rawChain() const;
  Chain preroutingChain() const;
  Expr logBudget() const;
  std::vector<Rule> logDrop(const std::vector<Expr>& match, const std::string& action,
                            const std::string& reason, const std::string& comment) const;
  Chain rejectChain() const;
  Chain stagedChain() const;
  Chain appChain(const policy::App& app) const;
  Chain baseChain(BaseHook::Hook hook) const;
  std::vector<Rule> denyRules(const policy::App& app, const std::string& action,
                              const std::string& reason, const std::optional<Expr>& match,
                              const std::string& comment) const;
  Set* mutableSet(const std::string& name);
  // Drops empty entries, sorts the rest and applies them to the sets.
  void applyElementChanges(std::map<std::string, ElementChanges>& changes);
  // The steps of replaceWorkload (incremental.cpp).
  void workloadSetChanges(const policy::Workload* before, const policy::Workload* after,
                          std::map<std::string, ElementChanges>& changes) const;
  void dispatchChanges(const policy::Workload* before, const policy::Workload* after,
                       std::map<std::string, ElementChanges>& changes);
  std::set<std::string> reindex(const policy::Workload* before, const policy::Workload* after);
  // An app's addresses gain `after`'s and lose `before`'s (either may be null).
  void moveAddresses(const policy::Workload* before, const policy::Workload* after);
  void destinationChanges(const std::set<std::string>& touchedApps,
                          std::map<std::string, ElementChanges>& changes);

  policy::Bundle bundle_;
  std::vector<policy::Workload> apiWorkloads_;
  CompileOptions options_;
  RemoteWorkloads remotes_;

  std::map<std::string, const policy::Service*> services_;
  // Every app a chain is made for: documented Apps and, for workloads whose
  // app has none, implicit ones (default deny, no egress).
  std::map<std::string, policy::App> apps_;
  // Effective labels of every app a selector may match: those of apps_,
  // and of apps only remote workloads use.
  std::map<std::string, policy::Labels> appLabels_;
  // Apps an appSelector or toSelector matches; apps only change with a full
  // compile, so this is filled on first use and kept.
  mutable std::map<const policy::Selector*, std::vector<std::string>> selected_;
  // App names (in name order) by each label they carry: a selector's
  // candidates are the apps with its first label.
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> appsByLabel_;
  struct AddrHash {
    size_t operator()(const policy::IpAddr& a) const {
      return std::hash<std::string_view>()(
          std::string_view(reinterpret_cast<const char*>(a.bytes.data()), a.size()));
    }
  };
  // Looked up by name, never walked in order: hashed (a tenth of a compile
  // at 10,000 workloads went to ordered inserts here).
  std::unordered_set<std::string> bundleWorkloads_;   // names
  std::unordered_map<std::string, size_t> apiIndex_;  // name -> index in apiWorkloads_
  std::map<std::string, std::vector<policy::IpAddr>> appAddresses_;      // sorted
  std::unordered_map<std::string, std::string> ifaceOwner_;              // -> workload
  std::unordered_map<policy::IpAddr, std::string, AddrHash> addrOwner_;  // -> workload
  std::map<std::string, size_t> workloadCount_;                          // per app, local
  std::map<std::string, size_t> remoteCount_;                            // per app
  std::map<std::string, std::string> staged_;  // interface -> app, not yet in dispatch
  std::vector<OrderedRule> globalRules_;
  std::map<std::string, Dependents> dependents_;  // by app whose addresses are used
  // While computing one owner's destinations: the apps whose addresses it used.
  mutable std::set<std::string>* usedApps_ = nullptr;
  Ruleset out_;
};

// Calls add(set, element) for each element a workload puts in the workload
// sets (dispatch, registered, quarantine, src4, src6); `set` is one of those
// names' constants.
template <typename Add>
void forEachWorkloadElement(const policy::Workload& w, Add&& add) {
  for (const auto& i : w.interfaces) {
    const Key key = KeyBuilder().ifname(i).build();
    add(kDispatchMap, Element{key, key, Verdict{Verdict::Kind::kGoto, appChainName(w.app)}});
    add(kRegisteredSet, Element{key, key, {}});
    if (w.quarantined) add(kQuarantineSet, Element{key, key, {}});
    // The pre-conntrack chain accepts a packet found in src4/src6 with its
    // first lookup: a quarantined workload's sources leave those sets, so its
    // packets fall through to the quarantine drop. Both changes are in the
    // one diff of the quarantine, hence one transaction: no packet sees one
    // without the other.
    if (w.quarantined) continue;
    for (const auto& a : w.addresses) {
      const Key k = KeyBuilder().ifname(i).addr(a).build();
      add(a.family == policy::Family::kIpv4 ? kSource4Set : kSource6Set, Element{k, k, {}});
    }
  }
}

// The same, by set name.
std::map<std::string, std::vector<Element>> workloadElements(const policy::Workload& w);

// The empty st_<app> set of staged interfaces.
Set stagedSet(const std::string& app);

// A set of destinations from boxes: with `exact` a hash of single
// address . protocol . port keys, else an interval set (boxes made disjoint).
Set destSet(const std::string& name, KeyField addrField, const std::vector<DestBox>& boxes,
            bool exact, const std::string& comment);

}  // namespace bulkhead::compiler
