// UDP both ways for the flow benches (bench_flows, bench_scan): denied
// attempts from a workload namespace, as fast as one thread sends them,
// and the agent's syslog lines read in batches on 127.0.0.1. Attempt i goes
// to the address and port a bench's `Target` maps it to, so a bench can
// tell from a line at its receiver which attempt it was.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bench_util.h"
#include "bulkhead/common/fd.h"
#include "support/netns.h"

namespace bulkhead::bench {

// Attempt index -> destination.
using Target = sockaddr_in (*)(uint32_t);

// One UDP socket made in the workload namespace; sends from the calling
// thread (a socket keeps the namespace it was made in).
class UdpSender {
 public:
  UdpSender(const testing::Netns& ns, Target target) : target_(target) {
    ns.run([&] {
      fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd_ < 0) throw Failure(std::string("socket: ") + std::strerror(errno));
      const int buf = 4 << 20;
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf);
    });
  }
  ~UdpSender() {
    if (fd_ >= 0) ::close(fd_);
  }
  UdpSender(const UdpSender&) = delete;
  UdpSender& operator=(const UdpSender&) = delete;

  // Sends attempt i; false when the kernel refused it at once.
  bool send(uint32_t i) {
    const sockaddr_in sa = target_(i);
    return ::sendto(fd_, "x", 1, 0, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 1;
  }

  // Sends attempts [i, i + n), n <= kBatch, in one sendmmsg; how many the
  // kernel took.
  static constexpr uint32_t kBatch = 32;
  uint32_t sendBatch(uint32_t i, uint32_t n) {
    sockaddr_in sa[kBatch];
    mmsghdr msgs[kBatch] = {};
    iovec iov{const_cast<char*>("x"), 1};
    for (uint32_t k = 0; k < n; ++k) {
      sa[k] = target_(i + k);
      msgs[k].msg_hdr.msg_name = &sa[k];
      msgs[k].msg_hdr.msg_namelen = sizeof sa[k];
      msgs[k].msg_hdr.msg_iov = &iov;
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    uint32_t done = 0;
    while (done < n) {
      const int r = ::sendmmsg(fd_, msgs + done, n - done, 0);
      if (r <= 0) {
        ++done;  // refused: skip it
        continue;
      }
      done += uint32_t(r);
    }
    uint32_t ok = 0;
    for (uint32_t k = 0; k < n; ++k)
      ok += msgs[k].msg_len == 1;
    return ok;
  }

  // Attempts [base, base + n) in batches, as fast as the thread goes.
  void flood(uint32_t base, uint32_t n) {
    for (uint32_t k = 0; k < n; k += kBatch) {
      if ((k & 1023) == 0) checkInterrupted();
      sendBatch(base + k, std::min(kBatch, n - k));
    }
  }

 private:
  Target target_;
  int fd_ = -1;
};

// Routes 198.51.100.0/24, the floods' destinations, on `hv` to a veth that
// leads nowhere, so that the attempts reach the forward hook (where the
// policy drops them) and no packet leaves the namespace.
inline void routeFloodDestinations(const testing::Netns& hv) {
  const auto r = hv.exec(
      "ip link add bhdst0 type veth peer name bhdst1 && ip link set bhdst0 up && "
      "ip link set bhdst1 up && ip route add 198.51.100.0/24 dev bhdst0");
  if (!r.ok()) throw Failure("routing the flood's destinations: " + r.out);
}

// A non-blocking UDP socket bound to 127.0.0.1:`port` in `ns`, with a
// receive buffer of `bufferBytes` and SO_RXQ_OVFL on: each datagram carries
// the count of those the kernel dropped on the socket.
inline Fd bindLoopbackUdp(const testing::Netns& ns, int port, int bufferBytes) {
  Fd fd;
  ns.run([&] {
    fd.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw Failure(std::string("socket: ") + std::strerror(errno));
    const int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &bufferBytes, sizeof bufferBytes);
    setsockopt(fd.get(), SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(uint16_t(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      throw Failure("bind 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
  });
  return fd;
}

// Reads up to kBatch datagrams (one line each) in one recvmmsg, into
// buffers kept from call to call.
class DatagramBatch {
 public:
  static constexpr int kBatch = 64;
  explicit DatagramBatch(size_t maxBytes)
      : size_(maxBytes),
        bufs_(size_t(kBatch) * maxBytes),
        msgs_(kBatch),
        iov_(kBatch),
        ctl_(kBatch) {}

  // What `fd` has queued, without waiting: how many datagrams (0: none).
  int read(int fd) {
    for (int i = 0; i < kBatch; ++i) {
      iov_[i] = {bufs_.data() + size_t(i) * size_, size_};
      msgs_[i].msg_hdr = {};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_control = ctl_[i].data();
      msgs_[i].msg_hdr.msg_controllen = ctl_[i].size();
    }
    const int n = ::recvmmsg(fd, msgs_.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return 0;
    for (int i = 0; i < n; ++i)
      for (cmsghdr* c = CMSG_FIRSTHDR(&msgs_[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs_[i].msg_hdr, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
          std::memcpy(&drops_, CMSG_DATA(c), sizeof drops_);
    return n;
  }

  // Datagram i of the last read.
  std::string_view line(int i) const {
    return {bufs_.data() + size_t(i) * size_, msgs_[i].msg_len};
  }
  // Datagrams the kernel dropped on the socket so far (SO_RXQ_OVFL): lost
  // by the bench's receiver, not by the agent.
  uint32_t drops() const { return drops_; }

 private:
  size_t size_;
  std::vector<char> bufs_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<std::array<char, CMSG_SPACE(sizeof(uint32_t))>> ctl_;
  uint32_t drops_ = 0;
};

// The agent's scan `anomaly` events: not attempts, though they carry the
// triggering attempt's destination and port.
inline bool isAnomalyLine(std::string_view line) {
  return line.find("action=\"anomaly\"") != std::string_view::npos;
}

}  // namespace bulkhead::bench
