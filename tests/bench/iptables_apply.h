// bench_apply's iptables + ipset baseline: what loading bulkhead's table
// costs the tools that Cloud Foundry's ASGs and Calico's iptables mode use,
// and what one workload more costs them.
//
// iptables_equivalent.h translates a compiled Ruleset rule by rule. Three
// parts of today's table need a shape it does not take; for an apply-cost
// baseline they are rewritten here, each into its iptables equivalent or
// left out and counted:
//   - `iifname @registered goto workload_raw` (a set of interface names):
//     iptables has none, so it becomes a dispatch tree like @dispatch's
//     (`-i prefix+ -g` chains), one leaf per registered interface;
//   - the per-interface log budget (`update @log_budget { iifname limit }`):
//     a plain `-m limit` on the rule (iptables' hashlimit has no per-interface
//     mode); the same number of rules and matches;
//   - rules on a source prefix: the IPv6 ones are left out like every IPv6
//     rule, the one IPv4 rule (DHCP from 0.0.0.0 to the host) is left out
//     and counted in `leftOut`.
// Anything else without a translation still fails the run.
#pragma once

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bulkhead/compiler/compiler.h"
#include "iptables_equivalent.h"

namespace bulkhead::bench::iptables {

struct Adapted {
  compiler::Ruleset ruleset;
  size_t leftOut = 0;  // IPv4 rules with no equivalent here
};

inline bool isIfnameGoto(const compiler::Rule& r, const compiler::Ruleset& rs) {
  if (r.exprs.size() != 2) return false;
  const auto* l = std::get_if<compiler::expr::Lookup>(&r.exprs[0]);
  const auto* v = std::get_if<compiler::expr::VerdictStatement>(&r.exprs[1]);
  if (!l || !v || l->invert || l->selectors != std::vector{compiler::PacketField::kIifname})
    return false;
  const compiler::Set* s = rs.findSet(l->set);
  return s && !s->verdictMap && !s->elements.empty();
}

inline Adapted adaptForApply(compiler::Ruleset rs) {
  Adapted out;
  std::vector<compiler::Set> extraSets;
  for (auto& c : rs.chains) {
    std::vector<compiler::Rule> kept;
    for (auto& r : c.rules) {
      if (isIfnameGoto(r, rs)) {
        const auto l = std::get<compiler::expr::Lookup>(r.exprs[0]);
        const auto v = std::get<compiler::expr::VerdictStatement>(r.exprs[1]);
        for (auto& s : rs.sets)
          if (s.name == l.set) {
            s.verdictMap = true;
            for (auto& e : s.elements)
              e.verdict = v.verdict;
          }
        r.exprs = {compiler::expr::Vmap{{compiler::PacketField::kIifname}, l.set}};
        kept.push_back(std::move(r));
        // The translator puts a regular chain in the raw table when a raw
        // base chain names it in a verdict; the map's elements do not count,
        // so a rule on an empty set of names (never emitted) names it.
        const std::string none = l.set + "_none";
        kept.push_back(compiler::Rule{{compiler::expr::Lookup{l.selectors, none, false}, v}, ""});
        extraSets.push_back(
            compiler::Set{none, {compiler::KeyField::kIfname}, false, false, "", {}});
        continue;
      }
      bool drop = false;
      for (auto& e : r.exprs) {
        if (auto* m = std::get_if<compiler::expr::Meter>(&e)) {
          e = compiler::expr::Limit{m->ratePerSecond, m->burst};
        } else if (auto* p = std::get_if<compiler::expr::SaddrPrefix>(&e)) {
          drop = true;
          if (p->addr.size() == 4) ++out.leftOut;
          break;
        }
      }
      if (!drop) kept.push_back(std::move(r));
    }
    c.rules = std::move(kept);
  }
  for (auto& s : extraSets)
    rs.sets.push_back(std::move(s));
  out.ruleset = std::move(rs);
  return out;
}

// An iptables-restore document split into tables and chains.
struct Tables {
  struct Table {
    std::vector<std::string> order;                         // chains as declared
    std::map<std::string, std::string> policy;              // chain -> "ACCEPT" or "-"
    std::map<std::string, std::vector<std::string>> rules;  // chain -> "-A ..." lines
  };
  std::vector<std::string> names;  // "raw", "filter"
  std::map<std::string, Table> tables;
};

inline Tables parseRestore(const std::string& text) {
  Tables t;
  std::istringstream in(text);
  Tables::Table* cur = nullptr;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line == "COMMIT") continue;
    if (line[0] == '*') {
      t.names.push_back(line.substr(1));
      cur = &t.tables[line.substr(1)];
    } else if (cur && line[0] == ':') {
      const auto sp = line.find(' ');
      const std::string chain = line.substr(1, sp - 1);
      cur->order.push_back(chain);
      cur->policy[chain] = line.substr(sp + 1, line.find(' ', sp + 1) - sp - 1);
    } else if (cur && line.rfind("-A ", 0) == 0) {
      cur->rules[line.substr(3, line.find(' ', 3) - 3)].push_back(line);
    }
  }
  return t;
}

