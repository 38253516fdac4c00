// The difference between two Rulesets as the smallest list of changes that
// turns the kernel's copy of the old one into the new one: element adds and
// removes when only workloads or addresses change, chain rewrites only where
// rules changed.
#pragma once

#include <string>
#include <vector>

#include "bulkhead/compiler/ruleset.h"

namespace bulkhead::compiler {

struct ElementChanges {
  std::string set;
  std::vector<Element> remove;  // applied before `add` in the same transaction
  std::vector<Element> add;
};

// The nft layer applies a diff as one transaction in this order (each step
// needs the ones before it): create the table; remove elements; flush the
// rules of replaced and deleted chains; delete chains; delete sets; add sets;
// add chains; add elements; add rules of added and replaced chains.
struct RulesetDiff {
  std::string table;
  bool createTable = false;              // the table is created (full apply)
  std::vector<ElementChanges> elements;  // for sets present in both old and new
  std::vector<Set> addSets;              // declared with their elements
  std::vector<std::string> deleteSets;
  std::vector<Chain> addChains;      // with their rules
  std::vector<Chain> replaceChains;  // flushed, then their new rules added
  std::vector<std::string> deleteChains;

  bool empty() const;
  size_t elementChangeCount() const;  // adds + removes, including new sets' elements
  std::string summary() const;        // "2 element adds, 1 chain rewrite" etc.
};

// Changes from `from` to `to`. Sets whose declaration changed are deleted and
// re-added (the chains that use them are then rewritten too).
RulesetDiff diffRulesets(const Ruleset& from, const Ruleset& to);

// Everything needed to create `to` from nothing (createTable set).
RulesetDiff fullRuleset(const Ruleset& to);

}  // namespace bulkhead::compiler
