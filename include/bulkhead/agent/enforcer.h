// The agent's enforcement core: compiles what it is given and brings the
// kernel's table to it, remembering what it committed so each later change
// is a diff (element-level when only workloads change).
#pragma once

#include <optional>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/nft/kernel.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::agent {

class Enforcer {
 public:
  Enforcer(nft::NftKernel& kernel, compiler::CompileOptions options)
      : kernel_(kernel), options_(std::move(options)) {}

  // Compiles `bundle` + `workloads` and commits the change as one
  // transaction. On any failure the kernel keeps what it had.
  Result<compiler::RulesetDiff> apply(const policy::Bundle& bundle,
                                      const std::vector<policy::Workload>& workloads);

  // Puts the last applied ruleset back if the table is gone; true if it had to.
  Result<bool> repairIfMissing();

  const std::optional<compiler::Ruleset>& applied() const { return applied_; }
  const compiler::CompileOptions& options() const { return options_; }

 private:
  nft::NftKernel& kernel_;
  compiler::CompileOptions options_;
  std::optional<compiler::Ruleset> applied_;
};

}  // namespace bulkhead::agent
