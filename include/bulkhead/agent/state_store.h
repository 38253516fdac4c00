// The agent's state on disk (--state-dir): the last applied bundle and the
// API workloads, so a restarted agent puts the same table back before it
// serves. A snapshot (state.pb) is written atomically: a temporary file is
// written and fsynced, renamed over the old one, and the directory fsynced,
// so a crash leaves the old snapshot or the new one, never a torn file.
// Workload changes between snapshots go to a journal (journal.pb) of
// length-prefixed records, each fdatasynced. The journal alone (no snapshot
// yet: workloads registered before any push) is a valid state. A torn last
// record (a crash mid-append) is cut off, and the cut fsynced, before the
// next record is appended; a whole record that does not parse is an error.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "bulkhead/common/result.h"
#include "bulkhead/v1/state.pb.h"

namespace bulkhead::agent {

class StateStore {
 public:
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}

  // The saved state (snapshot, then journal replayed over it); nullopt when
  // there is none yet. Cuts a torn journal tail off. A file that exists but
  // cannot be read or parsed is an error (kIo / kInvalidInput): the caller
  // must not guess.
  Result<std::optional<v1::AgentState>> load();
  // A new snapshot; empties the journal.
  Status save(const v1::AgentState& state);
  Status append(const v1::StateJournalEntry& entry);
  size_t journalEntries() const { return journalEntries_; }

  std::string path() const { return dir_ + "/state.pb"; }
  std::string journalPath() const { return dir_ + "/journal.pb"; }

 private:
  Result<size_t> scanJournal(const std::string& journal,
                             const std::function<void(v1::StateJournalEntry&)>& onRecord);
  Status cutTornTail(size_t whole, size_t size);

  std::string dir_;
  size_t journalEntries_ = 0;
  bool tailChecked_ = false;  // the journal ends with a whole record
};

}  // namespace bulkhead::agent
