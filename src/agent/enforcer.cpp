#include "bulkhead/agent/enforcer.h"

#include <cerrno>
#include <optional>

#include "bulkhead/nft/monitor.h"
#include "bulkhead/nft/table_content.h"
#include "bulkhead/nft/writer.h"

namespace bulkhead::agent {

Status Enforcer::commit(const compiler::RulesetDiff& diff) {
  const size_t elements =
      committed_ ? diff.elementChangeCount() : compiler_.ruleset().elementCount();
  Status st = write(elements, /*replaces=*/!committed_, [&] { return commitOnce(diff); });
  noteChanges(diff);
  if (st) return st;
  // Whatever failed (a refusal, a lost ACK), what the kernel holds is not
  // known for sure: the next commit replaces the whole table. This also makes
  // the callers' rollbacks safe when they restore the inputs but not every
  // element's place (a dispatched interface may come back staged).
  committed_ = false;
  generation_.reset();
  return st;
}

void Enforcer::noteChanges(const compiler::RulesetDiff& diff) {
  if (diff.createTable || !diff.addSets.empty() || !diff.deleteSets.empty() ||
      !diff.addChains.empty() || !diff.replaceChains.empty() || !diff.deleteChains.empty())
    declarationsChangedAt_ = commits_;
  for (const auto& name : diff.deleteSets)
    elementsChangedAt_.erase(name);
  for (const auto& set : diff.addSets)
    elementsChangedAt_[set.name] = commits_;
  for (const auto& changes : diff.elements)
    elementsChangedAt_[changes.set] = commits_;
}

bool Enforcer::changedSince(uint64_t commits, const std::string* set) const {
  if (replacedAt_ > commits) return true;
  if (set == nullptr) return declarationsChangedAt_ > commits;
  auto it = elementsChangedAt_.find(*set);
  return it != elementsChangedAt_.end() && it->second > commits;
}

Status Enforcer::write(size_t elements, bool replaces, const std::function<Status()>& commits) {
  ++commits_;
  if (replaces) {
    // Every piece, whatever the diff said (the kernel's state was unknown).
    replacedAt_ = commits_;
    elementsChangedAt_.clear();
  }
  if (gate_ == nullptr || elements < kQuietElements) {
    Status st = commits();
    if (st) noteGeneration(replaces);
    return st;
  }
  // Read while still listening: a commit by others before this read is
  // heard; one after it moves the generation past ours.
  const auto before = kernel_.generation();
  gate_->pause();
  Status st = commits();
  gate_->resume();
  // Each commit bumps the generation by one; a refused one does not.
  const auto after = kernel_.generation();
  const bool alone = before && after && *after == *before + (st ? 1u : 0u);
  // A diff keeps what others did to the table before it; a replace does not.
  const bool knownBefore = replaces || (generation_ && before && *before == *generation_);
  generation_ = st && alone && knownBefore ? std::optional<uint32_t>(*after) : std::nullopt;
  // (A refused commit with the generation unreadable: the next check
  // repairs anyway, since the outcome is unknown.)
  if (!alone && (st || (before && after)))
    gate_->reportUnheard("commits by others while the agent wrote " + std::to_string(elements) +
                         " elements with nf_tables notifications off");
  return st;
}

void Enforcer::noteGeneration(bool replaced) {
  auto g = kernel_.generation();
  // Ours is the only commit since the kernel was known to hold our table
  // when the generation moved by one at most (none: an empty diff). Else
  // someone else committed in between, maybe to this table, and a diff of
  // ours does not undo that: the next check reads the table back. A
  // replace does, whatever came before. (A foreign commit between our ACK
  // and this question would be taken for ours; the window is one netlink
  // round trip, and notifications, when not lost, still report it.)
  const bool alone = g && generation_ && (*g == *generation_ || *g == *generation_ + 1);
  generation_ = g && (replaced || alone) ? std::optional<uint32_t>(*g) : std::nullopt;
}

void Enforcer::noteReadBack(const Result<std::optional<std::string>>& differs,
                            const Result<uint32_t>& before, const Result<uint32_t>& after) {
  if (committed_ && differs && !*differs && before && after && *before == *after)
    generation_ = *after;
}

Result<bool> Enforcer::untouchedSinceLastCommit() {
  if (!committed_ || !generation_) return false;
  auto g = kernel_.generation();
  if (!g) return g.takeError();
  return *g == *generation_;
}

Status Enforcer::commitOnce(const compiler::RulesetDiff& diff) {
  nft::Writer writer(kernel_);
  const auto& table = compiler_.ruleset();
  if (!committed_) {
    // First commit, or after a failure left the kernel's state unknown: swap
    // the whole table in one transaction, whatever it held.
    if (auto st = writer.replace(table); !st) return st;
    committed_ = true;
    everCommitted_ = true;
    return {};
  }
  if (diff.empty()) return {};
  auto st = writer.apply(diff, table);
  if (st) return st;
  if (st.error().sysErrno == EBUSY && !diff.deleteChains.empty()) {
    // Kernels before 6.2 notice late that a chain lost its last reference
    // (a dispatch element) in the same transaction, and refuse to delete it.
    // As kube-proxy does: empty the chains now, delete them in a second
    // transaction once nothing refers to them.
    compiler::RulesetDiff first = diff;
    first.deleteChains.clear();
    for (const auto& name : diff.deleteChains)
      first.replaceChains.push_back(compiler::Chain{name, std::nullopt, {}});
    if (auto again = writer.apply(first, table); !again) return again;
    compiler::RulesetDiff second;
    second.table = diff.table;
    second.deleteChains = diff.deleteChains;
    return writer.apply(second, table);
  }
  // A diff only applies to the table we left. If someone changed it under
  // us (a flushed chain, a deleted element), the kernel refuses the diff:
  // replace the table whole instead, still one transaction.
  if (st.error().code == ErrorCode::kKernel && writer.replace(table)) return {};
  return st;
}

Result<compiler::RulesetDiff> Enforcer::load(policy::Bundle bundle,
                                             std::vector<policy::Workload> workloads) {
  return load(std::move(bundle), std::move(workloads), compiler_.remotes());
}

Result<compiler::RulesetDiff> Enforcer::load(policy::Bundle bundle,
                                             std::vector<policy::Workload> workloads,
                                             compiler::RemoteWorkloads remotes) {
  policy::Bundle previous = compiler_.bundle();
  std::vector<policy::Workload> previousWorkloads = compiler_.workloads();
  compiler::RemoteWorkloads previousRemotes = compiler_.remotes();
  auto diff = compiler_.reset(std::move(bundle), std::move(workloads), std::move(remotes));
  if (!diff) return diff;
  if (auto st = commit(*diff); !st) {
    (void)compiler_.reset(std::move(previous), std::move(previousWorkloads),
                          std::move(previousRemotes));
    return st.takeError();
  }
  return diff;
}

Result<compiler::RulesetDiff> Enforcer::upsertRemote(const std::string& host,
                                                     const policy::Workload& workload) {
  std::optional<policy::Workload> previous;
  if (auto it = compiler_.remotes().find({host, workload.name}); it != compiler_.remotes().end())
    previous = it->second;
  auto diff = compiler_.upsertRemote(host, workload);
  if (!diff) return diff;
  if (auto st = commit(*diff); !st) {
    if (previous) {
      (void)compiler_.upsertRemote(host, *previous);
    } else {
      (void)compiler_.removeRemote(host, workload.name);
    }
    return st.takeError();
  }
  return diff;
}

Result<compiler::RulesetDiff> Enforcer::removeRemote(const std::string& host,
                                                     const std::string& name) {
  std::optional<policy::Workload> previous;
  if (auto it = compiler_.remotes().find({host, name}); it != compiler_.remotes().end())
    previous = it->second;
  auto diff = compiler_.removeRemote(host, name);
  if (!diff) return diff;
  if (auto st = commit(*diff); !st) {
    (void)compiler_.upsertRemote(host, *previous);
    return st.takeError();
  }
  return diff;
}

Result<compiler::RulesetDiff> Enforcer::applyRemotes(
    const std::vector<std::pair<std::string, policy::Workload>>& upserts,
    const std::vector<compiler::RemoteId>& deletes, std::vector<std::string>& skipped) {
  const compiler::Ruleset before = compiler_.ruleset();
  compiler::RemoteWorkloads previous = compiler_.remotes();
  for (const auto& id : deletes)
    if (auto diff = compiler_.removeRemote(id.first, id.second);
        !diff && diff.error().code != ErrorCode::kNotFound)
      skipped.push_back(id.first + "/" + id.second + ": " + diff.error().message);
  for (const auto& [host, w] : upserts) {
    auto diff = compiler_.upsertRemote(host, w);
    if (diff) continue;
    if (diff.error().code != ErrorCode::kInvalidInput) {
      (void)compiler_.reset(compiler_.bundle(), compiler_.workloads(), std::move(previous));
      return diff.takeError();
    }
    skipped.push_back(host + "/" + w.name + ": " + diff.error().message);
  }
  // The changes of the whole batch against the table the kernel holds.
  compiler::RulesetDiff diff = compiler::diffRulesets(before, compiler_.ruleset());
  if (auto st = commit(diff); !st) {
    (void)compiler_.reset(compiler_.bundle(), compiler_.workloads(), std::move(previous));
    return st.takeError();
  }
  return diff;
}

Result<compiler::RulesetDiff> Enforcer::setPolicy(policy::Bundle bundle) {
  policy::Bundle previous = compiler_.bundle();
  auto diff = compiler_.reset(std::move(bundle), compiler_.workloads());
  if (!diff) return diff;
  if (auto st = commit(*diff); !st) {
    (void)compiler_.reset(std::move(previous), compiler_.workloads());
    return st.takeError();
  }
  return diff;
}

Result<compiler::RulesetDiff> Enforcer::upsertWorkload(const policy::Workload& workload) {
  std::optional<policy::Workload> previous;
  if (const auto* w = compiler_.findWorkload(workload.name)) previous = *w;
  auto diff = compiler_.upsertWorkload(workload);
  if (!diff) return diff;
  if (auto st = commit(*diff); !st) {
    if (previous) {
      (void)compiler_.upsertWorkload(*previous);
    } else {
      (void)compiler_.removeWorkload(workload.name);
    }
    return st.takeError();
  }
  return diff;
}

Result<compiler::RulesetDiff> Enforcer::removeWorkload(const std::string& name) {
  std::optional<policy::Workload> previous;
  if (const auto* w = compiler_.findWorkload(name)) previous = *w;
  auto diff = compiler_.removeWorkload(name);
  if (!diff) return diff;
  if (auto st = commit(*diff); !st) {
    (void)compiler_.upsertWorkload(*previous);
    return st.takeError();
  }
  return diff;
}

Result<compiler::RulesetDiff> Enforcer::promoteStaged(size_t limit) {
  auto diff = compiler_.promoteStaged(limit);
  if (diff.empty()) return diff;
  // Staged and promoted interfaces are enforced alike: nothing to roll back
  // (commit() makes the next change replace the table).
  if (auto st = commit(diff); !st) return st.takeError();
  return diff;
}

Status Enforcer::replaceAll() {
  const compiler::Ruleset& ruleset = compiler_.ruleset();
  if (auto st = write(ruleset.elementCount(), /*replaces=*/true,
                      [&] { return nft::Writer(kernel_).replace(ruleset); });
      !st) {
    committed_ = false;
    generation_.reset();
    return st;
  }
  committed_ = true;
  everCommitted_ = true;
  return {};
}

Result<bool> Enforcer::repairIfMissing() {
  if (!committed_) {
    // Nothing applied yet: nothing to repair. After a failed commit the
    // kernel's state is unknown: put the whole ruleset back now rather than
    // wait for the next change.
    if (!everCommitted_) return false;
    if (Status st = replaceAll(); !st) return st.takeError();
    return true;
  }
  auto exists = kernel_.tableExists(compiler_.ruleset().table);
  if (!exists) return exists.takeError();
  if (*exists) return false;
  const compiler::Ruleset& ruleset = compiler_.ruleset();
  if (Status st = write(ruleset.elementCount(), /*replaces=*/true,
                        [&] { return nft::Writer(kernel_).replace(ruleset); });
      !st)
    return st.takeError();
  return true;
}

Result<std::optional<std::string>> Enforcer::compareWithKernel() {
  // Built from the writer's own batch for a full apply, parsed back with the
  // same code as the kernel's dump: both sides have the same shape.
  auto expected = nft::expectedContent(compiler_.ruleset());
  if (!expected) return expected.takeError();
  return nft::kernelDifferences(kernel_, *expected);
}

std::optional<Result<std::optional<std::string>>> Enforcer::driftWithoutReading() {
  using Why = std::optional<std::string>;
  if (!committed_) return everCommitted_ ? Why("the last commit's outcome is unknown") : Why();
  // Every commit, anyone's, to any table, moves the netns's ruleset
  // generation, and a table changes only by a commit: unchanged since our
  // own last commit means the kernel holds exactly that. The read-back
  // (~0.4 s at 120,000 elements) is for when someone committed.
  if (auto untouched = untouchedSinceLastCommit(); untouched && *untouched) return Why();
  return std::nullopt;
}

Result<std::optional<std::string>> Enforcer::drift(bool mustCompare) {
  using Why = std::optional<std::string>;
  if (auto decided = driftWithoutReading()) return std::move(*decided);
  const auto before = kernel_.generation();
  auto differs = compareWithKernel();
  noteReadBack(differs, before, kernel_.generation());
  if (differs || differs.error().code != ErrorCode::kUnavailable || mustCompare) return differs;
  auto exists = kernel_.tableExists(compiler_.ruleset().table);
  if (!exists) return exists.takeError();
  return *exists ? Why() : Why("table missing");
}

}  // namespace bulkhead::agent
