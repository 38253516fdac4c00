#include "bulkhead/insight/suggest.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

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

// Sorted, no duplicates: compares and prints as a std::set would, in a
// fraction of its memory (the distinct-flow worst case keeps many).
using Ports = std::vector<PortSpec>;

void addPort(Ports& ports, const PortSpec& p) {
  auto at = std::lower_bound(ports.begin(), ports.end(), p);
  if (at == ports.end() || *at != p) ports.insert(at, p);
}

// The lists as the YAML shows them, appended in place (a suggestion over
// many unknown destinations writes tens of thousands).
void appendPorts(std::string& out, const Ports& ports) {
  out += '[';
  for (size_t i = 0; i < ports.size(); ++i) {
    if (i) out += ", ";
    out += ports[i].toString();
  }
  out += ']';
}

std::string portList(const Ports& ports) {
  std::string out;
  appendPorts(out, ports);
  return out;
}

// IpAddr::toString, without inet_ntop's sprintf for IPv4 (a suggestion
// over many unknown destinations prints hundreds of thousands).
std::string addrText(const IpAddr& a) {
  if (a.family != policy::Family::kIpv4) return a.toString();
  char buf[16];
  char* p = buf;
  for (size_t i = 0; i < 4; ++i) {
    const unsigned v = a.bytes[i];
    if (i) *p++ = '.';
    if (v >= 100) *p++ = char('0' + v / 100);
    if (v >= 10) *p++ = char('0' + v / 10 % 10);
    *p++ = char('0' + v % 10);
  }
  return std::string(buf, size_t(p - buf));
}

std::string cidrText(const Cidr& c) {
  return addrText(c.addr) + "/" + std::to_string(c.prefixLen);
}

void appendCidrs(std::string& out, const std::vector<Cidr>& cidrs) {
  out += '[';
  for (size_t i = 0; i < cidrs.size(); ++i) {
    if (i) out += ", ";
    out += quoted(cidrText(cidrs[i]));
  }
  out += ']';
}

std::string cidrList(const std::vector<Cidr>& cidrs) {
  std::string out;
  appendCidrs(out, cidrs);
  return out;
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
  Ports ports;
  bool narrow = false;      // `ports:` next to `to`
  bool newService = false;  // `to` is a Service this suggestion adds
  Evidence evidence;
  uint64_t flows = 0;
};

std::string serviceName(const Cidr& c) {
  std::string base = addrText(c.addr);
  std::replace(base.begin(), base.end(), '.', '-');
  std::replace(base.begin(), base.end(), ':', '-');
  if (base.back() == '-') base += "0";
  std::string name = "ext-" + base;
  if (c.prefixLen != c.addr.size() * 8) name += "-p" + std::to_string(c.prefixLen);
  return name;
}

void emitRule(std::string& out, const Rule& r, bool commented) {
  const std::string_view c = commented ? "    # " : "    ";
  out += "    # ";
  out += commented ? "over --max-rules, left out: " : "suggested: ";
  out += r.evidence.describe();
  out += '\n';
  auto portsLine = [&] {
    out += c;
    out += "  ports: ";
    appendPorts(out, r.ports);
    out += '\n';
  };
  if (commented && r.newService) {
    out += c;
    out += "- toCIDRs: ";
    appendCidrs(out, r.cidrs);
    out += '\n';
    portsLine();
    return;
  }
  out += c;
  out += "- to: [";
  out += r.to;
  out += "]\n";
  if (r.narrow) portsLine();
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
  if (!e.ports.empty()) {
    const std::set<PortSpec> sorted(e.ports.begin(), e.ports.end());
    line("ports: " + portList({sorted.begin(), sorted.end()}));
  }
}

}  // namespace

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

uint64_t Suggester::hashOf(const FlowKey& k) {
  uint64_t lo = 0, hi = 0;
  std::memcpy(&lo, k.dst.bytes.data(), 8);
  std::memcpy(&hi, k.dst.bytes.data() + 8, 8);
  uint64_t h = hashMix(uint64_t(k.app) << 8 | uint64_t(k.dst.family), lo);
  h = hashMix(h, hi);
  return hashMix(h, uint64_t(k.port.protoLo) << 40 | uint64_t(k.port.protoHi) << 32 |
                        uint64_t(k.port.portLo) << 16 | k.port.portHi);
}

