// PortSpec / Cidr / IpAddr parsing edge cases.
#include <gtest/gtest.h>

#include "bulkhead/policy/address.h"

namespace bulkhead::policy {
namespace {

// One parse: `text`, and what T::parse must make of it.
struct ParseCase {
  const char* text;
  const char* want;  // toString(), or nullptr when it must fail
  const char* why;   // the reason, for failures
};
using CidrCase = ParseCase;
using PortCase = ParseCase;

template <typename T>
void expectParse(const ParseCase& c) {
  std::string why;
  auto parsed = T::parse(c.text, &why);
  if (c.want == nullptr) {
    EXPECT_FALSE(parsed) << c.text;
    EXPECT_EQ(why, c.why) << c.text;
  } else {
    ASSERT_TRUE(parsed) << c.text << ": " << why;
    EXPECT_EQ(parsed->toString(), c.want);
  }
}

class CidrParseTest : public testing::TestWithParam<CidrCase> {};

TEST_P(CidrParseTest, Parses) {
  expectParse<Cidr>(GetParam());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CidrParseTest,
    testing::Values(CidrCase{"198.51.100.10/32", "198.51.100.10/32", ""},
                    CidrCase{"198.51.100.10", "198.51.100.10/32", ""},
                    CidrCase{"0.0.0.0/0", "0.0.0.0/0", ""},
                    CidrCase{"203.0.113.0/24", "203.0.113.0/24", ""},
                    CidrCase{"2001:db8:10::/64", "2001:db8:10::/64", ""},
                    CidrCase{"2001:db8::1", "2001:db8::1/128", ""}, CidrCase{"::/0", "::/0", ""},
                    CidrCase{"10.0.0.1/24", nullptr, "host bits set below the prefix length"},
                    CidrCase{"2001:db8::1/64", nullptr, "host bits set below the prefix length"},
                    CidrCase{"10.0.0.0/33", nullptr, "prefix length must be 0-32"},
                    CidrCase{"2001:db8::/129", nullptr, "prefix length must be 0-128"},
                    CidrCase{"10.0.0.0/", nullptr, "prefix length must be 0-32"},
                    CidrCase{"10.0.0.0/-1", nullptr, "prefix length must be 0-32"},
                    CidrCase{"10.0.0.256", nullptr, "not an IPv4 or IPv6 address"},
                    CidrCase{"10.0.0", nullptr, "not an IPv4 or IPv6 address"},
                    CidrCase{"", nullptr, "not an IPv4 or IPv6 address"},
                    CidrCase{"example.com", nullptr, "not an IPv4 or IPv6 address"}));

TEST(CidrTest, Last) {
  EXPECT_EQ(Cidr::parse("203.0.113.0/24")->last().toString(), "203.0.113.255");
  EXPECT_EQ(Cidr::parse("2001:db8::/64")->last().toString(), "2001:db8::ffff:ffff:ffff:ffff");
}

class PortParseTest : public testing::TestWithParam<PortCase> {};

TEST_P(PortParseTest, Parses) {
  expectParse<PortSpec>(GetParam());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PortParseTest,
    testing::Values(PortCase{"tcp/5432", "tcp/5432", ""}, PortCase{"udp/53", "udp/53", ""},
                    PortCase{"tcp/8000-8100", "tcp/8000-8100", ""}, PortCase{"tcp", "tcp", ""},
                    PortCase{"udp", "udp", ""}, PortCase{"icmp", "icmp", ""},
                    PortCase{"icmpv6", "icmpv6", ""}, PortCase{"any", "any", ""},
                    PortCase{"tcp/0-65535", "tcp", ""}, PortCase{"tcp/65535", "tcp/65535", ""},
                    PortCase{"tcp/65536", nullptr, "port must be 0-65535"},
                    PortCase{"tcp/", nullptr, "port must be 0-65535"},
                    PortCase{"tcp/http", nullptr, "port must be 0-65535"},
                    PortCase{"tcp/80-", nullptr, "port must be 0-65535"},
                    PortCase{"tcp/8100-8000", nullptr, "port range ends before it starts"},
                    PortCase{"icmp/8", nullptr, "only tcp and udp take ports"},
                    PortCase{"any/1", nullptr, "only tcp and udp take ports"},
                    PortCase{"sctp/80", nullptr, "protocol must be tcp, udp, icmp, icmpv6 or any"},
                    PortCase{"TCP/80", nullptr, "protocol must be tcp, udp, icmp, icmpv6 or any"},
                    PortCase{"", nullptr, "protocol must be tcp, udp, icmp, icmpv6 or any"}));

TEST(PortSpecTest, FormsMapToProtocolAndPortRanges) {
  auto tcp = *PortSpec::parse("tcp/8000-8100");
  EXPECT_EQ(tcp.protoLo, kProtoTcp);
  EXPECT_EQ(tcp.protoHi, kProtoTcp);
  EXPECT_EQ(tcp.portLo, 8000);
  EXPECT_EQ(tcp.portHi, 8100);
  auto any = *PortSpec::parse("any");
  EXPECT_TRUE(any.any());
  auto icmp = *PortSpec::parse("icmp");
  EXPECT_TRUE(icmp.appliesTo(Family::kIpv4));
  EXPECT_FALSE(icmp.appliesTo(Family::kIpv6));
  auto icmpv6 = *PortSpec::parse("icmpv6");
  EXPECT_FALSE(icmpv6.appliesTo(Family::kIpv4));
  EXPECT_TRUE(icmpv6.appliesTo(Family::kIpv6));
}

TEST(PortSpecTest, Intersect) {
  auto a = *PortSpec::parse("tcp/8000-8100");
  EXPECT_EQ(a.intersect(*PortSpec::parse("tcp/8050-9000"))->toString(), "tcp/8050-8100");
  EXPECT_EQ(a.intersect(*PortSpec::parse("any"))->toString(), "tcp/8000-8100");
  EXPECT_FALSE(a.intersect(*PortSpec::parse("udp")));
  EXPECT_FALSE(a.intersect(*PortSpec::parse("tcp/22")));
}

}  // namespace
}  // namespace bulkhead::policy