// The change from one loaded iptables + ipset state to the next, as a tool
// like Calico's Felix sends it: new ipset entries (`ipset restore`), then
// `iptables-restore --noflush` rewriting only the chains that changed
// (flush, then all their rules), then the ipset entries and chains that went.
struct Delta {
  std::string ipsetBefore;  // create / add, before the rules that use them
  std::string iptables;     // for iptables-restore --noflush
  std::string ipsetAfter;   // del / destroy, once no rule names them
  size_t ipsetLines = 0, chains = 0, rules = 0;
};

inline Delta delta(const Restore& before, const Restore& after) {
  Delta d;
  auto lines = [](const std::string& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) out.insert(l);
    return out;
  };
  const auto b = lines(before.ipset), a = lines(after.ipset);
  std::string creates, adds, dels, destroys;
  for (const auto& l : a)
    if (!b.count(l)) (l.rfind("create ", 0) == 0 ? creates : adds) += l + "\n";
  for (const auto& l : b)
    if (!a.count(l)) {
      std::istringstream words(l);
      std::string verb, set;
      words >> verb >> set;
      if (verb == "create")
        destroys += "destroy " + set + "\n";
      else
        dels += "del" + l.substr(3) + "\n";
    }
  d.ipsetBefore = creates + adds;
  d.ipsetAfter = dels + destroys;
  d.ipsetLines = size_t(std::count(d.ipsetBefore.begin(), d.ipsetBefore.end(), '\n') +
                        std::count(d.ipsetAfter.begin(), d.ipsetAfter.end(), '\n'));

  const Tables tb = parseRestore(before.iptables), ta = parseRestore(after.iptables);
  for (const auto& name : ta.names) {
    const auto& t = ta.tables.at(name);
    const auto old = tb.tables.find(name);
    std::string decls, flushes, rules, removed;
    for (const auto& chain : t.order) {
      const bool existed = old != tb.tables.end() && old->second.policy.count(chain);
      const auto* was =
          existed && old->second.rules.count(chain) ? &old->second.rules.at(chain) : nullptr;
      const auto now = t.rules.count(chain) ? t.rules.at(chain) : std::vector<std::string>{};
      if (existed && (was ? *was : std::vector<std::string>{}) == now) continue;
      ++d.chains;
      if (existed)
        flushes += "-F " + chain + "\n";
      else
        decls += ":" + chain + " - [0:0]\n";
      for (const auto& r : now) {
        rules += r + "\n";
        ++d.rules;
      }
    }
    if (old != tb.tables.end())
      for (const auto& chain : old->second.order)
        if (!t.policy.count(chain)) {
          removed += "-F " + chain + "\n-X " + chain + "\n";
          ++d.chains;
        }
    if (decls.empty() && flushes.empty() && removed.empty()) continue;
    d.iptables += "*" + name + "\n" + decls + flushes + rules + removed + "COMMIT\n";
  }
  return d;
}

}  // namespace bulkhead::bench::iptables
