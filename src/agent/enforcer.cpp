#include "bulkhead/agent/enforcer.h"

#include "bulkhead/nft/writer.h"

namespace bulkhead::agent {

Result<compiler::RulesetDiff> Enforcer::apply(const policy::Bundle& bundle,
                                              const std::vector<policy::Workload>& workloads) {
  auto next = compiler::compile(bundle, workloads, options_);
  if (!next) return next.takeError();
  auto exists = kernel_.tableExists(options_.table);
  if (!exists) return exists.takeError();
  compiler::RulesetDiff diff = applied_ && *exists ? compiler::diffRulesets(*applied_, *next)
                                                   : compiler::fullRuleset(*next);
  nft::Writer writer(kernel_);
  if (!diff.empty()) {
    // Without a record of what the table holds (first apply, or it vanished)
    // the whole table is swapped in one transaction.
    Status st = diff.createTable ? writer.replace(*next) : writer.apply(diff);
    if (!st) return st.takeError();
  }
  applied_ = std::move(*next);
  return diff;
}

Result<bool> Enforcer::repairIfMissing() {
  if (!applied_) return false;
  auto exists = kernel_.tableExists(options_.table);
  if (!exists) return exists.takeError();
  if (*exists) return false;
  nft::Writer writer(kernel_);
  if (Status st = writer.replace(*applied_); !st) return st.takeError();
  return true;
}

}  // namespace bulkhead::agent
