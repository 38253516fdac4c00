// The scan detector against a plain model of its contract: per workload
// and kind, a map of each member's last attempt, live while younger than
// the window; at the threshold a finding, the set forgotten, the kind quiet
// for a window. Random traffic with many repeats (the detector's cache of
// recent attempts) and gaps across the window (members expiring between two
// repeats), both families, two protocols: every answer must be the model's.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "bulkhead/agent/scan_detector.h"

namespace bulkhead::agent {
namespace {

using namespace std::chrono_literals;
using Time = flows::WallClock::time_point;
const Time kT0 = Time(1'800'000'000s);

class Model {
 public:
  explicit Model(ScanOptions o) : o_(o) {}

  std::optional<ScanFinding> observe(const flows::FlowEvent& e) {
    State& s = state_[e.workload];
    const std::string port = e.proto + "/" + std::to_string(e.dport);
    const bool sweepOn = !(e.time < s.quietHosts), scanOn = !(e.time < s.quietPorts);
    std::optional<ScanFinding> found;
    if (sweepOn) {
      auto& set = s.sweeps[port];
      add(set, e.dst.toString(), e.time, o_.hosts);
      if (set.size() >= o_.hosts) {
        found = finding(ScanKind::kHosts, set, e, port);
        s.quietHosts = e.time + o_.window;
        set.clear();
      }
    }
    if (scanOn) {
      auto& set = s.scans[e.dst];
      add(set, port, e.time, o_.ports);
      if (set.size() >= o_.ports && !found) {
        found = finding(ScanKind::kPorts, set, e, port);
        s.quietPorts = e.time + o_.window;
        set.clear();
      }
    }
    return found;
  }

 private:
  using Set = std::map<std::string, Time>;
  struct State {
    Time quietHosts{}, quietPorts{};
    std::map<std::string, Set> sweeps;
    std::map<policy::IpAddr, Set> scans;
  };
  // Members past the window leave; a set at its threshold takes no new
  // member (it is a finding already, reported at once or, when the other
  // kind was reported by the same attempt, at the set's next attempt).
  void add(Set& set, const std::string& member, Time now, uint32_t threshold) {
    std::erase_if(set, [&](const auto& m) { return now - m.second >= o_.window; });
    if (set.count(member) || set.size() < threshold) set[member] = now;
  }
  ScanFinding finding(ScanKind kind, const Set& set, const flows::FlowEvent& e,
                      const std::string& port) {
    ScanFinding f;
    f.kind = kind;
    f.workload = e.workload;
    f.distinct = uint32_t(set.size());
    f.port = port;
    f.dst = e.dst;
    for (const auto& [m, t] : set)
      f.sample.push_back(m);
    std::sort(f.sample.begin(), f.sample.end());
    f.sample.resize(std::min(f.sample.size(), o_.sample));
    return f;
  }
  ScanOptions o_;
  std::map<std::string, State> state_;
};

flows::FlowEvent randomAttempt(std::mt19937& rng, Time t) {
  flows::FlowEvent e;
  e.time = t;
  e.action = rng() % 2 ? flows::FlowAction::kDeny : flows::FlowAction::kAudit;
  e.workload = "w" + std::to_string(rng() % 3);
  e.app = "app";
  const unsigned d = rng() % 30;
  e.dst = *policy::IpAddr::parse(d < 22 ? "198.51.100." + std::to_string(d)
                                        : "2001:db8::" + std::to_string(d));
  e.proto = rng() % 4 ? "tcp" : "udp";
  e.dport = uint16_t(20 + rng() % 9);
  return e;
}

void compare(uint32_t seed, ScanOptions o, int steps, int maxStepMs, unsigned gapEvery) {
  ScanDetector d(o);
  Model m(o);
  std::mt19937 rng(seed);
  Time t = kT0;
  int findings = 0;
  for (int i = 0; i < steps; ++i) {
    // Bursts of repeats, then gaps: some as long as the window.
    if (rng() % gapEvery == 0) t += std::chrono::milliseconds(rng() % (o.window.count() * 1100));
    t += std::chrono::milliseconds(rng() % maxStepMs);
    const auto e = randomAttempt(rng, t);
    const auto got = d.observe(e);
    const auto want = m.observe(e);
    ASSERT_EQ(bool(got), bool(want)) << "seed " << seed << " step " << i;
    if (!got) continue;
    ++findings;
    EXPECT_EQ(got->kind, want->kind) << i;
    EXPECT_EQ(got->workload, want->workload) << i;
    EXPECT_EQ(got->distinct, want->distinct) << i;
    EXPECT_EQ(got->sample, want->sample) << i;
    if (got->kind == ScanKind::kHosts) {
      EXPECT_EQ(got->port, want->port) << i;
    }
    if (got->kind == ScanKind::kPorts) {
      EXPECT_EQ(got->dst, want->dst) << i;
    }
  }
  EXPECT_GT(findings, 10) << "seed " << seed << ": the traffic must cross the thresholds";
}

TEST(ScanModelTest, SmallThresholdsAgreeWithTheModel) {
  ScanOptions o;
  o.hosts = 4;
  o.ports = 3;
  o.window = 10s;
  for (uint32_t seed = 1; seed <= 20; ++seed)
    compare(seed, o, 20000, 400, 50);
}

TEST(ScanModelTest, DefaultThresholdsAgreeWithTheModel) {
  ScanOptions o;  // 20 hosts, 15 ports, 60 s
  for (uint32_t seed = 100; seed <= 105; ++seed)
    compare(seed, o, 40000, 20, 2000);
}

TEST(ScanModelTest, ARepeatAfterItsMemberExpiredCountsAsNew) {
  // The cached repeat must not revive an expired member silently: back
  // after the window, it is a new member and can cross the threshold.
  ScanOptions o;
  o.hosts = 100;
  o.ports = 2;
  o.window = 10s;
  ScanDetector d(o);
  auto at = [](int port, Time t) {
    flows::FlowEvent e;
    e.time = t;
    e.action = flows::FlowAction::kDeny;
    e.workload = "w";
    e.dst = *policy::IpAddr::parse("198.51.100.7");
    e.proto = "tcp";
    e.dport = uint16_t(port);
    return e;
  };
  EXPECT_FALSE(d.observe(at(22, kT0)));
  EXPECT_FALSE(d.observe(at(22, kT0 + 1s)));  // a repeat (cached)
  // Port 22 expires at 11 s; port 80 at 12 s is alone in the window...
  EXPECT_FALSE(d.observe(at(80, kT0 + 12s)));
  // ...until port 22 comes back: two ports in the window.
  auto f = d.observe(at(22, kT0 + 13s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, ScanKind::kPorts);
  EXPECT_EQ(f->sample, (std::vector<std::string>{"tcp/22", "tcp/80"}));
}

}  // namespace
}  // namespace bulkhead::agent
