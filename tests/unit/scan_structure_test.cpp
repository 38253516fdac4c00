// The scan detector's keys and bounds as an attacker would probe them:
// workload and protocol names whose words look alike (the cache and the
// name table key short names by two overlapping loads), many benign
// workloads each one attempt short of a threshold, a spray of random
// addresses and ports, and members expiring exactly at the window's edge.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "bulkhead/agent/scan_detector.h"
#include "scan_attempts.h"

namespace bulkhead::agent {
namespace {

using namespace std::chrono_literals;
using testing_scan::attempt;
using testing_scan::v6;
using Time = flows::WallClock::time_point;
const Time kT0 = Time(1'800'000'000s);

policy::IpAddr v4(uint32_t i) {
  policy::IpAddr a;
  a.family = policy::Family::kIpv4;
  const uint32_t x = 0xc6336400u + i;  // 198.51.100.0/24 onward
  for (int b = 0; b < 4; ++b)
    a.bytes[size_t(b)] = uint8_t(x >> (8 * (3 - b)));
  return a;
}

// Names that share their loaded words and differ only in length: "a" to
// 16 "a"s, and the same with a distinct last byte.
std::vector<std::string> lookalikeNames() {
  std::vector<std::string> names;
  for (size_t n = 1; n <= 16; ++n) {
    names.push_back(std::string(n, 'a'));
    names.push_back(std::string(n - 1, 'a') + "b");
  }
  names.push_back(std::string(17, 'a'));  // longer than a short key
  names.push_back(std::string(40, 'a'));
  return names;
}

TEST(ScanStructureTest, LookalikeWorkloadNamesNeverShareCounts) {
  ScanDetector d({});
  const auto names = lookalikeNames();
  // Each name one host short of a sweep and one port short of a port scan,
  // each attempt twice (the second a cached repeat): merged names would
  // cross a threshold at once.
  for (int round = 0; round < 2; ++round) {
    for (const auto& name : names) {
      for (uint32_t h = 0; h < 19; ++h)
        ASSERT_FALSE(d.observe(attempt(name, v4(h), 22, kT0 + 1s))) << name;
      for (uint16_t p = 1; p < 15; ++p)
        ASSERT_FALSE(d.observe(attempt(name, v4(200), uint16_t(1000 + p), kT0 + 1s))) << name;
    }
  }
  EXPECT_EQ(d.workloads(), names.size());
  // The twentieth host of each one is a sweep of exactly twenty.
  for (const auto& name : names) {
    auto f = d.observe(attempt(name, v4(19), 22, kT0 + 2s));
    ASSERT_TRUE(f) << name;
    EXPECT_EQ(f->workload, name);
    EXPECT_EQ(f->kind, ScanKind::kHosts);
    EXPECT_EQ(f->distinct, 20u);
  }
}

TEST(ScanStructureTest, LookalikeProtocolsAreDistinctPorts) {
  ScanOptions o;
  o.hosts = 100;
  o.ports = 4;
  ScanDetector d(o);
  // The same port number under four protocol names whose bytes overlap:
  // four distinct ports on one destination, found at the fourth.
  const std::vector<std::string> protos = {"tc", "tcp", "tcpp", "tcppp"};
  for (int round = 0; round < 2; ++round)
    for (size_t i = 0; i + 1 < protos.size(); ++i)
      ASSERT_FALSE(d.observe(attempt("w", v4(1), 80, kT0, protos[i]))) << protos[i];
  auto f = d.observe(attempt("w", v4(1), 80, kT0, protos.back()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->distinct, 4u);
  EXPECT_EQ(f->sample, (std::vector<std::string>{"tc/80", "tcp/80", "tcpp/80", "tcppp/80"}));
}

TEST(ScanStructureTest, ManyBenignWorkloadsJustUnderBothThresholdsAreNeverReported) {
  ScanOptions o;
  o.maxEntries = 1 << 20;  // room for all of them: the point is collisions, not eviction
  ScanDetector d(o);
  constexpr int kWorkloads = 1000;
  std::mt19937 rng(15);
  // Each workload: 19 hosts on port 22 and 14 ports on one host, in a
  // random order interleaved with the others, with repeats.
  std::vector<std::pair<int, int>> steps;
  for (int w = 0; w < kWorkloads; ++w)
    for (int i = 0; i < 33; ++i)
      steps.emplace_back(w, i);
  std::shuffle(steps.begin(), steps.end(), rng);
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [w, i] : steps) {
      const std::string name = "web-" + std::to_string(w);
      const auto e = i < 19 ? attempt(name, v4(uint32_t(i)), 22, kT0 + 1s)
                            : attempt(name, v6(uint64_t(w) << 20), uint16_t(1000 + i), kT0 + 1s);
      ASSERT_FALSE(d.observe(e)) << name << " step " << i;
    }
  }
  EXPECT_EQ(d.workloads(), size_t(kWorkloads));
  // One more host for one of them is its sweep, at exactly twenty.
  auto f = d.observe(attempt("web-500", v4(19), 22, kT0 + 2s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->workload, "web-500");
  EXPECT_EQ(f->distinct, 20u);
  // One more port for another is its port scan, at exactly fifteen.
  f = d.observe(attempt("web-7", v6(uint64_t(7) << 20), 999, kT0 + 2s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, ScanKind::kPorts);
  EXPECT_EQ(f->distinct, 15u);
  EXPECT_EQ(f->dst, v6(uint64_t(7) << 20));
}

TEST(ScanStructureTest, ARandomSprayStaysWithinTheBoundAndASweepIsStillFound) {
  ScanOptions o;
  o.maxEntries = 20000;
  ScanDetector d(o);
  std::mt19937_64 rng(99);
  for (uint32_t h = 0; h < 19; ++h)
    ASSERT_FALSE(d.observe(attempt("victim", v4(h), 22, kT0)));
  size_t peak = 0;
  for (int i = 0; i < 400000; ++i) {
    // Random addresses of both families, ports and protocols from one
    // workload with a long name (the uncached path): everything the
    // attacker controls but the number of workloads it runs in.
    const uint64_t r = rng();
    const auto dst = r % 8 ? v6(rng()) : v4(uint32_t(r >> 8) & 0xff);
    d.observe(attempt("a-workload-name-longer-than-16-bytes", dst, uint16_t(r >> 20),
                      kT0 + 1s + i * 1us, r & 4 ? "tcp" : "udp"));
    ASSERT_LE(d.entries(), o.maxEntries) << i;
    peak = std::max(peak, d.bytes());
  }
  // The pools' members (about 30 bytes each), their indexes and the fixed
  // cache: a few MiB at most for 20,000 members, whatever was sprayed.
  EXPECT_LT(peak, size_t(4) << 20) << peak;
  auto f = d.observe(attempt("victim", v4(19), 22, kT0 + 2s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->workload, "victim");
  EXPECT_EQ(f->distinct, 20u);
  EXPECT_EQ(d.workloads(), 2u);
}

TEST(ScanStructureTest, AMemberExpiresExactlyAtTheWindowsEnd) {
  // Host 0 at t0, hosts 1-18 a second later, then a twentieth host: within
  // the window of host 0 it is a sweep, at exactly 60 s after host 0 not.
  for (const auto last : {59'999ms, 60'000ms}) {
    ScanDetector d({});
    ASSERT_FALSE(d.observe(attempt("w", v4(0), 22, kT0)));
    for (uint32_t h = 1; h < 19; ++h)
      ASSERT_FALSE(d.observe(attempt("w", v4(h), 22, kT0 + 1s)));
    auto f = d.observe(attempt("w", v4(19), 22, kT0 + last));
    EXPECT_EQ(bool(f), last < 60s) << last.count();
    if (f) {
      EXPECT_EQ(f->distinct, 20u);
    }
  }
}

TEST(ScanStructureTest, ACachedRepeatExtendsItsMemberAndAnExpiredOneIsNew) {
  ScanDetector d({});
  // Host 0 at t0 and again (a cached repeat) at t0 + 30 s: live until 90 s.
  ASSERT_FALSE(d.observe(attempt("w", v4(0), 22, kT0)));
  ASSERT_FALSE(d.observe(attempt("w", v4(0), 22, kT0 + 30s)));
  for (uint32_t h = 1; h < 19; ++h)
    ASSERT_FALSE(d.observe(attempt("w", v4(h), 22, kT0 + 80s)));
  auto f = d.observe(attempt("w", v4(19), 22, kT0 + 89s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->distinct, 20u);

  // A repeat a full window after its last attempt counts as new again.
  ScanOptions o;
  o.hosts = 2;
  ScanDetector e(o);
  ASSERT_FALSE(e.observe(attempt("w", v4(0), 22, kT0)));
  ASSERT_FALSE(e.observe(attempt("w", v4(0), 22, kT0 + 1s)));
  ASSERT_FALSE(e.observe(attempt("w", v4(1), 22, kT0 + 61s)));  // host 0 gone at 61 s
  auto g = e.observe(attempt("w", v4(0), 22, kT0 + 62s));       // back: two hosts
  ASSERT_TRUE(g);
  EXPECT_EQ(g->distinct, 2u);
}

TEST(ScanStructureTest, AWorkloadsLastSetTakenByAnotherKeyIsNotCountedIn) {
  // 16 sweep sets of 3 (the least the detector keeps): w's set for port 22
  // is taken by another workload's key before w's next attempts.
  ScanOptions o;
  o.hosts = 3;
  o.ports = 0;
  o.maxEntries = 16 * 3;
  ScanDetector d(o);
  ASSERT_FALSE(d.observe(attempt("w", v4(1000), 22, kT0)));
  for (uint32_t i = 0; i < 16; ++i)
    ASSERT_FALSE(d.observe(attempt("other-" + std::to_string(i), v4(i), 22, kT0 + 1s)));
  // w's first host left with its set; two more hosts are two, not three.
  EXPECT_FALSE(d.observe(attempt("w", v4(1001), 22, kT0 + 2s)));
  EXPECT_FALSE(d.observe(attempt("w", v4(1002), 22, kT0 + 2500ms)));  // used since opened
  // Nor did w's hosts land in the other workload's set.
  for (uint32_t i = 0; i < 16; ++i)
    EXPECT_FALSE(d.observe(attempt("other-" + std::to_string(i), v4(100 + i), 22, kT0 + 3s))) << i;
  auto f = d.observe(attempt("w", v4(1003), 22, kT0 + 4s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->distinct, 3u);
}

}  // namespace
}  // namespace bulkhead::agent
