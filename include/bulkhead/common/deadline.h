// Milliseconds left until a deadline, for poll(2) and the other calls that
// take a timeout in whole milliseconds.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>

#include "bulkhead/common/time_format.h"

namespace bulkhead::common {

// Rounded up, never down: with 0.4 ms left, a truncated 0 makes poll return
// at once, and a loop that waits "until the deadline" then spins on the CPU
// for the rest of that millisecond, every time it waits. 0 once the deadline
// has passed; at most INT_MAX.
inline int msUntil(SteadyClock::time_point deadline, SteadyClock::time_point now) {
  if (deadline <= now) return 0;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<long long>(left, INT_MAX));
}

inline int msUntil(SteadyClock::time_point deadline) {
  return msUntil(deadline, SteadyClock::now());
}

}  // namespace bulkhead::common
