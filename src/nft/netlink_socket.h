// Internal to the nft layer: the netfilter netlink socket that the writer,
// the table monitor and the counter reader each open. Not installed.
#pragma once

#include <libmnl/libmnl.h>

#include <memory>

#include "bulkhead/common/result.h"

namespace bulkhead::nft {

struct MnlSocketClose {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocketPtr = std::unique_ptr<mnl_socket, MnlSocketClose>;

// NETLINK_NETFILTER in the calling thread's network namespace, bound to a
// port id the kernel picks; with rcvBufBytes > 0, that receive buffer.
// kUnavailable when it cannot be had.
Result<MnlSocketPtr> openNetfilterSocket(int rcvBufBytes = 0);

}  // namespace bulkhead::nft
