#include "bulkhead/common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "bulkhead/common/fd.h"

namespace bulkhead::common {

namespace {

Error tooLarge(uint64_t size, size_t maxBytes) {
  return makeError(ErrorCode::kTooLarge, "file too large: " + std::to_string(size) +
                                             " bytes (the limit is " + std::to_string(maxBytes) +
                                             ")");
}

}  // namespace

Result<std::string> readFileBounded(const std::string& path, size_t maxBytes) {
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT) return makeError(ErrorCode::kNotFound, "no such file", err);
    return makeError(ErrorCode::kIo, "cannot open file", err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) > maxBytes)
    return tooLarge(uint64_t(st.st_size), maxBytes);
  std::string out;
  if (S_ISREG(st.st_mode)) out.reserve(size_t(st.st_size));
  char buf[1 << 16];
  while (out.size() <= maxBytes) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return makeError(ErrorCode::kIo, "cannot read file", errno);
    if (n == 0) return out;
    out.append(buf, size_t(n));
  }
  return tooLarge(out.size(), maxBytes);
}

}  // namespace bulkhead::common
