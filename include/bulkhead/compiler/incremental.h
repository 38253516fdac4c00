// The compiler kept alive between changes. A full compile indexes policy and
// workloads; a workload added, changed or removed afterwards recomputes only
// the sets that depend on it (the workload sets and the destination sets
// that contain its app's addresses), so the cost grows with the change, not
// with the table.
//
// An interface a change brings is staged: it reaches its app chain through
// @staged and @st_<app> rather than a new `goto` element in @dispatch, which
// would make the kernel re-validate the whole table (compiler.cpp). Staged
// interfaces are enforced exactly as dispatched ones; promoteStaged() moves
// them all into @dispatch in one diff. After it, the Ruleset held is what a
// full compile of the same inputs gives (tests compare the two); a full
// compile (reset) stages nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::compiler {

class Compilation;

class IncrementalCompiler {
 public:
  explicit IncrementalCompiler(CompileOptions options = {});
  ~IncrementalCompiler();
  IncrementalCompiler(const IncrementalCompiler&) = delete;
  IncrementalCompiler& operator=(const IncrementalCompiler&) = delete;

  // Full compile of a bundle plus API workloads (and the remote workloads
  // held, or `remotes`); returns the diff from the previous ruleset (a full
  // one the first time). On error nothing changes.
  Result<RulesetDiff> reset(policy::Bundle bundle, std::vector<policy::Workload> workloads);
  Result<RulesetDiff> reset(policy::Bundle bundle, std::vector<policy::Workload> workloads,
                            RemoteWorkloads remotes);

  // Adds or replaces an API workload (by name). On error nothing changes.
  Result<RulesetDiff> upsertWorkload(const policy::Workload& workload);
  // Removes an API workload; kNotFound if there is none by that name.
  Result<RulesetDiff> removeWorkload(const std::string& name);
  // Adds or replaces another host's workload (by host and name; no
  // interfaces): destination set elements only. The same workload again: an
  // empty diff. On error nothing changes.
  Result<RulesetDiff> upsertRemote(const std::string& host, const policy::Workload& workload);
  // kNotFound if there is none by that host and name.
  Result<RulesetDiff> removeRemote(const std::string& host, const std::string& name);
  // Moves staged interfaces (at most `limit`, in name order) into @dispatch;
  // an empty diff if none is.
  RulesetDiff promoteStaged(size_t limit = SIZE_MAX);
  size_t stagedCount() const;

  const Ruleset& ruleset() const;
  const policy::Bundle& bundle() const;
  // API workloads (the bundle's own are in bundle().workloads), in no
  // particular order.
  const std::vector<policy::Workload>& workloads() const;
  // The API workload of that name, or nullptr; valid until the next change.
  const policy::Workload* findWorkload(const std::string& name) const;
  // The App document of that name, or nullptr (none, or only workloads use
  // the name); valid until the next full compile.
  const policy::App* findApp(const std::string& name) const;
  const RemoteWorkloads& remotes() const;
  const CompileOptions& options() const { return options_; }

 private:
  CompileOptions options_;
  std::unique_ptr<Compilation> state_;
};

}  // namespace bulkhead::compiler
