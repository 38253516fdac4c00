// Policy + workloads -> Ruleset. The table's shape, in evaluation order:
//
//   prerouting (base chain, priority raw: before conntrack; policy accept)
//     iifname @registered goto workload_raw
//     iifname "<pattern>" log, drop         unregistered workload interfaces
//   workload_raw
//     iifname @quarantine log, drop         everything, ND and DHCP included
//     accept ND/MLD from fe80::/10 or ::, DHCPv6 from fe80::/10, DHCP from 0.0.0.0
//     iifname . ip saddr != @src4 log, drop (and ip6 / @src6)
//   input / forward (base chains, priority filter, policy accept)
//     ct state established,related accept
//     [input only] accept ICMPv6 ND and DHCP/DHCPv6 before any policy
//     iifname vmap @dispatch                  O(1): interface -> goto app_<app>
//     iifname @staged goto staged_dispatch    interfaces not yet in @dispatch
//   staged_dispatch
//     iifname @st_<app> goto app_<app>        one rule per app, then drop
//   app_<app>
//     jump workload_pre                       ct state invalid drop
//     GlobalPolicy deny/log rules, by order   one set per rule (hash or interval)
//     allow: @a4_<app> / @a6_<app>, then GlobalPolicy allow sets
//     default: log, then reject/drop (enforce) or accept (audit)
//
// Why quarantine and the source check run before conntrack: conntrack does
// not look at the input interface, so with `ct state established accept`
// first a workload could inject packets into another workload's flow by
// forging its address and ports; and a quarantined workload's established
// flows would go on. At raw priority neither has a conntrack entry to ride.
//
// Every log rule spends the budget of its input interface
// (`update @log_budget { iifname limit ... }`), so one workload flooding
// denials cannot hide another's.
//
// Interfaces that are in no workload and match no --workload-interfaces
// pattern never match @registered, @dispatch or @staged: the host's own
// traffic falls through to `policy accept`.
//
// Why a staged path: on kernels before 6.19 every new `goto` element in a
// verdict map makes the commit re-validate the whole table, walking every
// chain once per dispatch element (~6 ms at 10,000 workloads). Adding an
// interface to plain ifname sets costs no validation, so a new workload is
// enforced at once through @st_<app>; IncrementalCompiler::promoteStaged()
// later moves many interfaces into @dispatch in one transaction, paying the
// validation once for all of them. A full compile stages nothing.
#include "bulkhead/compiler/compiler.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <set>

#include "compilation.h"

