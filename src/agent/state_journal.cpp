#include "bulkhead/agent/state_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <random>

#include "state_io.h"

namespace bulkhead::agent {

namespace {

using state_io::ioError;

constexpr char kMagic[8] = {'b', 'h', 'j', 'r', 'n', 'l', '0', '2'};

// CRC-32C (Castagnoli), reflected, table-driven: a torn or stale record is
// told from a whole one of this epoch.
const std::array<uint32_t, 256>& crcTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t crc32c(uint32_t crc, std::string_view data) {
  const auto& t = crcTable();
  crc = ~crc;
  for (unsigned char b : data)
    crc = t[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void putLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out += char((v >> (8 * i)) & 0xff);
}

uint64_t getLe(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= uint64_t(uint8_t(in[at + size_t(i)])) << (8 * i);
  return v;
}

uint32_t recordCrc(uint64_t epoch, std::string_view payload) {
  std::string prefix;
  putLe(prefix, epoch, 8);
  putLe(prefix, payload.size(), 4);
  return crc32c(crc32c(0, prefix), payload);
}

std::string header(uint64_t epoch) {
  std::string h(kMagic, sizeof(kMagic));
  putLe(h, epoch, 8);
  return h;
}

Error corruptAt(const std::string& path, size_t off) {
  return makeError(ErrorCode::kInvalidInput,
                   "state journal " + path + " is corrupt at byte " + std::to_string(off));
}

}  // namespace

std::string StateJournal::frame(uint64_t epoch, std::string_view payload) {
  std::string out;
  putLe(out, payload.size(), 4);
  putLe(out, recordCrc(epoch, payload), 4);
  out.append(payload);
  return out;
}

Status StateJournal::open(const OnRecord& onRecord) {
  std::lock_guard lock(mu_);
  fd_.reset();
  opened_ = legacy_ = false;
  entries_ = end_ = size_ = 0;
  Fd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd && errno != ENOENT) return ioError("opening " + path_, errno);
  std::string data;
  if (fd) {
    auto read = state_io::readAll(fd.get(), path_);
    if (!read) return read.takeError();
    data = std::move(*read);
  }
  Status st;
  if (data.empty()) {
    // Missing or empty: the first write creates a preallocated file.
  } else if (data.size() < kHeaderBytes || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    st = openLegacy(data, onRecord);
  } else {
    fd_ = std::move(fd);
    st = openCurrent(data, onRecord);
  }
  if (!st) {
    fd_.reset();
    return st;
  }
  opened_ = true;
  return {};
}

Status StateJournal::openCurrent(std::string_view data, const OnRecord& onRecord) {
  epoch_ = getLe(data, sizeof(kMagic), 8);
  size_ = data.size();
  size_t off = kHeaderBytes;
  while (off + kRecordHeaderBytes <= data.size()) {
    const size_t len = size_t(getLe(data, off, 4));
    const uint32_t crc = uint32_t(getLe(data, off + 4, 4));
    if (len == 0 || off + kRecordHeaderBytes + len > data.size()) break;
    const std::string_view payload = data.substr(off + kRecordHeaderBytes, len);
    if (crc != recordCrc(epoch_, payload)) break;  // torn, or of an older epoch
    v1::StateJournalEntry e;
    if (!e.ParseFromArray(payload.data(), int(len))) return corruptAt(path_, off);
    if (onRecord) onRecord(e);
    ++entries_;
    off += kRecordHeaderBytes + len;
  }
  end_ = off;
  return cutTail(data);
}

// The format before checksums: u32 LE length, payload, appended. Read as
// then (a torn last record is dropped); reset() replaces the file.
Status StateJournal::openLegacy(std::string_view data, const OnRecord& onRecord) {
  size_t off = 0;
  while (off + 4 <= data.size()) {
    const size_t len = size_t(getLe(data, off, 4));
    if (off + 4 + len > data.size()) break;
    v1::StateJournalEntry e;
    if (!e.ParseFromArray(data.data() + off + 4, int(len))) return corruptAt(path_, off);
    if (onRecord) onRecord(e);
    ++entries_;
    off += 4 + len;
  }
  legacy_ = true;
  return {};
}

// Zeroes everything after the last record that is not zero already: a torn
// record, or whole records that reached the disk unacknowledged behind it
// (pages are written back in any order). Left there, a later record of the
// same length would make them whole again.
Status StateJournal::cutTail(std::string_view data) {
  size_t last = data.size();
  while (last > end_ && data[last - 1] == '\0')
    --last;
  if (last == end_) return {};
  if (auto st = state_io::writeZeros(fd_.get(), off_t(end_), last - end_, path_); !st) return st;
  if (::fdatasync(fd_.get()) != 0) return ioError("fdatasync " + path_, errno);
  return {};
}

Result<StateJournal::Ticket> StateJournal::write(std::string_view payload) {
  std::lock_guard lock(mu_);
  if (!opened_ || legacy_)
    return makeError(ErrorCode::kInternal, "state journal " + path_ + " written before it is open");
  if (broken_)
    return makeError(ErrorCode::kIo, "state journal " + path_ +
                                         " is unusable after a failed sync until the next "
                                         "snapshot: " +
                                         failure_.describe());
  if (payload.empty() || payload.size() > state_io::kMaxStateBytes)
    return makeError(ErrorCode::kInternal,
                     "state journal record of " + std::to_string(payload.size()) + " bytes");
  if (!fd_)
    if (auto st = createFresh(); !st) return st.takeError();
  const std::string record = frame(epoch_, payload);
  if (end_ + record.size() > size_)
    if (auto st = grow(end_ + record.size()); !st) return st.takeError();
  if (auto st = state_io::writeAll(fd_.get(), record, off_t(end_), path_); !st) {
    // Part of the record may be in the file: it fails its checksum and
    // ends the journal, and the next record overwrites it.
    return st.takeError();
  }
  end_ += record.size();
  ++entries_;
  return ++written_;
}

// Called with mu_ held. Zeros are written, not only allocated, so that the
// records written there later change no extent (see the header).
Status StateJournal::grow(size_t needed) {
  size_t next = std::max<size_t>(size_ * 2, kInitialBytes);
  while (next < needed)
    next *= 2;
  if (auto st = state_io::writeZeros(fd_.get(), off_t(size_), next - size_, path_); !st) return st;
  if (::fsync(fd_.get()) != 0) return ioError("fsync " + path_, errno);
  size_ = next;
  return {};
}

Status StateJournal::sync(Ticket ticket) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (durable_ >= ticket) return {};
    if (broken_) return failure_;
    if (!syncing_) break;
    synced_.wait(lock);
  }
  // Leader: one fdatasync for every record written so far.
  syncing_ = true;
  const Ticket target = written_;
  const int fd = fd_.get();
  lock.unlock();
  const int rc = ::fdatasync(fd);
  const int err = errno;
  lock.lock();
  syncing_ = false;
  ++stats_.syncs;
  if (rc == 0) {
    stats_.records += target - std::min(target, durable_);
    durable_ = std::max(durable_, target);
  } else {
    // After a failed fdatasync the kernel may have dropped the dirty pages
    // and a later one can succeed without them: nothing in this journal is
    // trusted until a snapshot replaces it.
    broken_ = true;
    failure_ = ioError("fdatasync " + path_, err);
  }
  synced_.notify_all();
  if (durable_ >= ticket) return {};
  return failure_;
}

