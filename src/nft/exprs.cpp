#include "bulkhead/nft/exprs.h"

// Before the linux/ headers: glibc and uapi then agree on struct in_addr.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libnftnl/expr.h>
#include <linux/icmpv6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>

namespace bulkhead::nft {

namespace {

using compiler::PacketField;

ExprPtr alloc(const char* name) {
  return ExprPtr(nftnl_expr_alloc(name));
}

Status allocFailed(const char* name) {
  return makeError(ErrorCode::kInternal, std::string("cannot allocate nftnl expression ") + name);
}

// Each helper appends one kernel expression; the rule takes ownership.
Status meta(nftnl_rule* rule, uint32_t key, uint32_t dreg) {
  ExprPtr e = alloc("meta");
  if (!e) return allocFailed("meta");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, dreg);
  nftnl_rule_add_expr(rule, e.release());
  return {};
}

// A header field where the kernel's own structs put it; the payload
// expression loads it from the packet (network byte order).
struct Field {
  uint32_t base;
  uint32_t offset;
  uint32_t len;
};
#define BH_FIELD(base, header, member)                     \
  Field {                                                  \
    base, offsetof(header, member), sizeof(header::member) \
  }
constexpr Field kIpSaddr = BH_FIELD(NFT_PAYLOAD_NETWORK_HEADER, iphdr, saddr);
constexpr Field kIpDaddr = BH_FIELD(NFT_PAYLOAD_NETWORK_HEADER, iphdr, daddr);
constexpr Field kIp6Saddr = BH_FIELD(NFT_PAYLOAD_NETWORK_HEADER, ipv6hdr, saddr);
constexpr Field kIp6Daddr = BH_FIELD(NFT_PAYLOAD_NETWORK_HEADER, ipv6hdr, daddr);
// `th dport`, `udp sport`: TCP, UDP, SCTP and DCCP all start with the two
// ports, so one offset serves every transport (as nft's `th`).
constexpr Field kThSport = BH_FIELD(NFT_PAYLOAD_TRANSPORT_HEADER, udphdr, source);
constexpr Field kThDport = BH_FIELD(NFT_PAYLOAD_TRANSPORT_HEADER, udphdr, dest);
constexpr Field kIcmp6Type = BH_FIELD(NFT_PAYLOAD_TRANSPORT_HEADER, icmp6hdr, icmp6_type);
#undef BH_FIELD
static_assert(offsetof(tcphdr, source) == kThSport.offset &&
              offsetof(tcphdr, dest) == kThDport.offset);

Status payload(nftnl_rule* rule, uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
  ExprPtr e = alloc("payload");
  if (!e) return allocFailed("payload");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, dreg);
  nftnl_rule_add_expr(rule, e.release());
  return {};
}

Status payload(nftnl_rule* rule, Field field, uint32_t dreg) {
  return payload(rule, field.base, field.offset, field.len, dreg);
}

Status cmp(nftnl_rule* rule, uint32_t sreg, uint32_t op, const void* data, uint32_t len) {
  ExprPtr e = alloc("cmp");
  if (!e) return allocFailed("cmp");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, sreg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, len);
  nftnl_rule_add_expr(rule, e.release());
  return {};
}

Status cmpU8(nftnl_rule* rule, uint32_t sreg, uint32_t op, uint8_t value) {
  return cmp(rule, sreg, op, &value, sizeof value);
}

// The value travels in network byte order, as the packet holds it.
Status cmpBe16(nftnl_rule* rule, uint32_t sreg, uint32_t op, uint16_t value) {
  const uint16_t be = htons(value);
  return cmp(rule, sreg, op, &be, sizeof be);
}

Status l4protoIs(nftnl_rule* rule, uint8_t proto) {
  if (Status s = meta(rule, NFT_META_L4PROTO, NFT_REG32_00); !s) return s;
  return cmpU8(rule, NFT_REG32_00, NFT_CMP_EQ, proto);
}

