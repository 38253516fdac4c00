#include "bulkhead/nft/netlink_socket.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "bulkhead/common/deadline.h"

namespace bulkhead::nft {

using common::msUntil;
using common::SteadyClock;

void NetlinkSocket::Close::operator()(mnl_socket* s) const {
  mnl_socket_close(s);
}

NetlinkSocket::NetlinkSocket(mnl_socket* socket, size_t bufferBytes)
    : socket_(socket), buf_(bufferBytes) {}

Result<NetlinkSocket> NetlinkSocket::open(int bus, int rcvBufBytes, size_t bufferBytes) {
  auto fail = [](const std::string& what, int err) {
    return makeError(ErrorCode::kUnavailable, what + ": " + std::strerror(err), err);
  };
  // Close-on-exec: the agent runs no programs, but a socket must never leak
  // into one (the hooks and tests do spawn).
  mnl_socket* raw = mnl_socket_open2(bus, SOCK_CLOEXEC);
  if (raw == nullptr) return fail("cannot open a netlink socket", errno);
  NetlinkSocket s(raw, bufferBytes);
  if (mnl_socket_bind(raw, 0, MNL_SOCKET_AUTOPID) < 0)
    return fail("cannot bind the netlink socket", errno);
  if (rcvBufBytes > 0) s.setReceiveBuffer(rcvBufBytes);
  return s;
}

int NetlinkSocket::fd() const {
  return mnl_socket_get_fd(socket_.get());
}

uint32_t NetlinkSocket::portId() const {
  return mnl_socket_get_portid(socket_.get());
}

void NetlinkSocket::setReceiveBuffer(int bytes) {
  if (setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
    setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

Status NetlinkSocket::setSendBuffer(int bytes) {
  if (setsockopt(fd(), SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0 &&
      setsockopt(fd(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) < 0)
    return makeError(ErrorCode::kKernel, "cannot grow the netlink send buffer", errno);
  return {};
}

bool NetlinkSocket::enable(int option) {
  int one = 1;
  return setsockopt(fd(), SOL_NETLINK, option, &one, sizeof one) == 0;
}

bool NetlinkSocket::membership(int group, bool join) {
  return setsockopt(fd(), SOL_NETLINK, join ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP,
                    &group, sizeof group) == 0;
}

Status NetlinkSocket::send(const void* data, size_t len) {
  ssize_t sent;
  do {
    sent = mnl_socket_sendto(socket_.get(), data, len);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0)
    return makeError(ErrorCode::kKernel, "cannot send " + std::to_string(len) + " bytes", errno);
  return {};
}

void NetlinkSocket::discardQueued() {
  for (;;) {
    if (recv(fd(), buf_.data(), buf_.size(), MSG_DONTWAIT) >= 0) continue;
    // An overrun is reported once; what is queued behind it still goes.
    if (errno != EINTR && errno != ENOBUFS) return;
  }
}

Result<bool> NetlinkSocket::waitReadable(int timeoutMs) {
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(std::max(timeoutMs, 0));
  for (;;) {
    pollfd pfd{fd(), POLLIN, 0};
    const int ready = poll(&pfd, 1, msUntil(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return makeError(ErrorCode::kKernel, "cannot poll a netlink socket", errno);
  }
}

Result<NetlinkSocket::Received> NetlinkSocket::receive(int timeoutMs) {
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(std::max(timeoutMs, 0));
  for (;;) {
    // MSG_TRUNC: the real length of a datagram that did not fit.
    const ssize_t n = recv(fd(), buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n >= 0) {
      Received r;
      if (static_cast<size_t>(n) > buf_.size()) {
        r.kind = Received::Kind::kTruncated;
      } else {
        r.kind = Received::Kind::kData;
        r.bytes = {buf_.data(), static_cast<size_t>(n)};
      }
      return r;
    }
    if (errno == EINTR) continue;
    // The kernel could not queue a datagram for us (or, for notifications,
    // could not allocate one); it says so once, and the socket stays usable.
    if (errno == ENOBUFS) return Received{Received::Kind::kOverrun, {}};
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return makeError(ErrorCode::kKernel, "cannot read a netlink socket", errno);
    auto readable = waitReadable(msUntil(deadline));
    if (!readable) return readable.takeError();
    if (!*readable) return Received{};
  }
}

bool NetlinkSocket::forEachMessage(std::span<const uint8_t> bytes,
                                   const std::function<void(const nlmsghdr*)>& fn) {
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(bytes.data());
  int left = static_cast<int>(bytes.size());
  for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
    fn(nlh);
  return left <= 0;
}

Result<int> NetlinkSocket::exchange(const nlmsghdr* request, const std::string& what, int timeoutMs,
                                    const std::function<Status(const nlmsghdr*)>& onReply) {
  discardQueued();
  if (Status s = send(request, request->nlmsg_len); !s)
    return makeError(ErrorCode::kKernel, "cannot ask for " + what, s.error().sysErrno);
  const uint32_t seq = request->nlmsg_seq;
  bool interrupted = false;
  for (;;) {
    auto r = receive(timeoutMs);
    if (!r) return r.takeError();
    switch (r->kind) {
      case Received::Kind::kTimeout:
        return makeError(ErrorCode::kKernel, "no reply for " + what, ETIMEDOUT);
      case Received::Kind::kOverrun:
      case Received::Kind::kTruncated:
        return makeError(ErrorCode::kKernel, "replies for " + what + " were lost", ENOBUFS);
      case Received::Kind::kData:
        break;
    }
    bool finished = false;  // set by the reply that ends the exchange
    int ackErrno = 0;
    Status failed;
    forEachMessage(r->bytes, [&](const nlmsghdr* reply) {
      if (finished || reply->nlmsg_seq != seq) return;  // done, or stale
      // The kernel flags a dump that a concurrent commit made inconsistent.
      interrupted |= (reply->nlmsg_flags & NLM_F_DUMP_INTR) != 0;
      if (reply->nlmsg_type == NLMSG_DONE) {
        finished = true;
      } else if (reply->nlmsg_type == NLMSG_ERROR) {
        finished = true;
        ackErrno = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(reply))->error;
      } else if (Status st = onReply(reply); !st) {
        finished = true;
        failed = std::move(st);
      }
    });
    if (!finished) continue;
    if (!failed) return failed.takeError();
    if (interrupted && ackErrno == 0)
      return makeError(ErrorCode::kKernel, "the reply for " + what + " was interrupted", EINTR);
    return ackErrno;
  }
}

}  // namespace bulkhead::nft
