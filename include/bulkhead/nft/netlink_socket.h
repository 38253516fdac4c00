// One netlink socket type for every netlink conversation of the agent: the
// nf_tables writer and its dumps, the table monitor, the rule-counter reader
// (nft/) and the NFLOG reader (flows/). It is built as a library of its own
// (bulkhead_netlink) below both layers: it knows netlink, not nf_tables.
//
// What every user needs the same way lives here once: opening with
// SOCK_CLOEXEC, one receive loop (EINTR retried, ENOBUFS and truncated
// datagrams reported, never fatal), and the request/reply exchange that
// checks sequence numbers, ACKs and NLM_F_DUMP_INTR.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"

struct mnl_socket;
struct nlmsghdr;

namespace bulkhead::nft {

class NetlinkSocket {
 public:
  static constexpr size_t kDefaultBufferBytes = 128 * 1024;

  // A socket of netlink family `bus` (NETLINK_NETFILTER ...) in the calling
  // thread's network namespace, close-on-exec, bound to a port id the kernel
  // picks. rcvBufBytes > 0: that receive buffer. bufferBytes: the largest
  // datagram receive() takes whole. kUnavailable when it cannot be had.
  static Result<NetlinkSocket> open(int bus, int rcvBufBytes = 0,
                                    size_t bufferBytes = kDefaultBufferBytes);

  NetlinkSocket(NetlinkSocket&&) noexcept = default;
  NetlinkSocket& operator=(NetlinkSocket&&) noexcept = default;

  int fd() const;
  uint32_t portId() const;

  // SO_RCVBUFFORCE (ignores net.core.rmem_max, needs CAP_NET_ADMIN), else
  // SO_RCVBUF (what rmem_max allows).
  void setReceiveBuffer(int bytes);
  // Grows SO_SNDBUF to at least `bytes` (FORCE first, as above).
  Status setSendBuffer(int bytes);
  // A boolean SOL_NETLINK option (NETLINK_EXT_ACK, NETLINK_CAP_ACK ...).
  bool enable(int option);
  // Joins or leaves a multicast group.
  bool membership(int group, bool join);

  // Sends one datagram whole (EINTR retried).
  Status send(const void* data, size_t len);
  // Drops whatever is queued: replies to an earlier exchange that timed out
  // must not be taken for the next one's.
  void discardQueued();

  struct Received {
    enum class Kind {
      kData,       // `bytes` holds one datagram
      kTimeout,    // nothing arrived in time
      kOverrun,    // ENOBUFS: the receive buffer overflowed, datagrams were
                   // dropped (the socket stays usable)
      kTruncated,  // a datagram larger than the buffer; its tail is gone
    };
    Kind kind = Kind::kTimeout;
    std::span<const uint8_t> bytes;  // valid until the next receive()
  };
  // One datagram, waiting up to timeoutMs (0: only what is queued now).
  // EINTR is retried within the same deadline. An error only when the
  // socket itself fails.
  Result<Received> receive(int timeoutMs);
  // Waits up to timeoutMs until something can be read (true) or not (false).
  Result<bool> waitReadable(int timeoutMs);

  // Calls fn for each netlink message in `bytes`; false when bytes are left
  // over that do not form a whole message.
  static bool forEachMessage(std::span<const uint8_t> bytes,
                             const std::function<void(const nlmsghdr*)>& fn);

  // Sends `request` and hands every reply that carries its sequence number
  // to `onReply` (an error from it ends the exchange) until NLMSG_DONE or
  // the kernel's NLMSG_ERROR/ACK. Returns the ACK's errno (0: success) so
  // that callers decide what a refusal means. Errors: a dump the kernel
  // flagged NLM_F_DUMP_INTR (a commit fell in the middle: EINTR, dump
  // again), lost replies (ENOBUFS), no reply within timeoutMs (ETIMEDOUT).
  Result<int> exchange(const nlmsghdr* request, const std::string& what, int timeoutMs,
                       const std::function<Status(const nlmsghdr*)>& onReply);

 private:
  struct Close {
    void operator()(mnl_socket* s) const;
  };
  NetlinkSocket(mnl_socket* socket, size_t bufferBytes);

  std::unique_ptr<mnl_socket, Close> socket_;
  std::vector<uint8_t> buf_;
};

// Runs `dump` (a fresh read each time, returning a Result) again while it
// fails with EINTR: the kernel flagged a reply NLM_F_DUMP_INTR, as a commit
// (anyone's) moved the ruleset generation during the dump, so what it read
// may mix two states. Commits are short; kDumpAttempts in all.
inline constexpr int kDumpAttempts = 5;
template <typename Dump>
auto dumpUninterrupted(const Dump& dump) -> decltype(dump()) {
  for (int attempt = 1;; ++attempt) {
    auto out = dump();
    if (out || out.error().sysErrno != EINTR || attempt == kDumpAttempts) return out;
  }
}

}  // namespace bulkhead::nft