namespace bulkhead::compiler {

using policy::App;
using policy::Bundle;
using policy::GlobalPolicy;
using policy::GlobalRule;
using policy::IpAddr;
using policy::narrowPorts;
using policy::portsOrAny;
using policy::PortSpec;
using policy::Service;
using policy::Workload;

namespace {

Rule rule(std::vector<Expr> exprs, std::string comment = {}) {
  return Rule{std::move(exprs), std::move(comment)};
}

Expr verdict(Verdict::Kind kind, std::string chain = {}) {
  return expr::VerdictStatement{Verdict{kind, std::move(chain)}};
}

Expr destLookup(Family family, const std::string& set) {
  if (family == Family::kIpv4)
    return expr::Lookup{
        {PacketField::kIpDaddr, PacketField::kL4proto, PacketField::kThDport}, set, false};
  return expr::Lookup{
      {PacketField::kIp6Daddr, PacketField::kL4proto, PacketField::kThDport}, set, false};
}

// One protocol and few enough ports for a hash set to spell them out.
bool exactPorts(const PortSpec& p) {
  return p.protoLo == p.protoHi && unsigned(p.portHi - p.portLo) < kExactPorts;
}

}  // namespace

void Dests::add(const AddrRange& range, const PortSpec& port) {
  const Family family = range.lo.family;
  if (!port.appliesTo(family)) return;
  const bool v4Range = family == Family::kIpv4;
  if (!(range.lo == range.hi && exactPorts(port))) (v4Range ? exact4 : exact6) = false;
  auto& out = v4Range ? v4 : v6;
  out.push_back(DestBox{range, port.protoLo, port.protoHi, port.portLo, port.portHi});
}

void Dests::addAll(const std::vector<AddrRange>& ranges, const std::vector<PortSpec>& ports) {
  for (const auto& r : ranges)
    for (const auto& p : ports)
      add(r, p);
}

void Dests::expectAddresses(const std::vector<PortSpec>& ports) {
  for (const auto& p : ports) {
    if (exactPorts(p)) continue;
    if (p.appliesTo(Family::kIpv4)) exact4 = false;
    if (p.appliesTo(Family::kIpv6)) exact6 = false;
  }
}

void Dests::append(const Dests& o) {
  v4.insert(v4.end(), o.v4.begin(), o.v4.end());
  v6.insert(v6.end(), o.v6.begin(), o.v6.end());
  exact4 = exact4 && o.exact4;
  exact6 = exact6 && o.exact6;
}

Compilation::Compilation(Bundle bundle, std::vector<Workload> apiWorkloads, CompileOptions options,
                         RemoteWorkloads remotes)
    : bundle_(std::move(bundle)),
      apiWorkloads_(std::move(apiWorkloads)),
      options_(std::move(options)),
      remotes_(std::move(remotes)) {}

// Whether `w` may claim its interfaces and addresses (`exceptName`: the
// workload it replaces, whose claims do not count).
Status Compilation::claim(const Workload& w, const std::string* exceptName) const {
  for (const auto& i : w.interfaces) {
    auto it = ifaceOwner_.find(i);
    if (it != ifaceOwner_.end() && (!exceptName || it->second != *exceptName))
      return makeError(ErrorCode::kInvalidInput, "interface " + i + " is claimed by workloads \"" +
                                                     it->second + "\" and \"" + w.name + "\"");
  }
  for (const auto& a : w.addresses) {
    auto it = addrOwner_.find(a);
    if (it != addrOwner_.end() && (!exceptName || it->second != *exceptName))
      return makeError(ErrorCode::kInvalidInput, "address " + a.toString() +
                                                     " is claimed by workloads \"" + it->second +
                                                     "\" and \"" + w.name + "\"");
  }
  return {};
}

Status Compilation::indexWorkloads() {
  const size_t count = bundle_.workloads.size() + apiWorkloads_.size();
  ifaceOwner_.reserve(count);
  addrOwner_.reserve(2 * count);
  bundleWorkloads_.reserve(bundle_.workloads.size());
  apiIndex_.reserve(apiWorkloads_.size());
  // `fresh`: its name was not taken (the two name indexes tell).
  auto index = [&](const Workload& w, bool fresh) -> Status {
    if (!fresh)
      return makeError(ErrorCode::kInvalidInput, "workload \"" + w.name + "\" is defined twice");
    if (auto st = claim(w, nullptr); !st) return st;
    for (const auto& i : w.interfaces)
      ifaceOwner_.emplace(i, w.name);
    for (const auto& a : w.addresses) {
      addrOwner_.emplace(a, w.name);
      appAddresses_[w.app].push_back(a);
    }
    ++workloadCount_[w.app];
    return {};
  };
  for (const auto& w : bundle_.workloads)
    if (auto st = index(w, bundleWorkloads_.insert(w.name).second); !st) return st;
  for (size_t i = 0; i < apiWorkloads_.size(); ++i) {
    const Workload& w = apiWorkloads_[i];
    const bool fresh = !bundleWorkloads_.count(w.name) && apiIndex_.emplace(w.name, i).second;
    if (auto st = index(w, fresh); !st) return st;
  }
  for (const auto& [id, w] : remotes_) {
    if (!w.interfaces.empty())
      return makeError(ErrorCode::kInvalidInput, "remote workload \"" + w.name + "\" of host " +
                                                     id.first + " has interfaces");
    auto& addrs = appAddresses_[w.app];
    addrs.insert(addrs.end(), w.addresses.begin(), w.addresses.end());
    ++remoteCount_[w.app];
  }
  for (auto& [app, addrs] : appAddresses_)
    std::sort(addrs.begin(), addrs.end());
  return {};
}

void Compilation::indexApps() {
  for (const auto& s : bundle_.services)
    services_.emplace(s.name, &s);
  for (const auto& a : bundle_.apps)
    apps_.emplace(a.name, a);
  for (const auto& [app, count] : workloadCount_) {
    if (apps_.count(app)) continue;
    App implicit;
    implicit.name = app;
    implicit.implicit = true;
    apps_.emplace(app, std::move(implicit));
  }
  for (const auto& [name, app] : apps_)
    appLabels_.emplace(name, app.effectiveLabels());
  for (const auto& [name, count] : remoteCount_)
    if (!apps_.count(name)) appLabels_.emplace(name, policy::Labels{{"app", name}});
  for (const auto& [name, labels] : appLabels_)
    for (const auto& label : labels)
      appsByLabel_[label].push_back(name);  // in name order, as appLabels_
  for (const auto& p : bundle_.globalPolicies)
    for (size_t i = 0; i < p.rules.size(); ++i)
      globalRules_.push_back({&p, i});
  // Lower order runs first; ties by name then rule index, so the result
  // never depends on the order documents were read in.
  std::stable_sort(globalRules_.begin(), globalRules_.end(),
                   [](const OrderedRule& a, const OrderedRule& b) {
                     if (a.policy->order != b.policy->order)
                       return a.policy->order < b.policy->order;
                     if (a.policy->name != b.policy->name) return a.policy->name < b.policy->name;
                     return a.index < b.index;
                   });
}

Dests Compilation::appDests(const std::string& app, const std::vector<PortSpec>& ports) const {
  Dests d;
  if (usedApps_) usedApps_->insert(app);
  // Workloads come and go without a full compile: the set's shape must not
  // depend on whether the app has any now.
  d.expectAddresses(ports);
  auto it = appAddresses_.find(app);
  if (it == appAddresses_.end()) return d;
  std::vector<AddrRange> ranges;
  for (const auto& a : it->second)
    ranges.push_back(AddrRange{a, a});
  d.addAll(ranges, ports);
  return d;
}

Dests Compilation::serviceDests(const Service& service, const std::vector<PortSpec>& narrow) const {
  Dests d;
  if (service.appSelector)
    return selectedAppDests(*service.appSelector, narrowPorts(service.ports, narrow));
  for (const auto& ep : service.endpoints) {
    std::vector<AddrRange> ranges;
    for (const auto& c : ep.cidrs)
      ranges.push_back(toRange(c));
    d.addAll(ranges, narrowPorts(ep.ports, narrow));
  }
  return d;
}

Dests Compilation::namedDests(const std::string& name, const std::vector<PortSpec>& narrow) const {
  if (auto it = services_.find(name); it != services_.end())
    return serviceDests(*it->second, narrow);
  return appDests(name, narrowPorts({}, narrow));  // an App by name: all of its workloads
}

Dests Compilation::selectedAppDests(const policy::Selector& selector,
                                    const std::vector<PortSpec>& ports) const {
  Dests d;
  // Which apps a selector matches changes with remote workloads through a
  // full compile, whose diff must still be element changes only: the shape
  // follows the ports alone.
  d.expectAddresses(ports);
  for (const auto& name : selectedApps(selector))
    d.append(appDests(name, ports));
  return d;
}

const std::vector<std::string>& Compilation::selectedApps(const policy::Selector& selector) const {
  auto [it, fresh] = selected_.try_emplace(&selector);
  if (!fresh) return it->second;
  if (selector.matchLabels.empty()) {
    for (const auto& [name, labels] : appLabels_)
      it->second.push_back(name);
    return it->second;
  }
  // Only the apps that carry the selector's first label can match: at 1,000
  // apps and 2,000 selectors, testing every app was a sixth of a compile.
  const auto& [key, value] = *selector.matchLabels.begin();
  auto holders = appsByLabel_.find({key, value});
  if (holders == appsByLabel_.end()) return it->second;
  for (const auto& name : holders->second)
    if (selector.matches(appLabels_.at(name))) it->second.push_back(name);
  return it->second;
}

Dests Compilation::appEgressDests(const App& app) const {
  Dests d;
  for (const auto& rule : app.egress) {
    for (const auto& ref : rule.to)
      d.append(namedDests(ref.name, rule.ports));
    std::vector<AddrRange> ranges;
    for (const auto& c : rule.toCIDRs)
      ranges.push_back(toRange(c));
    d.addAll(ranges, portsOrAny(rule.ports));
  }
  return d;
}

Dests Compilation::globalRuleDests(const GlobalRule& rule) const {
  Dests d;
  for (const auto& ref : rule.to)
    d.append(namedDests(ref.name, rule.ports));
  if (rule.toSelector) {
    for (const auto& s : bundle_.services)
      if (rule.toSelector->matches(s.labels)) d.append(serviceDests(s, rule.ports));
    d.append(selectedAppDests(*rule.toSelector, portsOrAny(rule.ports)));
  }
  std::vector<AddrRange> ranges;
  for (const auto& c : rule.toCIDRs)
    ranges.push_back(toRange(c));
  d.addAll(ranges, portsOrAny(rule.ports));
  return d;
}

Set destSet(const std::string& name, KeyField addrField, const std::vector<DestBox>& boxes,
            bool exact, const std::string& comment) {
  Set s;
  s.name = name;
  s.fields = {addrField, KeyField::kInetProto, KeyField::kInetService};
  s.comment = comment;
  if (exact) {
    // A hash, not pipapo: one pipapo lookup costs a new connection 2-5% of
    // its rate at 8 entries as at 10,000, a hash lookup nothing measurable
    // (bench_datapath --breakdown). A fixed cost, most likely the FPU state
    // the kernel saves before its AVX2 lookup code runs in a softirq.
    for (const auto& b : boxes)
      for (unsigned port = b.portLo; port <= b.portHi; ++port) {
        const Key k = KeyBuilder().addr(b.addrs.lo).proto(b.protoLo).port(uint16_t(port)).build();
        s.elements.push_back(Element{k, k, {}});
      }
    std::sort(s.elements.begin(), s.elements.end());
    s.elements.erase(std::unique(s.elements.begin(), s.elements.end()), s.elements.end());
    return s;
  }
  s.interval = true;
  for (const auto& b : disjointBoxes(boxes)) {
    Element e;
    e.key = KeyBuilder().addr(b.addrs.lo).proto(b.protoLo).port(b.portLo).build();
    e.keyEnd = KeyBuilder().addr(b.addrs.hi).proto(b.protoHi).port(b.portHi).build();
    s.elements.push_back(e);
  }
  std::sort(s.elements.begin(), s.elements.end());
  return s;
}

std::vector<Set> Compilation::appDestSets(const std::string& app) const {
  return appDestSets(app, appEgressDests(apps_.at(app)));
}

std::vector<Set> Compilation::appDestSets(const std::string& app, const Dests& d) {
  const std::string comment = "egress of app " + app;
  return {destSet(appSetName(app, Family::kIpv4), KeyField::kIpv4Addr, d.v4, d.exact4, comment),
          destSet(appSetName(app, Family::kIpv6), KeyField::kIpv6Addr, d.v6, d.exact6, comment)};
}

std::vector<Set> Compilation::ruleDestSets(size_t rule) const {
  const auto& [p, index] = globalRules_[rule];
  return ruleDestSets(rule, globalRuleDests(p->rules[index]));
}

std::vector<Set> Compilation::ruleDestSets(size_t rule, const Dests& d) const {
  const auto& [p, index] = globalRules_[rule];
  const std::string comment = "globalpolicy/" + p->name + "/" + std::to_string(index);
  return {destSet(globalSetName(p->name, index, Family::kIpv4), KeyField::kIpv4Addr, d.v4, d.exact4,
                  comment),
          destSet(globalSetName(p->name, index, Family::kIpv6), KeyField::kIpv6Addr, d.v6, d.exact6,
                  comment)};
}

// An owner's destinations, recording it as a dependent of every app whose
// addresses they draw on: which destination sets to recompute when that
// app's addresses change.
Dests Compilation::recordAppDests(const std::string& name, const App& app) {
  std::set<std::string> used;
  usedApps_ = &used;
  Dests d = appEgressDests(app);
  usedApps_ = nullptr;
  for (const auto& u : used)
    dependents_[u].apps.insert(name);
  return d;
}

Dests Compilation::recordRuleDests(size_t rule) {
  std::set<std::string> used;
  usedApps_ = &used;
  Dests d = globalRuleDests(globalRules_[rule].policy->rules[globalRules_[rule].index]);
  usedApps_ = nullptr;
  for (const auto& u : used)
    dependents_[u].rules.insert(rule);
  return d;
}

std::map<std::string, std::vector<Element>> workloadElements(const Workload& w) {
  std::map<std::string, std::vector<Element>> out;
  forEachWorkloadElement(w, [&](const char* set, const Element& e) { out[set].push_back(e); });
  return out;
}

void Compilation::addWorkloadSets() {
  Set dispatch{kDispatchMap, {KeyField::kIfname}, false, true, "interface -> app chain", {}};
  Set quarantine{kQuarantineSet, {KeyField::kIfname}, false, false, "quarantined interfaces", {}};
  Set staged{kStagedSet, {KeyField::kIfname}, false, false, "interfaces not yet in dispatch", {}};
  Set registered{kRegisteredSet, {KeyField::kIfname}, false, false, "workload interfaces", {}};
  Set budget{kLogBudgetSet, {KeyField::kIfname}, false, false, "log budget per interface", {}};
  budget.dynamic = true;
  budget.timeoutSeconds = kLogBudgetTimeoutSeconds;
  budget.size = kLogBudgetSize;
  Set src4{kSource4Set,
           {KeyField::kIfname, KeyField::kIpv4Addr},
           false,
           false,
           "registered source addresses",
           {}};
  Set src6{kSource6Set,
           {KeyField::kIfname, KeyField::kIpv6Addr},
           false,
           false,
           "registered source addresses",
           {}};
  const size_t workloads = bundle_.workloads.size() + apiWorkloads_.size();
  for (auto* s : {&dispatch, &registered, &src4, &src6})
    s->elements.reserve(workloads);
  // Straight into the sets: a map of vectors per workload was a tenth of a
  // compile at 10,000 workloads.
  const std::array<Set*, 5> workloadSets{&dispatch, &quarantine, &registered, &src4, &src6};
  auto add = [&](const char* set, const Element& e) {
    for (Set* s : workloadSets)
      if (s->name == set) return s->elements.push_back(e);
  };
  for (const auto& w : bundle_.workloads)
    forEachWorkloadElement(w, add);
  for (const auto& w : apiWorkloads_)
    forEachWorkloadElement(w, add);
  for (auto* s : {&dispatch, &quarantine, &registered, &src4, &src6, &staged, &budget}) {
    s->lookedUpOften = s != &budget;  // the budget is only named by log rules
    std::sort(s->elements.begin(), s->elements.end());
    out_.sets.push_back(std::move(*s));
  }
}

Expr Compilation::logBudget() const {
  return expr::Meter{PacketField::kIifname, kLogBudgetSet, options_.logRatePerSecond,
                     options_.logBurst};
}

// A logging drop: the log rule spends the interface's budget, the second
// rule drops and counts every attempt.
std::vector<Rule> Compilation::logDrop(const std::vector<Expr>& match, const std::string& action,
                                       const std::string& reason,
                                       const std::string& comment) const {
  std::vector<Expr> logRule = match, dropRule = match;
  logRule.push_back(logBudget());
  logRule.push_back(expr::Log{logPrefix(action, reason), options_.logGroup});
  dropRule.push_back(expr::Counter{});
  dropRule.push_back(verdict(Verdict::Kind::kDrop));
  return {rule(std::move(logRule), comment), rule(std::move(dropRule), comment)};
}

// Reached from app chains, after conntrack: the workload path only, so the
// host's own invalid packets are not this table's business.
Chain Compilation::preChain() const {
  Chain c{kPreChain, std::nullopt, {}};
  c.rules = {rule(
      {expr::CtState{expr::CtState::kInvalid}, expr::Counter{}, verdict(Verdict::Kind::kDrop)})};
  return c;
}

// Before conntrack, for packets of registered interfaces.
Chain Compilation::rawChain() const {
  const Expr quarantined = expr::Lookup{{PacketField::kIifname}, kQuarantineSet, false};
  const Expr spoof4 =
      expr::Lookup{{PacketField::kIifname, PacketField::kIpSaddr}, kSource4Set, true};
  const Expr spoof6 =
      expr::Lookup{{PacketField::kIifname, PacketField::kIp6Saddr}, kSource6Set, true};
  const auto linkLocal = expr::SaddrPrefix{*IpAddr::parse("fe80::"), 10};
  const auto unspecified6 = expr::SaddrPrefix{*IpAddr::parse("::"), 128};
  const auto unspecified4 = expr::SaddrPrefix{*IpAddr::parse("0.0.0.0"), 32};
  const Expr accept = verdict(Verdict::Kind::kAccept);
  Chain c{kRawChain, std::nullopt, {}};
  // A quarantined workload gets nothing at all: this comes first (its
  // sources are not in src4/src6, so prerouting sent it here).
  c.rules = logDrop({quarantined}, "quarantine", "", "quarantine");
  // Neighbour discovery, MLD (130-132, 143) and DHCP use sources no
  // workload registers (fe80::, ::, 0.0.0.0): they skip the source check
  // here, and policy still applies to them after conntrack (input accepts
  // ND and DHCP, everything else meets the app's policy). Link-local
  // multicast such as MLD reports reaches prerouting even when the host
  // never delivers it locally: without the exemption every workload
  // without a registered IPv6 address would log spoofs all day.
  const char* nd = "ipv6 neighbour discovery and mld";
  c.rules.push_back(rule({linkLocal, expr::IcmpV6TypeRange{130, 143}, accept}, nd));
  c.rules.push_back(rule({unspecified6, expr::IcmpV6TypeRange{130, 143}, accept}, nd));
  if (options_.allowDhcpToHost) {
    c.rules.push_back(rule({linkLocal, expr::UdpPorts{546, 547}, accept}, "dhcpv6"));
    c.rules.push_back(rule({unspecified4, expr::UdpPorts{68, 67}, accept}, "dhcp"));
  }
  for (const auto& spoof : {spoof4, spoof6})
    for (auto& r : logDrop({spoof}, "spoof", "", "spoof"))
      c.rules.push_back(std::move(r));
  return c;
}

Chain Compilation::preroutingChain() const {
  Chain c{kPreroutingChain, BaseHook{BaseHook::Hook::kPrerouting, -300}, {}};
  // The common case first: a packet from one of a registered, unquarantined
  // workload's own addresses on its own interface ends the pre-check with
  // one lookup. Every packet of every flow passes here, established ones
  // included, so this is the rule the datapath pays for.
  for (const PacketField saddr : {PacketField::kIpSaddr, PacketField::kIp6Saddr}) {
    const char* set = saddr == PacketField::kIpSaddr ? kSource4Set : kSource6Set;
    c.rules.push_back(rule(
        {expr::Lookup{{PacketField::kIifname, saddr}, set, false}, verdict(Verdict::Kind::kAccept)},
        "own source"));
  }
  // Everything else from a workload interface: quarantine, exemptions, spoofs.
  c.rules.push_back(rule({expr::Lookup{{PacketField::kIifname}, kRegisteredSet, false},
                          verdict(Verdict::Kind::kGoto, kRawChain)}));
  // Fail closed: an interface named like a workload's but registered by
  // none (registration failed, late, or lost) reaches nothing.
  for (const auto& p : options_.workloadInterfacePatterns)
    for (auto& r : logDrop({expr::IfnameMatch{p}}, "unregistered", "unregistered", "unregistered"))
      c.rules.push_back(std::move(r));
  return c;
}

Chain Compilation::rejectChain() const {
  // TCP gets a reset, everything else ICMP(v6) administratively prohibited:
  // either way the client fails at once instead of waiting for a timeout.
  Chain c{kRejectChain, std::nullopt, {}};
  c.rules = {
      rule({expr::MetaL4proto{policy::kProtoTcp}, expr::Reject{expr::Reject::Kind::kTcpReset}}),
      rule({expr::Reject{expr::Reject::Kind::kIcmpxAdminProhibited}}),
  };
  return c;
}

// The two rules of every deny point. The budget is a match: over the rate
// the log rule simply does not match, so logging never changes the verdict, which
// the second rule gives (and counts) unconditionally.
std::vector<Rule> Compilation::denyRules(const App& app, const std::string& action,
                                         const std::string& reason,
                                         const std::optional<Expr>& match,
                                         const std::string& comment) const {
  std::vector<Expr> logRule, verdictRule;
  if (match) {
    logRule.push_back(*match);
    verdictRule.push_back(*match);
  }
  logRule.push_back(logBudget());
  logRule.push_back(expr::Log{logPrefix(action, reason), options_.logGroup});
  verdictRule.push_back(expr::Counter{});
  if (action == "audit") {
    verdictRule.push_back(verdict(Verdict::Kind::kAccept));
  } else if (action == "log") {
    // Log rules log and go on; the counter still counts every attempt, as
    // for the other deny points, so the flow feed can account for each.
  } else if (app.denyAction == policy::DenyAction::kDrop) {
    verdictRule.push_back(verdict(Verdict::Kind::kDrop));
  } else {
    verdictRule.push_back(verdict(Verdict::Kind::kGoto, kRejectChain));
  }
  std::vector<Rule> out{rule(std::move(logRule), comment)};
  if (!verdictRule.empty()) out.push_back(rule(std::move(verdictRule), comment));
  return out;
}

Chain Compilation::appChain(const App& app) const {
  Chain c{appChainName(app.name), std::nullopt, {}};
  c.rules.push_back(rule({verdict(Verdict::Kind::kJump, kPreChain)}));
  const auto& labels = appLabels_.at(app.name);
  std::vector<Rule> allows;
  for (const auto& [p, index] : globalRules_) {
    const auto& g = p->rules[index];
    if (!g.from.matches(labels)) continue;
    const std::string reason = "globalpolicy/" + p->name + "/" + std::to_string(index);
    for (Family f : {Family::kIpv4, Family::kIpv6}) {
      const Expr match = destLookup(f, globalSetName(p->name, index, f));
      if (g.action == policy::RuleAction::kAllow) {
        allows.push_back(rule({match, verdict(Verdict::Kind::kAccept)}, reason));
        continue;
      }
      // GlobalPolicy denies hold whatever the App's mode: an app owner must
      // not be able to lift macro segmentation by switching to audit.
      const char* action = g.action == policy::RuleAction::kDeny ? "deny" : "log";
      for (auto& r : denyRules(app, action, reason, match, reason))
        c.rules.push_back(std::move(r));
    }
  }
  for (Family f : {Family::kIpv4, Family::kIpv6})
    c.rules.push_back(
        rule({destLookup(f, appSetName(app.name, f)), verdict(Verdict::Kind::kAccept)}));
  for (auto& r : allows)
    c.rules.push_back(std::move(r));
  const char* action = app.mode == policy::Mode::kAudit ? "audit" : "deny";
  for (auto& r : denyRules(app, action, "default", std::nullopt, "default"))
    c.rules.push_back(std::move(r));
  return c;
}

Chain Compilation::stagedChain() const {
  Chain c{kStagedChain, std::nullopt, {}};
  for (const auto& [name, app] : apps_)
    c.rules.push_back(rule({expr::Lookup{{PacketField::kIifname}, stagedSetName(name), false},
                            verdict(Verdict::Kind::kGoto, appChainName(name))}));
  // Unreachable while @staged and the st_ sets change together; should they
  // ever disagree, the interface is dropped rather than let through.
  c.rules.push_back(rule({verdict(Verdict::Kind::kDrop)}, "staged interface without app"));
  return c;
}

Set stagedSet(const std::string& app) {
  return Set{stagedSetName(app), {KeyField::kIfname}, false, false, "staged interfaces", {}};
}

Chain Compilation::baseChain(BaseHook::Hook hook) const {
  const bool input = hook == BaseHook::Hook::kInput;
  Chain c{input ? kInputChain : kForwardChain, BaseHook{hook, 0}, {}};
  // Established and related first, as the evaluation order has it: most packets end here,
  // before any lookup, and a staged interface's packets skip the per-app walk
  // of staged_dispatch. Accepting in this table only ends this table's say;
  // the host's own traffic is not policed either way.
  c.rules.push_back(rule({expr::CtState{expr::CtState::kEstablished | expr::CtState::kRelated},
                          verdict(Verdict::Kind::kAccept)}));
  if (input) {
    // Neighbour discovery (133-137) must reach the host before any policy,
    // or IPv6 breaks for every workload; likewise DHCP for VMs it serves.
    c.rules.push_back(rule({expr::IcmpV6TypeRange{133, 137}, verdict(Verdict::Kind::kAccept)},
                           "ipv6 neighbour discovery"));
    if (options_.allowDhcpToHost) {
      c.rules.push_back(rule({expr::MetaNfproto{Family::kIpv4}, expr::UdpPorts{68, 67},
                              verdict(Verdict::Kind::kAccept)},
                             "dhcp"));
      c.rules.push_back(rule({expr::MetaNfproto{Family::kIpv6}, expr::UdpPorts{546, 547},
                              verdict(Verdict::Kind::kAccept)},
                             "dhcpv6"));
    }
  }
  c.rules.push_back(rule({expr::Vmap{{PacketField::kIifname}, kDispatchMap}}));
  c.rules.push_back(rule({expr::Lookup{{PacketField::kIifname}, kStagedSet, false},
                          verdict(Verdict::Kind::kGoto, kStagedChain)}));
  return c;
}

Status Compilation::run() {
  if (auto st = indexWorkloads(); !st) return st;
  indexApps();
  out_.table = options_.table;

  addWorkloadSets();
  // Each owner's destinations once, for its sets and its dependents, and
  // dropped before the next: all of them at once were 5 MB at 1,000 apps.
  for (const auto& [name, app] : apps_) {
    for (auto& s : appDestSets(name, recordAppDests(name, app)))
      out_.sets.push_back(std::move(s));
    out_.sets.push_back(stagedSet(name));
  }
  for (size_t i = 0; i < globalRules_.size(); ++i)
    for (auto& s : ruleDestSets(i, recordRuleDests(i)))
      out_.sets.push_back(std::move(s));
  std::sort(out_.sets.begin(), out_.sets.end(),
            [](const Set& a, const Set& b) { return a.name < b.name; });

  out_.chains.push_back(rejectChain());
  out_.chains.push_back(preChain());
  out_.chains.push_back(rawChain());
  out_.chains.push_back(stagedChain());
  for (const auto& [name, app] : apps_)
    out_.chains.push_back(appChain(app));
  std::sort(out_.chains.begin(), out_.chains.end(),
            [](const Chain& a, const Chain& b) { return a.name < b.name; });
  out_.chains.push_back(preroutingChain());
  out_.chains.push_back(baseChain(BaseHook::Hook::kForward));
  out_.chains.push_back(baseChain(BaseHook::Hook::kInput));
  return {};
}

Set* Compilation::mutableSet(const std::string& name) {
  auto it = std::lower_bound(out_.sets.begin(), out_.sets.end(), name,
                             [](const Set& s, const std::string& n) { return s.name < n; });
  return it != out_.sets.end() && it->name == name ? &*it : nullptr;
}

Status validateInterfacePattern(const std::string& pattern) {
  const bool wildcard = !pattern.empty() && pattern.back() == '*';
  const std::string_view stem(pattern.data(), pattern.size() - (wildcard ? 1 : 0));
  auto bad = [&](const std::string& why) {
    return makeError(ErrorCode::kInvalidInput, "bad interface pattern \"" + pattern + "\": " + why);
  };
  if (pattern.size() > 15) return bad("longer than 15 bytes");
  if (stem.empty()) return bad("needs at least one character before `*`");
  for (char ch : stem)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.' && ch != '-')
      return bad("only letters, digits, '_', '.', '-' and one trailing '*' are allowed");
  return {};
}

std::string logPrefix(const std::string& action, const std::string& reason) {
  std::string p = std::string(kLogPrefixTag) + action;
  if (!reason.empty()) p += ":" + reason;
  return p.size() > 127 ? p.substr(0, 127) : p;  // the kernel's limit on log prefixes
}

std::string appChainName(const std::string& app) {
  return "app_" + app;
}

std::string appSetName(const std::string& app, Family family) {
  return (family == Family::kIpv4 ? "a4_" : "a6_") + app;
}

std::string stagedSetName(const std::string& app) {
  return "st_" + app;
}

std::string globalSetName(const std::string& policy, size_t ruleIndex, Family family) {
  return (family == Family::kIpv4 ? "g4_" : "g6_") + policy + "_" + std::to_string(ruleIndex);
}

Result<Ruleset> compile(const Bundle& bundle, const std::vector<Workload>& extraWorkloads,
                        const CompileOptions& options) {
  return compile(bundle, extraWorkloads, RemoteWorkloads{}, options);
}

Result<Ruleset> compile(const Bundle& bundle, const std::vector<Workload>& extraWorkloads,
                        const RemoteWorkloads& remotes, const CompileOptions& options) {
  Compilation c(bundle, extraWorkloads, options, remotes);
  if (auto st = c.run(); !st) return st.takeError();
  return c.takeRuleset();
}

}  // namespace bulkhead::compiler
