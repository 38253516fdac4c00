// decodePacket(), parsePrefix() and protoName() on packets built by hand.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bulkhead/flows/event.h"

namespace bulkhead::flows {
namespace {

using Bytes = std::vector<uint8_t>;

policy::IpAddr ip(const char* text) {
  return *policy::IpAddr::parse(text);
}

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

Bytes ports(uint16_t sport, uint16_t dport, size_t headerLen) {
  Bytes b(headerLen, 0);
  put16(b, 0, sport);
  put16(b, 2, dport);
  return b;
}

Bytes tcpHeader(uint16_t sport, uint16_t dport) {
  Bytes b = ports(sport, dport, 20);
  b[12] = 5 << 4;  // data offset
  b[13] = 0x02;    // SYN
  return b;
}

Bytes icmpHeader(uint8_t type, uint8_t code) {
  Bytes b(8, 0);
  b[0] = type;
  b[1] = code;
  return b;
}

struct V4Opts {
  uint8_t proto = 6;
  size_t optionBytes = 0;  // multiple of 4
  uint16_t fragField = 0;  // flags and offset
  std::optional<uint16_t> totalLen;
};

Bytes ipv4(const char* src, const char* dst, const Bytes& l4, V4Opts o = {}) {
  const size_t hl = 20 + o.optionBytes;
  Bytes b(hl, 0);
  b[0] = static_cast<uint8_t>(0x40 | (hl / 4));
  put16(b, 2, o.totalLen.value_or(static_cast<uint16_t>(hl + l4.size())));
  put16(b, 6, o.fragField);
  b[8] = 64;
  b[9] = o.proto;
  const auto s = ip(src), d = ip(dst);
  std::copy_n(s.bytes.begin(), 4, b.begin() + 12);
  std::copy_n(d.bytes.begin(), 4, b.begin() + 16);
  for (size_t i = 20; i < hl; ++i)
    b[i] = 1;  // NOP options
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

// An IPv6 extension header: next header, then `body` padded to its length
// unit (8 octets; AH counts 4-octet units).
struct Ext {
  uint8_t type;
  size_t bytes = 8;        // total length
  uint16_t fragField = 0;  // fragment header: offset << 3 | M
};

Bytes ipv6(const char* src, const char* dst, uint8_t proto, const std::vector<Ext>& exts,
           const Bytes& l4, std::optional<uint16_t> payloadLen = std::nullopt) {
  Bytes b(40, 0);
  b[0] = 0x60;
  b[6] = exts.empty() ? proto : exts[0].type;
  b[7] = 64;
  const auto s = ip(src), d = ip(dst);
  std::copy_n(s.bytes.begin(), 16, b.begin() + 8);
  std::copy_n(d.bytes.begin(), 16, b.begin() + 24);
  for (size_t i = 0; i < exts.size(); ++i) {
    const Ext& e = exts[i];
    Bytes h(e.bytes, 0);
    h[0] = i + 1 < exts.size() ? exts[i + 1].type : proto;
    if (e.type == 51) {
      h[1] = static_cast<uint8_t>(e.bytes / 4 - 2);
    } else if (e.type == 44) {
      put16(h, 2, e.fragField);
    } else {
      h[1] = static_cast<uint8_t>(e.bytes / 8 - 1);
    }
    b.insert(b.end(), h.begin(), h.end());
  }
  b.insert(b.end(), l4.begin(), l4.end());
  put16(b, 4, payloadLen.value_or(static_cast<uint16_t>(b.size() - 40)));
  return b;
}

struct Case {
  std::string name;
  Bytes packet;
  // Expected result; nullopt: garbage.
  std::optional<DecodedPacket> want;
};

DecodedPacket want(const char* src, const char* dst, uint8_t proto) {
  DecodedPacket d;
  d.src = ip(src);
  d.dst = ip(dst);
  d.proto = proto;
  return d;
}
DecodedPacket withPorts(DecodedPacket d, uint16_t sport, uint16_t dport) {
  d.sport = sport;
  d.dport = dport;
  d.hasPorts = true;
  return d;
}
DecodedPacket withIcmp(DecodedPacket d, uint8_t type, uint8_t code) {
  d.icmpType = type;
  d.icmpCode = code;
  return d;
}
DecodedPacket truncatedTo(DecodedPacket d) {
  d.truncated = true;
  return d;
}

const char* kA4 = "192.0.2.10";
const char* kB4 = "198.51.100.10";
const char* kA6 = "2001:db8:2::10";
const char* kB6 = "2001:db8:10::10";

std::vector<Case> cases() {
  std::vector<Case> c;
  // IPv4.
  c.push_back(
      {"v4 tcp", ipv4(kA4, kB4, tcpHeader(40000, 22)), withPorts(want(kA4, kB4, 6), 40000, 22)});
  c.push_back({"v4 udp", ipv4(kA4, kB4, ports(5353, 53, 8), {.proto = 17}),
               withPorts(want(kA4, kB4, 17), 5353, 53)});
  c.push_back({"v4 udplite", ipv4(kA4, kB4, ports(1, 2, 8), {.proto = 136}),
               withPorts(want(kA4, kB4, 136), 1, 2)});
  c.push_back({"v4 sctp", ipv4(kA4, kB4, ports(3868, 3868, 12), {.proto = 132}),
               withPorts(want(kA4, kB4, 132), 3868, 3868)});
  c.push_back({"v4 dccp", ipv4(kA4, kB4, ports(9, 5004, 16), {.proto = 33}),
               withPorts(want(kA4, kB4, 33), 9, 5004)});
  c.push_back({"v4 icmp echo", ipv4(kA4, kB4, icmpHeader(8, 0), {.proto = 1}),
               withIcmp(want(kA4, kB4, 1), 8, 0)});
  c.push_back({"v4 icmp unreachable", ipv4(kA4, kB4, icmpHeader(3, 13), {.proto = 1}),
               withIcmp(want(kA4, kB4, 1), 3, 13)});
  c.push_back({"v4 icmpv6 number is not icmp", ipv4(kA4, kB4, icmpHeader(128, 0), {.proto = 58}),
               want(kA4, kB4, 58)});
  c.push_back({"v4 gre", ipv4(kA4, kB4, Bytes(4, 0), {.proto = 47}), want(kA4, kB4, 47)});
  c.push_back({"v4 options", ipv4(kA4, kB4, tcpHeader(1234, 443), {.optionBytes = 40}),
               withPorts(want(kA4, kB4, 6), 1234, 443)});
  c.push_back({"v4 first fragment (MF)",
               ipv4(kA4, kB4, ports(7, 53, 8), {.proto = 17, .fragField = 0x2000}),
               withPorts(want(kA4, kB4, 17), 7, 53)});
  c.push_back({"v4 later fragment",
               ipv4(kA4, kB4, ports(7, 53, 8), {.proto = 17, .fragField = 0x0010}),
               want(kA4, kB4, 17)});
  c.push_back({"v4 last fragment (offset, no MF)",
               ipv4(kA4, kB4, ports(7, 53, 8), {.fragField = 0x00b9}), want(kA4, kB4, 6)});
  c.push_back({"v4 DF is not a fragment", ipv4(kA4, kB4, tcpHeader(5, 6), {.fragField = 0x4000}),
               withPorts(want(kA4, kB4, 6), 5, 6)});
  c.push_back({"v4 copy range cut the payload, headers whole",
               ipv4(kA4, kB4, tcpHeader(1, 2), {.totalLen = 1500}),
               withPorts(want(kA4, kB4, 6), 1, 2)});
  c.push_back({"v4 tot_len 0 (BIG TCP GSO)", ipv4(kA4, kB4, tcpHeader(1, 2), {.totalLen = 0}),
               withPorts(want(kA4, kB4, 6), 1, 2)});
  {
    // Link-layer padding after a short datagram: tot_len wins, so the
    // transport header it does not cover is cut.
    Bytes p = ipv4(kA4, kB4, Bytes{}, {.totalLen = 20});
    p.resize(46, 0xaa);
    c.push_back({"v4 padding beyond tot_len", p, truncatedTo(want(kA4, kB4, 6))});
  }
  c.push_back({"v4 tcp with 3 bytes of header", ipv4(kA4, kB4, Bytes{0, 1, 0}),
               truncatedTo(want(kA4, kB4, 6))});
  c.push_back({"v4 icmp with 1 byte", ipv4(kA4, kB4, Bytes{8}, {.proto = 1}),
               truncatedTo(want(kA4, kB4, 1))});
  {
    Bytes p = ipv4(kA4, kB4, tcpHeader(1, 2), {.optionBytes = 8});
    p.resize(24);  // options cut
    c.push_back({"v4 options cut", p, truncatedTo(want(kA4, kB4, 6))});
  }
  {
    Bytes p = ipv4(kA4, kB4, tcpHeader(1, 2));
    p[0] = 0x44;  // IHL 4
    c.push_back({"v4 IHL below 5", p, std::nullopt});
  }
  c.push_back(
      {"v4 tot_len below header", ipv4(kA4, kB4, tcpHeader(1, 2), {.totalLen = 19}), std::nullopt});

  // IPv6.
  c.push_back({"v6 tcp", ipv6(kA6, kB6, 6, {}, tcpHeader(50000, 5432)),
               withPorts(want(kA6, kB6, 6), 50000, 5432)});
  c.push_back({"v6 udp", ipv6(kA6, kB6, 17, {}, ports(1000, 53, 8)),
               withPorts(want(kA6, kB6, 17), 1000, 53)});
  c.push_back(
      {"v6 sctp", ipv6(kA6, kB6, 132, {}, ports(1, 2, 12)), withPorts(want(kA6, kB6, 132), 1, 2)});
  c.push_back({"v6 icmpv6 echo", ipv6(kA6, kB6, 58, {}, icmpHeader(128, 0)),
               withIcmp(want(kA6, kB6, 58), 128, 0)});
  c.push_back({"v6 icmpv6 neighbour solicitation", ipv6(kA6, kB6, 58, {}, icmpHeader(135, 0)),
               withIcmp(want(kA6, kB6, 58), 135, 0)});
  c.push_back(
      {"v6 icmp number is not icmpv6", ipv6(kA6, kB6, 1, {}, icmpHeader(8, 0)), want(kA6, kB6, 1)});
  c.push_back({"v6 no next header", ipv6(kA6, kB6, 59, {}, {}), want(kA6, kB6, 59)});
  c.push_back({"v6 esp", ipv6(kA6, kB6, 50, {}, Bytes(16, 0)), want(kA6, kB6, 50)});
  c.push_back({"v6 hop-by-hop", ipv6(kA6, kB6, 6, {{0}}, tcpHeader(1, 22)),
               withPorts(want(kA6, kB6, 6), 1, 22)});
  c.push_back({"v6 all extension headers",
               ipv6(kA6, kB6, 17, {{0, 16}, {60, 8}, {43, 24}, {44, 8, 0x0001}, {51, 24}, {60, 8}},
                    ports(9, 10, 8)),
               withPorts(want(kA6, kB6, 17), 9, 10)});
  c.push_back({"v6 later fragment", ipv6(kA6, kB6, 17, {{44, 8, 0x00b8}}, ports(9, 10, 8)),
               want(kA6, kB6, 17)});
  c.push_back({"v6 first fragment", ipv6(kA6, kB6, 58, {{44, 8, 0x0001}}, icmpHeader(128, 0)),
               withIcmp(want(kA6, kB6, 58), 128, 0)});
  c.push_back({"v6 mobility header", ipv6(kA6, kB6, 59, {{135, 16}}, {}), want(kA6, kB6, 59)});
  {
    std::vector<Ext> many(17, Ext{60});
    c.push_back({"v6 17 extension headers: walk stops", ipv6(kA6, kB6, 6, many, tcpHeader(1, 2)),
                 want(kA6, kB6, 60)});
    std::vector<Ext> sixteen(16, Ext{60});
    c.push_back({"v6 16 extension headers", ipv6(kA6, kB6, 6, sixteen, tcpHeader(1, 2)),
                 withPorts(want(kA6, kB6, 6), 1, 2)});
  }
  c.push_back({"v6 payload_len 0 (jumbo / BIG TCP)", ipv6(kA6, kB6, 6, {}, tcpHeader(1, 2), 0),
               withPorts(want(kA6, kB6, 6), 1, 2)});
  c.push_back({"v6 payload_len beyond the copy", ipv6(kA6, kB6, 6, {}, tcpHeader(1, 2), 1400),
               withPorts(want(kA6, kB6, 6), 1, 2)});
  c.push_back({"v6 payload_len cuts the header", ipv6(kA6, kB6, 6, {}, tcpHeader(1, 2), 2),
               truncatedTo(want(kA6, kB6, 6))});
  {
    Bytes p = ipv6(kA6, kB6, 6, {{0, 16}}, tcpHeader(1, 2));
    p.resize(50);
    c.push_back({"v6 hop-by-hop cut", p, truncatedTo(want(kA6, kB6, 0))});
    Bytes q = ipv6(kA6, kB6, 6, {{44}}, tcpHeader(1, 2));
    q.resize(47);
    c.push_back({"v6 fragment header cut", q, truncatedTo(want(kA6, kB6, 44))});
  }

  // Garbage.
  c.push_back({"empty", {}, std::nullopt});
  c.push_back({"version 5", Bytes(60, 0x50), std::nullopt});
  c.push_back({"version 0", Bytes(60, 0), std::nullopt});
  c.push_back({"v4 too short for addresses", Bytes{0x45, 0, 0, 19}, std::nullopt});
  c.push_back({"v6 39 bytes", Bytes(39, 0x60), std::nullopt});
  return c;
}

void expectEq(const DecodedPacket& got, const DecodedPacket& w, const std::string& name) {
  SCOPED_TRACE(name);
  EXPECT_EQ(got.src.toString(), w.src.toString());
  EXPECT_EQ(got.dst.toString(), w.dst.toString());
  EXPECT_EQ(int(got.proto), int(w.proto));
  EXPECT_EQ(got.sport, w.sport);
  EXPECT_EQ(got.dport, w.dport);
  EXPECT_EQ(int(got.icmpType), int(w.icmpType));
  EXPECT_EQ(int(got.icmpCode), int(w.icmpCode));
  EXPECT_EQ(got.hasPorts, w.hasPorts);
  EXPECT_EQ(got.truncated, w.truncated);
}

TEST(FlowsDecodeTest, Table) {
  for (const Case& c : cases()) {
    const auto got = decodePacket(c.packet);
    if (!c.want) {
      EXPECT_FALSE(got.has_value()) << c.name;
      continue;
    }
    ASSERT_TRUE(got.has_value()) << c.name;
    expectEq(*got, *c.want, c.name);
  }
}

// Every prefix of every valid packet: no crash, no read past the end (the
// copy lives in a buffer of exactly that size, so ASan would see it), the
// addresses whenever they fit, and never a field the cut removed.
TEST(FlowsDecodeTest, EveryTruncationOfEveryCase) {
  for (const Case& c : cases()) {
    if (!c.want) continue;
    for (size_t n = 0; n <= c.packet.size(); ++n) {
      const std::vector<uint8_t> cut(c.packet.begin(), c.packet.begin() + n);
      const auto got = decodePacket(cut);
      const size_t addrEnd = (c.packet[0] >> 4) == 4 ? 20 : 40;
      if (n < addrEnd) {
        EXPECT_FALSE(got.has_value()) << c.name << " cut to " << n;
        continue;
      }
      ASSERT_TRUE(got.has_value()) << c.name << " cut to " << n;
      EXPECT_EQ(got->src, c.want->src) << c.name << " cut to " << n;
      EXPECT_EQ(got->dst, c.want->dst) << c.name << " cut to " << n;
      if (n == c.packet.size()) {
        expectEq(*got, *c.want, c.name + " uncut");
      } else if (got->hasPorts) {
        // Ports read only when they were there, and then correctly.
        EXPECT_EQ(got->sport, c.want->sport) << c.name << " cut to " << n;
        EXPECT_EQ(got->dport, c.want->dport) << c.name << " cut to " << n;
      }
      if (c.want->hasPorts && !got->hasPorts) {
        EXPECT_TRUE(got->truncated) << c.name << " cut to " << n;
      }
    }
  }
}

TEST(FlowsDecodeTest, TruncatedTcpReportsPortsOnlyWithFourBytes) {
  const Bytes full = ipv4(kA4, kB4, tcpHeader(4242, 22));
  for (size_t n = 20; n <= 24; ++n) {
    const Bytes cut(full.begin(), full.begin() + n);
    const auto got = decodePacket(cut);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->hasPorts, n == 24) << n;
    EXPECT_EQ(got->truncated, n < 24) << n;
    EXPECT_EQ(got->proto, 6);
  }
}

TEST(FlowsDecodeTest, RandomBytesNeverCrash) {
  std::mt19937 rng(1771);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> len(0, 120);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> b(len(rng));
    for (auto& x : b)
      x = static_cast<uint8_t>(byte(rng));
    if (!b.empty() && i % 2 == 0)
      b[0] = static_cast<uint8_t>((i % 4 == 0 ? 0x40 : 0x60) | (b[0] & 0xf));
    const auto got = decodePacket(b);
    if (got && got->hasPorts) {
      EXPECT_TRUE(got->proto == 6 || got->proto == 17 || got->proto == 33 || got->proto == 132 ||
                  got->proto == 136);
    }
  }
}

TEST(FlowsPrefixTest, ParsePrefix) {
  struct P {
    const char* text;
    std::optional<PrefixInfo> want;
  };
  const std::vector<P> table = {
      {"bh:deny:default", PrefixInfo{FlowAction::kDeny, "default"}},
      {"bh:deny:globalpolicy/baseline/0", PrefixInfo{FlowAction::kDeny, "globalpolicy/baseline/0"}},
      {"bh:audit:default", PrefixInfo{FlowAction::kAudit, "default"}},
      {"bh:spoof", PrefixInfo{FlowAction::kSpoof, ""}},
      {"bh:quarantine", PrefixInfo{FlowAction::kQuarantine, ""}},
      {"bh:log:x", PrefixInfo{FlowAction::kLog, "x"}},
      {"bh:deny:a:b", PrefixInfo{FlowAction::kDeny, "a:b"}},  // the reason keeps later colons
      {"bh:deny", PrefixInfo{FlowAction::kDeny, ""}},
      {"bh:deny:", PrefixInfo{FlowAction::kDeny, ""}},
      {"bh:allow:x", std::nullopt},
      {"bh:", std::nullopt},
      {"bh", std::nullopt},
      {"", std::nullopt},
      {"BH:deny:x", std::nullopt},
      {"ulogd: deny", std::nullopt},
      {"xbh:deny:x", std::nullopt},
  };
  for (const P& p : table) {
    const auto got = parsePrefix(p.text);
    ASSERT_EQ(got.has_value(), p.want.has_value()) << p.text;
    if (!got) continue;
    EXPECT_EQ(got->action, p.want->action) << p.text;
    EXPECT_EQ(got->reason, p.want->reason) << p.text;
  }
  // The kernel may hand the prefix back NUL-terminated or padded.
  const std::string padded("bh:deny:default\0\0\0", 18);
  const auto got = parsePrefix(padded);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->reason, "default");
}

TEST(FlowsPrefixTest, ProtoName) {
  EXPECT_EQ(protoName(1), "icmp");
  EXPECT_EQ(protoName(6), "tcp");
  EXPECT_EQ(protoName(17), "udp");
  EXPECT_EQ(protoName(33), "dccp");
  EXPECT_EQ(protoName(58), "icmpv6");
  EXPECT_EQ(protoName(132), "sctp");
  EXPECT_EQ(protoName(136), "udplite");
  EXPECT_EQ(protoName(0), "0");
  EXPECT_EQ(protoName(47), "47");
  EXPECT_EQ(protoName(255), "255");
}

}  // namespace
}  // namespace bulkhead::flows
