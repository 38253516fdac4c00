// Denied attempts as the flow feed hands them to the scan detector, for the
// scan detector's unit tests.
#pragma once

#include <cstdint>
#include <string>

#include "bulkhead/flows/event.h"
#include "bulkhead/policy/address.h"

namespace bulkhead::agent::testing_scan {

inline flows::FlowEvent attempt(const std::string& workload, const policy::IpAddr& dst,
                                uint16_t port, flows::WallClock::time_point t,
                                const std::string& proto = "tcp") {
  flows::FlowEvent e;
  e.time = t;
  e.action = flows::FlowAction::kDeny;
  e.app = "web";
  e.workload = workload;
  e.dst = dst;
  e.dport = port;
  e.proto = proto;
  return e;
}

// 2001:db8::/64 with `i` as the interface identifier.
inline policy::IpAddr v6(uint64_t i) {
  policy::IpAddr a = *policy::IpAddr::parse("2001:db8::");
  for (int b = 0; b < 8; ++b)
    a.bytes[size_t(15 - b)] = uint8_t(i >> (8 * b));
  return a;
}

}  // namespace bulkhead::agent::testing_scan
