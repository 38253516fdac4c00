// Drift detection against the real kernel, inside throwaway namespaces
// (support/netns.h); the root namespace's ruleset is never touched.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/monitor.h"
#include "bulkhead/nft/writer.h"
#include "support/netns.h"

namespace bulkhead::nft {
namespace {

using compiler::Chain;
using compiler::Element;
using compiler::KeyBuilder;
using compiler::KeyField;
using compiler::PacketField;
using compiler::Rule;
using compiler::Ruleset;
using compiler::Set;
using compiler::Verdict;
using testing::Netns;
namespace ex = compiler::expr;

constexpr const char* kTable = "bhmon";

Element addr4(const char* text) {
  Element e;
  e.key = KeyBuilder().addr(*policy::IpAddr::parse(text)).build();
  e.keyEnd = e.key;
  return e;
}

// A small table: a set, a regular chain and a base chain jumping to it.
Ruleset small() {
  Ruleset rs;
  rs.table = kTable;
  Set allow{"allow4", {KeyField::kIpv4Addr}, false, false, "", {}};
  allow.elements = {addr4("192.0.2.1"), addr4("192.0.2.2")};
  rs.sets = {allow};
  Chain app{"app_x", std::nullopt, {}};
  app.rules = {
      Rule{{ex::Lookup{{PacketField::kIpDaddr}, "allow4", false},
            ex::VerdictStatement{Verdict{Verdict::Kind::kAccept, ""}}},
           ""},
      Rule{{ex::Counter{}, ex::VerdictStatement{Verdict{Verdict::Kind::kDrop, ""}}}, ""},
  };
  Chain fwd{"forward", compiler::BaseHook{compiler::BaseHook::Hook::kForward, 0}, {}};
  fwd.rules = {Rule{{ex::VerdictStatement{Verdict{Verdict::Kind::kJump, "app_x"}}}, ""}};
  rs.chains = {app, fwd};
  return rs;
}

std::string dump(const std::vector<TableEvent>& events) {
  std::string s;
  for (const TableEvent& e : events) {
    s += (e.kind == TableEvent::Kind::kLostEvents ? "LOST " : "FOREIGN ") + e.what + " [port " +
         std::to_string(e.portId) + "]\n";
  }
  return s;
}

class MonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::skipUnlessCi(testing::havePrivileges(), "needs root and ip/nft")) GTEST_SKIP();
    testing::sweepStaleNamespaces();
    ns_ = std::make_unique<Netns>();
    auto r =
        ns_->exec("nft add table inet other && nft add set inet other keep '{ type ipv4_addr; }'");
    ASSERT_TRUE(r.ok()) << r.out;
  }

  void nft(const std::string& cmd) {
    auto r = ns_->exec("nft " + cmd);
    ASSERT_TRUE(r.ok()) << cmd << ": " << r.out;
  }

  // Everything the monitor reports within `ms`, collecting until a quiet
  // period (so several commits all count).
  static std::vector<TableEvent> collect(TableMonitor& m, int ms) {
    std::vector<TableEvent> all;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      auto got = m.wait(100);
      EXPECT_TRUE(got.ok()) << got.error().describe();
      if (!got.ok()) break;
      all.insert(all.end(), got->begin(), got->end());
    }
    return all;
  }

  std::unique_ptr<Netns> ns_;
};

// Evidence for the own-vs-foreign rule: without ignorePortId, every
// notification of our own commit carries the writer socket's port id, and
// NEWGEN names the committing thread.
TEST_F(MonitorTest, OwnCommitsCarryTheWriterPortId) {
  ns_->run([&] {
    auto mon = TableMonitor::open(kTable);
    ASSERT_TRUE(mon.ok()) << mon.error().describe();
    auto kernel = MnlKernel::open();
    ASSERT_TRUE(kernel.ok()) << kernel.error().describe();
    Status st = Writer(**kernel).replace(small());
    ASSERT_TRUE(st.ok()) << st.error().describe();
    auto events = (*mon)->wait(1000);
    ASSERT_TRUE(events.ok()) << events.error().describe();
    std::cout << "writer port id " << (*kernel)->portId() << ", monitor port id "
              << (*mon)->portId() << ", pid " << getpid() << ", tid " << syscall(SYS_gettid) << "\n"
              << dump(*events);
    ASSERT_EQ(events->size(), 1u) << dump(*events);
    const TableEvent& e = events->front();
    EXPECT_EQ(e.portId, (*kernel)->portId());
    EXPECT_GT(e.changes, 3u);
    // NFTA_GEN_PROC_PID is the committing thread's id, not the process id.
    EXPECT_EQ(e.pid, static_cast<uint32_t>(syscall(SYS_gettid)));
    EXPECT_NE(e.what.find("add table inet bhmon"), std::string::npos) << e.what;
  });
}

