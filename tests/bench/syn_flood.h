// A TCP SYN flood from inside a workload, as an attacker who owns it sends
// one: hand-built SYNs through a raw socket, a new source port (and with
// spoofing a new source address) on every packet, in batches of sendmmsg,
// as fast as one thread goes. bench_datapath measures what each costs the
// host and what it leaves in the hypervisor's connection tracking table.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "bench_util.h"
#include "bulkhead/common/fd.h"

namespace bulkhead::bench {

// Where the SYNs claim to come from.
enum class FloodSource : uint8_t {
  kOwn,      // the workload's own address: what a compromised app can always send
  kSpoofed,  // a different address of 203.0.113.0/24 each time
};

struct FloodResult {
  uint64_t sent = 0;   // SYNs the kernel took
  double seconds = 0;  // of sending
  double cpu = 0;      // the sending thread's CPU seconds, softirq work it ran included
  double perSecond() const { return seconds > 0 ? double(sent) / seconds : 0; }
  double cpuPerSyn() const { return sent > 0 ? cpu / double(sent) : 0; }
};

namespace flood_detail {

// One SYN as the wire carries it (IPv4, no options): both headers are
// multiples of 4 bytes, so the struct has no padding.
struct SynPacket {
  iphdr ip;
  tcphdr tcp;
};
static_assert(sizeof(SynPacket) == 40);
static_assert(offsetof(SynPacket, tcp) == sizeof(iphdr));

// The one's-complement sum of 16-bit words, folded.
inline uint32_t sum16(const void* data, size_t len, uint32_t sum = 0) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i + 1 < len; i += 2)
    sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (len % 2) sum += uint32_t(p[len - 1] << 8);
  return sum;
}

inline uint16_t fold(uint32_t sum) {
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// The TCP checksum over the pseudo-header and the segment. The hypervisor's
// conntrack verifies it (nf_conntrack_checksum), and a bad one would make
// every SYN "invalid" and test a different path.
inline void setTcpChecksum(SynPacket& p) {
  p.tcp.check = 0;
  struct {
    uint32_t saddr, daddr;
    uint8_t zero, proto;
    uint16_t len;
  } pseudo{p.ip.saddr, p.ip.daddr, 0, IPPROTO_TCP, htons(uint16_t(sizeof(tcphdr)))};
  static_assert(sizeof pseudo == 12);
  p.tcp.check = htons(fold(sum16(&p.tcp, sizeof(tcphdr), sum16(&pseudo, sizeof pseudo))));
}

}  // namespace flood_detail

// Sends SYNs from `source` (or spoofed addresses) to dst:dport for
// `seconds`, from the calling thread, which must be in the workload's
// namespace. The kernel fills in the IP header's length, id and checksum
// (IP_HDRINCL); the bench builds the rest.
inline FloodResult synFlood(const char* source, const char* dst, uint16_t dport, FloodSource how,
                            double seconds) {
  using flood_detail::SynPacket;
  Fd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd) throw Failure(std::string("raw socket: ") + std::strerror(errno));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  inet_pton(AF_INET, dst, &to.sin_addr);

  SynPacket proto{};
  proto.ip.version = 4;
  proto.ip.ihl = sizeof(iphdr) / 4;
  proto.ip.ttl = 64;
  proto.ip.protocol = IPPROTO_TCP;
  inet_pton(AF_INET, source, &proto.ip.saddr);
  proto.ip.daddr = to.sin_addr.s_addr;
  proto.tcp.dest = htons(dport);
  proto.tcp.doff = sizeof(tcphdr) / 4;
  proto.tcp.syn = 1;
  proto.tcp.window = htons(64240);

  constexpr unsigned kBatch = 64;
  SynPacket packets[kBatch];
  iovec iov[kBatch];
  mmsghdr msgs[kBatch] = {};
  for (unsigned i = 0; i < kBatch; ++i) {
    iov[i] = {&packets[i], sizeof(SynPacket)};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
  }
  uint32_t rng = 0x9e3779b9;  // xorshift32: spoofed addresses and sequence numbers
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  };

  FloodResult r;
  uint32_t port = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = cpuSecondsOf();
  while (secondsSince(t0) < seconds) {
    for (auto& p : packets) {
      p = proto;
      // Source ports 1024-65535 in turn: every SYN a new connection.
      p.tcp.source = htons(uint16_t(1024 + port++ % (65536 - 1024)));
      p.tcp.seq = next();
      if (how == FloodSource::kSpoofed) p.ip.saddr = htonl(0xcb007100u | (1 + next() % 254));
      flood_detail::setTcpChecksum(p);
    }
    const int n = ::sendmmsg(fd.get(), msgs, kBatch, 0);
    if (n > 0) r.sent += uint64_t(n);
  }
  r.seconds = secondsSince(t0);
  r.cpu = cpuSecondsOf() - cpu0;
  return r;
}

}  // namespace bulkhead::bench
