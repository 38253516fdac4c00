// Addresses, prefixes and port specifications of the policy language.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bulkhead::policy {

enum class Family : uint8_t { kIpv4 = 4, kIpv6 = 6 };

// An IPv4 or IPv6 address in network byte order. IPv4 uses bytes [0, 4).
struct IpAddr {
  Family family = Family::kIpv4;
  std::array<uint8_t, 16> bytes{};

  size_t size() const { return family == Family::kIpv4 ? 4 : 16; }
  std::string toString() const;
  static std::optional<IpAddr> parse(std::string_view text);

  auto operator<=>(const IpAddr&) const = default;
};

// A prefix, stored with its host bits cleared.
struct Cidr {
  IpAddr addr;
  uint8_t prefixLen = 0;

  // Last address covered by the prefix.
  IpAddr last() const;
  std::string toString() const;
  // Accepts "a.b.c.d/n", "x::y/n" and a bare address (a host prefix). Host
  // bits set below the prefix are an error (likely a typo), as in most tools.
  static std::optional<Cidr> parse(std::string_view text, std::string* why = nullptr);

  auto operator<=>(const Cidr&) const = default;
};

// Protocol numbers bulkhead names.
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

// One port form (docs/policy.md): tcp/5432, udp/53, tcp/8000-8100, tcp, icmp,
// icmpv6, any. Expressed as a protocol range and a destination port range so
// every form maps onto an `inet_proto . inet_service` interval.
struct PortSpec {
  uint8_t protoLo = 0, protoHi = 255;
  uint16_t portLo = 0, portHi = 65535;

  bool any() const { return protoLo == 0 && protoHi == 255; }
  // icmp only means something for IPv4, icmpv6 only for IPv6.
  bool appliesTo(Family family) const;
  std::string toString() const;
  static std::optional<PortSpec> parse(std::string_view text, std::string* why = nullptr);
  // The traffic both specs allow, if any.
  std::optional<PortSpec> intersect(const PortSpec& other) const;

  auto operator<=>(const PortSpec&) const = default;
};

// A policy's port list, where none written means every port.
std::vector<PortSpec> portsOrAny(const std::vector<PortSpec>& ports);

// `ports` (none: every port) narrowed by `narrow` (none: no narrowing): the
// intersection of each pair. Unlike its inputs, the result is an explicit
// list: empty means that nothing is left, e.g. an egress rule naming a
// service with `ports: [udp/53]` when the service listens on tcp/5432 only.
std::vector<PortSpec> narrowPorts(const std::vector<PortSpec>& ports,
                                  const std::vector<PortSpec>& narrow);

}  // namespace bulkhead::policy