void Suggester::FlowStats::add(const FlowRecord& r) {
  attempts += r.count;
  if (r.hasSrc) {
    if (!hasSource) {
      source = r.src;
      hasSource = true;
    } else if (r.src != source || more) {
      if (!more) more = std::make_unique<std::vector<IpAddr>>(1, source);
      auto at = std::lower_bound(more->begin(), more->end(), r.src);
      if ((at == more->end() || *at != r.src) && more->size() < Evidence::kMaxSources)
        more->insert(at, r.src);
    }
  }
  if (!r.time.empty()) {
    const uint64_t packed = TimeText::pack(r.time);
    if (first.empty() || first.before(r.time, packed)) first.assign(r.time, packed);
    if (last.empty() || last.after(r.time, packed)) last.assign(r.time, packed);
  }
}

uint32_t Suggester::appId(const std::string& app) {
  auto [it, added] = appIds_.try_emplace(app, uint32_t(apps_.size()));
  if (added) apps_.push_back(app);
  return it->second;
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
  const FlowKey key{appId(r.app), r.dst, *port};
  auto [id, fresh] = flowIds_.insert(key, hashOf(key));
  if (fresh) {
    *id = uint32_t(keys_.size());
    keys_.push_back(key);
    if (keys_.size() > chunks_.size() * kChunk)
      chunks_.push_back(std::make_unique<FlowStats[]>(kChunk));
  }
  stats(*id).add(r);
}

namespace {

// A destination the policy does not know: its ports and what reached it.
struct Unknown {
  Ports ports;
  EvidenceSum evidence;
  uint64_t flows = 0;
};

// An address's order as IpAddr compares (family, then bytes), as numbers.
std::tuple<uint8_t, uint64_t, uint64_t> addressWords(const IpAddr& a) {
  uint64_t hi = 0, lo = 0;
  std::memcpy(&hi, a.bytes.data(), 8);
  std::memcpy(&lo, a.bytes.data() + 8, 8);
  return std::tuple(uint8_t(a.family), __builtin_bswap64(hi), __builtin_bswap64(lo));
}

using ServiceKey = std::pair<std::vector<Cidr>, Ports>;  // a new Service's endpoints

// Looked up once per unknown destination (the worst case has tens of
// thousands): hashed, not compared as vectors in a tree.
struct ServiceKeyHash {
  size_t operator()(const ServiceKey& k) const {
    uint64_t h = k.first.size();
    for (const Cidr& c : k.first) {
      const auto [family, hi, lo] = addressWords(c.addr);
      h = hashMix(hashMix(h, uint64_t(family) << 8 | c.prefixLen), hi ^ hashMix(0, lo));
    }
    for (const PortSpec& p : k.second)
      h = hashMix(h, uint64_t(p.protoLo) << 40 | uint64_t(p.protoHi) << 32 |
                         uint64_t(p.portLo) << 16 | p.portHi);
    return size_t(h);
  }
};
using ServiceNameMap = std::unordered_map<ServiceKey, std::string, ServiceKeyHash>;

// Names of new Services: the endpoints' first address, with the smallest
// suffix -2, -3, ... that no Service, App or earlier new Service has.
// Names are only ever added, so the search for a name goes on where the
// last one with the same base stopped (many Services can start at one
// address: without this, naming them is quadratic).
class ServiceNames {
 public:
  void reserve(size_t n) { taken_.reserve(n); }  // (no rehash as they come)
  void take(const std::string& name) { taken_.insert(name); }
  std::string claim(const Cidr& first) {
    const std::string base = serviceName(first);
    std::string name = base;
    if (taken_.count(name)) {
      int& n = next_.try_emplace(base, 2).first->second;
      for (name = base + "-" + std::to_string(n); taken_.count(name);)
        name = base + "-" + std::to_string(++n);
      ++n;
    }
    taken_.insert(name);
    return name;
  }

