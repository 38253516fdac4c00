// The real agent with its nftables event monitor off (--drift-events=false):
// the periodic check alone finds tampering by content and repairs it; and
// quarantine cuts a live TCP stream by flushing the workload's conntrack
// entries.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: sink, labels: {env: prod}}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32]
      ports: [tcp/5432]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: billing, labels: {env: prod}}
spec:
  egress:
    - to: [sink]
)";

class DriftQuarantineTest : public AgentHostTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(setUpHost("drift", kPolicy));
    ASSERT_TRUE(sh("command -v conntrack").ok()) << "needs conntrack (packaging/install-deps.sh)";
    topo_->addHost("vbill1", "192.0.2.10", "");
    topo_->addHost("vsrv1", "198.51.100.10", "");
  }

  void startAgent(const std::string& extra) {
    ASSERT_NO_FATAL_FAILURE(launchAgent(extra));
    ASSERT_NO_FATAL_FAILURE(pushPolicy());
    auto add = cli("workload add billing-1 --app billing --iface vbill1 --addr 192.0.2.10");
    ASSERT_TRUE(add.ok()) << add.out << log();
    ASSERT_NO_FATAL_FAILURE(agent_->waitPromoted());
  }

  std::vector<std::string> table() const {
    return normalizedNftLines(topo_->hv().exec("nft list table inet bulkhead").out);
  }
  uint64_t repairs() const { return jsonInt(cli("status --json").out, "drift_repairs"); }
  // Lines the sink has received so far.
  size_t received() const {
    const std::string text = readAll(dir_ / "received");
    return size_t(std::count(text.begin(), text.end(), '\n'));
  }
  // Conntrack entries of the workload's address in the hypervisor.
  std::string entriesOf(const std::string& addr) const {
    return topo_->hv()
        .exec("conntrack -L -s " + addr + " 2>/dev/null; conntrack -L -d " + addr + " 2>/dev/null")
        .out;
  }
};

TEST_F(DriftQuarantineTest, DriftByContentIsRepairedWithTheMonitorDisabled) {
  startAgent("--drift-events=false --resync-seconds 1");
  ASSERT_NE(log().find("event monitor off"), std::string::npos) << log();
  const auto before = table();
  ASSERT_FALSE(before.empty());
  // None of these removes the table: only a check by content sees them.
  const std::vector<std::string> tamper = {
      "nft flush chain inet bulkhead app_billing",
      "nft insert rule inet bulkhead forward accept",
      "nft delete element inet bulkhead src4 '{ \"vbill1\" . 192.0.2.10 }'",
      // As an attacker would: same number of rules and elements, other
      // meaning (a reject turned accept; the workload's dispatch verdict).
      "h=$(nft -a list chain inet bulkhead deny_reject | awk '/icmpx/ {print $NF}'); "
      "nft replace rule inet bulkhead deny_reject handle $h accept",
      "printf '%s\\n' 'delete element inet bulkhead dispatch { \"vbill1\" }' "
      "'add element inet bulkhead dispatch { \"vbill1\" : accept }' | nft -f -",
  };
  uint64_t expected = repairs();
  for (const auto& cmd : tamper) {
    const auto start = Clock::now();
    auto r = topo_->hv().exec(cmd);
    ASSERT_TRUE(r.ok()) << cmd << ": " << r.out;
    ASSERT_NE(table(), before) << cmd << " changed nothing";
    ++expected;
    // --resync-seconds 1, plus one second.
    const bool repaired = waitFor([&] { return table() == before && repairs() >= expected; }, 2000);
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_TRUE(repaired) << cmd << " not repaired after " << took << " s\n" << log();
    EXPECT_LE(took, 2.5) << cmd;
  }
  EXPECT_NE(log().find("periodic check: table inet bulkhead differed"), std::string::npos) << log();
  // In sync now: further checks repair nothing.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(repairs(), expected) << log();
  const auto status = cli("status --json").out;
  EXPECT_NE(jsonString(status, "last_drift_check").find("in sync"), std::string::npos) << status;
}

TEST_F(DriftQuarantineTest, QuarantineStopsALiveTcpStreamAndReleaseAllowsANewOne) {
  startAgent("");
  const Netns& server = *topo_->host("vsrv1").ns;
  const Netns& workload = *topo_->host("vbill1").ns;
  procs_.push_back(std::make_unique<Process>(
      server, "exec socat -u TCP-LISTEN:5432,reuseaddr,fork OPEN:" + (dir_ / "received").string() +
                  ",creat,append"));
  ASSERT_TRUE(waitListening(server, 5432, false));
  // One connection, a line every 10 ms, as a reverse shell keeps its session.
  procs_.push_back(std::make_unique<Process>(
      workload, "while true; do echo line; sleep 0.01; done | socat -u - TCP:198.51.100.10:5432"));
  ASSERT_TRUE(waitFor([&] { return received() >= 20; }, 5000)) << "the stream never flowed";
  ASSERT_FALSE(entriesOf("192.0.2.10").empty());

  auto q = cli("quarantine billing-1");
  ASSERT_TRUE(q.ok()) << q.out << log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const size_t afterGrace = received();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(received(), afterGrace) << "the stream still carries data after the quarantine";
  EXPECT_EQ(entriesOf("192.0.2.10"), "") << "conntrack still holds the workload's entries";

  ASSERT_TRUE(cli("quarantine billing-1 --release").ok()) << log();
  auto fresh = workload.exec("echo fresh | socat -u - TCP:198.51.100.10:5432,connect-timeout=3");
  EXPECT_TRUE(fresh.ok()) << fresh.out;
  EXPECT_TRUE(
      waitFor([&] { return readAll(dir_ / "received").find("fresh") != std::string::npos; }, 2000));
}

}  // namespace
}  // namespace bulkhead::testing
