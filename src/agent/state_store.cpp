#include "bulkhead/agent/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

Result<std::optional<v1::AgentState>> StateStore::load() const {
  const std::string p = path();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<v1::AgentState>{};
    return ioError("cannot read state file " + p, errno);
  }
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ioError("cannot read state file " + p, err);
    }
    if (n == 0) break;
    data.append(buf, size_t(n));
    if (data.size() > kMaxStateBytes) {
      ::close(fd);
      return makeError(ErrorCode::kInvalidInput, "state file " + p + " is larger than 1 GiB");
    }
  }
  ::close(fd);
  v1::AgentState state;
  if (!state.ParseFromString(data) || state.format() != 1)
    return makeError(ErrorCode::kInvalidInput,
                     "state file " + p + " is corrupt (not a bulkhead state, format 1)");
  return std::optional<v1::AgentState>(std::move(state));
}

Status StateStore::save(const v1::AgentState& state) const {
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
  return {};
}

}  // namespace bulkhead::agent
