#include "bulkhead/agent/piecewise_check.h"

#include <cerrno>
#include <thread>
#include <utility>

#include "bulkhead/nft/table_content.h"

namespace bulkhead::agent {

template <typename Snapshot, typename Compare>
Result<PiecewiseCheck::Why> PiecewiseCheck::comparePiece(const std::string* set,
                                                         const Snapshot& snapshot,
                                                         const Compare& compare) {
  for (int spoiled = 0, differed = 0;;) {
    const uint64_t commits = enforcer_.commits();
    auto applied = snapshot();
    if (!applied) return Why();
    const bool locked = spoiled + 1 >= kSpoiledReads;
    if (!locked) lock_.unlock();
    auto outcome = compare(*applied);
    if (!locked) lock_.lock();
    // Our commits are made under the lock: did one that changed this piece
    // come in between?
    if (enforcer_.changedSince(commits, set)) {
      ++spoiled;
      continue;
    }
    // A difference is read again before it counts: a dump that a commit
    // interrupted may have skipped or repeated what the commit moved (any
    // commit, to any table: the chains of every table come in one dump),
    // and the dump of a hash set the kernel is still growing can miss
    // elements (nft/kernel.cpp).
    if (!outcome || !*outcome || ++differed == nft::kTableReads) return outcome;
    lock_.unlock();
    std::this_thread::sleep_for(nft::kTableReadPause);
    lock_.lock();
  }
}

Result<PiecewiseCheck::Why> PiecewiseCheck::declarations() {
  // Copied without the elements: 1 ms under the lock at 131,000 elements.
  auto snapshot = [&] { return std::optional(enforcer_.ruleset().declarations()); };
  return comparePiece(nullptr, snapshot, [&](const compiler::Ruleset& applied) -> Result<Why> {
    auto expected = nft::expectedContent(applied);
    if (!expected) return expected.takeError();
    auto actual = reader_.readDeclarations(applied.table);
    if (!actual) return actual.takeError();
    sets_.clear();
    for (const auto& [name, set] : expected->sets)
      if (!set.dynamic) sets_.push_back(name);
    return expected->differences(*actual);
  });
}

Result<PiecewiseCheck::Why> PiecewiseCheck::elements(const std::string& name) {
  auto snapshot = [&]() -> std::optional<compiler::Ruleset> {
    // Gone: a commit of ours removed it since the declarations were read.
    const compiler::Set* set = enforcer_.ruleset().findSet(name);
    if (set == nullptr) return std::nullopt;
    compiler::Ruleset one;
    one.table = enforcer_.ruleset().table;
    one.sets.push_back(*set);
    return one;
  };
  return comparePiece(&name, snapshot, [&](const compiler::Ruleset& applied) -> Result<Why> {
    auto expected = nft::expectedContent(applied);
    if (!expected) return expected.takeError();
    auto got = reader_.readElements(applied.table, name);
    if (!got && got.error().sysErrno != ENOENT) return got.takeError();
    // Compared as tables holding this one set (ENOENT: none), so that a
    // difference reads as the whole read's would. Its declaration was
    // compared with the declarations.
    nft::TableContent actual(applied.table);
    actual.exists = true;
    if (got) {
      const nft::SetContent& want = expected->sets.at(name);
      actual.sets[name] = nft::SetContent{want.declaration, want.dynamic, std::move(*got)};
    }
    return expected->differences(actual);
  });
}

Result<PiecewiseCheck::Why> PiecewiseCheck::run() {
  auto differs = declarations();
  if (!differs || *differs) return differs;
  const std::vector<std::string> sets = std::move(sets_);
  for (const std::string& set : sets) {
    differs = elements(set);
    if (!differs || *differs) return differs;
  }
  return Why();
}

}  // namespace bulkhead::agent
