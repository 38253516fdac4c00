// The flow pipeline's fold hint to the scan detector: an attempt whose exact
// fold key (workload, destination, port, protocol, action, reason) is open
// in its fold window is passed with repeat = true and the detector skips it;
// the first attempt of every fold window is looked at in full, so last-seen
// times lag by at most one fold window and expiry still works.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "bulkhead/agent/scan_detector.h"
#include "bulkhead/flows/pipeline.h"
#include "scan_attempts.h"

namespace bulkhead::agent {
namespace {

using namespace std::chrono_literals;
using flows::WallClock;
const WallClock::time_point kT0 = WallClock::time_point(1'800'000'000s);

// An IPv4/TCP SYN from 192.0.2.10 to 198.51.100.<host>:dport, logged on
// interface `ifindex` by the rule with `prefix`.
flows::LoggedPacket packet(uint8_t host, uint16_t dport, uint32_t ifindex = 7,
                           const std::string& prefix = "bh:deny:default") {
  uint8_t p[40] = {};
  p[0] = 0x45;
  p[3] = 40;
  p[8] = 64;
  p[9] = 6;
  const uint8_t src[4] = {192, 0, 2, 10}, dst[4] = {198, 51, 100, host};
  std::memcpy(p + 12, src, 4);
  std::memcpy(p + 16, dst, 4);
  const uint16_t sport = htons(40000), dp = htons(dport);
  std::memcpy(p + 20, &sport, 2);
  std::memcpy(p + 22, &dp, 2);
  p[32] = 0x50;
  p[33] = 0x02;
  flows::LoggedPacket lp;
  lp.prefix = prefix;
  lp.inIfindex = ifindex;
  lp.payload.assign(reinterpret_cast<const char*>(p), sizeof p);
  return lp;
}

struct Seen {
  std::string workload;
  uint16_t dport;
  bool repeat;
};

// A pipeline (fold window 1 s, no rate limit, no exporter) whose observer
// records every call and feeds a real detector, as FlowFeed hooks it.
struct Hooked {
  ScanDetector detector{ScanOptions{}};
  std::vector<Seen> seen;
  std::vector<ScanFinding> findings;
  bool exempt = false;  // interface 7's app labelled as a scanner
  std::unique_ptr<flows::Pipeline> pipeline;

  Hooked() {
    flows::PipelineOptions o;
    o.host = "hv01";
    o.workloadRate = 1e9;
    o.workloadBurst = 1e9;
    o.observe = [this](const flows::FlowEvent& e, bool repeat) {
      seen.push_back({e.workload, e.dport, repeat});
      if (auto f = detector.observe(e, repeat)) findings.push_back(*f);
    };
    pipeline = std::make_unique<flows::Pipeline>(
        o,
        [this](uint32_t ifindex) {
          return flows::Attribution{"web-" + std::to_string(ifindex), "web",
                                    ifindex == 7 && exempt};
        },
        nullptr, std::vector<std::unique_ptr<flows::Exporter>>{});
  }
  void at(WallClock::time_point t, const flows::LoggedPacket& p) {
    flows::LoggedPacket q = p;
    q.timestamp = t;
    pipeline->onPacket(q, t);
  }
};

TEST(ScanFoldHintTest, RepeatsWithinTheFoldWindowAreHintedOnlyForTheSameKey) {
  Hooked h;
  h.at(kT0, packet(1, 22));
  h.at(kT0 + 100ms, packet(1, 22));                         // same key: a repeat
  h.at(kT0 + 200ms, packet(1, 23));                         // another port
  h.at(kT0 + 300ms, packet(1, 22, 8));                      // another workload
  h.at(kT0 + 400ms, packet(1, 22, 7, "bh:audit:default"));  // another action
  h.at(kT0 + 500ms, packet(1, 22, 8));                      // workload 8's own repeat
  h.at(kT0 + 1100ms, packet(1, 22));                        // its fold window closed
  h.at(kT0 + 1200ms, packet(1, 22));                        // the new window's repeat
  const std::vector<bool> want = {false, true, false, false, false, true, false, true};
  ASSERT_EQ(h.seen.size(), want.size()) << "every attempt is observed";
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(h.seen[i].repeat, want[i]) << i;
  EXPECT_EQ(h.seen[3].workload, "web-8");
}

TEST(ScanFoldHintTest, AHintFromAnotherWorkloadNeverCountsForIt) {
  // Workload 8 sends the same 19 attempts workload 7 sent (each folded for
  // 7): none is a repeat for 8, so 8's count is its own, exact.
  Hooked h;
  for (uint8_t i = 1; i <= 19; ++i) {
    h.at(kT0 + i * 1ms, packet(i, 22, 7));
    h.at(kT0 + i * 1ms + 100us, packet(i, 22, 7));  // 7's repeat
    h.at(kT0 + i * 1ms + 200us, packet(i, 22, 8));  // 8's first
  }
  EXPECT_TRUE(h.findings.empty()) << "19 each: under the threshold";
  h.at(kT0 + 30ms, packet(20, 22, 8));
  ASSERT_EQ(h.findings.size(), 1u) << "8's 20th distinct destination";
  EXPECT_EQ(h.findings[0].workload, "web-8");
  EXPECT_EQ(h.findings[0].distinct, 20u);
  h.at(kT0 + 40ms, packet(20, 22, 7));
  ASSERT_EQ(h.findings.size(), 2u) << "7's own 20th";
  EXPECT_EQ(h.findings[1].workload, "web-7");
}

TEST(ScanFoldHintTest, ARepeatAfterItsFoldWindowClosedRefreshesLastSeen) {
  // 198.51.100.1 retried every 100 ms for 70 s: only the first attempt of
  // each fold window reaches the detector in full, and that keeps it live.
  Hooked h;
  for (int i = 0; i < 700; ++i)
    h.at(kT0 + i * 100ms, packet(1, 22));
  size_t full = 0;
  for (const auto& s : h.seen)
    full += !s.repeat;
  EXPECT_GE(full, 35u) << "about one full look per fold window";
  EXPECT_LE(full, 70u);
  for (uint8_t i = 2; i <= 19; ++i)
    h.at(kT0 + 70s + i * 1ms, packet(i, 22));
  EXPECT_TRUE(h.findings.empty());
  h.at(kT0 + 70s + 20ms, packet(20, 22));
  ASSERT_EQ(h.findings.size(), 1u) << "the retried destination is still live at 70 s";
  EXPECT_EQ(h.findings[0].distinct, 20u);
}

TEST(ScanFoldHintTest, AHintedDestinationStillExpiresWithTheWindow) {
  // Retried for 2 s only: gone 60 s later, repeats or not.
  Hooked h;
  for (int i = 0; i < 20; ++i)
    h.at(kT0 + i * 100ms, packet(1, 22));
  for (uint8_t i = 2; i <= 20; ++i)
    h.at(kT0 + 63s + i * 1ms, packet(i, 22));
  EXPECT_TRUE(h.findings.empty()) << "19 live destinations: the first expired";
  h.at(kT0 + 63s + 30ms, packet(21, 22));
  ASSERT_EQ(h.findings.size(), 1u);
  EXPECT_EQ(h.findings[0].distinct, 20u);
}

TEST(ScanFoldHintTest, AnAttemptNotObservedFirstIsNoRepeat) {
  // A scanner-labelled workload's attempt is not observed; relabelled
  // within the fold window, its next identical attempt is looked at in full.
  Hooked h;
  h.exempt = true;
  h.at(kT0, packet(1, 22));
  EXPECT_TRUE(h.seen.empty());
  h.exempt = false;
  h.at(kT0 + 100ms, packet(1, 22));
  ASSERT_EQ(h.seen.size(), 1u);
  EXPECT_FALSE(h.seen[0].repeat);
}

TEST(ScanFoldHintTest, TheDetectorSkipsHintedRepeatsAndCountsTheRest) {
  ScanDetector d({});
  using testing_scan::attempt;
  const auto dst = [](int i) { return *policy::IpAddr::parse("198.51.100." + std::to_string(i)); };
  for (int i = 1; i <= 19; ++i)
    ASSERT_FALSE(d.observe(attempt("w", dst(i), 22, kT0 + i * 1ms)));
  for (int i = 1; i <= 19; ++i)
    ASSERT_FALSE(d.observe(attempt("w", dst(i), 22, kT0 + 50ms), true)) << "hinted: skipped";
  auto f = d.observe(attempt("w", dst(20), 22, kT0 + 60ms));
  ASSERT_TRUE(f) << "the 20th distinct destination, exactly";
  EXPECT_EQ(f->distinct, 20u);
  EXPECT_EQ(f->kind, ScanKind::kHosts);
}

}  // namespace
}  // namespace bulkhead::agent
