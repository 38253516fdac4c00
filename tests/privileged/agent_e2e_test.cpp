// The real binaries end to end: bulkhead-agent in a hypervisor namespace,
// driven by the bulkhead CLI over its unix socket (and TCP with mTLS), real
// traffic between namespaces, kill -9, restarts, drift, concurrency.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = binaryDir();
const char* const kPolicy = kBillingPolicy;

class AgentE2eTest : public AgentHostTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(setUpHost("e2e", kPolicy));
    topo_->addHost("vbill1", "192.0.2.10", "");
    auto& server = topo_->addHost("vsrv1", "198.51.100.10", "");
    ASSERT_NO_FATAL_FAILURE(listenTcp(*server.ns, {5432, 22}));
  }

  void startAgent(const std::string& extra = "") { launchAgent(extra); }

  void pushAndRegister() {
    ASSERT_NO_FATAL_FAILURE(pushPolicy());
    auto add = cli("workload add billing-1 --app billing --iface vbill1 --addr 192.0.2.10");
    ASSERT_TRUE(add.ok()) << add.out << log();
    // Enforced already (staged); wait for the promotion so that the table
    // lists as a full compile of the same inputs would.
    agent_->waitPromoted();
  }

  void expectEnforced() {
    const Netns& billing = *topo_->host("vbill1").ns;
    auto allowed = tcpProbe(billing, "198.51.100.10", 5432);
    EXPECT_TRUE(allowed.ok) << allowed.out;
    auto denied = tcpProbe(billing, "198.51.100.10", 22, 3.0);
    EXPECT_FALSE(denied.ok) << denied.out;
  }

  // The kernel fills log_budget itself (one element per interface that
  // logged, with a running expiry): not part of what the agent wrote.
  std::string table() const {
    static const std::regex budget("(set log_budget \\{[^}]*)\t\telements = \\{[^}]*\\}\n");
    return std::regex_replace(topo_->hv().exec("nft list table inet bulkhead").out, budget, "$1");
  }
};

TEST_F(AgentE2eTest, PushAndWorkloadAddEnforceAndSocketIsPrivate) {
  startAgent();
  pushAndRegister();
  expectEnforced();
  EXPECT_EQ(fs::status(dir_ / "agent.sock").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::group_write);
  auto status = cli("status --json");
  ASSERT_TRUE(status.ok()) << status.out;
  EXPECT_EQ(jsonInt(status.out, "workloads"), 1u) << status.out;
  EXPECT_EQ(jsonString(status.out, "version").rfind("sha256:", 0), 0u) << status.out;
  // The same bundle again changes nothing.
  auto again = cli("push " + (dir_ / "policy.yaml").string());
  EXPECT_TRUE(again.ok());
  EXPECT_NE(again.out.find("unchanged"), std::string::npos) << again.out;
}

TEST_F(AgentE2eTest, KillNineKeepsEnforcingAndRestartRestoresWithoutAPush) {
  startAgent();
  pushAndRegister();
  const std::string version = jsonString(cli("status --json").out, "version");
  agent_->kill(SIGKILL);
  agent_->wait(2000);
  expectEnforced();  // fail-closed: the table outlives the agent

  startAgent();
  auto ls = cli("workload ls");
  ASSERT_TRUE(ls.ok()) << ls.out;
  EXPECT_NE(ls.out.find("billing-1"), std::string::npos) << ls.out;
  const auto status = cli("status --json").out;
  EXPECT_EQ(jsonString(status, "version"), version) << status;
  EXPECT_EQ(jsonInt(status, "pushes"), 0u) << "nothing was re-pushed: " << status;
  expectEnforced();
}

TEST_F(AgentE2eTest, QuarantineDropsNewFlowsAndReleaseRestoresThem) {
  startAgent();
  pushAndRegister();
  const Netns& billing = *topo_->host("vbill1").ns;
  ASSERT_TRUE(tcpProbe(billing, "198.51.100.10", 5432).ok);
  auto q = cli("quarantine billing-1");
  ASSERT_TRUE(q.ok()) << q.out;
  auto blocked = tcpProbe(billing, "198.51.100.10", 5432, 1.5);
  EXPECT_FALSE(blocked.ok) << blocked.out;
  EXPECT_GE(blocked.seconds, 1.4) << "quarantine drops";
  EXPECT_NE(cli("workload ls").out.find("yes"), std::string::npos);
  ASSERT_TRUE(cli("quarantine billing-1 --release").ok());
  EXPECT_TRUE(tcpProbe(billing, "198.51.100.10", 5432).ok);
  EXPECT_EQ(cli("quarantine nobody").status, 2);
}

