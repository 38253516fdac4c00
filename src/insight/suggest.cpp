#include "bulkhead/insight/suggest.h"

#include <algorithm>

#include "bulkhead/policy/loader.h"

namespace bulkhead::insight {

namespace {

using policy::Cidr;
using policy::IpAddr;
using policy::PortSpec;

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string portList(const std::set<PortSpec>& ports) {
  std::string out;
  for (const auto& p : ports)
    out += (out.empty() ? "" : ", ") + p.toString();
  return "[" + out + "]";
}

std::string cidrList(const std::vector<Cidr>& cidrs) {
  std::string out;
  for (const auto& c : cidrs)
    out += (out.empty() ? "" : ", ") + quoted(c.toString());
  return "[" + out + "]";
}

std::string labelMap(const policy::Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels)
    out += (out.empty() ? "" : ", ") + quoted(k) + ": " + quoted(v);
  return "{" + out + "}";
}

// A suggested egress rule: to one named destination, or (commented out,
// for a destination the policy does not know) to exact addresses.
struct Rule {
  std::string to;           // Service or App name; "" for the toCIDRs form
  std::vector<Cidr> cidrs;  // new Service's endpoints / toCIDRs
  std::set<PortSpec> ports;
  bool narrow = false;      // `ports:` next to `to`
  bool newService = false;  // `to` is a Service this suggestion adds
  Evidence evidence;
  uint64_t flows = 0;
};

std::string serviceName(const Cidr& c) {
  std::string base = c.addr.toString();
  std::replace(base.begin(), base.end(), '.', '-');
  std::replace(base.begin(), base.end(), ':', '-');
  if (base.back() == '-') base += "0";
  std::string name = "ext-" + base;
  if (c.prefixLen != c.addr.size() * 8) name += "-p" + std::to_string(c.prefixLen);
  return name;
}

void emitRule(std::string& out, const Rule& r, bool commented) {
  const std::string c = commented ? "    # " : "    ";
  out += "    # " + std::string(commented ? "over --max-rules, left out: " : "suggested: ") +
         r.evidence.describe() + "\n";
  if (commented && r.newService) {
    out += c + "- toCIDRs: " + cidrList(r.cidrs) + "\n";
    out += c + "  ports: " + portList(r.ports) + "\n";
    return;
  }
  out += c + "- to: [" + r.to + "]\n";
  if (r.narrow) out += c + "  ports: " + portList(r.ports) + "\n";
}

void emitExisting(std::string& out, const policy::EgressRule& e) {
  std::string lead = "    - ";
  auto line = [&](const std::string& text) {
    out += lead + text + "\n";
    lead = "      ";
  };
  if (!e.to.empty()) {
    std::string names;
    for (const auto& n : e.to)
      names += (names.empty() ? "" : ", ") + n.name;
    line("to: [" + names + "]");
  }
  if (!e.toCIDRs.empty()) line("toCIDRs: " + cidrList(e.toCIDRs));
  if (!e.ports.empty()) line("ports: " + portList({e.ports.begin(), e.ports.end()}));
}

}  // namespace

void Evidence::add(const FlowRecord& r) {
  attempts += r.count;
  if (r.hasSrc && sources.size() < kMaxSources) sources.insert(r.src);
  if (!r.time.empty()) {
    if (first.empty() || r.time < first) first = r.time;
    if (last.empty() || r.time > last) last = r.time;
  }
}

void Evidence::merge(const Evidence& o) {
  attempts += o.attempts;
  for (const auto& s : o.sources) {
    if (sources.size() >= kMaxSources) break;
    sources.insert(s);
  }
  if (!o.first.empty() && (first.empty() || o.first < first)) first = o.first;
  if (!o.last.empty() && (last.empty() || o.last > last)) last = o.last;
}

std::string Evidence::describe() const {
  std::string out = std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
  out += " from " + std::to_string(sources.size()) + (sources.size() >= kMaxSources ? "+" : "") +
         (sources.size() == 1 ? " source" : " sources");
  if (!first.empty()) out += ", first " + first + ", last " + last;
  return out;
}

std::string SuggestSummary::text() const {
  std::string out = "bulkhead suggest: " + std::to_string(flows) + " flows, " +
                    std::to_string(covered) + " covered, " + std::to_string(left) + " left";
  if (unexpressibleFlows)
    out += " (" + std::to_string(unexpressibleFlows) + " of a protocol a policy cannot name)";
  out += "\n";
  if (ignoredEvents || unattributedEvents)
    out += "bulkhead suggest: events not used: " + std::to_string(ignoredEvents) +
           " of other actions or apps, " + std::to_string(unattributedEvents) +
           " without a valid app\n";
  for (const auto& [app, n] : rulesPerApp)
    out += "bulkhead suggest: app " + app + ": " + std::to_string(n.first) + " rules" +
           (n.second ? ", " + std::to_string(n.second) + " more commented out" : "") + "\n";
  for (const auto& s : newServices)
    out += "bulkhead suggest: new Service " + s + "\n";
  return out;
}