 private:
  std::unordered_set<std::string> taken_;
  std::unordered_map<std::string, int> next_;  // base -> the first suffix not yet tried
};

// Unknown destinations: addresses with the same ports share one Service,
// named once (`services`) for every app that reaches it. The entries'
// evidence is moved out (`unknown` is done with after this).
void foldUnknown(std::map<IpAddr, Unknown>& unknown, ServiceNames& names, ServiceNameMap& services,
                 std::vector<Rule>& rules) {
  // Addresses in order within each port set (the map's order), each
  // entry reached once (no second lookup by address).
  std::map<Ports, std::vector<std::pair<const IpAddr, Unknown>*>> byPorts;
  for (auto& entry : unknown)
    byPorts[entry.second.ports].push_back(&entry);
  for (auto& [ports, entries] : byPorts) {
    Rule r;
    r.newService = true;
    r.ports = ports;
    // The first entry's evidence is the sum's as it is (a merge into
    // nothing is a copy); one address is its own host prefix.
    EvidenceSum sum = std::move(entries.front()->second.evidence);
    r.flows = entries.front()->second.flows;
    for (size_t i = 1; i < entries.size(); ++i) {
      sum.merge(entries[i]->second.evidence);
      r.flows += entries[i]->second.flows;
    }
    r.evidence = std::move(sum).evidence();
    if (entries.size() == 1) {
      const IpAddr& a = entries.front()->first;
      r.cidrs.push_back(Cidr{a, uint8_t(a.size() * 8)});
    } else {
      std::set<IpAddr> addrs;
      for (const auto* e : entries)
        addrs.insert(addrs.end(), e->first);
      r.cidrs = aggregateHosts(addrs);
    }
    auto key = std::make_pair(r.cidrs, ports);
    auto it = services.find(key);
    if (it == services.end())
      it = services.emplace(std::move(key), names.claim(r.cidrs.front())).first;
    r.to = it->second;
    rules.push_back(std::move(r));
  }
}

// The suggestion's YAML and summary: one App document per app, then the
// new Services its active rules use.
class SuggestionWriter {
 public:
  SuggestionWriter(const policy::Bundle& bundle, size_t maxRules, Suggestion& out)
      : bundle_(bundle), maxRules_(maxRules), y_(out.yaml), sum_(out.summary) {
    y_ += "# Suggested by `bulkhead suggest` from observed flows. Review each rule;\n";
    y_ += "# every suggested rule names its evidence. Replace these Apps' documents\n";
    y_ += "# with the ones below and add the new Services.\n";
  }

  // `list`: the app's rules, most attempts first once sorted here.
  void app(const std::string& app, std::vector<Rule>& list,
           const std::set<std::string>* unexpressible) {
    std::sort(list.begin(), list.end(), [](const Rule& a, const Rule& b) {
      if (a.evidence.attempts != b.evidence.attempts)
        return a.evidence.attempts > b.evidence.attempts;
      if (a.to != b.to) return a.to < b.to;
      return a.cidrs < b.cidrs;
    });
    const size_t active = std::min(list.size(), maxRules_);
    sum_.rulesPerApp[app] = {active, list.size() - active};
    const policy::App* existing = bundle_.findApp(app);
    header(app, existing, active);
    for (size_t i = 0; i < list.size(); ++i) {
      const bool commented = i >= active;
      emitRule(y_, list[i], commented);
      (commented ? sum_.left : sum_.covered) += list[i].flows;
      if (!commented && list[i].newService)
        used_[{list[i].cidrs, list[i].ports}].merge(list[i].evidence);
    }
    if ((!existing || existing->egress.empty()) && active == 0) y_ += "    []\n";
    if (unexpressible)
      for (const auto& d : *unexpressible)
        y_ += "    # not expressible in a policy (protocol): " + d + "\n";
  }

  void services(const ServiceNameMap& names) {
    for (const auto& [key, ev] : used_) {
      const std::string& name = names.at(key);
      sum_.newServices.push_back(name);
      y_ +=
          "---\n# New Service for a destination the policy does not know: " + ev.describe() + "\n";
      y_ += "apiVersion: bulkhead/v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n";
      y_ += "  endpoints:\n    - cidrs: " + cidrList(key.first) +
            "\n      ports: " + portList(key.second) + "\n";
    }
    std::sort(sum_.newServices.begin(), sum_.newServices.end());
  }

