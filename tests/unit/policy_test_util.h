// Helpers shared by the policy_*_test.cpp files.
#pragma once

#include <string>
#include <vector>

#include "bulkhead/policy/loader.h"

namespace bulkhead::policy::testing_util {

inline std::vector<std::string> strings(const std::vector<Diagnostic>& diags) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diags)
    out.push_back(d.toString());
  return out;
}

inline std::vector<std::string> errorsOf(const std::string& text) {
  return strings(loadText(text, "t.yaml").errors);
}

}  // namespace bulkhead::policy::testing_util
