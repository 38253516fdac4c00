// The benchmarks' second baseline: bulkhead's compiled IPv4 policy as the
// iptables + ipset ruleset that Cloud Foundry's ASGs and Calico's iptables
// mode load, translated rule by rule from the same Ruleset value, so both
// sides enforce the same policy:
//   - destination interval sets -> ipset hash:net,port ("cidr,proto:port");
//     whole-port-range boxes of one protocol -> hash:net with `-p`; boxes of
//     every protocol -> hash:net;
//   - the source check -> ipset hash:net,iface matched `src,src`;
//   - the ifname -> chain verdict map -> a tree of `-i prefix+ -g` chains
//     split by name prefix (Calico's dispatch shape), at most 16 rules a node;
//     a set of interface names whose match leads to a verdict (the
//     pre-conntrack chain's @registered) -> the same tree, every leaf that
//     verdict;
//   - limit + log -> `-m limit ... -j NFLOG`; a per-interface log budget
//     (meter) -> `-m hashlimit` per source address; counters are implicit.
// Legacy iptables (x_tables), not iptables-nft: the point is to measure the
// other datapath. Rules on IPv6-only selectors are left out (the benchmarks'
// traffic is IPv4); an expression with no translation is a Failure, so the
// baseline can never silently enforce less than the table it mirrors.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "bench_util.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/policy/address.h"

namespace bulkhead::bench::iptables {

using namespace compiler;

struct Restore {
  std::string ipset;     // for `ipset restore`
  std::string iptables;  // for `iptables-legacy-restore`
  size_t rules = 0, setEntries = 0;
};

inline std::string ifnameOf(const uint8_t* p) {
  return std::string(reinterpret_cast<const char*>(p),
                     strnlen(reinterpret_cast<const char*>(p), 16));
}

inline policy::IpAddr v4At(const uint8_t* p) {
  policy::IpAddr a;
  std::copy(p, p + 4, a.bytes.begin());
  return a;
}

inline uint32_t u32(const policy::IpAddr& a) {
  return uint32_t(a.bytes[0]) << 24 | uint32_t(a.bytes[1]) << 16 | uint32_t(a.bytes[2]) << 8 |
         a.bytes[3];
}

// The CIDRs that exactly cover [lo, hi].
inline std::vector<std::string> cidrsOf(uint32_t lo, uint32_t hi) {
  std::vector<std::string> out;
  uint64_t cur = lo;
  while (cur <= hi) {
    int len = 32;
    while (len > 0) {
      const uint64_t size = uint64_t(1) << (32 - (len - 1));
      if (cur % size != 0 || cur + size - 1 > hi) break;
      --len;
    }
    policy::IpAddr a;
    a.bytes[0] = uint8_t(cur >> 24), a.bytes[1] = uint8_t(cur >> 16);
    a.bytes[2] = uint8_t(cur >> 8), a.bytes[3] = uint8_t(cur);
    out.push_back(a.toString() + "/" + std::to_string(len));
    cur += uint64_t(1) << (32 - len);
  }
  return out;
}

inline const char* protoName(uint8_t p) {
  switch (p) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 1:
      return "icmp";
  }
  return nullptr;
}

class Translator {
 public:
  explicit Translator(const Ruleset& rs) : rs_(rs) {}

  Restore run() {
    for (const auto& s : rs_.sets)
      declareSet(s);
    out_.iptables += "*raw\n";
    tableChains(true);
    out_.iptables += "COMMIT\n*filter\n";
    tableChains(false);
    out_.iptables += "COMMIT\n";
    return out_;
  }

 private:
  // What a destination set became: the ipsets and the match each needs.
  struct DestSets {
    std::vector<std::pair<std::string, std::string>> matches;  // ipset name, extra match
  };

  static bool isV6(const Set& s) {
    return std::find(s.fields.begin(), s.fields.end(), KeyField::kIpv6Addr) != s.fields.end();
  }

  void add(const std::string& set, const std::string& entry) {
    out_.ipset += "add " + set + " " + entry + "\n";
    ++out_.setEntries;
  }

  void create(const std::string& name, const std::string& type) {
    out_.ipset += "create " + name + " " + type + " family inet maxelem 262144\n";
  }

