// The netlink writer: a Ruleset or a RulesetDiff -> one libnftnl batch, sent
// as one transaction. It owns exactly `table inet <table>` and never touches
// any other table.
#pragma once

#include <string>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/nft/kernel.h"

namespace bulkhead::nft {

// Builds the batch for `diff` (in the order documented in compiler/diff.h).
// With `replaceTable`, the batch first adds then deletes the table (so the
// delete cannot fail on a missing table) and the diff must be a full one:
// the kernel swaps the old table for the new one atomically.
Result<Batch> buildBatch(const compiler::RulesetDiff& diff, uint32_t firstSeq,
                         bool replaceTable = false);
// The same, with the ruleset the diff leads to: element changes of existing
// sets take their layout (interval ends, verdicts) from its declarations.
// Without it the layout is inferred from the elements (a range -> interval
// set; a verdict other than a plain accept -> verdict map).
Result<Batch> buildBatch(const compiler::RulesetDiff& diff, uint32_t firstSeq, bool replaceTable,
                         const compiler::Ruleset* target);

class Writer {
 public:
  explicit Writer(NftKernel& kernel) : kernel_(kernel) {}

  // Applies a diff as one transaction.
  Status apply(const compiler::RulesetDiff& diff);
  // The same, knowing the ruleset the diff leads to (see buildBatch).
  Status apply(const compiler::RulesetDiff& diff, const compiler::Ruleset& target);

  // Replaces whatever the table holds (or creates it) with `ruleset`, as one
  // transaction.
  Status replace(const compiler::Ruleset& ruleset);

  // Brings the kernel from `applied` (what we last committed, or nullptr) to
  // `next`: a diff when the table is there and `applied` is known, else a
  // full replace (the table vanished or nothing is known of it).
  Status sync(const compiler::Ruleset* applied, const compiler::Ruleset& next);

 private:
  NftKernel& kernel_;
};

}  // namespace bulkhead::nft