 private:
  // The App document up to its egress rules, the existing ones kept.
  void header(const std::string& app, const policy::App* existing, size_t active) {
    y_ += "---\n";
    y_ += existing ? "# App " + app + ": existing egress kept, " + std::to_string(active) +
                         " rules suggested\n"
                   : "# App " + app + " has no document yet: a new one\n";
    y_ += "apiVersion: bulkhead/v1\nkind: App\nmetadata:\n  name: " + app + "\n";
    if (existing && !existing->labels.empty())
      y_ += "  labels: " + labelMap(existing->labels) + "\n";
    y_ += "spec:\n";
    if (existing) {
      y_ +=
          std::string("  mode: ") + (existing->mode == policy::Mode::kAudit ? "audit" : "enforce");
      y_ += existing->mode == policy::Mode::kAudit ? "  # set to enforce once reviewed\n" : "\n";
      y_ += std::string("  denyAction: ") +
            (existing->denyAction == policy::DenyAction::kDrop ? "drop" : "reject") + "\n";
    }
    y_ += "  egress:\n";
    if (existing)
      for (const auto& e : existing->egress)
        emitExisting(y_, e);
  }

  const policy::Bundle& bundle_;
  size_t maxRules_;
  std::string& y_;
  SuggestSummary& sum_;
  std::map<ServiceKey, Evidence> used_;
};

}  // namespace

// Per app (the names in order): rules to the destinations the policy names,
// and the addresses it does not know.
struct Suggester::Destinations {
  std::set<std::string> apps;
  std::map<std::string, std::map<std::string, std::pair<Rule, EvidenceSum>>> named;
  std::map<std::string, std::map<IpAddr, Unknown>> unknown;
};