Status nfprotoIs(nftnl_rule* rule, compiler::Family family) {
  if (Status s = meta(rule, NFT_META_NFPROTO, NFT_REG32_00); !s) return s;
  return cmpU8(rule, NFT_REG32_00, NFT_CMP_EQ,
               family == compiler::Family::kIpv4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
}

Status loadSelector(nftnl_rule* rule, PacketField selector, uint32_t reg) {
  switch (selector) {
    case PacketField::kIifname:
      return meta(rule, NFT_META_IIFNAME, reg);
    case PacketField::kIpSaddr:
      return payload(rule, kIpSaddr, reg);
    case PacketField::kIpDaddr:
      return payload(rule, kIpDaddr, reg);
    case PacketField::kIp6Saddr:
      return payload(rule, kIp6Saddr, reg);
    case PacketField::kIp6Daddr:
      return payload(rule, kIp6Daddr, reg);
    // nft adds a byteorder expression here that converts 1 byte with size 2:
    // a no-op. meta stores the u8 zero-padded, which is the key layout.
    case PacketField::kL4proto:
      return meta(rule, NFT_META_L4PROTO, reg);
    case PacketField::kThDport:
      return payload(rule, kThDport, reg);
  }
  return makeError(ErrorCode::kInternal, "unknown selector");
}

std::optional<compiler::Family> selectorFamily(PacketField selector) {
  switch (selector) {
    case PacketField::kIpSaddr:
    case PacketField::kIpDaddr:
      return compiler::Family::kIpv4;
    case PacketField::kIp6Saddr:
    case PacketField::kIp6Daddr:
      return compiler::Family::kIpv6;
    default:
      return std::nullopt;
  }
}

Status lookup(nftnl_rule* rule, uint32_t sreg, const std::string& set, const SetIds& setIds,
              bool verdictMap, bool invert) {
  ExprPtr e = alloc("lookup");
  if (!e) return allocFailed("lookup");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, sreg);
  nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
  // The kernel resolves a set created earlier in the same batch by name as
  // well; the id also covers a set deleted and re-created in one batch.
  if (auto it = setIds.find(set); it != setIds.end()) {
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, it->second);
  }
  if (verdictMap) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
  if (invert) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  nftnl_rule_add_expr(rule, e.release());
  return {};
}

}  // namespace

uint32_t selectorRegisterLength(PacketField selector) {
  switch (selector) {
    case PacketField::kIifname:
      return 16;
    case PacketField::kIpSaddr:
    case PacketField::kIpDaddr:
      return 4;
    case PacketField::kIp6Saddr:
    case PacketField::kIp6Daddr:
      return 16;
    case PacketField::kL4proto:
      return 4;
    case PacketField::kThDport:
      return 4;
  }
  return 0;
}

