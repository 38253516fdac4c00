#include "bulkhead/policy/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace bulkhead::policy {

namespace {

bool parseUint(std::string_view s, unsigned long max, unsigned long* out) {
  if (s.empty() || s.size() > 5) return false;
  unsigned long v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  std::string s(text);
  IpAddr a;
  if (s.find(':') == std::string::npos) {
    a.family = Family::kIpv4;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  } else {
    a.family = Family::kIpv6;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  }
  return a;
}

std::string IpAddr::toString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == Family::kIpv4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

IpAddr Cidr::last() const {
  IpAddr out = addr;
  const unsigned bits = addr.size() * 8;
  for (unsigned i = prefixLen; i < bits; ++i)
    out.bytes[i / 8] |= uint8_t(0x80u >> (i % 8));
  return out;
}

std::string Cidr::toString() const {
  return addr.toString() + "/" + std::to_string(prefixLen);
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* why) {
  auto fail = [&](const char* msg) -> std::optional<Cidr> {
    if (why) *why = msg;
    return std::nullopt;
  };
  const auto slash = text.find('/');
  auto ip = IpAddr::parse(text.substr(0, slash));
  if (!ip) return fail("not an IPv4 or IPv6 address");
  Cidr c{*ip, uint8_t(ip->size() * 8)};
  if (slash != std::string_view::npos) {
    unsigned long len = 0;
    if (!parseUint(text.substr(slash + 1), ip->size() * 8, &len))
      return fail(ip->family == Family::kIpv4 ? "prefix length must be 0-32"
                                              : "prefix length must be 0-128");
    c.prefixLen = uint8_t(len);
  }
  for (unsigned i = c.prefixLen; i < ip->size() * 8; ++i) {
    if (c.addr.bytes[i / 8] & (0x80u >> (i % 8)))
      return fail("host bits set below the prefix length");
  }
  return c;
}

bool PortSpec::appliesTo(Family family) const {
  if (protoLo == protoHi && protoLo == kProtoIcmp) return family == Family::kIpv4;
  if (protoLo == protoHi && protoLo == kProtoIcmpv6) return family == Family::kIpv6;
  return true;
}

std::string PortSpec::toString() const {
  if (any()) return "any";
  std::string proto;
  switch (protoLo) {
    case kProtoTcp:
      proto = "tcp";
      break;
    case kProtoUdp:
      proto = "udp";
      break;
    case kProtoIcmp:
      return "icmp";
    case kProtoIcmpv6:
      return "icmpv6";
    default:
      proto = "proto" + std::to_string(protoLo);
  }
  if (portLo == 0 && portHi == 65535) return proto;
  if (portLo == portHi) return proto + "/" + std::to_string(portLo);
  return proto + "/" + std::to_string(portLo) + "-" + std::to_string(portHi);
}

std::optional<PortSpec> PortSpec::parse(std::string_view text, std::string* why) {
  auto fail = [&](const char* msg) -> std::optional<PortSpec> {
    if (why) *why = msg;
    return std::nullopt;
  };
  const auto slash = text.find('/');
  const std::string_view proto = text.substr(0, slash);
  PortSpec p;
  if (proto == "any" || proto == "icmp" || proto == "icmpv6") {
    if (slash != std::string_view::npos) return fail("only tcp and udp take ports");
    if (proto == "icmp") p.protoLo = p.protoHi = kProtoIcmp;
    if (proto == "icmpv6") p.protoLo = p.protoHi = kProtoIcmpv6;
    return p;
  }
  if (proto == "tcp") {
    p.protoLo = p.protoHi = kProtoTcp;
  } else if (proto == "udp") {
    p.protoLo = p.protoHi = kProtoUdp;
  } else {
    return fail("protocol must be tcp, udp, icmp, icmpv6 or any");
  }
  if (slash == std::string_view::npos) return p;
  const std::string_view range = text.substr(slash + 1);
  const auto dash = range.find('-');
  unsigned long lo = 0, hi = 0;
  if (!parseUint(range.substr(0, dash), 65535, &lo)) return fail("port must be 0-65535");
  hi = lo;
  if (dash != std::string_view::npos && !parseUint(range.substr(dash + 1), 65535, &hi))
    return fail("port must be 0-65535");
  if (hi < lo) return fail("port range ends before it starts");
  p.portLo = uint16_t(lo);
  p.portHi = uint16_t(hi);
  return p;
}

std::optional<PortSpec> PortSpec::intersect(const PortSpec& o) const {
  PortSpec r;
  r.protoLo = std::max(protoLo, o.protoLo);
  r.protoHi = std::min(protoHi, o.protoHi);
  r.portLo = std::max(portLo, o.portLo);
  r.portHi = std::min(portHi, o.portHi);
  if (r.protoLo > r.protoHi || r.portLo > r.portHi) return std::nullopt;
  return r;
}

std::vector<PortSpec> portsOrAny(const std::vector<PortSpec>& ports) {
  return ports.empty() ? std::vector<PortSpec>{PortSpec{}} : ports;
}

std::vector<PortSpec> narrowPorts(const std::vector<PortSpec>& ports,
                                  const std::vector<PortSpec>& narrow) {
  const std::vector<PortSpec> base = portsOrAny(ports);
  if (narrow.empty()) return base;
  std::vector<PortSpec> out;
  for (const auto& a : base)
    for (const auto& b : narrow)
      if (auto i = a.intersect(b)) out.push_back(*i);
  return out;
}

}  // namespace bulkhead::policy
