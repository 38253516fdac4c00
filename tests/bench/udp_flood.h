// Denied UDP attempts from a workload namespace, as fast as one thread
// sends them: the floods of bench_flows and bench_scan. Attempt i goes to
// the address and port a bench's `Target` maps it to, so a bench can tell
// from a line at its receiver which attempt it was.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "bench_util.h"
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

  // Attempts [base, base + n) in batches, as fast as the thread goes; how
  // many the kernel took.
  uint64_t flood(uint32_t base, uint32_t n) {
    uint64_t ok = 0;
    for (uint32_t k = 0; k < n; k += kBatch) {
      if ((k & 1023) == 0) checkInterrupted();
      ok += sendBatch(base + k, std::min(kBatch, n - k));
    }
    return ok;
  }

 private:
  Target target_;
  int fd_ = -1;
};

}  // namespace bulkhead::bench
