#include "bulkhead/agent/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

class AgentConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = fs::temp_directory_path() / ("bh-agent-config-" + std::to_string(getpid()) + ".yaml");
  }
  void TearDown() override { fs::remove(file_); }
  fs::path file_;
};

TEST_F(AgentConfigTest, DefaultsFollowTheSpec) {
  auto c = parseAgentArgs({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->listen, (std::vector<std::string>{"unix:///run/bulkhead/agent.sock"}));
  EXPECT_EQ(c->stateDir, "/var/lib/bulkhead");
  EXPECT_EQ(c->table, "bulkhead");
  EXPECT_EQ(c->logGroup, 1771);
  EXPECT_EQ(c->flowFormat, "rfc5424");
}

TEST_F(AgentConfigTest, FileKeysMirrorFlagsAndFlagsWin) {
  std::ofstream(file_) << "table: fromfile\nlog-group: 7\nlisten:\n  - unix:///tmp/a.sock\n"
                          "  - tcp://0.0.0.0:7443\nstate-dir: /tmp/state\nflow-format: json\n";
  auto fromFile = parseAgentArgs({"--config", file_.string()});
  ASSERT_TRUE(fromFile.ok()) << fromFile.error().message;
  EXPECT_EQ(fromFile->table, "fromfile");
  EXPECT_EQ(fromFile->logGroup, 7);
  EXPECT_EQ(fromFile->listen.size(), 2u);
  EXPECT_EQ(fromFile->flowFormat, "json");
  auto overridden = parseAgentArgs(
      {"--table=fromflag", "--config", file_.string(), "--listen", "unix:///tmp/b.sock"});
  ASSERT_TRUE(overridden.ok());
  EXPECT_EQ(overridden->table, "fromflag");
  EXPECT_EQ(overridden->listen, (std::vector<std::string>{"unix:///tmp/b.sock"}));
  EXPECT_EQ(overridden->stateDir, "/tmp/state");
}

TEST_F(AgentConfigTest, LogRateAndFlowWorkloadRate) {
  auto defaults = parseAgentArgs({});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->logRate, 100u);
  EXPECT_EQ(defaults->flowWorkloadRate, 200u);
  std::ofstream(file_) << "log-rate: 5000\nflow-workload-rate: 7000\n";
  auto fromFile = parseAgentArgs({"--config", file_.string(), "--log-rate", "1000000"});
  ASSERT_TRUE(fromFile.ok()) << fromFile.error().message;
  EXPECT_EQ(fromFile->logRate, 1000000u);
  EXPECT_EQ(fromFile->flowWorkloadRate, 7000u);
  EXPECT_FALSE(parseAgentArgs({"--log-rate", "0"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--log-rate", "1000001"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--flow-workload-rate", "0"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--flow-workload-rate", "x"}).ok());
}

TEST_F(AgentConfigTest, ShippedSampleConfigParses) {
  auto c = parseAgentArgs({"--config", std::string(BULKHEAD_SOURCE_DIR) + "/packaging/agent.yaml"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->listen, (std::vector<std::string>{"unix:///run/bulkhead/agent.sock"}));
  EXPECT_EQ(c->maxBundleBytes, 64u << 20);
}

TEST_F(AgentConfigTest, BadInputNamesTheFlagOrFileLine) {
  std::ofstream(file_) << "table: ok\ncolour: blue\n";
  auto unknownKey = parseAgentArgs({"--config", file_.string()});
  ASSERT_FALSE(unknownKey.ok());
  EXPECT_NE(unknownKey.error().message.find(":2:1: unknown setting \"colour\""), std::string::npos)
      << unknownKey.error().message;
  EXPECT_FALSE(parseAgentArgs({"--bogus", "1"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--log-group", "70000"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--listen", "http://x"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--flow-format", "xml"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--table", "Not Valid"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--table"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--config", "/nonexistent/agent.yaml"}).ok());
}

}  // namespace
}  // namespace bulkhead::agent