Result<uint32_t> addSelectorLoads(nftnl_rule* rule, const std::vector<PacketField>& selectors) {
  if (selectors.empty()) return makeError(ErrorCode::kInvalidInput, "lookup without selectors");
  std::optional<compiler::Family> family;
  uint32_t bytes = 0;
  for (PacketField s : selectors) {
    if (auto f = selectorFamily(s)) {
      if (family && *family != *f) {
        return makeError(ErrorCode::kInvalidInput, "lookup mixes IPv4 and IPv6 selectors");
      }
      family = f;
    }
    bytes += selectorRegisterLength(s);
  }
  if (bytes > compiler::kMaxKeyBytes) {
    return makeError(ErrorCode::kInvalidInput,
                     "lookup key of " + std::to_string(bytes) + " bytes is too long");
  }
  // Table family inet: an address is only where the header says it is.
  if (family) {
    if (Status s = nfprotoIs(rule, *family); !s) return s.takeError();
  }
  uint32_t reg = NFT_REG32_00;
  for (PacketField s : selectors) {
    if (Status st = loadSelector(rule, s, reg); !st) return st.takeError();
    reg += selectorRegisterLength(s) / NFT_REG32_SIZE;
  }
  return static_cast<uint32_t>(NFT_REG32_00);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::MetaNfproto& e) {
  return nfprotoIs(rule, e.family);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::MetaL4proto& e) {
  return l4protoIs(rule, e.proto);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::CtState& e) {
  ExprPtr ct = alloc("ct");
  if (!ct) return allocFailed("ct");
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_DREG, NFT_REG32_00);
  nftnl_rule_add_expr(rule, ct.release());

  // ct state is a host-endian u32 bitmask: (state & mask) != 0.
  ExprPtr bw = alloc("bitwise");
  if (!bw) return allocFailed("bitwise");
  const uint32_t mask = e.mask, zero = 0;
  nftnl_expr_set_u32(bw.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG32_00);
  nftnl_expr_set_u32(bw.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG32_00);
  nftnl_expr_set_u32(bw.get(), NFTNL_EXPR_BITWISE_LEN, sizeof mask);
  nftnl_expr_set(bw.get(), NFTNL_EXPR_BITWISE_MASK, &mask, sizeof mask);
  nftnl_expr_set(bw.get(), NFTNL_EXPR_BITWISE_XOR, &zero, sizeof zero);
  nftnl_rule_add_expr(rule, bw.release());
  return cmp(rule, NFT_REG32_00, NFT_CMP_NEQ, &zero, sizeof zero);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::IcmpV6TypeRange& e) {
  if (e.lo > e.hi) return makeError(ErrorCode::kInvalidInput, "icmpv6 type range lo > hi");
  if (Status s = l4protoIs(rule, IPPROTO_ICMPV6); !s) return s;
  if (Status s = payload(rule, kIcmp6Type, NFT_REG32_00); !s) return s;
  if (e.lo == e.hi) return cmpU8(rule, NFT_REG32_00, NFT_CMP_EQ, e.lo);
  if (Status s = cmpU8(rule, NFT_REG32_00, NFT_CMP_GTE, e.lo); !s) return s;
  return cmpU8(rule, NFT_REG32_00, NFT_CMP_LTE, e.hi);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::UdpPorts& e) {
  if (Status s = l4protoIs(rule, IPPROTO_UDP); !s) return s;
  if (e.sport != 0) {
    if (Status s = payload(rule, kThSport, NFT_REG32_00); !s) return s;
    if (Status s = cmpBe16(rule, NFT_REG32_00, NFT_CMP_EQ, e.sport); !s) return s;
  }
  if (Status s = payload(rule, kThDport, NFT_REG32_00); !s) return s;
  return cmpBe16(rule, NFT_REG32_00, NFT_CMP_EQ, e.dport);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::Lookup& e, const SetIds& setIds) {
  Result<uint32_t> reg = addSelectorLoads(rule, e.selectors);
  if (!reg) return reg.takeError();
  return lookup(rule, *reg, e.set, setIds, /*verdictMap=*/false, e.invert);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::Vmap& e, const SetIds& setIds) {
  Result<uint32_t> reg = addSelectorLoads(rule, e.selectors);
  if (!reg) return reg.takeError();
  return lookup(rule, *reg, e.map, setIds, /*verdictMap=*/true, /*invert=*/false);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::Limit& e) {
  if (e.ratePerSecond == 0) return makeError(ErrorCode::kInvalidInput, "limit rate 0");
  ExprPtr x = alloc("limit");
  if (!x) return allocFailed("limit");
  nftnl_expr_set_u64(x.get(), NFTNL_EXPR_LIMIT_RATE, e.ratePerSecond);
  nftnl_expr_set_u64(x.get(), NFTNL_EXPR_LIMIT_UNIT, 1);  // seconds
  nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LIMIT_BURST, e.burst);
  nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
  nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LIMIT_FLAGS, 0);
  nftnl_rule_add_expr(rule, x.release());
  return {};
}