TEST_F(AgentE2eTest, StaleSocketIsReplacedLiveOneIsNot) {
  startAgent();
  // A second agent on the same socket would fight over the table: refused.
  Process second(topo_->hv(), agentCommand(dir_));
  EXPECT_EQ(second.wait(5000), 1);
  EXPECT_NE(log().find("another process is serving"), std::string::npos) << log();
  // kill -9 leaves the socket file behind; the next agent replaces it.
  agent_->kill(SIGKILL);
  agent_->wait(2000);
  ASSERT_TRUE(fs::exists(dir_ / "agent.sock"));
  startAgent();
}

TEST_F(AgentE2eTest, ThirdPartyDeleteAndFlushAreRepairedWithinASecond) {
  startAgent();
  pushAndRegister();
  const std::string before = table();
  auto repairs = [&] { return jsonInt(cli("status --json").out, "drift_repairs"); };
  // Each tampering is repaired (the table lists as before) within a second.
  const std::vector<std::string> tamper = {
      "nft delete table inet bulkhead",
      "nft flush table inet bulkhead",
      "nft delete element inet bulkhead dispatch '{ \"vbill1\" }'",
      "nft add rule inet bulkhead workload_pre accept",
  };
  uint64_t expected = 0;
  for (const auto& cmd : tamper) {
    ASSERT_TRUE(topo_->hv().exec(cmd).ok()) << cmd;
    ++expected;
    EXPECT_TRUE(waitFor([&] { return repairs() >= expected && table() == before; }, 1000))
        << cmd << "\n"
        << table() << log();
  }
  expectEnforced();
}

// A large transaction of the agent's own is written with its monitor out of
// the nf_tables notification group (it would otherwise overflow the
// monitor's 8 MiB socket). That is no drift: the agent must not "repair" it,
// since each whole replace is such a transaction again (it looped so once).
// A foreign change made afterwards is still heard and repaired.
TEST_F(AgentE2eTest, OwnLargeTransactionsOverflowingNotificationsAreNoDrift) {
  startAgent();
  std::ofstream big(dir_ / "big.yaml");
  big << kPolicy;
  // 2 x 60,000 addresses that do not touch, so none merge: 120,000 elements
  // (the kernel packs several notifications per message; fewer do not fill
  // the socket).
  for (int svc = 0; svc < 2; ++svc) {
    big << "---\napiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: many" << svc
        << "}\nspec:\n  endpoints:\n    - ports: [tcp/443]\n      cidrs:\n";
    for (int i = 0; i < 60000; ++i)
      big << "        - \"2001:db8:" << std::hex << 0x100 + svc << ":0:0:0:" << (i >> 14) << ":"
          << 2 * (i & 0x3fff) << std::dec << "/128\"\n";
  }
  big << "---\napiVersion: bulkhead/v1\nkind: App\nmetadata: {name: wide}\n"
      << "spec:\n  egress:\n    - to: [many0, many1]\n";
  big.close();
  auto push = cli("push " + (dir_ / "big.yaml").string());
  ASSERT_TRUE(push.ok()) << push.out << log();
  auto repairs = [&] { return jsonInt(cli("status --json").out, "drift_repairs"); };
  // The overflow is read within the watcher's next wait (100 ms); give it
  // ample time to (wrongly) act.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(repairs(), 0u) << log();
  EXPECT_EQ(log().find("drift:"), std::string::npos) << log();

  const std::string before = table();
  ASSERT_TRUE(topo_->hv().exec("nft add rule inet bulkhead workload_pre accept").ok());
  // A whole replace of this table takes a second or two on a busy machine.
  EXPECT_TRUE(waitFor([&] { return repairs() == 1 && table() == before; }, 10000)) << log();
  // That replace was as large: still no second repair.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(repairs(), 1u) << log();
}

TEST_F(AgentE2eTest, CorruptStateIsALoudErrorAndLeavesTheKernelTable) {
  startAgent();
  pushAndRegister();
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000), 0);
  const std::string before = table();
  std::ofstream(dir_ / "state" / "state.pb", std::ios::trunc) << "garbage, not a state file";
  Process broken(topo_->hv(), agentCommand(dir_));
  EXPECT_EQ(broken.wait(5000), 1);
  EXPECT_NE(log().find("corrupt"), std::string::npos) << log();
  EXPECT_EQ(table(), before);
  expectEnforced();
}

