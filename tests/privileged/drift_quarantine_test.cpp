// The real agent with its nftables event monitor off (--drift-events=false):
// the periodic check alone finds tampering by content and repairs it; and
// quarantine cuts a live TCP stream by flushing the workload's conntrack
// entries.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBin = BULKHEAD_BINARY_DIR;

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

class DriftQuarantineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
    ASSERT_TRUE(sh("command -v conntrack").ok()) << "needs conntrack (packaging/install-deps.sh)";
    sweepStaleNamespaces();
    dir_ = fs::temp_directory_path() /
           ("bht-drift-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "policy.yaml") << kPolicy;
    topo_ = std::make_unique<Topology>();
    topo_->addHost("vbill1", "192.0.2.10", "");
    topo_->addHost("vsrv1", "198.51.100.10", "");
    socket_ = "unix://" + (dir_ / "agent.sock").string();
  }

  void TearDown() override {
    processes_.clear();
    agent_.reset();
    topo_.reset();
    fs::remove_all(dir_);
  }

  void startAgent(const std::string& extra) {
    agent_ = std::make_unique<Process>(topo_->hv(), "exec " + kBin + "/bulkhead-agent --listen " +
                                                        socket_ + " --state-dir " +
                                                        (dir_ / "state").string() + " " + extra +
                                                        " 2>>" + (dir_ / "agent.log").string());
    ASSERT_TRUE(waitFor([&] { return cli("status").ok(); }, 10000)) << log();
    ASSERT_TRUE(cli("push " + (dir_ / "policy.yaml").string()).ok()) << log();
    auto add = cli("workload add billing-1 --app billing --iface vbill1 --addr 192.0.2.10");
    ASSERT_TRUE(add.ok()) << add.out << log();
    ASSERT_TRUE(
        waitFor([&] { return jsonInt(cli("status --json").out, "staged_interfaces") == 0; }, 5000))
        << log();
  }

  CmdResult cli(const std::string& args) const {
    return sh(kBin + "/bulkhead --agent " + socket_ + " " + args);
  }
  std::string log() const { return readAll(dir_ / "agent.log"); }
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

  fs::path dir_;
  std::string socket_;
  std::unique_ptr<Topology> topo_;
  std::unique_ptr<Process> agent_;
  std::vector<std::unique_ptr<Process>> processes_;
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
  processes_.push_back(std::make_unique<Process>(
      server, "exec socat -u TCP-LISTEN:5432,reuseaddr,fork OPEN:" + (dir_ / "received").string() +
                  ",creat,append"));
  ASSERT_TRUE(waitListening(server, 5432, false));
  // One connection, a line every 10 ms, as a reverse shell keeps its session.
  processes_.push_back(std::make_unique<Process>(
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