Status addExpr(nftnl_rule* rule, const compiler::expr::IfnameMatch& e) {
  // As nft compiles `iifname "veth*"`: compare only the bytes before the
  // `*`; a name without one is compared whole, NUL padding included.
  const bool wildcard = !e.pattern.empty() && e.pattern.back() == '*';
  const std::string stem = wildcard ? e.pattern.substr(0, e.pattern.size() - 1) : e.pattern;
  if (stem.empty() || stem.size() >= 16)
    return makeError(ErrorCode::kInvalidInput, "bad interface pattern \"" + e.pattern + "\"");
  if (Status s = meta(rule, NFT_META_IIFNAME, NFT_REG32_00); !s) return s;
  char name[16] = {};
  std::copy(stem.begin(), stem.end(), name);
  return cmp(rule, NFT_REG32_00, NFT_CMP_EQ, name,
             wildcard ? static_cast<uint32_t>(stem.size()) : sizeof name);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::SaddrPrefix& e) {
  const bool v4 = e.addr.family == compiler::Family::kIpv4;
  const uint32_t len = v4 ? 4 : 16;
  if (e.prefixLen > len * 8) return makeError(ErrorCode::kInvalidInput, "prefix too long");
  if (Status s = nfprotoIs(rule, e.addr.family); !s) return s;
  if (Status s = payload(rule, v4 ? kIpSaddr : kIp6Saddr, NFT_REG32_00); !s) return s;
  uint8_t mask[16] = {}, value[16] = {}, zero[16] = {};
  for (uint32_t i = 0; i < len; ++i) {
    const int bits = std::clamp(static_cast<int>(e.prefixLen) - static_cast<int>(i * 8), 0, 8);
    mask[i] = static_cast<uint8_t>(0xff00 >> bits);
    value[i] = e.addr.bytes[i] & mask[i];
  }
  if (e.prefixLen < len * 8) {
    ExprPtr bw = alloc("bitwise");
    if (!bw) return allocFailed("bitwise");
    nftnl_expr_set_u32(bw.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG32_00);
    nftnl_expr_set_u32(bw.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG32_00);
    nftnl_expr_set_u32(bw.get(), NFTNL_EXPR_BITWISE_LEN, len);
    nftnl_expr_set(bw.get(), NFTNL_EXPR_BITWISE_MASK, mask, len);
    nftnl_expr_set(bw.get(), NFTNL_EXPR_BITWISE_XOR, zero, len);
    nftnl_rule_add_expr(rule, bw.release());
  }
  return cmp(rule, NFT_REG32_00, NFT_CMP_EQ, value, len);
}

Status addExpr(nftnl_rule* rule, const compiler::expr::Meter& e, const SetIds& setIds) {
  if (e.ratePerSecond == 0) return makeError(ErrorCode::kInvalidInput, "limit rate 0");
  if (Status s = loadSelector(rule, e.key, NFT_REG32_00); !s) return s;
  ExprPtr limit = alloc("limit");
  if (!limit) return allocFailed("limit");
  nftnl_expr_set_u64(limit.get(), NFTNL_EXPR_LIMIT_RATE, e.ratePerSecond);
  nftnl_expr_set_u64(limit.get(), NFTNL_EXPR_LIMIT_UNIT, 1);  // seconds
  nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_LIMIT_BURST, e.burst);
  nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
  nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_LIMIT_FLAGS, 0);
  ExprPtr x = alloc("dynset");
  if (!x) return allocFailed("dynset");
  // `update` adds the key when missing (cloning the limit into the element)
  // and refreshes its timeout; the element's own limit then decides, and
  // over its rate it ends the rule like a plain `limit` does.
  nftnl_expr_set_u32(x.get(), NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG32_00);
  nftnl_expr_set_u32(x.get(), NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
  nftnl_expr_set_str(x.get(), NFTNL_EXPR_DYNSET_SET_NAME, e.set.c_str());
  if (auto it = setIds.find(e.set); it != setIds.end())
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_DYNSET_SET_ID, it->second);
  nftnl_expr_set(x.get(), NFTNL_EXPR_DYNSET_EXPR, limit.release(), 0);  // dynset owns it
  nftnl_rule_add_expr(rule, x.release());
  return {};
}

