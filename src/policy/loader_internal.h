// Private to the policy library: what parseText() knows that validateBundle()
// needs to avoid follow-on errors when both run in loadText()/loadPaths().
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::policy::internal {

struct ParseNotes {
  // Indexes into Bundle::services of Services whose documents had errors.
  // They stay in the bundle (other documents refer to them by name) but their
  // structure is not checked again: "needs endpoints" after "bad CIDR" in its
  // only endpoint would only repeat the news.
  std::set<size_t> brokenServices;
  // What YAML aliases may still expand to in this bundle (every file).
  uint64_t aliasNodesLeft = limits::kMaxAliasNodesPerBundle;
};

void parseText(std::string_view text, const std::string& fileName, Bundle& into,
               std::vector<Diagnostic>& errors, ParseNotes& notes);

void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors,
                    std::vector<Diagnostic>& warnings, const ParseNotes& notes);

}  // namespace bulkhead::policy::internal
