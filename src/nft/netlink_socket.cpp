#include "netlink_socket.h"

#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace bulkhead::nft {

Result<MnlSocketPtr> openNetfilterSocket(int rcvBufBytes) {
  auto fail = [](const std::string& what, int err) {
    return makeError(ErrorCode::kUnavailable, what + ": " + std::strerror(err), err);
  };
  MnlSocketPtr nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl) return fail("cannot open a netfilter netlink socket", errno);
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return fail("cannot bind the netfilter netlink socket", errno);
  if (rcvBufBytes > 0) {
    // FORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; without it,
    // take what rmem_max allows.
    const int fd = mnl_socket_get_fd(nl.get());
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvBufBytes, sizeof rcvBufBytes) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvBufBytes, sizeof rcvBufBytes);
  }
  return nl;
}

}  // namespace bulkhead::nft
