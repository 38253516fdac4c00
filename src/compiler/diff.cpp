#include "bulkhead/compiler/diff.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

namespace bulkhead::compiler {

namespace {

// Set names a chain's rules look up.
std::set<std::string> referencedSets(const Chain& chain) {
  std::set<std::string> out;
  for (const auto& r : chain.rules)
    for (const auto& e : r.exprs) {
      if (auto* l = std::get_if<expr::Lookup>(&e)) out.insert(l->set);
      if (auto* v = std::get_if<expr::Vmap>(&e)) out.insert(v->map);
    }
  return out;
}

}  // namespace

bool RulesetDiff::empty() const {
  return !createTable && elements.empty() && addSets.empty() && deleteSets.empty() &&
         addChains.empty() && replaceChains.empty() && deleteChains.empty();
}

size_t RulesetDiff::elementChangeCount() const {
  size_t n = 0;
  for (const auto& c : elements)
    n += c.add.size() + c.remove.size();
  for (const auto& s : addSets)
    n += s.elements.size();
  return n;
}

std::string RulesetDiff::summary() const {
  if (empty()) return "no changes";
  size_t adds = 0, removes = 0;
  for (const auto& c : elements) {
    adds += c.add.size();
    removes += c.remove.size();
  }
  for (const auto& s : addSets)
    adds += s.elements.size();
  std::string out = createTable ? "create table; " : "";
  out += std::to_string(adds) + " element adds, " + std::to_string(removes) + " element removes";
  auto part = [&](size_t n, const char* what) {
    if (n) out += ", " + std::to_string(n) + " " + what;
  };
  part(addSets.size(), "sets added");
  part(deleteSets.size(), "sets deleted");
  part(addChains.size(), "chains added");
  part(replaceChains.size(), "chains rewritten");
  part(deleteChains.size(), "chains deleted");
  return out;
}

RulesetDiff diffRulesets(const Ruleset& from, const Ruleset& to) {
  RulesetDiff d;
  d.table = to.table;

  std::set<std::string> redeclared;  // sets deleted and re-added under one name
  std::map<std::string, const Set*> old;
  for (const auto& s : from.sets)
    old.emplace(s.name, &s);
  for (const auto& s : to.sets) {
    auto it = old.find(s.name);
    if (it == old.end()) {
      d.addSets.push_back(s);
      continue;
    }
    const Set& prev = *it->second;
    old.erase(it);
    if (!prev.sameDeclaration(s)) {
      d.deleteSets.push_back(s.name);
      d.addSets.push_back(s);
      redeclared.insert(s.name);
      continue;
    }
    // Both element lists are sorted: two linear merges.
    ElementChanges c{s.name, {}, {}};
    std::set_difference(prev.elements.begin(), prev.elements.end(), s.elements.begin(),
                        s.elements.end(), std::back_inserter(c.remove));
    std::set_difference(s.elements.begin(), s.elements.end(), prev.elements.begin(),
                        prev.elements.end(), std::back_inserter(c.add));
    if (!c.add.empty() || !c.remove.empty()) d.elements.push_back(std::move(c));
  }
  for (const auto& [name, set] : old)
    d.deleteSets.push_back(name);

  std::map<std::string, const Chain*> oldChains;
  for (const auto& c : from.chains)
    oldChains.emplace(c.name, &c);
  for (const auto& c : to.chains) {
    auto it = oldChains.find(c.name);
    if (it == oldChains.end()) {
      d.addChains.push_back(c);
      continue;
    }
    const Chain& prev = *it->second;
    oldChains.erase(it);
    if (prev.base != c.base) {
      d.deleteChains.push_back(c.name);
      d.addChains.push_back(c);
      continue;
    }
    bool usesRedeclared = false;
    for (const auto& s : referencedSets(c))
      usesRedeclared |= redeclared.count(s) > 0;
    if (prev.rules != c.rules || usesRedeclared) d.replaceChains.push_back(c);
  }
  for (const auto& [name, chain] : oldChains)
    d.deleteChains.push_back(name);
  return d;
}

RulesetDiff fullRuleset(const Ruleset& to) {
  RulesetDiff d;
  d.table = to.table;
  d.createTable = true;
  d.addSets = to.sets;
  d.addChains = to.chains;
  return d;
}

}  // namespace bulkhead::compiler
