#include "bulkhead/agent/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <string>

namespace bulkhead::agent {

namespace {

constexpr size_t kMaxStateBytes = 1u << 30;  // far above any bundle the agent accepts

Error ioError(const std::string& what, int err) {
  return makeError(ErrorCode::kIo, what, err);
}

Status writeAll(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ioError("writing " + path, errno);
    off += size_t(n);
  }
  return {};
}

Status mkdirs(const std::string& dir) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return ioError("creating " + partial, errno);
  }
  return {};
}

Result<std::string> readFile(const std::string& p, bool* missing) {
  *missing = false;
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      *missing = true;
      return std::string();
    }
    return ioError("cannot read " + p, errno);
  }
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ioError("cannot read " + p, err);
    }
    if (n == 0) break;
    data.append(buf, size_t(n));
    if (data.size() > kMaxStateBytes) {
      ::close(fd);
      return makeError(ErrorCode::kInvalidInput, p + " is larger than 1 GiB");
    }
  }
  ::close(fd);
  return data;
}

void replay(v1::AgentState& state, const v1::StateJournalEntry& e) {
  auto* ws = state.mutable_workloads();
  auto named = [&](const std::string& name) {
    return std::find_if(ws->begin(), ws->end(),
                        [&](const v1::Workload& w) { return w.name() == name; });
  };
  if (e.has_upsert()) {
    auto it = named(e.upsert().name());
    if (it != ws->end()) {
      *it = e.upsert();
    } else {
      *ws->Add() = e.upsert();
    }
  }
  if (!e.deleted().empty()) {
    auto it = named(e.deleted());
    if (it != ws->end()) ws->erase(it);
  }
  if (e.quarantined_set()) {
    *state.mutable_quarantined() = e.quarantined();
    *state.mutable_quarantines() = e.quarantines();
  }
}

}  // namespace

// Walks the journal's records: `onRecord` for each whole one; returns the
// offset just past the last whole record (a shorter file than that length
// prefix announces is a torn last record). A whole record that does not
// parse is corruption, not a crash, and an error.
Result<size_t> StateStore::scanJournal(
    const std::string& j, const std::function<void(v1::StateJournalEntry&)>& onRecord) {
  size_t off = 0;
  while (off + 4 <= j.size()) {
    const uint32_t len = uint32_t(uint8_t(j[off])) | uint32_t(uint8_t(j[off + 1])) << 8 |
                         uint32_t(uint8_t(j[off + 2])) << 16 | uint32_t(uint8_t(j[off + 3])) << 24;
    if (off + 4 + uint64_t(len) > j.size()) break;  // torn last record: the change never completed
    v1::StateJournalEntry e;
    if (!e.ParseFromArray(j.data() + off + 4, int(len)))
      return makeError(ErrorCode::kInvalidInput, "state journal " + journalPath() +
                                                     " is corrupt at byte " + std::to_string(off));
    if (onRecord) onRecord(e);
    off += 4 + len;
  }
  return off;
}

// A torn tail is cut off (and the cut made durable) before anything is
// appended: a record appended after the garbage would be read as part of
// it, and every later change lost on the next load.
Status StateStore::cutTornTail(size_t whole, size_t size) {
  tailChecked_ = true;
  if (whole == size) return {};
  const std::string p = journalPath();
  const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ioError("opening " + p, errno);
  Status st;
  if (::ftruncate(fd, off_t(whole)) != 0) {
    st = ioError("truncating the torn tail of " + p, errno);
  } else if (::fsync(fd) != 0) {
    st = ioError("fsync " + p, errno);
  }
  ::close(fd);
  return st;
}

Result<std::optional<v1::AgentState>> StateStore::load() {
  bool missing = false;
  auto data = readFile(path(), &missing);
  if (!data) return data.takeError();
  const bool noSnapshot = missing;
  v1::AgentState state;
  state.set_format(1);
  if (!noSnapshot && (!state.ParseFromString(*data) || state.format() != 1))
    return makeError(ErrorCode::kInvalidInput,
                     "state file " + path() + " is corrupt (not a bulkhead state, format 1)");
  // Without a snapshot the journal alone is the state: workloads registered
  // before any push (or any snapshot) must survive a restart too.
  auto journal = readFile(journalPath(), &missing);
  if (!journal) return journal.takeError();
  journalEntries_ = 0;
  auto whole = scanJournal(*journal, [&](v1::StateJournalEntry& e) {
    replay(state, e);
    ++journalEntries_;
  });
  if (!whole) return whole.takeError();
  if (!missing)
    if (auto st = cutTornTail(*whole, journal->size()); !st) return st.takeError();
  if (noSnapshot && journalEntries_ == 0) return std::optional<v1::AgentState>{};
  return std::optional<v1::AgentState>(std::move(state));
}

Status StateStore::append(const v1::StateJournalEntry& entry) {
  if (auto st = mkdirs(dir_); !st) return st;
  std::string record;
  if (!entry.SerializeToString(&record))
    return makeError(ErrorCode::kInternal, "cannot serialize a state journal entry");
  const uint32_t len = uint32_t(record.size());
  const char prefix[4] = {char(len & 0xff), char((len >> 8) & 0xff), char((len >> 16) & 0xff),
                          char((len >> 24) & 0xff)};
  record.insert(0, prefix, 4);
  const std::string p = journalPath();
  if (!tailChecked_) {
    // Appending without a load first: check the tail all the same.
    bool missing = false;
    auto journal = readFile(p, &missing);
    if (!journal) return journal.takeError();
    auto whole = scanJournal(*journal, nullptr);
    if (!whole) return whole.takeError();
    if (!missing)
      if (auto st = cutTornTail(*whole, journal->size()); !st) return st;
    tailChecked_ = true;
  }
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return ioError("opening " + p, errno);
  Status st = writeAll(fd, record, p);
  if (st && ::fdatasync(fd) != 0) st = ioError("fdatasync " + p, errno);
  ::close(fd);
  if (st) {
    ++journalEntries_;
  } else {
    tailChecked_ = false;  // a failed write may have left part of the record
  }
  return st;
}

Status StateStore::save(const v1::AgentState& state) {
  if (auto st = mkdirs(dir_); !st) return st;
  std::string data;
  if (!state.SerializeToString(&data))
    return makeError(ErrorCode::kInternal, "cannot serialize the agent state");
  const std::string p = path();
  const std::string tmp = p + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ioError("creating " + tmp, errno);
  Status st = writeAll(fd, data, tmp);
  if (st && ::fsync(fd) != 0) st = ioError("fsync " + tmp, errno);
  ::close(fd);
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), p.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ioError("renaming " + tmp + " to " + p, err);
  }
  // The rename is durable only once the directory entry is on disk.
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ioError("opening " + dir_, errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) return ioError("fsync " + dir_, err);
  // The snapshot holds every journalled change now; a crash before this
  // truncation only replays changes the snapshot already has.
  const int jfd = ::open(journalPath().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (jfd >= 0) {
    ::fdatasync(jfd);
    ::close(jfd);
  }
  journalEntries_ = 0;
  tailChecked_ = true;
  return {};
}

}  // namespace bulkhead::agent