std::vector<Cidr> aggregateHosts(const std::set<IpAddr>& hosts) {
  std::set<Cidr> cur;
  for (const auto& h : hosts)
    cur.insert(Cidr{h, uint8_t(h.size() * 8)});
  bool merged = true;
  while (merged) {
    merged = false;
    for (auto it = cur.begin(); it != cur.end(); ++it) {
      const Cidr& a = *it;
      if (a.prefixLen == 0) continue;
      const unsigned bit = a.prefixLen - 1;
      if (a.addr.bytes[bit / 8] & (0x80 >> (bit % 8))) continue;  // a is the upper half
      Cidr b = a;
      b.addr.bytes[bit / 8] |= uint8_t(0x80 >> (bit % 8));
      auto jt = cur.find(b);
      if (jt == cur.end()) continue;
      Cidr parent{a.addr, uint8_t(a.prefixLen - 1)};
      cur.erase(jt);
      cur.erase(it);
      cur.insert(parent);
      merged = true;
      break;
    }
  }
  return {cur.begin(), cur.end()};
}

size_t Suggester::FlowKeyHash::operator()(const FlowKey& k) const {
  const auto& [app, dst, port] = k;
  size_t h = std::hash<std::string>()(app);
  uint64_t x = 1469598103934665603ull;
  for (size_t i = 0; i < dst.size(); ++i)
    x = (x ^ dst.bytes[i]) * 1099511628211ull;
  x = (x ^ port.protoLo) * 1099511628211ull;
  x = (x ^ port.portLo) * 1099511628211ull;
  return h ^ size_t(x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

Suggester::Suggester(const policy::Bundle& bundle, SuggestOptions options)
    : bundle_(bundle), options_(std::move(options)), index_(bundle) {}

void Suggester::add(const FlowRecord& r) {
  if (r.hasSrc) index_.learnSource(r.src, r.app);
  if (r.action != "deny" && r.action != "audit") {
    ++ignored_;
    return;
  }
  if (r.app.empty() || !policy::isValidName(r.app)) {
    ++unattributed_;
    return;
  }
  if (!options_.app.empty() && r.app != options_.app) {
    ++ignored_;
    return;
  }
  auto port = portOf(r);
  if (!port) {
    auto& u = unexpressible_[r.app];
    if (u.size() < 1000) u.insert(r.dst.toString() + "/" + r.proto);
    return;
  }
  flows_[{r.app, r.dst, *port}].add(r);
}

Suggestion Suggester::finish() const {
  Suggestion out;
  SuggestSummary& sum = out.summary;
  sum.ignoredEvents = ignored_;
  sum.unattributedEvents = unattributed_;
  for (const auto& [app, u] : unexpressible_)
    sum.unexpressibleFlows += u.size();
  sum.flows = flows_.size() + sum.unexpressibleFlows;
  sum.left = sum.unexpressibleFlows;

  // Per app: named destinations, and unknown addresses with their ports.
  struct Unknown {
    std::set<PortSpec> ports;
    Evidence evidence;
    uint64_t flows = 0;
  };
  std::map<std::string, std::map<std::string, Rule>> named;
  std::map<std::string, std::map<IpAddr, Unknown>> unknown;
  std::set<std::string> apps;
  std::vector<const std::pair<const FlowKey, Evidence>*> sorted;
  sorted.reserve(flows_.size());
  for (const auto& kv : flows_)
    sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* kv : sorted) {
    const auto& [key, ev] = *kv;
    const auto& [app, dst, port] = key;
    apps.insert(app);
    std::string to;
    if (const auto* s = index_.serviceFor(dst, port)) {
      to = s->name;
    } else {
      to = index_.appFor(dst);
    }
    if (to.empty()) {
      Unknown& u = unknown[app][dst];
      u.ports.insert(port);
      u.evidence.merge(ev);
      ++u.flows;
      continue;
    }
    Rule& r = named[app][to];
    r.to = to;
    r.narrow = true;
    r.ports.insert(port);
    r.evidence.merge(ev);
    ++r.flows;
  }

  // Unknown destinations: addresses with the same ports share one Service.
  std::set<std::string> taken;
  for (const auto& s : bundle_.services)
    taken.insert(s.name);
  for (const auto& a : bundle_.apps)
    taken.insert(a.name);
  for (const auto& a : apps)
    taken.insert(a);
  std::map<std::pair<std::vector<Cidr>, std::set<PortSpec>>, std::string> services;
  std::map<std::string, std::vector<Rule>> rules;
  for (const auto& app : apps) {
    for (auto& [to, r] : named[app])
      rules[app].push_back(r);
    std::map<std::set<PortSpec>, std::vector<IpAddr>> byPorts;
    for (const auto& [dst, u] : unknown[app])
      byPorts[u.ports].push_back(dst);
    for (const auto& [ports, addrs] : byPorts) {
      Rule r;
      r.newService = true;
      r.ports = ports;
      r.cidrs = aggregateHosts({addrs.begin(), addrs.end()});
      for (const auto& a : addrs) {
        const Unknown& u = unknown[app].at(a);
        r.evidence.merge(u.evidence);
        r.flows += u.flows;
      }
      auto key = std::make_pair(r.cidrs, ports);
      auto it = services.find(key);
      if (it == services.end()) {
        std::string name = serviceName(r.cidrs.front());
        for (int n = 2; taken.count(name); ++n)
          name = serviceName(r.cidrs.front()) + "-" + std::to_string(n);
        taken.insert(name);
        it = services.emplace(key, name).first;
      }
      r.to = it->second;
      rules[app].push_back(std::move(r));
    }
  }

  std::string& y = out.yaml;
  y += "# Suggested by `bulkhead suggest` from observed flows. Review each rule;\n";
  y += "# every suggested rule names its evidence. Replace these Apps' documents\n";
  y += "# with the ones below and add the new Services.\n";
  std::map<std::pair<std::vector<Cidr>, std::set<PortSpec>>, Evidence> usedServices;
  for (const auto& app : apps) {
    auto& list = rules[app];
    std::sort(list.begin(), list.end(), [](const Rule& a, const Rule& b) {
      if (a.evidence.attempts != b.evidence.attempts)
        return a.evidence.attempts > b.evidence.attempts;
      if (a.to != b.to) return a.to < b.to;
      return a.cidrs < b.cidrs;
    });
    const size_t active = std::min(list.size(), options_.maxRules);
    sum.rulesPerApp[app] = {active, list.size() - active};
    const policy::App* existing = bundle_.findApp(app);
    y += "---\n";
    y += existing ? "# App " + app + ": existing egress kept, " + std::to_string(active) +
                        " rules suggested\n"
                  : "# App " + app + " has no document yet: a new one\n";
    y += "apiVersion: bulkhead/v1\nkind: App\nmetadata:\n  name: " + app + "\n";
    if (existing && !existing->labels.empty())
      y += "  labels: " + labelMap(existing->labels) + "\n";
    y += "spec:\n";
    if (existing) {
      y += std::string("  mode: ") + (existing->mode == policy::Mode::kAudit ? "audit" : "enforce");
      y += existing->mode == policy::Mode::kAudit ? "  # set to enforce once reviewed\n" : "\n";
      y += std::string("  denyAction: ") +
           (existing->denyAction == policy::DenyAction::kDrop ? "drop" : "reject") + "\n";
    }
    y += "  egress:\n";
    if (existing)
      for (const auto& e : existing->egress)
        emitExisting(y, e);
    for (size_t i = 0; i < list.size(); ++i) {
      const bool commented = i >= active;
      emitRule(y, list[i], commented);
      (commented ? sum.left : sum.covered) += list[i].flows;
      if (!commented && list[i].newService)
        usedServices[{list[i].cidrs, list[i].ports}].merge(list[i].evidence);
    }
    if ((!existing || existing->egress.empty()) && active == 0) y += "    []\n";
    if (auto u = unexpressible_.find(app); u != unexpressible_.end())
      for (const auto& d : u->second)
        y += "    # not expressible in a policy (protocol): " + d + "\n";
  }
  for (const auto& [key, ev] : usedServices) {
    const std::string& name = services.at(key);
    sum.newServices.push_back(name);
    y += "---\n# New Service for a destination the policy does not know: " + ev.describe() + "\n";
    y += "apiVersion: bulkhead/v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n";
    y += "  endpoints:\n    - cidrs: " + cidrList(key.first) +
         "\n      ports: " + portList(key.second) + "\n";
  }
  std::sort(sum.newServices.begin(), sum.newServices.end());
  return out;
}

std::vector<policy::Diagnostic> checkSuggestion(const policy::Bundle& bundle,
                                                const std::string& yaml) {
  std::vector<policy::Diagnostic> errors, warnings;
  policy::Bundle suggested;
  policy::parseText(yaml, "<suggestion>", suggested, errors);
  if (!errors.empty()) return errors;
  policy::Bundle merged = bundle;
  for (auto& a : suggested.apps) {
    auto it = std::find_if(merged.apps.begin(), merged.apps.end(),
                           [&](const policy::App& x) { return x.name == a.name; });
    if (it != merged.apps.end()) {
      *it = a;
    } else {
      merged.apps.push_back(a);
    }
  }
  for (auto& s : suggested.services)
    merged.services.push_back(s);
  policy::validateBundle(merged, errors, warnings);
  return errors;
}

}  // namespace bulkhead::insight
