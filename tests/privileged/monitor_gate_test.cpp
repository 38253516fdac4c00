// The monitor's notification gate against the real kernel, in throwaway
// namespaces: while paused, the kernel builds no nf_tables notification for
// it (a commit that would overflow its socket leaves nothing behind), a
// foreign commit goes unheard until reportUnheard() says so, and after
// resume() foreign changes are heard again.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/monitor.h"
#include "bulkhead/nft/writer.h"
#include "support/netns.h"

namespace bulkhead::nft {
namespace {

using compiler::Element;
using compiler::KeyBuilder;
using compiler::KeyField;
using compiler::Ruleset;
using compiler::Set;
using testing::Netns;

constexpr const char* kTable = "bhgate";

// A table with one set of `n` IPv4 addresses.
Ruleset withElements(int n) {
  Ruleset rs;
  rs.table = kTable;
  Set s{"many4", {KeyField::kIpv4Addr}, false, false, "", {}};
  for (int i = 0; i < n; ++i) {
    const std::string a = "10." + std::to_string(i / 62500) + "." + std::to_string(i / 250 % 250) +
                          "." + std::to_string(i % 250 + 1);
    Element e;
    e.key = KeyBuilder().addr(*policy::IpAddr::parse(a)).build();
    e.keyEnd = e.key;
    s.elements.push_back(std::move(e));
  }
  rs.sets = {s};
  return rs;
}

bool anyLost(const std::vector<TableEvent>& events) {
  for (const auto& e : events)
    if (e.kind == TableEvent::Kind::kLostEvents) return true;
  return false;
}

std::string describe(const std::vector<TableEvent>& events) {
  std::string s;
  for (const auto& e : events)
    s += (e.kind == TableEvent::Kind::kLostEvents ? "LOST " : "FOREIGN ") + e.what + "\n";
  return s;
}

class MonitorGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::skipUnlessCi(testing::havePrivileges(), "needs root and ip/nft")) GTEST_SKIP();
    testing::sweepStaleNamespaces();
    ns_ = std::make_unique<Netns>();
  }

  // Every event within `ms` (several waits).
  static std::vector<TableEvent> collect(TableMonitor& m, int ms) {
    std::vector<TableEvent> all;
    for (int spent = 0; spent < ms; spent += 100) {
      auto got = m.wait(100);
      EXPECT_TRUE(got.ok()) << got.error().describe();
      if (!got.ok()) break;
      all.insert(all.end(), got->begin(), got->end());
    }
    return all;
  }

  std::unique_ptr<Netns> ns_;
};

TEST_F(MonitorGateTest, PausedMonitorCostsTheKernelNoNotifications) {
  ns_->run([&] {
    auto kernel = MnlKernel::open();
    ASSERT_TRUE(kernel.ok()) << kernel.error().describe();
    // The smallest receive buffer the kernel allows: the notifications of
    // 5,000 elements overflow it many times over.
    auto mon = TableMonitor::open(kTable, 1);
    ASSERT_TRUE(mon.ok()) << mon.error().describe();
    TableMonitor& m = **mon;
    m.ignorePortId((*kernel)->portId());
    const Ruleset big = withElements(5000);

    // Listening: our own commit is not drift, but the kernel built its
    // notifications all the same, and they overflowed the socket.
    ASSERT_TRUE(Writer(**kernel).replace(big).ok());
    EXPECT_TRUE(anyLost(collect(m, 300)));

    // Paused: nothing was built, so nothing overflowed.
    m.pause();
    ASSERT_TRUE(Writer(**kernel).replace(big).ok());
    m.resume();
    const auto quiet = collect(m, 300);
    EXPECT_TRUE(quiet.empty()) << describe(quiet);

    // Joined again: a foreign change is heard.
    auto r = ns_->exec("nft delete element inet bhgate many4 '{ 10.0.0.1 }'");
    ASSERT_TRUE(r.ok()) << r.out;
    const auto heard = collect(m, 300);
    ASSERT_EQ(heard.size(), 1u) << describe(heard);
    EXPECT_EQ(heard[0].kind, TableEvent::Kind::kForeignChange);
    EXPECT_NE(heard[0].what.find("delete element inet bhgate many4"), std::string::npos)
        << heard[0].what;
  });
}

TEST_F(MonitorGateTest, ForeignCommitWhilePausedIsReportedOnlyThroughReportUnheard) {
  ns_->run([&] {
    auto kernel = MnlKernel::open();
    ASSERT_TRUE(kernel.ok()) << kernel.error().describe();
    ASSERT_TRUE(Writer(**kernel).replace(withElements(10)).ok());
    auto mon = TableMonitor::open(kTable);
    ASSERT_TRUE(mon.ok()) << mon.error().describe();
    TableMonitor& m = **mon;
    m.ignorePortId((*kernel)->portId());

    // Pauses nest: one resume() is not enough.
    m.pause();
    m.pause();
    m.resume();
    auto r = ns_->exec("nft flush set inet bhgate many4");
    ASSERT_TRUE(r.ok()) << r.out;
    m.resume();
    const auto unheard = collect(m, 300);
    EXPECT_TRUE(unheard.empty()) << describe(unheard);

    // What the writer says after comparing generations.
    m.reportUnheard("commits by others while paused");
    auto got = m.wait(100);
    ASSERT_TRUE(got.ok()) << got.error().describe();
    ASSERT_EQ(got->size(), 1u) << describe(*got);
    EXPECT_EQ((*got)[0].kind, TableEvent::Kind::kLostEvents);
    EXPECT_EQ((*got)[0].what, "commits by others while paused");
    // Reported once.
    const auto after = collect(m, 200);
    EXPECT_TRUE(after.empty()) << describe(after);
  });
}

}  // namespace
}  // namespace bulkhead::nft
