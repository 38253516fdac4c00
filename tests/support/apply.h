// Applies compiled policy to a test namespace through the real writer.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/ruleset.h"
#include "support/netns.h"

namespace bulkhead::testing {

// Compiles YAML text (policy and Workload documents) or fails the test.
compiler::Ruleset compileYaml(const std::string& yaml,
                              const compiler::CompileOptions& options = {});

// Keeps what was last committed in a namespace, so later applies are diffs
// (as the agent does).
class KernelApplier {
 public:
  explicit KernelApplier(const Netns& ns) : ns_(ns) {}
  // Diff against the last applied ruleset (or a full replace the first time).
  Status apply(const compiler::Ruleset& next);
  // Always a full replace, one transaction.
  Status replace(const compiler::Ruleset& next);
  const std::optional<compiler::Ruleset>& applied() const { return applied_; }

 private:
  const Netns& ns_;
  std::optional<compiler::Ruleset> applied_;
};

}  // namespace bulkhead::testing
