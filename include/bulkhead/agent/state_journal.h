// The agent's journal of workload changes (--state-dir/journal.pb), written
// so that a durable record costs one data flush and nothing more, and so
// that concurrent changes share that flush.
//
// On disk: a 16-byte header (magic "bhjrnl02", then the epoch, u64 LE) and
// records: u32 LE payload length, u32 LE CRC-32C over (epoch, length,
// payload), payload. The file is preallocated by writing zeros (not by
// fallocate alone: an unwritten extent turns written on the first write, a
// metadata change), so appending a record changes neither the file's size
// nor its extents and fdatasync writes the data blocks only. It grows by
// doubling when a record does not fit.
//
// The journal ends at the first record that is empty, runs past the file,
// or fails its checksum: a torn write of a crash. Whatever follows is cut
// (zeroed, and the zeros made durable) before the next record is written,
// so an unacknowledged record that happened to reach the disk can never be
// read back behind a newer one. A record whose checksum holds but whose
// payload does not parse is corruption, not a crash: an error.
//
// Emptying it (after a snapshot) writes a new epoch into the header: every
// old record then fails its checksum. One sector's write, so a crash leaves
// the old journal (whose replay over the snapshot changes nothing) or the
// empty one.
//
// Group commit: write() puts a record in the page cache and returns its
// ticket; sync(ticket) returns once that record is on disk. One caller at a
// time runs fdatasync, covering every record written before it started;
// the others wait for it, or for the next one. write(), open(), reset() are
// called by one owner at a time; sync() from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "bulkhead/common/fd.h"
#include "bulkhead/common/result.h"
#include "bulkhead/v1/state.pb.h"

namespace bulkhead::agent {

class StateJournal {
 public:
  using Ticket = uint64_t;  // 0: nothing to wait for
  using OnRecord = std::function<void(v1::StateJournalEntry&)>;

  static constexpr size_t kHeaderBytes = 16;
  static constexpr size_t kRecordHeaderBytes = 8;
  static constexpr size_t kInitialBytes = 1u << 20;

  // `path` lies in `dir` (created, with its parents, on the first write).
  StateJournal(std::string dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}

  // Reads the journal, `onRecord` for each record in order, and cuts a torn
  // tail. A missing or empty file is an empty journal (created on the first
  // write). A file without the header is the older format (records without
  // checksums, appended): read, then legacy() until reset() replaces it.
  Status open(const OnRecord& onRecord);
  bool opened() const { return opened_; }
  bool legacy() const { return legacy_; }

  // Appends a record after the last one; durable once sync(ticket) returns.
  Result<Ticket> write(std::string_view payload);
  Status sync(Ticket ticket);
  // Empties the journal (the caller's snapshot holds every record): a new
  // epoch, or a new file when there is none yet, it is in the older format,
  // or a sync failed. Every ticket written so far counts as durable.
  Status reset();

  size_t entries() const { return entries_; }
  size_t bytes() const { return end_; }  // end of the last record
  uint64_t epoch() const { return epoch_; }
  // A sync failed: what reached the disk is unknown; only a snapshot (and
  // reset()) makes the state durable again. write() refuses until then.
  bool broken() const;
  struct SyncStats {
    uint64_t syncs = 0;    // fdatasync calls
    uint64_t records = 0;  // records they made durable
  };
  SyncStats syncStats() const;

  // One record as it is laid out on disk (tests write torn and corrupt ones).
  static std::string frame(uint64_t epoch, std::string_view payload);

 private:
  Status openCurrent(std::string_view data, const OnRecord& onRecord);
  Status openLegacy(std::string_view data, const OnRecord& onRecord);
  Status cutTail(std::string_view data);
  Status grow(size_t needed);
  Status createFresh();
  Status newEpoch();

  const std::string dir_;
  const std::string path_;
  Fd fd_;
  uint64_t epoch_ = 0;
  size_t size_ = 0;  // the file's size (preallocated)
  size_t end_ = 0;   // offset past the last record
  size_t entries_ = 0;
  bool opened_ = false;
  bool legacy_ = false;

  mutable std::mutex mu_;  // guards what sync() shares with the writer
  std::condition_variable synced_;
  Ticket written_ = 0;
  Ticket durable_ = 0;
  bool syncing_ = false;
  bool broken_ = false;
  Error failure_;
  SyncStats stats_;
};

}  // namespace bulkhead::agent
