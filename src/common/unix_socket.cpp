#include "bulkhead/common/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include "bulkhead/common/fd.h"

namespace bulkhead::common {

Status replaceStaleSocket(const std::string& path, std::string_view server) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return makeError(ErrorCode::kIo, "--listen: " + path, errno);
  }
  if (!S_ISSOCK(st.st_mode))
    return makeError(ErrorCode::kInvalidInput, "--listen: " + path + " exists and is not a socket");
  const Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return makeError(ErrorCode::kIo, "socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return makeError(ErrorCode::kInvalidInput, "--listen: socket path too long: " + path);
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  const int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  if (rc == 0)
    return makeError(ErrorCode::kUnavailable, "--listen: another process is serving on " + path +
                                                  " (another " + std::string(server) + "?)");
  if (err != ECONNREFUSED) return makeError(ErrorCode::kIo, "--listen: probing " + path, err);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return makeError(ErrorCode::kIo, "--listen: removing stale " + path, errno);
  return {};
}

}  // namespace bulkhead::common