Status addExpr(nftnl_rule* rule, const compiler::expr::Log& e) {
  // The kernel silently truncates longer prefixes (NF_LOG_PREFIXLEN 128).
  if (e.prefix.size() > 127) {
    return makeError(ErrorCode::kInvalidInput, "log prefix longer than 127 bytes: " + e.prefix);
  }
  ExprPtr x = alloc("log");
  if (!x) return allocFailed("log");
  nftnl_expr_set_u16(x.get(), NFTNL_EXPR_LOG_GROUP, e.group);
  if (!e.prefix.empty()) nftnl_expr_set_str(x.get(), NFTNL_EXPR_LOG_PREFIX, e.prefix.c_str());
  nftnl_rule_add_expr(rule, x.release());
  return {};
}

Status addExpr(nftnl_rule* rule, const compiler::expr::Counter&) {
  ExprPtr x = alloc("counter");
  if (!x) return allocFailed("counter");
  nftnl_rule_add_expr(rule, x.release());
  return {};
}

Status addExpr(nftnl_rule* rule, const compiler::expr::Reject& e) {
  ExprPtr x = alloc("reject");
  if (!x) return allocFailed("reject");
  if (e.kind == compiler::expr::Reject::Kind::kTcpReset) {
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
    nftnl_expr_set_u8(x.get(), NFTNL_EXPR_REJECT_CODE, 0);
  } else {
    nftnl_expr_set_u32(x.get(), NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
    nftnl_expr_set_u8(x.get(), NFTNL_EXPR_REJECT_CODE, NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
  }
  nftnl_rule_add_expr(rule, x.release());
  return {};
}

Status addExpr(nftnl_rule* rule, const compiler::expr::VerdictStatement& e) {
  const compiler::Verdict& v = e.verdict;
  const bool toChain =
      v.kind == compiler::Verdict::Kind::kJump || v.kind == compiler::Verdict::Kind::kGoto;
  if (toChain && v.chain.empty()) {
    return makeError(ErrorCode::kInvalidInput, "jump/goto without a chain");
  }
  ExprPtr x = alloc("immediate");
  if (!x) return allocFailed("immediate");
  nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_VERDICT, verdictCode(v.kind));
  if (toChain) nftnl_expr_set_str(x.get(), NFTNL_EXPR_IMM_CHAIN, v.chain.c_str());
  nftnl_rule_add_expr(rule, x.release());
  return {};
}

Status addExpr(nftnl_rule* rule, const compiler::Expr& e, const SetIds& setIds) {
  return std::visit(
      [&](const auto& alt) -> Status {
        using T = std::decay_t<decltype(alt)>;
        if constexpr (std::is_same_v<T, compiler::expr::Lookup> ||
                      std::is_same_v<T, compiler::expr::Vmap> ||
                      std::is_same_v<T, compiler::expr::Meter>) {
          return addExpr(rule, alt, setIds);
        } else {
          return addExpr(rule, alt);
        }
      },
      e);
}

uint32_t verdictCode(compiler::Verdict::Kind kind) {
  switch (kind) {
    case compiler::Verdict::Kind::kAccept:
      return NF_ACCEPT;
    case compiler::Verdict::Kind::kDrop:
      return NF_DROP;
    case compiler::Verdict::Kind::kReturn:
      return static_cast<uint32_t>(NFT_RETURN);
    case compiler::Verdict::Kind::kJump:
      return static_cast<uint32_t>(NFT_JUMP);
    case compiler::Verdict::Kind::kGoto:
      return static_cast<uint32_t>(NFT_GOTO);
  }
  return NF_DROP;
}

}  // namespace bulkhead::nft
