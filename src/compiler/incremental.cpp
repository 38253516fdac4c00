#include "bulkhead/compiler/incremental.h"

#include <algorithm>
#include <iterator>

#include "bulkhead/policy/loader.h"
#include "compilation.h"

namespace bulkhead::compiler {

using policy::Workload;

namespace {

// Sorted-vector edits in place: a workload brings a handful of elements, so
// each is found by binary search rather than the vector rebuilt.
void applyChanges(std::vector<Element>& elements, const std::vector<Element>& remove,
                  const std::vector<Element>& add) {
  for (const auto& e : remove) {
    auto it = std::lower_bound(elements.begin(), elements.end(), e);
    if (it != elements.end() && *it == e) elements.erase(it);
  }
  for (const auto& e : add)
    elements.insert(std::lower_bound(elements.begin(), elements.end(), e), e);
}

ElementChanges& changesOf(std::map<std::string, ElementChanges>& changes, const std::string& set) {
  return changes.try_emplace(set, ElementChanges{set, {}, {}}).first->second;
}

Status checkWorkload(const Workload& w, bool remote = false) {
  const std::string errors = policy::workloadErrors(w, remote);
  if (errors.empty()) return {};
  return makeError(ErrorCode::kInvalidInput, errors);
}

}  // namespace

void Compilation::applyElementChanges(std::map<std::string, ElementChanges>& changes) {
  for (auto it = changes.begin(); it != changes.end();) {
    auto& c = it->second;
    if (c.add.empty() && c.remove.empty()) {
      it = changes.erase(it);
      continue;
    }
    std::sort(c.remove.begin(), c.remove.end());
    std::sort(c.add.begin(), c.add.end());
    applyChanges(mutableSet(c.set)->elements, c.remove, c.add);
    ++it;
  }
}

const Workload* Compilation::findApiWorkload(const std::string& name) const {
  auto it = apiIndex_.find(name);
  return it == apiIndex_.end() ? nullptr : &apiWorkloads_[it->second];
}

bool Compilation::changesAppSet(const Workload* before, const Workload* after) const {
  if (after && !apps_.count(after->app)) return true;  // a new implicit app
  if (before && (!after || after->app != before->app)) {
    const auto& app = apps_.at(before->app);
    if (app.implicit && workloadCount_.at(before->app) == 1) return true;  // it goes away
  }
  return false;
}

// 1. Workload sets: the elements of the old version out, the new in.
void Compilation::workloadSetChanges(const Workload* before, const Workload* after,
                                     std::map<std::string, ElementChanges>& changes) const {
  auto change = [&](const std::string& set) -> ElementChanges& { return changesOf(changes, set); };
  std::map<std::string, std::vector<Element>> oldElems, newElems;
  if (before) oldElems = workloadElements(*before);
  if (after) newElems = workloadElements(*after);
  for (const char* set : {kQuarantineSet, kRegisteredSet, kSource4Set, kSource6Set}) {
    auto& o = oldElems[set];
    auto& n = newElems[set];
    std::sort(o.begin(), o.end());
    std::sort(n.begin(), n.end());
    std::set_difference(o.begin(), o.end(), n.begin(), n.end(),
                        std::back_inserter(change(set).remove));
    std::set_difference(n.begin(), n.end(), o.begin(), o.end(),
                        std::back_inserter(change(set).add));
  }
}

void Compilation::dispatchChanges(const Workload* before, const Workload* after,
                                  std::map<std::string, ElementChanges>& changes) {
  auto change = [&](const std::string& set) -> ElementChanges& { return changesOf(changes, set); };
  // Dispatch: an interface that leaves (or changes app) goes from wherever it
  // is, dispatch map or staged sets; one that arrives is staged, which costs
  // the kernel no table validation (see compiler.cpp).
  std::map<std::string, std::string> oldApp, newApp;  // interface -> app
  if (before)
    for (const auto& i : before->interfaces)
      oldApp[i] = before->app;
  if (after)
    for (const auto& i : after->interfaces)
      newApp[i] = after->app;
  std::set<std::string> ifaces;
  for (const auto* m : {&oldApp, &newApp})
    for (const auto& [i, app] : *m)
      ifaces.insert(i);
  for (const auto& i : ifaces) {
    const auto from = oldApp.find(i), to = newApp.find(i);
    const bool had = from != oldApp.end(), has = to != newApp.end();
    if (had && has && from->second == to->second) continue;
    const Key key = KeyBuilder().ifname(i).build();
    const Element plain{key, key, {}};
    const auto s = had ? staged_.find(i) : staged_.end();
    const bool wasStaged = s != staged_.end();
    if (wasStaged) {
      change(stagedSetName(s->second)).remove.push_back(plain);
      if (!has) change(kStagedSet).remove.push_back(plain);
      staged_.erase(s);
    } else if (had) {
      change(kDispatchMap)
          .remove.push_back(
              Element{key, key, Verdict{Verdict::Kind::kGoto, appChainName(from->second)}});
    }
    if (has) {
      if (!wasStaged) change(kStagedSet).add.push_back(plain);
      change(stagedSetName(to->second)).add.push_back(plain);
      staged_[i] = to->second;
    }
  }
}

// 2. The index: interface and address owners, app addresses, the API list.
// Returns the apps whose addresses changed.
std::set<std::string> Compilation::reindex(const Workload* before, const Workload* after) {
  const std::string name = after ? after->name : before->name;
  std::set<std::string> touchedApps;
  if (before) {
    touchedApps.insert(before->app);
    for (const auto& i : before->interfaces)
      ifaceOwner_.erase(i);
    for (const auto& a : before->addresses)
      addrOwner_.erase(a);
    --workloadCount_[before->app];
  }
  if (after) {
    touchedApps.insert(after->app);
    for (const auto& i : after->interfaces)
      ifaceOwner_[i] = after->name;
    for (const auto& a : after->addresses)
      addrOwner_[a] = after->name;
    ++workloadCount_[after->app];
  }
  moveAddresses(before, after);
  auto it = apiIndex_.find(name);
  if (after) {
    Workload copy = *after;  // `after` may point into apiWorkloads_ itself
    if (it != apiIndex_.end()) {
      apiWorkloads_[it->second] = std::move(copy);
    } else {
      apiIndex_.emplace(name, apiWorkloads_.size());
      apiWorkloads_.push_back(std::move(copy));
    }
  } else if (it != apiIndex_.end()) {
    // The last one takes the hole: no walk of the list, whose order means
    // nothing (listings sort by name).
    const size_t hole = it->second;
    apiIndex_.erase(it);
    if (hole + 1 != apiWorkloads_.size()) {
      apiWorkloads_[hole] = std::move(apiWorkloads_.back());
      apiIndex_[apiWorkloads_[hole].name] = hole;
    }
    apiWorkloads_.pop_back();
  }

  return touchedApps;
}

void Compilation::moveAddresses(const Workload* before, const Workload* after) {
  if (before) {
    auto& addrs = appAddresses_[before->app];
    for (const auto& a : before->addresses)
      addrs.erase(std::lower_bound(addrs.begin(), addrs.end(), a));
  }
  if (after) {
    auto& addrs = appAddresses_[after->app];
    for (const auto& a : after->addresses)
      addrs.insert(std::upper_bound(addrs.begin(), addrs.end(), a), a);
  }
}

// 3. Destination sets holding the touched apps' addresses, recomputed
// whole (each is one app's or one rule's: small next to the table).
void Compilation::destinationChanges(const std::set<std::string>& touchedApps,
                                     std::map<std::string, ElementChanges>& changes) {
  std::set<std::string> apps;
  std::set<size_t> rules;
  for (const auto& a : touchedApps) {
    auto d = dependents_.find(a);
    if (d == dependents_.end()) continue;
    apps.insert(d->second.apps.begin(), d->second.apps.end());
    rules.insert(d->second.rules.begin(), d->second.rules.end());
  }
  std::vector<Set> fresh;
  for (const auto& a : apps)
    for (auto& s : appDestSets(a))
      fresh.push_back(std::move(s));
  for (size_t r : rules)
    for (auto& s : ruleDestSets(r))
      fresh.push_back(std::move(s));
  for (auto& s : fresh) {
    Set* current = mutableSet(s.name);
    ElementChanges c{s.name, {}, {}};
    std::set_difference(current->elements.begin(), current->elements.end(), s.elements.begin(),
                        s.elements.end(), std::back_inserter(c.remove));
    std::set_difference(s.elements.begin(), s.elements.end(), current->elements.begin(),
                        current->elements.end(), std::back_inserter(c.add));
    if (c.add.empty() && c.remove.empty()) continue;
    current->elements = std::move(s.elements);
    changes.emplace(s.name, std::move(c));
  }
}

// Replaces `before` (nullptr: none) with `after` (nullptr: removal). The
// caller has checked that no implicit app appears or disappears.
Result<RulesetDiff> Compilation::replaceWorkload(const Workload* before, const Workload* after) {
  if (after) {
    if (auto st = claim(*after, before ? &before->name : nullptr); !st) return st.takeError();
  }
  std::map<std::string, ElementChanges> changes;
  workloadSetChanges(before, after, changes);
  dispatchChanges(before, after, changes);
  applyElementChanges(changes);
  destinationChanges(reindex(before, after), changes);
  RulesetDiff diff;
  diff.table = out_.table;
  for (auto& [set, c] : changes)
    diff.elements.push_back(std::move(c));
  return diff;
}

bool Compilation::changesRemoteApps(const Workload* before, const Workload* after) const {
  if (after && !appLabels_.count(after->app)) return true;  // becomes selectable
  if (before && (!after || after->app != before->app) && !apps_.count(before->app) &&
      remoteCount_.at(before->app) == 1)
    return true;  // the last remote workload of an app nothing else uses
  return false;
}

// A remote workload only lends its addresses to destination sets: no
// interface, so no workload set, dispatch or claim changes.
Result<RulesetDiff> Compilation::replaceRemote(const RemoteId& id, const Workload* before,
                                               const Workload* after) {
  std::set<std::string> touchedApps;
  if (before) {
    touchedApps.insert(before->app);
    --remoteCount_[before->app];
  }
  if (after) {
    touchedApps.insert(after->app);
    ++remoteCount_[after->app];
  }
  moveAddresses(before, after);
  if (after) {
    Workload copy = *after;  // `after` may point into remotes_ itself
    remotes_[id] = std::move(copy);
  } else {
    remotes_.erase(id);
  }
  std::map<std::string, ElementChanges> changes;
  destinationChanges(touchedApps, changes);
  RulesetDiff diff;
  diff.table = out_.table;
  for (auto& [set, c] : changes)
    diff.elements.push_back(std::move(c));
  return diff;
}

RulesetDiff Compilation::promoteStaged(size_t limit) {
  RulesetDiff diff;
  diff.table = out_.table;
  if (staged_.empty() || limit == 0) return diff;
  std::map<std::string, ElementChanges> changes;
  auto change = [&](const std::string& set) -> ElementChanges& { return changesOf(changes, set); };
  auto it = staged_.begin();
  for (size_t n = 0; it != staged_.end() && n < limit; ++it, ++n) {
    const auto& [i, app] = *it;
    const Key key = KeyBuilder().ifname(i).build();
    change(kDispatchMap)
        .add.push_back(Element{key, key, Verdict{Verdict::Kind::kGoto, appChainName(app)}});
    change(kStagedSet).remove.push_back(Element{key, key, {}});
    change(stagedSetName(app)).remove.push_back(Element{key, key, {}});
  }
  staged_.erase(staged_.begin(), it);
  applyElementChanges(changes);
  for (auto& [set, c] : changes)
    diff.elements.push_back(std::move(c));
  return diff;
}

IncrementalCompiler::IncrementalCompiler(CompileOptions options) : options_(std::move(options)) {
  state_ = std::make_unique<Compilation>(policy::Bundle{}, std::vector<Workload>{}, options_);
  (void)state_->run();  // an empty policy cannot fail
}

IncrementalCompiler::~IncrementalCompiler() = default;

Result<RulesetDiff> IncrementalCompiler::reset(policy::Bundle bundle,
                                               std::vector<Workload> workloads) {
  return reset(std::move(bundle), std::move(workloads), state_->remotes());
}

Result<RulesetDiff> IncrementalCompiler::reset(policy::Bundle bundle,
                                               std::vector<Workload> workloads,
                                               RemoteWorkloads remotes) {
  auto next = std::make_unique<Compilation>(std::move(bundle), std::move(workloads), options_,
                                            std::move(remotes));
  if (auto st = next->run(); !st) return st.takeError();
  RulesetDiff diff = diffRulesets(state_->ruleset(), next->ruleset());
  state_ = std::move(next);
  return diff;
}

Result<RulesetDiff> IncrementalCompiler::upsertWorkload(const Workload& workload) {
  if (auto st = checkWorkload(workload); !st) return st.takeError();
  if (state_->isBundleWorkload(workload.name))
    return makeError(ErrorCode::kInvalidInput,
                     "workload \"" + workload.name + "\" is defined by the policy bundle");
  const Workload* before = state_->findApiWorkload(workload.name);
  if (state_->changesAppSet(before, &workload)) {
    std::vector<Workload> next = state_->apiWorkloads();
    auto it = std::find_if(next.begin(), next.end(),
                           [&](const Workload& w) { return w.name == workload.name; });
    if (it != next.end())
      *it = workload;
    else
      next.push_back(workload);
    return reset(state_->bundle(), std::move(next));
  }
  return state_->replaceWorkload(before, &workload);
}

Result<RulesetDiff> IncrementalCompiler::removeWorkload(const std::string& name) {
  const Workload* before = state_->findApiWorkload(name);
  if (!before) return makeError(ErrorCode::kNotFound, "no workload \"" + name + "\"");
  if (state_->changesAppSet(before, nullptr)) {
    std::vector<Workload> next = state_->apiWorkloads();
    std::erase_if(next, [&](const Workload& w) { return w.name == name; });
    return reset(state_->bundle(), std::move(next));
  }
  const Workload copy = *before;  // replaceWorkload erases the original
  return state_->replaceWorkload(&copy, nullptr);
}

Result<RulesetDiff> IncrementalCompiler::upsertRemote(const std::string& host,
                                                      const Workload& workload) {
  if (auto st = checkWorkload(workload, /*remote=*/true); !st) return st.takeError();
  if (host.empty()) return makeError(ErrorCode::kInvalidInput, "remote workload: needs a host");
  Workload w = workload;
  w.quarantined = false;  // quarantine is the owning host's business
  const RemoteId id{host, w.name};
  const auto& remotes = state_->remotes();
  const auto it = remotes.find(id);
  const Workload* before = it == remotes.end() ? nullptr : &it->second;
  if (before && before->app == w.app && before->addresses == w.addresses &&
      before->labels == w.labels) {
    RulesetDiff none;
    none.table = state_->ruleset().table;
    return none;
  }
  if (state_->changesRemoteApps(before, &w)) {
    RemoteWorkloads next = remotes;
    next[id] = std::move(w);
    return reset(state_->bundle(), state_->apiWorkloads(), std::move(next));
  }
  return state_->replaceRemote(id, before, &w);
}

Result<RulesetDiff> IncrementalCompiler::removeRemote(const std::string& host,
                                                      const std::string& name) {
  const RemoteId id{host, name};
  const auto& remotes = state_->remotes();
  const auto it = remotes.find(id);
  if (it == remotes.end())
    return makeError(ErrorCode::kNotFound,
                     "no remote workload \"" + name + "\" of host \"" + host + "\"");
  if (state_->changesRemoteApps(&it->second, nullptr)) {
    RemoteWorkloads next = remotes;
    next.erase(id);
    return reset(state_->bundle(), state_->apiWorkloads(), std::move(next));
  }
  const Workload copy = it->second;  // replaceRemote erases the original
  return state_->replaceRemote(id, &copy, nullptr);
}

const RemoteWorkloads& IncrementalCompiler::remotes() const {
  return state_->remotes();
}

RulesetDiff IncrementalCompiler::promoteStaged(size_t limit) {
  return state_->promoteStaged(limit);
}

size_t IncrementalCompiler::stagedCount() const {
  return state_->stagedCount();
}

const Ruleset& IncrementalCompiler::ruleset() const {
  return state_->ruleset();
}
const policy::Bundle& IncrementalCompiler::bundle() const {
  return state_->bundle();
}
const std::vector<Workload>& IncrementalCompiler::workloads() const {
  return state_->apiWorkloads();
}
const Workload* IncrementalCompiler::findWorkload(const std::string& name) const {
  return state_->findApiWorkload(name);
}
const policy::App* IncrementalCompiler::findApp(const std::string& name) const {
  return state_->findDocumentedApp(name);
}

}  // namespace bulkhead::compiler
