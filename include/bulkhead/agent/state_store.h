// The agent's state on disk (--state-dir): the last applied bundle and the
// API workloads, so a restarted agent puts the same table back before it
// serves. A snapshot (state.pb) is written atomically: a temporary file is
// written and fsynced, renamed over the old one, and the directory fsynced,
// so a crash leaves the old snapshot or the new one, never a torn file.
// Workload changes between snapshots go to a journal (journal.pb, see
// state_journal.h): a change is durable after one fdatasync of data blocks,
// shared by the changes made meanwhile. The journal alone (no snapshot yet:
// workloads registered before any push) is a valid state. A torn tail (a
// crash mid-write) is cut off, and the cut made durable, before the next
// record is written; a whole record that does not parse is an error.
#pragma once

#include <optional>
#include <string>

#include "bulkhead/agent/state_journal.h"
#include "bulkhead/common/result.h"
#include "bulkhead/v1/state.pb.h"

namespace bulkhead::agent {

class StateStore {
 public:
  using Ticket = StateJournal::Ticket;

  explicit StateStore(std::string dir)
      : dir_(std::move(dir)), journal_(dir_, dir_ + "/journal.pb") {}

  // The saved state (snapshot, then journal replayed over it); nullopt when
  // there is none yet. Cuts a torn journal tail off; a journal in the older
  // format is folded into a new snapshot. A file that exists but cannot be
  // read or parsed is an error (kIo / kInvalidInput): the caller must not
  // guess.
  Result<std::optional<v1::AgentState>> load();
  // A new snapshot; empties the journal (every ticket so far is durable).
  Status save(const v1::AgentState& state);
  // Writes a change to the journal (loading it first if load() was not
  // called); durable once sync(ticket) returns. write(), load() and save()
  // are called by one thread at a time (the agent holds its lock); sync()
  // from any thread, without that lock, so that concurrent changes share
  // one fdatasync.
  Result<Ticket> write(const v1::StateJournalEntry& entry);
  Status sync(Ticket ticket) { return journal_.sync(ticket); }
  Status append(const v1::StateJournalEntry& entry);  // write, then sync
  size_t journalEntries() const { return journal_.entries(); }
  // A journal sync failed: the next change must write a snapshot instead.
  bool needsSnapshot() const { return journal_.broken(); }
  const StateJournal& journal() const { return journal_; }

  std::string path() const { return dir_ + "/state.pb"; }
  std::string journalPath() const { return dir_ + "/journal.pb"; }

 private:
  const std::string dir_;
  StateJournal journal_;
};

}  // namespace bulkhead::agent
