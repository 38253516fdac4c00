// --socket-group: the agent's unix socket is root:GROUP mode 0660 in a
// directory the group can traverse, so a non-root member of the group can
// drive the agent and anyone else cannot. An unknown group stops the agent
// before it touches the kernel.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "support/netns.h"
#include "support/scratch.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = BULKHEAD_BINARY_DIR;
// Debian's base-passwd group that `nobody` is not in.
constexpr const char* kGroup = "users";

class SocketGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
    sweepStaleNamespaces();
    const ::group* g = ::getgrnam(kGroup);
    ASSERT_NE(g, nullptr) << "group " << kGroup << " missing";
    gid_ = g->gr_gid;
    dir_ = scratchPath("bht-sockgrp");
    fs::create_directories(dir_);
    // The test directory is searchable by all; the socket's own directory
    // (made by the agent) is what the group needs.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    ns_ = std::make_unique<Netns>();
  }
  void TearDown() override {
    agent_.reset();
    ns_.reset();
    fs::remove_all(dir_);
  }

  // The CLI as `nobody`, with only the given groups.
  CmdResult cliAs(const std::string& groups, const std::string& args) const {
    return sh("setpriv --reuid nobody --regid nogroup " +
              (groups.empty() ? std::string("--clear-groups") : "--groups " + groups) + " " + kBin +
              "/bulkhead --agent unix://" + (dir_ / "run/agent.sock").string() + " " + args +
              " 2>&1");
  }

  fs::path dir_;
  gid_t gid_ = 0;
  std::unique_ptr<Netns> ns_;
  std::unique_ptr<Process> agent_;
};

TEST_F(SocketGroupTest, MembersOfTheGroupCanCallTheAgentOthersCannot) {
  agent_ = std::make_unique<Process>(
      *ns_, "exec " + kBin + "/bulkhead-agent --listen unix://" +
                (dir_ / "run/agent.sock").string() + " --state-dir " + (dir_ / "state").string() +
                " --socket-group " + kGroup + " 2>>" + (dir_ / "agent.log").string());
  ASSERT_TRUE(waitFor([&] { return fs::exists(dir_ / "run/agent.sock"); }, 10000))
      << readAll(dir_ / "agent.log");
  ASSERT_TRUE(waitFor([&] { return cliAs(std::to_string(gid_), "status").ok(); }, 5000))
      << cliAs(std::to_string(gid_), "status").out << readAll(dir_ / "agent.log");

  struct stat sock {
  }, run{};
  ASSERT_EQ(::lstat((dir_ / "run/agent.sock").c_str(), &sock), 0);
  EXPECT_TRUE(S_ISSOCK(sock.st_mode));
  EXPECT_EQ(sock.st_uid, 0u);
  EXPECT_EQ(sock.st_gid, gid_);
  EXPECT_EQ(sock.st_mode & 07777, 0660u);
  ASSERT_EQ(::stat((dir_ / "run").c_str(), &run), 0);
  EXPECT_EQ(run.st_gid, gid_);
  EXPECT_EQ(run.st_mode & 07777, 0750u);

  // A member pushes a policy and registers a workload, as orchestration
  // running in the group would.
  std::ofstream(dir_ / "policy.yaml") << "apiVersion: bulkhead/v1\nkind: App\n"
                                         "metadata: {name: web}\nspec: {mode: audit}\n";
  auto push = cliAs(std::to_string(gid_), "push " + (dir_ / "policy.yaml").string());
  ASSERT_TRUE(push.ok()) << push.out;
  auto add = cliAs(std::to_string(gid_), "workload add w1 --app web --iface vw1 --addr 192.0.2.10");
  ASSERT_TRUE(add.ok()) << add.out << readAll(dir_ / "agent.log");
  EXPECT_NE(cliAs(std::to_string(gid_), "workload ls").out.find("w1"), std::string::npos);

  // Not in the group: the directory and the socket are closed to it.
  auto outsider = cliAs("", "status");
  EXPECT_FALSE(outsider.ok()) << outsider.out;
  auto other = cliAs("nogroup", "status");
  EXPECT_FALSE(other.ok()) << other.out;
}

TEST_F(SocketGroupTest, UnknownGroupExitsTwoBeforeTouchingTheKernel) {
  Process agent(*ns_, "exec " + kBin + "/bulkhead-agent --listen unix://" +
                          (dir_ / "run/agent.sock").string() + " --state-dir " +
                          (dir_ / "state").string() + " --socket-group bht-no-such-group 2>>" +
                          (dir_ / "agent.log").string());
  EXPECT_EQ(agent.wait(5000), 2);
  EXPECT_NE(
      readAll(dir_ / "agent.log").find("--socket-group: no group named \"bht-no-such-group\""),
      std::string::npos)
      << readAll(dir_ / "agent.log");
  EXPECT_FALSE(ns_->exec("nft list table inet bulkhead").ok()) << "the kernel was touched";
}

TEST_F(SocketGroupTest, ExistingDirectoryTheGroupCannotTraverseIsRefused) {
  fs::create_directories(dir_ / "run");
  fs::permissions(dir_ / "run", fs::perms::owner_all);  // root only, 0700
  Process agent(*ns_, "exec " + kBin + "/bulkhead-agent --listen unix://" +
                          (dir_ / "run/agent.sock").string() + " --state-dir " +
                          (dir_ / "state").string() + " --socket-group " + kGroup + " 2>>" +
                          (dir_ / "agent.log").string());
  EXPECT_EQ(agent.wait(5000), 2) << readAll(dir_ / "agent.log");
  EXPECT_NE(readAll(dir_ / "agent.log").find("the group cannot reach the socket"),
            std::string::npos)
      << readAll(dir_ / "agent.log");
  // Never loosened behind the operator's back.
  EXPECT_EQ(fs::status(dir_ / "run").permissions(), fs::perms::owner_all);
}

TEST_F(SocketGroupTest, WithoutRootAGroupTheAgentIsNotInIsRefusedClearly) {
  // As the unit runs it: not root, CAP_NET_ADMIN only, but `users` is not
  // its group: it cannot hand the socket over, and says so.
  fs::create_directories(dir_ / "state");
  fs::create_directories(dir_ / "run");
  ASSERT_EQ(::chown((dir_ / "state").c_str(), 65534, 65534), 0);
  ASSERT_EQ(::chown((dir_ / "run").c_str(), 65534, 65534), 0);
  fs::permissions(dir_ / "run", fs::perms::owner_all | fs::perms::others_exec);
  Process agent(*ns_,
                "exec setpriv --reuid nobody --regid nogroup --clear-groups "
                "--inh-caps -all,+net_admin --ambient-caps -all,+net_admin " +
                    kBin + "/bulkhead-agent --listen unix://" + (dir_ / "run/agent.sock").string() +
                    " --state-dir " + (dir_ / "state").string() + " --socket-group " + kGroup +
                    " 2>>" + (dir_ / "agent.log").string());
  EXPECT_EQ(agent.wait(5000), 2) << readAll(dir_ / "agent.log");
  EXPECT_NE(readAll(dir_ / "agent.log").find("outside that group"), std::string::npos)
      << readAll(dir_ / "agent.log");
}

}  // namespace
}  // namespace bulkhead::testing
