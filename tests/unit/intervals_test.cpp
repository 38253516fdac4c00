#include "bulkhead/compiler/intervals.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>

namespace bulkhead::compiler {
namespace {

using policy::Cidr;
using policy::IpAddr;

AddrRange range(const std::string& cidr) {
  return toRange(*Cidr::parse(cidr));
}
IpAddr ip(const std::string& s) {
  return *IpAddr::parse(s);
}

TEST(MergeRanges, MergesOverlappingAndAdjacent) {
  auto out = mergeRanges({range("192.0.2.0/25"), range("192.0.2.128/25"), range("192.0.2.5/32"),
                          range("198.51.100.0/24"), range("198.51.100.7/32")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], range("192.0.2.0/24"));
  EXPECT_EQ(out[1], range("198.51.100.0/24"));
}

TEST(MergeRanges, KeepsGaps) {
  auto out = mergeRanges({range("192.0.2.10/32"), range("192.0.2.12/32")});
  EXPECT_EQ(out.size(), 2u);
}

TEST(MergeRanges, HandlesTopOfAddressSpace) {
  auto out = mergeRanges({range("255.255.255.255/32"), range("255.255.255.0/24"),
                          range("ffff::/16"), range("ffff:ffff::/32")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].hi, ip("255.255.255.255"));
  EXPECT_EQ(out[1], range("ffff::/16"));
}

TEST(AsPrefix, DetectsPrefixes) {
  EXPECT_EQ(asPrefix(range("192.0.2.0/24"))->toString(), "192.0.2.0/24");
  EXPECT_EQ(asPrefix(range("2001:db8::/32"))->toString(), "2001:db8::/32");
  EXPECT_EQ(asPrefix(range("0.0.0.0/0"))->toString(), "0.0.0.0/0");
  EXPECT_FALSE(asPrefix(AddrRange{ip("192.0.2.1"), ip("192.0.2.2")}));
  EXPECT_FALSE(asPrefix(AddrRange{ip("192.0.2.0"), ip("192.0.2.2")}));
}

DestBox box(const std::string& cidr, uint8_t plo, uint8_t phi, uint16_t lo, uint16_t hi) {
  return DestBox{range(cidr), plo, phi, lo, hi};
}

TEST(DisjointBoxes, MergesSamePortsAcrossAddresses) {
  auto out =
      disjointBoxes({box("192.0.2.0/25", 6, 6, 443, 443), box("192.0.2.128/25", 6, 6, 443, 443)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], box("192.0.2.0/24", 6, 6, 443, 443));
}

TEST(DisjointBoxes, MergesOverlappingPortRanges) {
  auto out =
      disjointBoxes({box("192.0.2.0/24", 6, 6, 8000, 8100), box("192.0.2.0/24", 6, 6, 8050, 8200),
                     box("192.0.2.0/24", 6, 6, 8201, 8201)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], box("192.0.2.0/24", 6, 6, 8000, 8201));
}

TEST(DisjointBoxes, AnyProtocolSwallowsSpecificOnes) {
  auto out =
      disjointBoxes({box("192.0.2.0/24", 0, 255, 0, 65535), box("192.0.2.5/32", 6, 6, 22, 22)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], box("192.0.2.0/24", 0, 255, 0, 65535));
}

// Brute force: every point is covered by the output iff by the input, and no
// point by two output boxes.
TEST(DisjointBoxes, RandomBoxesStayExactAndDisjoint) {
  std::mt19937 rng(42);
  for (int round = 0; round < 30; ++round) {
    std::vector<DestBox> in;
    for (int i = 0; i < 8; ++i) {
      uint8_t a = rng() % 16, b = a + rng() % 4;
      uint8_t p = rng() % 4, q = p + rng() % 2;
      uint16_t s = rng() % 12, t = s + rng() % 5;
      DestBox d{AddrRange{ip("192.0.2." + std::to_string(a)), ip("192.0.2." + std::to_string(b))},
                p, q, s, t};
      in.push_back(d);
    }
    auto out = disjointBoxes(in);
    auto covers = [](const DestBox& d, int a, int p, int s) {
      return d.addrs.lo.bytes[3] <= a && a <= d.addrs.hi.bytes[3] && d.protoLo <= p &&
             p <= d.protoHi && d.portLo <= s && s <= d.portHi;
    };
    for (int a = 0; a < 24; ++a)
      for (int p = 0; p < 8; ++p)
        for (int s = 0; s < 20; ++s) {
          int inCount = 0, outCount = 0;
          for (const auto& d : in)
            inCount += covers(d, a, p, s);
          for (const auto& d : out)
            outCount += covers(d, a, p, s);
          ASSERT_EQ(outCount, inCount > 0 ? 1 : 0)
              << "round " << round << " point " << a << "/" << p << "/" << s;
        }
  }
}

// On one address range the output is canonical: per protocol the maximal
// runs of covered ports, and adjacent protocols with the same runs as one
// range. Built here point by point, against clusters that skip the slicing
// (one protocol a box, ports apart) and clusters that need it.
TEST(DisjointBoxes, OneAddressRangeGivesTheCanonicalBoxes) {
  std::mt19937 rng(7);
  const AddrRange addrs = range("192.0.2.16/28");
  constexpr int kProtos = 8, kPorts = 24;
  for (int round = 0; round < 400; ++round) {
    std::vector<DestBox> in;
    const int n = 1 + int(rng() % 5);
    const bool wide = round % 2 == 0;  // protocol ranges and long port ranges
    for (int i = 0; i < n; ++i) {
      const uint8_t p = uint8_t(rng() % kProtos);
      const uint8_t q = wide ? uint8_t(std::min<int>(kProtos - 1, p + int(rng() % 2))) : p;
      const uint16_t s = uint16_t(rng() % kPorts);
      const uint16_t t = uint16_t(std::min<int>(kPorts - 1, s + int(rng() % (wide ? 6 : 2))));
      in.push_back(DestBox{addrs, p, q, s, t});
    }
    std::array<std::array<bool, kPorts>, kProtos> covered{};
    for (const auto& b : in)
      for (int p = b.protoLo; p <= b.protoHi; ++p)
        for (int s = b.portLo; s <= b.portHi; ++s)
          covered[p][s] = true;
    std::vector<DestBox> want;
    for (int p = 0; p < kProtos;) {
      int q = p;
      while (q + 1 < kProtos && covered[q + 1] == covered[p])
        ++q;
      for (int s = 0; s < kPorts;) {
        if (!covered[p][s]) {
          ++s;
          continue;
        }
        int t = s;
        while (t + 1 < kPorts && covered[p][t + 1])
          ++t;
        want.push_back(DestBox{addrs, uint8_t(p), uint8_t(q), uint16_t(s), uint16_t(t)});
        s = t + 1;
      }
      p = q + 1;
    }
    std::sort(want.begin(), want.end());
    ASSERT_EQ(disjointBoxes(in), want) << "round " << round;
  }
}

}  // namespace
}  // namespace bulkhead::compiler
