// Interval arithmetic for set elements. The kernel's interval sets reject
// overlapping elements, so everything that becomes an interval element goes
// through here first: overlapping and adjacent ranges are merged, and
// concatenated ranges are cut into disjoint boxes.
#pragma once

#include <optional>
#include <vector>

#include "bulkhead/policy/address.h"

namespace bulkhead::compiler {

// An inclusive address range of one family.
struct AddrRange {
  policy::IpAddr lo, hi;
  auto operator<=>(const AddrRange&) const = default;
};

AddrRange toRange(const policy::Cidr& cidr);

// Sorts and merges overlapping and adjacent ranges (all of one family).
std::vector<AddrRange> mergeRanges(std::vector<AddrRange> ranges);

// One allowed destination: addresses x protocols x destination ports.
struct DestBox {
  AddrRange addrs;
  uint8_t protoLo = 0, protoHi = 255;
  uint16_t portLo = 0, portHi = 65535;
  auto operator<=>(const DestBox&) const = default;
};

// Turns any list of boxes (overlapping or not) into a list of pairwise
// disjoint boxes covering exactly the same points, with adjacent pieces
// merged. Deterministic: the output is sorted.
std::vector<DestBox> disjointBoxes(const std::vector<DestBox>& boxes);

// A range as a prefix when it is exactly one, else nullopt.
std::optional<policy::Cidr> asPrefix(const AddrRange& range);

}  // namespace bulkhead::compiler