Status StateJournal::reset() {
  std::unique_lock lock(mu_);
  synced_.wait(lock, [&] { return !syncing_; });
  // The snapshot is durable and holds every record written so far.
  durable_ = written_;
  synced_.notify_all();
  Status st = (fd_ && !legacy_ && !broken_) ? newEpoch() : createFresh();
  if (!st) {
    broken_ = true;
    failure_ = st.error();
    return st;
  }
  end_ = kHeaderBytes;
  entries_ = 0;
  opened_ = true;
  legacy_ = broken_ = false;
  return {};
}

Status StateJournal::newEpoch() {
  const std::string h = header(epoch_ + 1);
  if (auto st = state_io::writeAll(fd_.get(), h, 0, path_); !st) return st;
  if (::fdatasync(fd_.get()) != 0) return ioError("fdatasync " + path_, errno);
  ++epoch_;
  return {};
}

// A new preallocated journal, renamed over whatever was there. Called with
// mu_ held and no sync running.
Status StateJournal::createFresh() {
  if (auto st = state_io::mkdirs(dir_); !st) return st;
  const std::string tmp = path_ + ".tmp";
  Fd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return ioError("creating " + tmp, errno);
  // A random first epoch: records of an older file never check out here.
  const uint64_t epoch = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
  Status st = state_io::writeAll(fd.get(), header(epoch), 0, tmp);
  if (st)
    st = state_io::writeZeros(fd.get(), off_t(kHeaderBytes), kInitialBytes - kHeaderBytes, tmp);
  if (st && ::fsync(fd.get()) != 0) st = ioError("fsync " + tmp, errno);
  if (st && ::rename(tmp.c_str(), path_.c_str()) != 0)
    st = ioError("renaming " + tmp + " to " + path_, errno);
  if (st) st = state_io::syncDirectory(dir_);
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  fd_ = std::move(fd);
  epoch_ = epoch;
  size_ = kInitialBytes;
  end_ = kHeaderBytes;
  entries_ = 0;
  legacy_ = false;
  return {};
}

bool StateJournal::broken() const {
  std::lock_guard lock(mu_);
  return broken_;
}

StateJournal::SyncStats StateJournal::syncStats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace bulkhead::agent
