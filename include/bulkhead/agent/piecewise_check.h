// The drift check's read-back through a kernel connection of its own, one
// piece at a time: the table's declarations (chains with their rules, sets
// without elements), then the elements of each set. Each piece is compared
// with what the agent had applied when the piece was read, and the core's
// lock is let go while the piece is read and while what it should hold is
// built, so requests are served meanwhile. A commit of ours that changes
// the piece being read (Enforcer::changedSince: a registration changes the
// elements of a few sets) spoils that piece alone, which is read again;
// the kSpoiledReads-th time, under the lock: a request then waits for one
// piece's read, never for the whole table's (~0.5 s at 131,000 elements
// in 3,000 sets) or for others' commits to pause. A dump that a commit
// interrupted is taken as read, and a piece that differs is read again
// before the difference counts (nft/kernel.h: readDeclarations).
//
// Pieces read at different moments show no single state of the table, and
// need not: a foreign change shows in every piece read after it, and one
// made after its piece was read is the next check's to find (or the
// monitor's to hear). Whether the whole read saw one state is the caller's
// to tell by the ruleset generation around it (Enforcer::noteReadBack).
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/agent/enforcer.h"
#include "bulkhead/common/result.h"
#include "bulkhead/nft/kernel.h"

namespace bulkhead::agent {

class PiecewiseCheck {
 public:
  // `lock` holds the lock that guards `enforcer` (the core's), on entry
  // and on return; `reader` is safe to use without it.
  PiecewiseCheck(Enforcer& enforcer, nft::NftKernel& reader, std::unique_lock<std::mutex>& lock)
      : enforcer_(enforcer), reader_(reader), lock_(lock) {}

  // nullopt when every piece held what was applied at its read; else what
  // differed, for the first piece that did ("sets changed: a4_web (1
  // elements missing, 0 foreign)"). kUnavailable when `reader` cannot read
  // a table in pieces.
  Result<std::optional<std::string>> run();

  static constexpr int kSpoiledReads = 3;

 private:
  using Why = std::optional<std::string>;
  Result<Why> declarations();
  Result<Why> elements(const std::string& set);
  // Takes `snapshot()` of what was applied (nullopt: nothing left to
  // compare) under the lock, then runs `compare` on it without the lock;
  // again when a commit of ours changed the piece meanwhile (the elements
  // of `*set`; the declarations when nullptr), and, when it differs, until
  // kTableReads reads, kTableReadPause apart, all differ.
  template <typename Snapshot, typename Compare>
  Result<Why> comparePiece(const std::string* set, const Snapshot& snapshot,
                           const Compare& compare);

  Enforcer& enforcer_;
  nft::NftKernel& reader_;
  std::unique_lock<std::mutex>& lock_;
  std::vector<std::string> sets_;  // whose elements to compare: the static ones
};

}  // namespace bulkhead::agent
