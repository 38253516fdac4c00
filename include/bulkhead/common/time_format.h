// RFC 3339 times as bulkhead writes and reads them: always UTC ("Z").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace bulkhead::common {

// Wall-clock time: what events carry and what people read.
using WallClock = std::chrono::system_clock;
// Monotonic time: intervals, deadlines and timers, which a change of the
// wall clock must not stretch or cut short.
using SteadyClock = std::chrono::steady_clock;

enum class TimePrecision { kSeconds, kMicros };

// "2026-11-25T13:06:40.343246Z" (kMicros) or "2026-11-25T13:06:40Z"
// (kSeconds); times before 1970 are written too.
std::string formatRfc3339(WallClock::time_point t,
                          TimePrecision precision = TimePrecision::kMicros);

// Reads YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) ('t', 'z' and a
// space for 'T' accepted, fraction down to microseconds, a leap second is
// read as :59); nullopt for anything else, including out-of-range fields.
std::optional<WallClock::time_point> parseRfc3339(std::string_view text);

}  // namespace bulkhead::common