  void declareSet(const Set& s) {
    if (isV6(s) || s.verdictMap) return;
    if (s.fields == std::vector<KeyField>{KeyField::kIfname, KeyField::kIpv4Addr}) {
      create(s.name, "hash:net,iface");
      for (const auto& e : s.elements)
        add(s.name, v4At(e.key.bytes.data() + 16).toString() + "," + ifnameOf(e.key.bytes.data()));
      ifaceSets_.insert(s.name);
      return;
    }
    if (s.fields == std::vector<KeyField>{KeyField::kIfname}) {
      // iptables has no set of interface names: empty ones (staged,
      // quarantine in a fresh full compile) can never match; the others
      // become a dispatch tree where a rule uses them (see rule()).
      if (s.elements.empty()) {
        emptyNameSets_.insert(s.name);
      } else {
        for (const auto& e : s.elements)
          nameSets_[s.name].push_back(ifnameOf(e.key.bytes.data()));
      }
      return;
    }
    if (s.fields.size() != 3) throw Failure("iptables baseline: set " + s.name);
    DestSets d;
    std::map<std::string, std::vector<std::string>> entries;  // ipset name -> entries
    for (const auto& e : s.elements) {
      const uint8_t* k = e.key.bytes.data();
      const uint8_t* h = e.keyEnd.bytes.data();
      const uint8_t protoLo = k[4], protoHi = h[4];
      const uint16_t portLo = uint16_t(k[8] << 8 | k[9]), portHi = uint16_t(h[8] << 8 | h[9]);
      const auto cidrs = cidrsOf(u32(v4At(k)), u32(v4At(h)));
      if (protoLo == 0 && protoHi == 255) {
        for (const auto& c : cidrs)
          entries[s.name + "_a"].push_back(c);
        continue;
      }
      for (unsigned p = protoLo; p <= protoHi; ++p) {
        const char* name = protoName(uint8_t(p));
        if (portLo == 0 && portHi == 65535) {
          for (const auto& c : cidrs)
            entries[s.name + "_p" + std::to_string(p)].push_back(c);
          continue;
        }
        if (!name || portHi - portLo > 1024)
          throw Failure("iptables baseline: cannot express ports of " + s.name);
        for (const auto& c : cidrs)
          for (unsigned port = portLo; port <= portHi; ++port)
            entries[s.name].push_back(c + "," + name + ":" + std::to_string(port));
      }
    }
    // Every set exists (possibly empty) so that rules can name it.
    create(s.name, "hash:net,port");
    d.matches.push_back({s.name, "dst,dst"});
    for (const auto& [name, list] : entries) {
      if (name != s.name) {
        create(name, "hash:net");
        const std::string proto = name.substr(name.size() - 2) == "_a"
                                      ? ""
                                      : "-p " + name.substr(name.rfind("_p") + 2) + " ";
        d.matches.push_back({name, proto + "|dst"});
      }
      for (const auto& e : list)
        add(name, e);
    }
    destSets_[s.name] = d;
  }

  // The chains of one table (raw: the base chains before conntrack and the
  // regular chains they reach; filter: the rest): declarations, then rules.
  void tableChains(bool raw) {
    std::string decls, rules;
    for (const auto& c : rs_.chains) {
      const bool inRaw = c.base ? c.base->priority < 0 : reachedFromRaw(c.name);
      if (inRaw != raw && (c.base || raw)) continue;
      const std::string name = chainName(c);
      decls += ":" + name + (c.base ? " ACCEPT" : " -") + " [0:0]\n";
      for (const auto& r : c.rules)
        rules += rule(name, r, raw);
    }
    out_.iptables += decls + dispatchDecls_[raw] + rules + dispatchRules_[raw];
  }

  bool reachedFromRaw(const std::string& chain) const {
    for (const auto& c : rs_.chains)
      if (c.base && c.base->priority < 0)
        for (const auto& r : c.rules)
          for (const auto& e : r.exprs)
            if (auto* v = std::get_if<expr::VerdictStatement>(&e); v && v->verdict.chain == chain)
              return true;
    return false;
  }

  static std::string chainName(const Chain& c) {
    if (!c.base) return c.name;
    if (c.base->priority < 0) return "PREROUTING";
    return c.base->hook == BaseHook::Hook::kInput ? "INPUT" : "FORWARD";
  }

  static std::string target(const compiler::Verdict& v) {
    switch (v.kind) {
      case compiler::Verdict::Kind::kAccept:
        return "-j ACCEPT";
      case compiler::Verdict::Kind::kDrop:
        return "-j DROP";
      case compiler::Verdict::Kind::kReturn:
        return "-j RETURN";
      case compiler::Verdict::Kind::kJump:
        return "-j " + v.chain.str();
      case compiler::Verdict::Kind::kGoto:
        return "-g " + v.chain.str();
    }
    return "";
  }

