#include "bulkhead/agent/piecewise_check.h"

#include <cerrno>
#include <thread>
#include <utility>

#include "bulkhead/nft/table_content.h"

namespace bulkhead::agent {

template <typename Snapshot, typename Compare>
Result<PiecewiseCheck::Why> PiecewiseCheck::unspoiled(const Snapshot& snapshot,
                                                      const Compare& compare) {
  for (int read = 1;; ++read) {
    const uint64_t commits = enforcer_.commits();
    auto applied = snapshot();
    if (!applied) return Why();
    const bool locked = read >= kSpoiledReads;
    if (!locked) lock_.unlock();
    auto outcome = compare(*applied);
    if (!locked) lock_.lock();
    // Our commits are made under the lock: none came in between.
    if (enforcer_.commits() == commits) return outcome;
  }
}

Result<PiecewiseCheck::Why> PiecewiseCheck::declarations() {
  // A copy of the whole ruleset (4 ms at 120,000 elements); the elements
  // are dropped after the lock is let go.
  auto snapshot = [&] { return std::optional<compiler::Ruleset>(enforcer_.ruleset()); };
  return unspoiled(snapshot, [&](compiler::Ruleset& applied) -> Result<Why> {
    for (compiler::Set& s : applied.sets) s.elements = {};
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
  return unspoiled(snapshot, [&](const compiler::Ruleset& applied) -> Result<Why> {
    auto expected = nft::expectedContent(applied);
    if (!expected) return expected.takeError();
    const std::vector<std::string>& want = expected->sets.at(name).elements;
    // A difference is read again before it counts: the dump of a hash set
    // the kernel is still growing can miss elements (nft/kernel.cpp).
    for (int read = 1;; ++read) {
      auto got = reader_.readElements(applied.table, name);
      if (!got && got.error().sysErrno == ENOENT) return Why("sets missing: " + name);
      if (!got) return got.takeError();
      const std::string differs = nft::elementDifferences(want, *got);
      if (differs.empty()) return Why();
      if (read == nft::kTableReads) return Why("sets changed: " + name + " (" + differs + ")");
      std::this_thread::sleep_for(nft::kTableReadPause);
    }
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
