#include "bulkhead/common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

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

namespace {

Error ioError(const std::string& what, int err) {
  return makeError(ErrorCode::kIo, what, err);
}

}  // namespace

Status writeAll(int fd, std::string_view data, off_t offset, const std::string& path) {
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

Status mkdirs(const std::string& dir) {
  for (size_t pos = 0; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    const std::string partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return ioError("creating " + partial, errno);
  }
  return {};
}

Status syncDirectory(const std::string& dir) {
  const Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d) return ioError("opening " + dir, errno);
  if (::fsync(d.get()) != 0) return ioError("fsync " + dir, errno);
  return {};
}

Status replaceFile(const std::string& dir, const std::string& path, std::string_view data) {
  if (auto st = mkdirs(dir); !st) return st;
  const std::string tmp = path + ".tmp";
  {
    const Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return ioError("creating " + tmp, errno);
    Status st = writeAll(fd.get(), data, -1, tmp);
    if (st && ::fsync(fd.get()) != 0) st = ioError("fsync " + tmp, errno);
    if (!st) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ioError("renaming " + tmp + " to " + path, err);
  }
  return syncDirectory(dir);
}

}  // namespace bulkhead::common