  // One Ruleset rule as iptables rules (a destination lookup may need
  // several ipsets, hence several rules). "" when the rule is IPv6-only or
  // can never match here.
  std::string rule(const std::string& chain, const Rule& r, bool raw) {
    std::vector<std::string> variants{""};
    std::string tail;
    bool isMatch = true;
    const std::vector<std::string>* names = nullptr;  // a lookup in a set of names
    for (const auto& e : r.exprs) {
      if (auto* x = std::get_if<expr::Lookup>(&e); x && nameSets_.count(x->set)) {
        if (x->invert || r.exprs.size() != 2 || !std::get_if<expr::VerdictStatement>(&r.exprs[1]))
          throw Failure("iptables baseline: set of names " + x->set + " outside `@set verdict`");
        names = &nameSets_.at(x->set);
        continue;
      }
      std::string m;
      if (auto* x = std::get_if<expr::CtState>(&e)) {
        std::vector<std::string> states;
        if (x->mask & expr::CtState::kInvalid) states.push_back("INVALID");
        if (x->mask & expr::CtState::kEstablished) states.push_back("ESTABLISHED");
        if (x->mask & expr::CtState::kRelated) states.push_back("RELATED");
        if (x->mask & expr::CtState::kNew) states.push_back("NEW");
        std::string s;
        for (const auto& st : states)
          s += (s.empty() ? "" : ",") + st;
        m = "-m conntrack --ctstate " + s;
      } else if (auto* x = std::get_if<expr::MetaNfproto>(&e)) {
        if (x->family == Family::kIpv6) return "";
      } else if (auto* x = std::get_if<expr::MetaL4proto>(&e)) {
        m = "-p " + std::to_string(x->proto);
      } else if (std::get_if<expr::IcmpV6TypeRange>(&e)) {
        return "";
      } else if (auto* x = std::get_if<expr::UdpPorts>(&e)) {
        m = "-p udp" + (x->sport ? " --sport " + std::to_string(x->sport) : std::string()) +
            " --dport " + std::to_string(x->dport);
      } else if (auto* x = std::get_if<expr::Lookup>(&e)) {
        if (!lookup(*x, variants)) return "";
        continue;
      } else if (auto* x = std::get_if<expr::Vmap>(&e)) {
        if (x->selectors != std::vector<PacketField>{PacketField::kIifname})
          throw Failure("iptables baseline: vmap on other than iifname");
        m = "-g " + dispatch(raw, *rs_.findSet(x->map));
        isMatch = false;
      } else if (auto* x = std::get_if<expr::SaddrPrefix>(&e)) {
        if (x->addr.family == Family::kIpv6) return "";
        m = "-s " + x->addr.toString() + "/" + std::to_string(x->prefixLen);
      } else if (auto* x = std::get_if<expr::IfnameMatch>(&e)) {
        m = "-i " + x->pattern;
        if (m.back() == '*') m.back() = '+';
      } else if (auto* x = std::get_if<expr::Meter>(&e)) {
        // A budget per interface: hashlimit has no interface mode; per
        // source address is the nearest (a workload's own addresses).
        m = "-m hashlimit --hashlimit-upto " + std::to_string(x->ratePerSecond) +
            "/second --hashlimit-burst " + std::to_string(x->burst) +
            " --hashlimit-mode srcip --hashlimit-name " + x->set;
      } else if (auto* x = std::get_if<expr::Limit>(&e)) {
        m = "-m limit --limit " + std::to_string(x->ratePerSecond) + "/second --limit-burst " +
            std::to_string(x->burst);
      } else if (auto* x = std::get_if<expr::Log>(&e)) {
        tail = "-j NFLOG --nflog-group " + std::to_string(x->group) + " --nflog-prefix \"" +
               x->prefix.substr(0, 63) + "\"";
        isMatch = false;
      } else if (std::get_if<expr::Counter>(&e)) {
        continue;
      } else if (auto* x = std::get_if<expr::Reject>(&e)) {
        tail = x->kind == expr::Reject::Kind::kTcpReset
                   ? "-j REJECT --reject-with tcp-reset"
                   : "-j REJECT --reject-with icmp-admin-prohibited";
        isMatch = false;
      } else if (auto* x = std::get_if<expr::VerdictStatement>(&e)) {
        tail = target(x->verdict);
        isMatch = false;
      } else {
        throw Failure("iptables baseline: an expression without translation in chain " + chain);
      }
      if (m.empty()) continue;
      if (!isMatch && m.rfind("-g ", 0) == 0) {
        tail = m;
        continue;
      }
      for (auto& v : variants)
        v += (v.empty() ? "" : " ") + m;
    }
    if (names) tail = "-g " + nameTree(raw, *names, tail);
    std::string out;
    for (const auto& v : variants) {
      out += "-A " + chain + (v.empty() ? "" : " " + v) + (tail.empty() ? "" : " " + tail) + "\n";
      ++out_.rules;
    }
    return out;
  }