TEST_F(MonitorTest, OwnChangesAreQuietForeignOnesReported) {
  ns_->run([&] {
    auto mon = TableMonitor::open(kTable);
    ASSERT_TRUE(mon.ok()) << mon.error().describe();
    TableMonitor& m = **mon;
    auto kernel = MnlKernel::open();
    ASSERT_TRUE(kernel.ok()) << kernel.error().describe();
    m.ignorePortId((*kernel)->portId());
    Writer writer(**kernel);

    ASSERT_TRUE(writer.replace(small()).ok());
    ASSERT_TRUE(writer.replace(small()).ok());
    auto quiet = collect(m, 300);
    EXPECT_TRUE(quiet.empty()) << dump(quiet);

    struct Case {
      std::string cmd;
      std::string expect;
    };
    const Case cases[] = {
        {"add element inet bhmon allow4 '{ 198.51.100.1 }'", "add element inet bhmon allow4"},
        {"add rule inet bhmon app_x accept", "add rule inet bhmon app_x handle"},
        {"flush chain inet bhmon app_x", "delete rule inet bhmon app_x handle"},
        {"flush set inet bhmon allow4", "delete element inet bhmon allow4"},
        {"delete table inet bhmon", "delete table inet bhmon"},
        {"flush ruleset", "delete table inet bhmon"},
        {"-f - <<'EOF'\ntable inet bhmon {\n  chain app_x { counter; }\n}\nEOF",
         "add rule inet bhmon app_x handle"},
    };
    for (const Case& c : cases) {
      ASSERT_NO_FATAL_FAILURE(nft(c.cmd));
      const auto start = std::chrono::steady_clock::now();
      auto got = m.wait(1000);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
      ASSERT_TRUE(got.ok()) << got.error().describe();
      std::cout << c.cmd << " -> (" << ms << " ms) " << dump(*got);
      ASSERT_EQ(got->size(), 1u) << c.cmd << "\n" << dump(*got);
      const TableEvent& e = got->front();
      EXPECT_EQ(e.kind, TableEvent::Kind::kForeignChange);
      EXPECT_NE(e.what.find(c.expect), std::string::npos) << e.what;
      EXPECT_NE(e.what.find("(nft)"), std::string::npos) << e.what;
      EXPECT_NE(e.portId, (*kernel)->portId());
      EXPECT_LT(ms, 1000);
      // Restore, as the agent would: our own commit stays quiet.
      ASSERT_TRUE(writer.replace(small()).ok());
      auto after = collect(m, 200);
      EXPECT_TRUE(after.empty()) << dump(after);
    }
  });
}

TEST_F(MonitorTest, OtherTablesAreIgnored) {
  ns_->run([&] {
    auto mon = TableMonitor::open(kTable);
    ASSERT_TRUE(mon.ok()) << mon.error().describe();
    nft("add element inet other keep '{ 203.0.113.9 }'");
    nft("add chain inet other c");
    nft("add rule inet other c counter accept");
    nft("flush table inet other");
    nft("add table ip bhmon");  // same name, other family
    nft("add chain ip bhmon c");
    nft("delete table inet other");
    auto got = collect(**mon, 400);
    EXPECT_TRUE(got.empty()) << dump(got);
  });
}

// Waiting with nothing to read sleeps: the agent's drift loop waits like
// this all day. With its timeout rounded down to whole milliseconds, each
// wait returned early and spun on poll(0) for the rest of the last
// millisecond (an idle agent used ~2% of a CPU). 40 waits of 7 ms spun for
// 37 ms of CPU that way; sleeping, they take 2-3 ms of it. The
// figure is the thread's CPU time, not wall time: a loaded machine delays
// the waits but does not make them use more CPU.
TEST_F(MonitorTest, AnIdleWaitSleepsInsteadOfSpinning) {
  ns_->run([&] {
    auto mon = TableMonitor::open(kTable);
    ASSERT_TRUE(mon.ok()) << mon.error().describe();
    auto cpu = [] {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
    };
    const double t0 = cpu();
    for (int i = 0; i < 40; ++i) {
      auto got = (*mon)->wait(7);
      ASSERT_TRUE(got.ok()) << got.error().describe();
      EXPECT_TRUE(got->empty()) << dump(*got);
    }
    const double used = cpu() - t0;
    std::cout << "40 idle waits of 7 ms used " << used * 1e3 << " ms of CPU\n";
    EXPECT_LT(used, 0.010);
  });
}

TEST_F(MonitorTest, OverflowReportsLostEventsAndKeepsReading) {
  ns_->run([&] {
    auto kernel = MnlKernel::open();
    ASSERT_TRUE(kernel.ok()) << kernel.error().describe();
    ASSERT_TRUE(Writer(**kernel).replace(small()).ok());
    // The smallest receive buffer the kernel allows (it clamps to
    // SOCK_MIN_RCVBUF): a few skbs fill it.
    auto mon = TableMonitor::open(kTable, 1);
    ASSERT_TRUE(mon.ok()) << mon.error().describe();
    std::string elems;
    for (int i = 0; i < 2000; ++i) {
      if (i > 0) elems += ", ";
      elems += "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1";
    }
    nft("add element inet bhmon allow4 '{ " + elems + " }'");
    auto got = (*mon)->wait(1000);
    ASSERT_TRUE(got.ok()) << got.error().describe();
    bool lost = false;
    for (const TableEvent& e : *got)
      lost = lost || e.kind == TableEvent::Kind::kLostEvents;
    EXPECT_TRUE(lost) << dump(*got);
    // The socket still works after the overflow.
    (void)collect(**mon, 200);
    nft("delete element inet bhmon allow4 '{ 192.0.2.1 }'");
    got = (*mon)->wait(1000);
    ASSERT_TRUE(got.ok()) << got.error().describe();
    ASSERT_EQ(got->size(), 1u) << dump(*got);
    EXPECT_NE(got->front().what.find("delete element inet bhmon allow4"), std::string::npos)
        << got->front().what;
  });
}

}  // namespace
}  // namespace bulkhead::nft