std::vector<uint32_t> Suggester::flowOrder() const {
  // Apps by name: the rank of each app id, so the sort compares numbers.
  std::vector<uint32_t> rank(apps_.size());
  {
    std::vector<uint32_t> byName(apps_.size());
    for (uint32_t i = 0; i < byName.size(); ++i)
      byName[i] = i;
    std::sort(byName.begin(), byName.end(),
              [&](uint32_t a, uint32_t b) { return apps_[a] < apps_[b]; });
    for (uint32_t i = 0; i < byName.size(); ++i)
      rank[byName[i]] = i;
  }
  // Flows by (app name, destination as IpAddr orders it, port), sorted as
  // packed numbers in one array: no indirection per comparison.
  struct SortKey {
    uint64_t app, hi, lo, port;
    uint32_t index;
    auto tie() const { return std::tie(app, hi, lo, port); }
  };
  std::vector<SortKey> keys(keys_.size());
  for (uint32_t i = 0; i < keys.size(); ++i) {
    const FlowKey& k = keys_[i];
    const auto [family, hi, lo] = addressWords(k.dst);
    const PortSpec& p = k.port;
    keys[i] = {
        uint64_t(rank[k.app]) << 8 | family, hi, lo,
        uint64_t(p.protoLo) << 40 | uint64_t(p.protoHi) << 32 | uint64_t(p.portLo) << 16 | p.portHi,
        i};
  }
  std::sort(keys.begin(), keys.end(),
            [](const SortKey& a, const SortKey& b) { return a.tie() < b.tie(); });
  std::vector<uint32_t> sorted(keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    sorted[i] = keys[i].index;
  return sorted;
}

Suggester::Destinations Suggester::attribute(const std::vector<uint32_t>& order) const {
  Destinations d;
  std::map<IpAddr, Unknown>* appUnknown = nullptr;  // the current app's (flows come by app)
  std::map<std::string, std::pair<Rule, EvidenceSum>>* appNamed = nullptr;
  // Flows of one app come by destination: what names it is worked out
  // once per destination, and its Unknown (if any) is the map's last.
  DestinationIndex::Candidates cands;
  const IpAddr* candsFor = nullptr;
  Unknown* lastUnknown = nullptr;
  constexpr size_t kAhead = 16;  // flows come in sorted order, their keys and stats anywhere
  for (size_t at = 0; at < order.size(); ++at) {
    if (at + kAhead < order.size()) {
      __builtin_prefetch(&keys_[order[at + kAhead]]);
      __builtin_prefetch(&this->stats(order[at + kAhead]));
    }
    const uint32_t i = order[at];
    const FlowKey& key = keys_[i];
    const FlowStats& stats = this->stats(i);
    const IpAddr& dst = key.dst;
    const PortSpec& port = key.port;
    const std::string& app = apps_[key.app];
    if (d.apps.empty() || *d.apps.rbegin() != app) {
      d.apps.insert(d.apps.end(), app);
      appUnknown = &d.unknown[app];
      appNamed = &d.named[app];
      lastUnknown = nullptr;
    }
    if (!candsFor || *candsFor != dst) {
      cands = index_.candidatesFor(dst);
      candsFor = &dst;
      lastUnknown = nullptr;
    }
    const policy::Service* service = cands.serviceFor(port);
    const std::string& to = service ? service->name : cands.app;
    if (to.empty()) {
      if (!lastUnknown)
        lastUnknown = &appUnknown->emplace_hint(appUnknown->end(), dst, Unknown{})->second;
      Unknown& u = *lastUnknown;
      addPort(u.ports, port);
      stats.mergeInto(u.evidence);
      ++u.flows;
      continue;
    }
    auto& [r, sum] = (*appNamed)[to];
    r.to = to;
    r.narrow = true;
    addPort(r.ports, port);
    stats.mergeInto(sum);
    ++r.flows;
  }
  return d;
}

void Suggester::releaseFlows() {
  flowIds_ = FlatTable<FlowKey, uint32_t>(SIZE_MAX, 16);
  std::vector<FlowKey>().swap(keys_);
  std::vector<std::unique_ptr<FlowStats[]>>().swap(chunks_);
}

Suggestion Suggester::finish() {
  Suggestion out;
  SuggestSummary& sum = out.summary;
  sum.ignoredEvents = ignored_;
  sum.unattributedEvents = unattributed_;
  for (const auto& [app, u] : unexpressible_)
    sum.unexpressibleFlows += u.size();
  sum.flows = keys_.size() + sum.unexpressibleFlows;
  sum.left = sum.unexpressibleFlows;

  // The key -> index table is done with: its memory goes before the sort's.
  flowIds_ = FlatTable<FlowKey, uint32_t>(SIZE_MAX, 16);
  Destinations d = attribute(flowOrder());
  releaseFlows();

  ServiceNames names;  // names a new Service may not take
  for (const auto& s : bundle_.services)
    names.take(s.name);
  for (const auto& a : bundle_.apps)
    names.take(a.name);
  for (const auto& a : d.apps)
    names.take(a);
  size_t unknown = 0;  // at most one new Service each
  for (const auto& [app, u] : d.unknown)
    unknown += u.size();
  names.reserve(unknown + bundle_.services.size() + bundle_.apps.size() + d.apps.size());
  ServiceNameMap services;
  services.reserve(unknown);
  std::map<std::string, std::vector<Rule>> rules;
  for (const auto& app : d.apps) {
    for (auto& [to, named] : d.named[app]) {
      named.first.evidence = std::move(named.second).evidence();
      rules[app].push_back(std::move(named.first));
    }
    foldUnknown(d.unknown[app], names, services, rules[app]);
    d.unknown.erase(app);  // folded into rules: its memory goes before the next app's
  }

  SuggestionWriter writer(bundle_, options_.maxRules, out);
  for (const auto& app : d.apps) {
    auto u = unexpressible_.find(app);
    writer.app(app, rules[app], u != unexpressible_.end() ? &u->second : nullptr);
  }
  writer.services(services);
  return out;
}

std::vector<policy::Diagnostic> checkSuggestion(const policy::Bundle& bundle,
                                                const std::string& yaml) {
  std::vector<policy::Diagnostic> errors, warnings;
  // Comment lines (evidence, rules left out) carry no YAML: parsed without
  // them, a suggestion with many left-out rules costs the parser nothing.
  std::string bare;
  bare.reserve(yaml.size() / 4);
  for (size_t pos = 0; pos < yaml.size();) {
    size_t end = yaml.find('\n', pos);
    end = end == std::string::npos ? yaml.size() : end + 1;
    const size_t text = yaml.find_first_not_of(' ', pos);
    if (text >= end || yaml[text] != '#') bare.append(yaml, pos, end - pos);
    pos = end;
  }
  policy::Bundle suggested;
  policy::parseText(bare, "<suggestion>", suggested, errors);
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
