#include "bulkhead/insight/destinations.h"

#include <algorithm>
#include <vector>

namespace bulkhead::insight {

std::optional<policy::PortSpec> portOf(const FlowRecord& r) {
  if (r.proto == "tcp" || r.proto == "udp") {
    // What PortSpec::parse("tcp/<dport>") gives, without the text.
    policy::PortSpec p;
    p.protoLo = p.protoHi = r.proto == "tcp" ? policy::kProtoTcp : policy::kProtoUdp;
    p.portLo = p.portHi = r.dport;
    return p;
  }
  if (r.proto == "icmp" || r.proto == "icmpv6") return policy::PortSpec::parse(r.proto);
  return std::nullopt;
}

bool contains(const policy::Cidr& c, const policy::IpAddr& a) {
  return c.addr.family == a.family && c.addr <= a && a <= c.last();
}

bool covers(const policy::PortSpec& spec, const policy::PortSpec& p) {
  auto i = spec.intersect(p);
  return i && *i == p;
}

size_t DestinationIndex::IpHash::operator()(const policy::IpAddr& a) const {
  uint64_t x = 1469598103934665603ull ^ uint64_t(a.family);
  for (size_t i = 0; i < a.size(); ++i)
    x = (x ^ a.bytes[i]) * 1099511628211ull;
  return size_t(x);
}

DestinationIndex::DestinationIndex(const policy::Bundle& bundle) : bundle_(bundle) {
  for (const auto& s : bundle.services)
    byName_.push_back(&s);
  std::stable_sort(byName_.begin(), byName_.end(),
                   [](const auto* a, const auto* b) { return a->name < b->name; });
  for (const auto& w : bundle.workloads)
    for (const auto& a : w.addresses)
      known_.emplace(a, w.app);
}

void DestinationIndex::learnSource(const policy::IpAddr& addr, const std::string& app) {
  if (app.empty()) return;
  auto found = learned_.find(addr);
  if (found != learned_.end() && (found->second.size() >= 2 || found->second.count(app))) return;
  auto& apps = learned_[addr];
  if (apps.size() < 2) apps.insert(app);
}

std::string DestinationIndex::appFor(const policy::IpAddr& dst) const {
  if (auto it = known_.find(dst); it != known_.end()) return it->second;
  auto it = learned_.find(dst);
  if (it == learned_.end() || it->second.size() != 1) return "";
  return *it->second.begin();
}

bool DestinationIndex::selects(const policy::Selector& s, const std::string& app) const {
  if (const policy::App* a = bundle_.findApp(app)) return s.matches(a->effectiveLabels());
  return s.matches({{"app", app}});  // an app with no document: its implicit label
}

const policy::Service* DestinationIndex::serviceFor(const policy::IpAddr& dst,
                                                    const policy::PortSpec& port) const {
  auto portsCover = [&](const std::vector<policy::PortSpec>& ports) {
    if (ports.empty()) return true;
    return std::any_of(ports.begin(), ports.end(),
                       [&](const policy::PortSpec& s) { return covers(s, port); });
  };
  for (const auto* s : byName_) {
    if (s->appSelector) {
      const std::string app = appFor(dst);
      if (!app.empty() && selects(*s->appSelector, app) && portsCover(s->ports)) return s;
      continue;
    }
    for (const auto& e : s->endpoints) {
      const bool in = std::any_of(e.cidrs.begin(), e.cidrs.end(),
                                  [&](const policy::Cidr& c) { return contains(c, dst); });
      if (in && portsCover(e.ports)) return s;
    }
  }
  return nullptr;
}

DestinationIndex::Candidates DestinationIndex::candidatesFor(const policy::IpAddr& dst) const {
  Candidates c;
  c.app = appFor(dst);
  for (const auto* s : byName_) {
    if (s->appSelector) {
      if (!c.app.empty() && selects(*s->appSelector, c.app)) c.list.emplace_back(s, &s->ports);
      continue;
    }
    for (const auto& e : s->endpoints)
      if (std::any_of(e.cidrs.begin(), e.cidrs.end(),
                      [&](const policy::Cidr& x) { return contains(x, dst); }))
        c.list.emplace_back(s, &e.ports);
  }
  return c;
}

const policy::Service* DestinationIndex::Candidates::serviceFor(
    const policy::PortSpec& port) const {
  for (const auto& [s, ports] : list) {
    if (ports->empty() || std::any_of(ports->begin(), ports->end(),
                                      [&](const policy::PortSpec& x) { return covers(x, port); }))
      return s;
  }
  return nullptr;
}

}  // namespace bulkhead::insight
