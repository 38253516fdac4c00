// The agent's enforcement core: the incremental compiler plus the writer.
// Every change is compiled, then committed as one transaction; when the
// kernel refuses it, the compiler is rolled back so that what it holds is
// always what the kernel holds.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/compiler/incremental.h"
#include "bulkhead/nft/kernel.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::nft {
class NotificationGate;
}

namespace bulkhead::agent {

class Enforcer {
 public:
  Enforcer(nft::NftKernel& kernel, compiler::CompileOptions options)
      : kernel_(kernel), compiler_(std::move(options)) {}

  // Replaces bundle and API workloads at once (restoring saved state);
  // remote workloads are kept, or replaced by `remotes`.
  Result<compiler::RulesetDiff> load(policy::Bundle bundle,
                                     std::vector<policy::Workload> workloads);
  Result<compiler::RulesetDiff> load(policy::Bundle bundle, std::vector<policy::Workload> workloads,
                                     compiler::RemoteWorkloads remotes);
  // Replaces the policy bundle; API workloads are kept.
  Result<compiler::RulesetDiff> setPolicy(policy::Bundle bundle);
  // Adds or replaces an API workload: element changes only, unless its app
  // has no App document and no other workload (then its chain appears).
  Result<compiler::RulesetDiff> upsertWorkload(const policy::Workload& workload);
  Result<compiler::RulesetDiff> removeWorkload(const std::string& name);
  // Another host's workload (see compiler::RemoteWorkloads): destination
  // set elements only.
  Result<compiler::RulesetDiff> upsertRemote(const std::string& host,
                                             const policy::Workload& workload);
  Result<compiler::RulesetDiff> removeRemote(const std::string& host, const std::string& name);
  // Several remote changes as one transaction: deletes, then upserts, each
  // through the compiler, then the ruleset's difference committed at once.
  // An entry the compiler refuses (kInvalidInput) is skipped and described
  // in `skipped`; a delete of an unknown one is nothing. On a kernel error
  // nothing changes.
  Result<compiler::RulesetDiff> applyRemotes(
      const std::vector<std::pair<std::string, policy::Workload>>& upserts,
      const std::vector<compiler::RemoteId>& deletes, std::vector<std::string>& skipped);
  // Moves the staged interfaces into the dispatch map, one transaction (the
  // kernel validates the table once for all of them). On failure the
  // compiler keeps the promotion and the next commit replaces the table.
  Result<compiler::RulesetDiff> promoteStaged(size_t limit = SIZE_MAX);
  size_t stagedCount() const { return compiler_.stagedCount(); }

  // Puts the ruleset back if the table is gone, or if the last commit failed
  // (the kernel's state is then unknown); true if it had to.
  Result<bool> repairIfMissing();
  // Puts the whole ruleset back, whatever the table holds (drift).
  Status replaceAll();

  // Compares the kernel's table with what was committed, by content (see
  // nft/table_content.h): nullopt when they are the same, else what
  // differs. kUnavailable when the kernel cannot read a table back.
  Result<std::optional<std::string>> compareWithKernel();
  // Why the kernel may not hold what was committed: the last commit failed
  // (its outcome is unknown), or the content differs (read back only when
  // someone else committed since the table was last known to hold ours:
  // untouchedSinceLastCommit). On a kernel that
  // cannot read a table back: whether the table is missing, or kUnavailable
  // when `mustCompare`. nullopt: no drift.
  Result<std::optional<std::string>> drift(bool mustCompare = false);
  // For a caller that reads the table back without holding its lock: the
  // verdict when no read-back is needed (nullopt: read it).
  std::optional<Result<std::optional<std::string>>> driftWithoutReading();
  // Our transactions so far, refused ones included.
  uint64_t commits() const { return commits_; }
  // For a caller that reads the table one piece at a time without holding
  // its lock (PiecewiseCheck): whether a commit of ours after the first
  // `commits` may have changed the table's declarations (chains, rules,
  // sets; `set` nullptr) or the elements of `*set`. What it read of that
  // piece may then hold some of the old table and some of the new.
  bool changedSince(uint64_t commits, const std::string* set) const;

  // The table monitor: commits of at least kQuietElements element changes
  // leave its notification group meanwhile (nullptr: none). See
  // nft::NotificationGate.
  void setNotificationGate(nft::NotificationGate* gate) { gate_ = gate; }
  // Large enough that a promotion batch (kPromoteBatch interfaces, three
  // element changes each) keeps listening: what others commit while the
  // monitor is out goes unheard and costs a read-back of the whole table
  // (a dump by the kernel, a comparison by the agent). Promotions
  // come every second while workloads arrive; their notifications cost the
  // kernel less than a millisecond. Pushes, restores and repairs are
  // larger and rarer.
  static constexpr size_t kQuietElements = 1024;
  static constexpr size_t kPromoteBatch = 256;
  static_assert(3 * kPromoteBatch < kQuietElements);

  bool committed() const { return committed_; }
  // True when the kernel holds our last commit and nobody else, in any
  // table of the namespace, has committed since the table was last known
  // to hold it (the ruleset generation is the one generation_ holds).
  Result<bool> untouchedSinceLastCommit();
  // A read-back with no commit of ours during it: when it found the table
  // in sync and the generation read before and after it is the same, the
  // table is known to hold ours at that generation.
  void noteReadBack(const Result<std::optional<std::string>>& differs,
                    const Result<uint32_t>& before, const Result<uint32_t>& after);
  const compiler::Ruleset& ruleset() const { return compiler_.ruleset(); }
  const compiler::IncrementalCompiler& compiler() const { return compiler_; }

 private:
  // Commits `diff` (a full replace when nothing is known of the table).
  Status commit(const compiler::RulesetDiff& diff);
  Status commitOnce(const compiler::RulesetDiff& diff);
  // Notes which pieces of the table `diff` changes (changedSince).
  void noteChanges(const compiler::RulesetDiff& diff);
  // Runs `commits` (our transactions, changing about `elements` elements)
  // and notes the generation they left; a large one with the monitor
  // paused, after which a generation that moved by more than our commit
  // means someone else committed unheard.
  Status write(size_t elements, bool replaces, const std::function<Status()>& commits);

  nft::NftKernel& kernel_;
  compiler::IncrementalCompiler compiler_;
  // After a successful commit (`replaced`: the whole table): the
  // generation it left, if ours was the only commit since the last known
  // one (see generation_).
  void noteGeneration(bool replaced);

  nft::NotificationGate* gate_ = nullptr;
  bool committed_ = false;  // the kernel holds compiler_.ruleset()
  bool everCommitted_ = false;
  // The ruleset generation at which the kernel is known to hold what we
  // committed: after our commits when nobody else committed in between,
  // and after a read-back found the table in sync. None: unknown, and the
  // next check reads the table back.
  std::optional<uint32_t> generation_;
  uint64_t commits_ = 0;  // transactions sent, refused ones included
  // commits_ at the last commit that replaced the whole table, changed its
  // declarations, or changed the elements of a set (by name; cleared by a
  // replace, a deleted set's removed): changedSince().
  uint64_t replacedAt_ = 0;
  uint64_t declarationsChangedAt_ = 0;
  std::unordered_map<std::string, uint64_t> elementsChangedAt_;
};

}  // namespace bulkhead::agent