TEST_F(AgentE2eTest, BadRequestsGetPreciseErrors) {
  startAgent("--max-bundle-bytes 4000");
  std::ofstream(dir_ / "bad.yaml") << "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: x}\n"
                                      "spec:\n  egress:\n    - to: [nowhere]\n";
  auto bad = cli("push " + (dir_ / "bad.yaml").string());
  EXPECT_EQ(bad.status, 2) << bad.out;
  EXPECT_NE(bad.out.find("bad.yaml:6:12"), std::string::npos) << bad.out;
  std::ofstream(dir_ / "big.yaml") << kPolicy << "\n#" << std::string(5000, 'x') << "\n";
  auto big = cli("push " + (dir_ / "big.yaml").string());
  EXPECT_EQ(big.status, 2) << big.out;
  EXPECT_NE(big.out.find("limit"), std::string::npos) << big.out;
  auto badAddr = cli("workload add w --app billing --iface v1 --addr 192.0.2.300");
  EXPECT_EQ(badAddr.status, 2) << badAddr.out;
  EXPECT_NE(badAddr.out.find("addresses"), std::string::npos) << badAddr.out;
  auto missing = cli("workload rm nobody");
  EXPECT_EQ(missing.status, 2) << missing.out;
  EXPECT_FALSE(topo_->hv().exec("nft list table inet bulkhead").ok())
      << "nothing invalid may be applied";
}

TEST_F(AgentE2eTest, WithoutNetAdminTheAgentAnswersUnavailable) {
  // The same binary without CAP_NET_ADMIN: it serves, but the kernel refuses
  // every transaction.
  ASSERT_NO_FATAL_FAILURE(
      launchAgent("", "setpriv --inh-caps=-net_admin --bounding-set=-net_admin"));
  auto push = cli("push " + (dir_ / "policy.yaml").string());
  EXPECT_EQ(push.status, 1) << push.out;
  EXPECT_NE(push.out.find("nothing was applied"), std::string::npos) << push.out;
}

TEST_F(AgentE2eTest, ConcurrentPushesEndConsistent) {
  startAgent();
  pushAndRegister();
  constexpr int kClients = 4, kRounds = 4;
  for (int c = 0; c < kClients; ++c) {
    std::ofstream(dir_ / ("p" + std::to_string(c) + ".yaml"))
        << kPolicy << "---\napiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: extra" << c
        << "}\nspec:\n  endpoints:\n    - cidrs: [203.0.113." << c + 1 << "/32]\n      ports: [tcp/"
        << 1000 + c << "]\n";
  }
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      for (int r = 0; r < kRounds; ++r) {
        cli("push " + (dir_ / ("p" + std::to_string(c) + ".yaml")).string() + " --version c" +
            std::to_string(c));
        cli("workload add w" + std::to_string(c) + "-" + std::to_string(r) +
            " --app billing --iface vc" + std::to_string(c) + "r" + std::to_string(r) +
            " --addr 192.0.2." + std::to_string(100 + c * 10 + r));
      }
    });
  for (auto& t : clients)
    t.join();
  const auto status = cli("status --json").out;
  const std::string version = jsonString(status, "version");
  ASSERT_EQ(version.size(), 2u) << status;
  EXPECT_EQ(jsonInt(status, "workloads"), 1u + kClients * kRounds) << status;
  // The kernel holds exactly the plan of the bundle in force plus the
  // registered workloads (once the new interfaces are promoted).
  agent_->waitPromoted();
  std::ofstream wl(dir_ / "workloads.yaml");
  wl << "apiVersion: bulkhead/v1\nkind: Workload\nmetadata: {name: billing-1}\n"
        "spec: {app: billing, interfaces: [vbill1], addresses: [192.0.2.10]}\n";
  for (int c = 0; c < kClients; ++c)
    for (int r = 0; r < kRounds; ++r)
      wl << "---\napiVersion: bulkhead/v1\nkind: Workload\nmetadata: {name: w" << c << "-" << r
         << "}\nspec: {app: billing, interfaces: [vc" << c << "r" << r << "], addresses: [192.0.2."
         << 100 + c * 10 + r << "]}\n";
  wl.close();
  const auto plan =
      sh(kBin + "/bulkhead plan " + (dir_ / ("p" + version.substr(1) + ".yaml")).string() +
         " --workloads " + (dir_ / "workloads.yaml").string() + " 2>/dev/null");
  ASSERT_TRUE(plan.ok()) << plan.out;
  EXPECT_EQ(normalizedNftLines(plan.out), normalizedNftLines(table()));
}

}  // namespace
}  // namespace bulkhead::testing
