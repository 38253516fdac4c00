// `bulkhead plan` output against the real nft parser, and the static-policy
// agent binary in a hypervisor namespace.
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

const std::string kBin = BULKHEAD_BINARY_DIR;
const std::string kSrc = BULKHEAD_SOURCE_DIR;

class PrivilegedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("plan");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(PrivilegedTest, PlanOutputIsAcceptedByNft) {
  Netns ns;
  for (const auto& input : {kSrc + "/policies/demo", kSrc + "/tests/golden/spec-example.yaml"}) {
    const auto plan = sh("(" + kBin + "/bulkhead plan " + input + " 2>/dev/null > " +
                         (dir_ / "plan.nft").string() + ")");
    ASSERT_TRUE(plan.ok()) << plan.out;
    auto check = ns.exec("nft -c -f " + (dir_ / "plan.nft").string());
    EXPECT_TRUE(check.ok()) << input << ": " << check.out;
    auto load =
        ns.exec("nft -f " + (dir_ / "plan.nft").string() +
                " && nft list table inet bulkhead >/dev/null && nft delete table inet bulkhead");
    EXPECT_TRUE(load.ok()) << input << ": " << load.out;
  }
}

class AgentTest : public PrivilegedTest {
 protected:
  void SetUp() override {
    PrivilegedTest::SetUp();
    policies_ = dir_ / "policies";
    fs::create_directories(policies_);
    fs::copy(kSrc + "/policies/demo", policies_, fs::copy_options::recursive);
  }
  std::string startCmd(int resync = 1) const {
    return agentCommand(dir_, "--policies " + policies_.string() + " --table bh --resync-seconds " +
                                  std::to_string(resync));
  }
  std::string listTable() const { return hv_.exec("nft list table inet bh").out; }
  std::string log() const { return readAll(dir_ / "agent.log"); }
  Netns hv_;
  fs::path policies_;
};

TEST_F(AgentTest, AppliesReloadsRepairsAndLeavesTheTableOnExit) {
  Process agent(hv_, startCmd());
  ASSERT_TRUE(waitFor([&] { return hv_.exec("nft list table inet bh").ok(); }, 5000)) << log();
  const std::string first = listTable();
  EXPECT_NE(first.find("\"vbill1\" : goto app_billing"), std::string::npos) << first;

  // An invalid policy on reload is rejected whole; the table is untouched.
  std::ofstream(policies_ / "zz-bad.yaml") << "apiVersion: bulkhead/v1\nkind: Nope\n";
  agent.kill(SIGHUP);
  ASSERT_TRUE(waitFor([&] { return log().find("rejected") != std::string::npos; }, 5000)) << log();
  EXPECT_NE(log().find("zz-bad.yaml:2:7: unknown kind"), std::string::npos) << log();
  EXPECT_EQ(listTable(), first);

  // A valid change is applied on reload.
  fs::remove(policies_ / "zz-bad.yaml");
  std::ofstream(policies_ / "zz-more.yaml") << R"(apiVersion: bulkhead/v1
kind: Workload
metadata: {name: extra-1}
spec: {app: billing, interfaces: [vextra1], addresses: [192.0.2.40]}
)";
  agent.kill(SIGHUP);
  ASSERT_TRUE(waitFor([&] { return listTable().find("vextra1") != std::string::npos; }, 5000))
      << log();

  // A third party deletes the table: the periodic check puts it back.
  ASSERT_TRUE(hv_.exec("nft delete table inet bh").ok());
  ASSERT_TRUE(waitFor([&] { return hv_.exec("nft list table inet bh").ok(); }, 3000)) << log();
  EXPECT_NE(log().find("restored"), std::string::npos) << log();

  // SIGTERM: the agent exits 0 and the table stays (fail-closed).
  agent.kill(SIGTERM);
  EXPECT_EQ(agent.wait(5000), 0);
  EXPECT_TRUE(hv_.exec("nft list table inet bh").ok());
}

TEST_F(AgentTest, KillNineLeavesTheTable) {
  Process agent(hv_, startCmd(30));
  ASSERT_TRUE(waitFor([&] { return hv_.exec("nft list table inet bh").ok(); }, 5000)) << log();
  const std::string before = listTable();
  agent.kill(SIGKILL);
  agent.wait(2000);
  EXPECT_EQ(listTable(), before);
}

TEST_F(AgentTest, InvalidPolicyAtStartAppliesNothing) {
  std::ofstream(policies_ / "zz-bad.yaml")
      << "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: x}\nspec:\n  endpoints:\n"
         "    - cidrs: [not-a-cidr]\n";
  Process agent(hv_, startCmd());
  EXPECT_EQ(agent.wait(5000), 2);
  EXPECT_FALSE(hv_.exec("nft list table inet bh").ok());
  EXPECT_NE(log().find("zz-bad.yaml:6:15: bad CIDR"), std::string::npos) << log();
}

}  // namespace
}  // namespace bulkhead::testing