  // Adds a lookup's match to every variant; false when it can never match
  // here (an IPv6 set, or an empty set of names).
  bool lookup(const expr::Lookup& l, std::vector<std::string>& variants) {
    const std::string neg = l.invert ? "! " : "";
    if (emptyNameSets_.count(l.set)) return l.invert;  // nothing is in it
    if (ifaceSets_.count(l.set)) {
      for (auto& v : variants)
        v += (v.empty() ? "" : " ") + std::string("-m set ") + neg + "--match-set " + l.set +
             " src,src";
      return true;
    }
    auto it = destSets_.find(l.set);
    if (it == destSets_.end()) return false;  // an IPv6 set
    if (l.invert) throw Failure("iptables baseline: inverted destination lookup");
    std::vector<std::string> out;
    for (const auto& v : variants)
      for (const auto& [set, how] : it->second.matches) {
        const auto bar = how.find('|');
        const std::string proto = bar == std::string::npos ? "" : how.substr(0, bar);
        const std::string dir = bar == std::string::npos ? how : how.substr(bar + 1);
        out.push_back(v + (v.empty() ? "" : " ") + proto + "-m set --match-set " + set + " " + dir);
      }
    variants = std::move(out);
    return true;
  }

  // The dispatch tree for a verdict map (one per table); returns its root.
  std::string dispatch(bool raw, const Set& map) {
    const std::string root = raw ? "rd_" : "fd_";
    if (!dispatchRoots_.insert(root).second) return root;
    std::vector<std::pair<std::string, std::string>> items;  // ifname -> target
    for (const auto& e : map.elements)
      items.push_back({ifnameOf(e.key.bytes.data()), target(e.verdict)});
    std::sort(items.begin(), items.end());
    node(raw, root, "", items);
    return root;
  }

  // A tree like dispatch()'s whose every leaf is `target`; returns its root.
  std::string nameTree(bool raw, const std::vector<std::string>& names, const std::string& target) {
    const std::string root = "nt" + std::to_string(dispatchRoots_.size()) + "_";
    dispatchRoots_.insert(root);
    std::vector<std::pair<std::string, std::string>> items;
    for (const auto& n : names)
      items.push_back({n, target});
    std::sort(items.begin(), items.end());
    node(raw, root, "", items);
    return root;
  }

  void node(bool raw, const std::string& name, const std::string& prefix,
            const std::vector<std::pair<std::string, std::string>>& items) {
    dispatchDecls_[raw] += ":" + name + " - [0:0]\n";
    auto& rules = dispatchRules_[raw];
    auto add = [&](const std::string& line) {
      rules += "-A " + name + " " + line + "\n";
      ++out_.rules;
    };
    if (items.size() <= 16) {
      for (const auto& [iface, t] : items)
        add("-i " + iface + " " + t);
      return;
    }
    std::map<char, std::vector<std::pair<std::string, std::string>>> groups;
    for (const auto& it : items) {
      if (it.first.size() == prefix.size()) {
        add("-i " + it.first + " " + it.second);
      } else {
        groups[it.first[prefix.size()]].push_back(it);
      }
    }
    for (const auto& [c, group] : groups) {
      const std::string child = name + c;
      if (child.size() > 28) throw Failure("iptables baseline: dispatch chain name too long");
      add("-i " + prefix + c + "+ -g " + child);
      node(raw, child, prefix + c, group);
    }
  }

  const Ruleset& rs_;
  Restore out_;
  std::set<std::string> ifaceSets_, emptyNameSets_, dispatchRoots_;
  std::map<std::string, std::vector<std::string>> nameSets_;  // set -> interface names
  std::map<std::string, DestSets> destSets_;
  std::map<bool, std::string> dispatchDecls_, dispatchRules_;
};

inline Restore translate(const Ruleset& rs) {
  return Translator(rs).run();
}

}  // namespace bulkhead::bench::iptables
