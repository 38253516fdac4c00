// When the flow feed reads the kernel's rule counters (CounterSchedule):
// every second while NFLOG events come, once at least a second after the
// last one (an attempt is counted at most a second after its event), and
// otherwise rarely.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "bulkhead/agent/flow_feed.h"

namespace bulkhead::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Time = common::SteadyClock::time_point;

// The feed's loop, in 50 ms turns (its NFLOG read timeout) over `length`:
// the times it samples at.
std::vector<Time> samplesOver(Time start, milliseconds length, const std::vector<Time>& events) {
  CounterSchedule schedule(start);
  std::vector<Time> out;
  size_t next = 0;
  for (Time now = start; now < start + length; now += milliseconds(50)) {
    bool any = false;
    while (next < events.size() && events[next] <= now) {
      any = true;
      ++next;
    }
    if (any) schedule.onEvents(now);
    if (schedule.due(now)) out.push_back(now);
  }
  return out;
}

TEST(CounterSchedule, IdleSamplesOnlyEveryIdleInterval) {
  const Time t0{};
  const auto samples = samplesOver(t0, seconds(95), {});
  ASSERT_EQ(samples.size(), 4u);  // 0, 30, 60, 90 s
  for (size_t i = 1; i < samples.size(); ++i)
    EXPECT_EQ(samples[i] - samples[i - 1], CounterSchedule::kIdleInterval);
}

TEST(CounterSchedule, EventsBringSamplesEverySecondAndOneAfter) {
  const Time t0{};
  std::vector<Time> events;
  for (auto t = seconds(40); t < seconds(45); t += seconds(1))  // a burst from 40 to 44 s
    events.push_back(t0 + t);
  const auto samples = samplesOver(t0, seconds(80), events);
  // The idle sample at 30 s, then one within a second of the first event.
  auto firstAfter = [&](Time t) {
    return *std::find_if(samples.begin(), samples.end(), [&](Time s) { return s >= t; });
  };
  EXPECT_LE(firstAfter(events.front()) - events.front(), seconds(1));
  // Every second while they come, and one at least a second after the last.
  for (auto t = events.front(); t < events.back(); t += seconds(1))
    EXPECT_LE(firstAfter(t) - t, seconds(1));
  EXPECT_LE(firstAfter(events.back() + seconds(1)) - events.back(), seconds(2));
  // Then back to the idle pace.
  const auto quiet = std::count_if(samples.begin(), samples.end(),
                                   [&](Time s) { return s > events.back() + seconds(3); });
  EXPECT_LE(quiet, 2);
}

// Whatever the events: every attempt (counted at most a second after an
// event) is in a sample taken at most two seconds after it.
TEST(CounterSchedule, EveryCountedAttemptIsSampledSoonAfter) {
  std::mt19937 rng(3);
  const Time t0{};
  for (int round = 0; round < 50; ++round) {
    std::vector<Time> events;
    Time t = t0;
    for (int i = 0; i < 40; ++i) {
      t += milliseconds(rng() % 4000);
      events.push_back(t);
    }
    const auto samples =
        samplesOver(t0, std::chrono::duration_cast<milliseconds>(t - t0 + seconds(5)), events);
    for (const Time e : events) {
      const Time counted = e + seconds(1);  // the latest its attempt counts
      auto s = std::find_if(samples.begin(), samples.end(), [&](Time x) { return x >= counted; });
      ASSERT_NE(s, samples.end()) << "round " << round;
      EXPECT_LE(*s - counted, seconds(1) + milliseconds(50)) << "round " << round;
    }
  }
}

}  // namespace
}  // namespace bulkhead::agent
