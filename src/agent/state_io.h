// File helpers of the state store and its journal (internal to src/agent).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>

#include "bulkhead/common/fd.h"
#include "bulkhead/common/result.h"

namespace bulkhead::agent::state_io {

constexpr size_t kMaxStateBytes = 1u << 30;  // far above any bundle the agent accepts

inline Error ioError(const std::string& what, int err) {
  return makeError(ErrorCode::kIo, what, err);
}

// Writes all of `data` at `offset` (pwrite), or at the file position when
// `offset` is negative.
inline Status writeAll(int fd, std::string_view data, off_t offset, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        offset < 0 ? ::write(fd, data.data() + done, data.size() - done)
                   : ::pwrite(fd, data.data() + done, data.size() - done, offset + off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ioError("writing " + path, errno);
    done += size_t(n);
  }
  return {};
}

// Writes `length` zero bytes from `offset`.
inline Status writeZeros(int fd, off_t offset, size_t length, const std::string& path) {
  static const std::string kZeros(64 * 1024, '\0');
  while (length > 0) {
    const size_t n = std::min(length, kZeros.size());
    if (auto st = writeAll(fd, std::string_view(kZeros.data(), n), offset, path); !st) return st;
    offset += off_t(n);
    length -= n;
  }
  return {};
}

inline Status mkdirs(const std::string& dir) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    const std::string partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return ioError("creating " + partial, errno);
  }
  return {};
}

// A rename or a new file is durable only once its directory entry is.
inline Status syncDirectory(const std::string& dir) {
  const Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d) return ioError("opening " + dir, errno);
  if (::fsync(d.get()) != 0) return ioError("fsync " + dir, errno);
  return {};
}

// The whole file behind `fd`, at most kMaxStateBytes.
inline Result<std::string> readAll(int fd, const std::string& path) {
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ioError("cannot read " + path, errno);
    if (n == 0) return data;
    data.append(buf, size_t(n));
    if (data.size() > kMaxStateBytes)
      return makeError(ErrorCode::kInvalidInput, path + " is larger than 1 GiB");
  }
}

}  // namespace bulkhead::agent::state_io
