// The payload expressions the builders emit: header fields are named by the
// kernel's structs (offsetof) in nft/exprs.cpp; the bytes must stay what nft
// itself sends for `ip saddr`, `ip6 daddr`, `th dport`, `udp sport`,
// `icmpv6 type` (the offsets of RFC 791, 8200, 768 and 4443).
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter/nf_tables.h>

#include <cstring>
#include <tuple>
#include <vector>

#include "bulkhead/nft/exprs.h"
#include "bulkhead/nft/objects.h"

namespace bulkhead::nft {
namespace {

using compiler::PacketField;
namespace ex = compiler::expr;

constexpr uint32_t kNet = NFT_PAYLOAD_NETWORK_HEADER, kTh = NFT_PAYLOAD_TRANSPORT_HEADER;

// (base, offset, len) of every payload expression of the rule, in order.
using Load = std::tuple<uint32_t, uint32_t, uint32_t>;

std::vector<Load> payloads(const compiler::Expr& e) {
  RulePtr rule(nftnl_rule_alloc());
  const Status st = addExpr(rule.get(), e, SetIds{{"s", 1}});
  EXPECT_TRUE(st.ok()) << st.error().describe();
  std::vector<Load> out;
  nftnl_expr_foreach(
      rule.get(),
      [](nftnl_expr* x, void* data) -> int {
        if (std::strcmp(nftnl_expr_get_str(x, NFTNL_EXPR_NAME), "payload") == 0)
          static_cast<std::vector<Load>*>(data)->emplace_back(
              nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_BASE),
              nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_OFFSET),
              nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_LEN));
        return 0;
      },
      &out);
  return out;
}

TEST(NftPayload, LookupSelectorsLoadTheHeaderFieldsNftLoads) {
  EXPECT_EQ(payloads(ex::Lookup{{PacketField::kIpSaddr}, "s"}), (std::vector<Load>{{kNet, 12, 4}}));
  EXPECT_EQ(payloads(ex::Lookup{
                {PacketField::kIpDaddr, PacketField::kL4proto, PacketField::kThDport}, "s"}),
            (std::vector<Load>{{kNet, 16, 4}, {kTh, 2, 2}}));
  EXPECT_EQ(payloads(ex::Lookup{{PacketField::kIp6Saddr}, "s"}),
            (std::vector<Load>{{kNet, 8, 16}}));
  EXPECT_EQ(payloads(ex::Lookup{{PacketField::kIp6Daddr, PacketField::kThDport}, "s"}),
            (std::vector<Load>{{kNet, 24, 16}, {kTh, 2, 2}}));
  EXPECT_TRUE(payloads(ex::Lookup{{PacketField::kIifname}, "s"}).empty());  // meta, no payload
}

TEST(NftPayload, TransportMatchesLoadPortsAndIcmpv6Type) {
  EXPECT_EQ(payloads(ex::UdpPorts{68, 67}), (std::vector<Load>{{kTh, 0, 2}, {kTh, 2, 2}}));
  EXPECT_EQ(payloads(ex::UdpPorts{0, 547}), (std::vector<Load>{{kTh, 2, 2}}));
  EXPECT_EQ(payloads(ex::IcmpV6TypeRange{130, 143}), (std::vector<Load>{{kTh, 0, 1}}));
}

TEST(NftPayload, SourcePrefixesLoadTheSourceAddress) {
  EXPECT_EQ(payloads(ex::SaddrPrefix{*policy::IpAddr::parse("0.0.0.0"), 32}),
            (std::vector<Load>{{kNet, 12, 4}}));
  EXPECT_EQ(payloads(ex::SaddrPrefix{*policy::IpAddr::parse("fe80::"), 10}),
            (std::vector<Load>{{kNet, 8, 16}}));
}

}  // namespace
}  // namespace bulkhead::nft
