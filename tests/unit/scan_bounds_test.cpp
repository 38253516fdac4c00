// The scan detector's structures under an attacker's traffic: the flat
// table, the bound on entries and bytes, a flooding workload paying for its
// own flood, and exact windows for retried destinations.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <unordered_map>

#include "bulkhead/agent/scan_detector.h"
#include "bulkhead/common/flat_table.h"
#include "scan_attempts.h"

namespace bulkhead::agent {
namespace {

using testing_scan::attempt;
using testing_scan::v6;

using namespace std::chrono_literals;
const flows::WallClock::time_point kT0 = flows::WallClock::time_point(1'800'000'000s);

uint64_t h64(uint64_t k) {
  return hashMix(0x1234, k);
}

TEST(FlatTableTest, AgreesWithAStandardMapUnderRandomInsertsAndErases) {
  FlatTable<uint64_t, uint32_t> t(5000);
  std::unordered_map<uint64_t, uint32_t> ref;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint64_t k = rng() % 8000;  // many collisions of home slots, erases in clusters
    if (rng() % 3 == 0) {
      EXPECT_EQ(t.erase(k, h64(k)), ref.erase(k) == 1) << i;
    } else {
      auto [v, fresh] = t.insert(k, h64(k));
      if (ref.size() >= 5000 && !ref.count(k)) {
        EXPECT_EQ(v, nullptr) << i;  // full: refused, not grown
        continue;
      }
      ASSERT_NE(v, nullptr) << i;
      EXPECT_EQ(fresh, ref.count(k) == 0) << i;
      *v = uint32_t(i);
      ref[k] = uint32_t(i);
    }
    ASSERT_EQ(t.size(), ref.size()) << i;
  }
  for (const auto& [k, v] : ref) {
    const uint32_t* found = t.find(k, h64(k));
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(*found, v);
  }
  size_t seen = 0;
  t.forEach([&](uint64_t k, uint32_t v) {
    ++seen;
    EXPECT_EQ(ref.at(k), v);
  });
  EXPECT_EQ(seen, ref.size());
  // Load at most 3/4 at the bound: 5000 entries fit in 8192 slots.
  EXPECT_EQ(t.slotCount(), 8192u);
}

TEST(FlatTableTest, EveryKeyCollidingOnOneHash) {
  // An attacker who found equal hashes gets a long probe, never a wrong answer.
  FlatTable<uint64_t, uint32_t> t(100);
  for (uint64_t k = 0; k < 100; ++k)
    *t.insert(k, 42).first = uint32_t(k);
  EXPECT_EQ(t.insert(100, 42).first, nullptr);
  for (uint64_t k = 0; k < 100; k += 2)
    EXPECT_TRUE(t.erase(k, 42));
  for (uint64_t k = 0; k < 100; ++k) {
    const uint32_t* v = t.find(k, 42);
    if (k % 2) {
      ASSERT_NE(v, nullptr) << k;
      EXPECT_EQ(*v, k);
    } else {
      EXPECT_EQ(v, nullptr) << k;
    }
  }
}

TEST(FlatTableTest, KeysVaryingOnlyInHighBytesSpreadOverTheSlots) {
  // Addresses in network byte order vary in a word's high bytes: their home
  // slots (low bits of the hash) must still spread, or probes grow long.
  std::set<uint64_t> homes;
  for (uint64_t i = 0; i < 10000; ++i)
    homes.insert(hashMix(hashMix(99, 7), i << 40) & 16383);
  EXPECT_GT(homes.size(), 7000u);  // about 7,400 for a uniform hash
}

policy::IpAddr v4(int i) {
  return *policy::IpAddr::parse("198.51.100." + std::to_string(i));
}

TEST(ScanBoundsTest, BytesStayBoundedUnderAFloodOfDistinctDestinationsAndPorts) {
  ScanDetector d({});
  // Every attempt a new destination and port from 64 workloads, none a
  // sweep or a port scan: only the bound can hold it.
  size_t peak = 0;
  for (uint32_t i = 0; i < 1'000'000; ++i) {
    d.observe(attempt("w" + std::to_string(i % 64), v6(i), uint16_t(i), kT0 + i * 1us));
    ASSERT_LE(d.entries(), d.options().maxEntries) << i;
    peak = std::max(peak, d.bytes());
  }
  // About 250 bytes an entry at the bound (tables at 3/4 load or less, the
  // expiry queue): 64 MiB would mean it grew with the flood.
  EXPECT_LT(peak, 24u << 20) << peak;
  EXPECT_EQ(d.workloads(), 64u);
}

TEST(ScanBoundsTest, AFlooderStartsOverAndAnotherWorkloadsScanIsStillSeen) {
  ScanOptions o;
  o.maxEntries = 4000;
  ScanDetector d(o);
  // A slow sweep by one workload, 19 hosts...
  for (int i = 1; i < 20; ++i)
    ASSERT_FALSE(d.observe(attempt("victim", v4(i), 22, kT0 + i * 1ms)));
  // ...while another floods distinct pairs below both thresholds...
  for (uint32_t i = 0; i < 100000; ++i) {
    ASSERT_FALSE(d.observe(attempt("flooder", v6(i), uint16_t(i), kT0 + 1s)));
    ASSERT_LE(d.entries(), o.maxEntries);
  }
  // ...does not make the detector forget the sweep: its 20th host is found.
  auto f = d.observe(attempt("victim", v4(20), 22, kT0 + 2s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->workload, "victim");
  EXPECT_EQ(f->distinct, 20u);
}

TEST(ScanBoundsTest, AFloodOfWorkloadNamesIsBounded) {
  ScanDetector d({});
  for (size_t i = 0; i < ScanDetector::kMaxWorkloads + 1000; ++i)
    d.observe(attempt("n" + std::to_string(i), v4(1), 22, kT0));
  EXPECT_LE(d.workloads(), ScanDetector::kMaxWorkloads);
  EXPECT_LE(d.entries(), d.options().maxEntries);
}

TEST(ScanBoundsTest, ARetriedDestinationCountsForTheWindowAfterItsLastAttemptOnly) {
  ScanOptions o;
  o.hosts = 3;
  o.ports = 100;
  ScanDetector d(o);
  EXPECT_FALSE(d.observe(attempt("w", v4(1), 22, kT0)));
  EXPECT_FALSE(d.observe(attempt("w", v4(1), 22, kT0 + 59s)));  // retried
  EXPECT_FALSE(d.observe(attempt("w", v4(2), 22, kT0 + 59500ms)));
  EXPECT_FALSE(d.observe(attempt("w", v4(9), 80, kT0 + 60100ms)));  // time passes
  // Host 1's last attempt is 60.2 s old: two hosts in the window, not three.
  EXPECT_FALSE(d.observe(attempt("w", v4(3), 22, kT0 + 119200ms)));
  auto f = d.observe(attempt("w", v4(4), 22, kT0 + 119300ms));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->distinct, 3u);
  EXPECT_EQ(f->sample, (std::vector<std::string>{"198.51.100.2", "198.51.100.3", "198.51.100.4"}));
}

TEST(ScanBoundsTest, RepeatsOfOneDestinationNeverGrowTheState) {
  ScanDetector d({});
  for (int i = 0; i < 100000; ++i)
    EXPECT_FALSE(d.observe(attempt("w", v4(1 + i % 5), 22, kT0 + i * 1ms)));
  EXPECT_EQ(d.entries(), 5u);
}

TEST(ScanBoundsTest, BothFamiliesCountTowardsOneSweep) {
  ScanOptions o;
  o.hosts = 4;
  ScanDetector d(o);
  EXPECT_FALSE(d.observe(attempt("w", v4(1), 22, kT0)));
  EXPECT_FALSE(d.observe(attempt("w", v6(1), 22, kT0)));
  EXPECT_FALSE(d.observe(attempt("w", v4(2), 22, kT0)));
  auto f = d.observe(attempt("w", v6(2), 22, kT0));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->distinct, 4u);
  EXPECT_EQ(f->port, "tcp/22");
}

}  // namespace
}  // namespace bulkhead::agent
