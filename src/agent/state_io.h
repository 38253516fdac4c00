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
#include "bulkhead/common/file.h"
#include "bulkhead/common/result.h"

namespace bulkhead::agent::state_io {

constexpr size_t kMaxStateBytes = 1u << 30;  // far above any bundle the agent accepts

inline Error ioError(const std::string& what, int err) {
  return makeError(ErrorCode::kIo, what, err);
}

using common::mkdirs;
using common::syncDirectory;
using common::writeAll;

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
