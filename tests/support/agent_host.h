// The real bulkhead-agent for privileged tests (and the benches that time a
// whole process against it): a scratch directory per test, the agent
// process with its socket, state and log in that directory, the CLI that
// talks to it, and a gtest fixture that adds a Topology and the listeners.
// Everything is removed by RAII, even when a test fails.
//
// Files in an agent's directory DIR:
//   DIR/agent.sock   its unix socket (socket() is "unix://DIR/agent.sock")
//   DIR/state/       its --state-dir
//   DIR/agent.log    its stderr, appended (log())
//   DIR/policy.yaml  the policy AgentHostTest::setUpHost writes
//
// Typical use (one agent in a hypervisor namespace):
//
//   class MyTest : public AgentHostTest {
//    protected:
//     void SetUp() override {
//       ASSERT_NO_FATAL_FAILURE(setUpHost("mine", kBillingPolicy));
//       topo_->addHost("vbill1", "192.0.2.10", "");
//       auto& server = topo_->addHost("vsrv1", "198.51.100.10", "");
//       ASSERT_NO_FATAL_FAILURE(listenTcp(*server.ns, {5432, 22}));
//     }
//   };
//   TEST_F(MyTest, X) {
//     ASSERT_NO_FATAL_FAILURE(launchAgent("--auto-quarantine"));
//     ASSERT_NO_FATAL_FAILURE(pushPolicy());
//     EXPECT_TRUE(cli("workload add ...").ok());
//   }
//
// Several agents (one per hypervisor namespace, e.g. a fleet): one AgentHost
// each, with a directory of its own (freshTestDir("fleet-hv1") ...).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/netns.h"

namespace bulkhead::testing {

// Where the build put bulkhead-agent, bulkhead and the hooks.
std::string binaryDir();

// billing (env: prod) may reach postgres-prod (198.51.100.10, tcp/5432),
// nothing else. The policy most end-to-end tests push.
extern const char* const kBillingPolicy;

// An empty directory for the running test's files:
// $TMPDIR/bht-<tag>-<pid>-<test name> (the test name only inside a test).
// Whatever was there is removed first; the caller removes it at the end.
std::filesystem::path freshTestDir(const std::string& tag);

// Fails the running test (ASSERT) unless it runs as root with ip and nft,
// then removes namespaces left behind by dead test processes.
void requirePrivileges();

// The shell command that runs the agent of directory `dir`:
//   exec [WRAPPER] BIN/bulkhead-agent --listen unix://DIR/agent.sock
//        --state-dir DIR/state FLAGS 2>>DIR/agent.log
// `wrapper` is a command that execs the agent (setpriv ..., strace ...);
// put environment assignments in front of the result ("VAR=x " + ...).
std::string agentCommand(const std::filesystem::path& dir, const std::string& flags = "",
                         const std::string& wrapper = "");

// The CLI against the agent at `socket` ("unix://..." or "tcp://..."): runs
// `bulkhead --agent SOCKET ARGS` in the root namespace (a unix socket is a
// file, reachable from there).
CmdResult agentCli(const std::string& socket, const std::string& args);

// A receiver in `ns` appending each datagram sent to 127.0.0.1:`port` to
// `file` (socat): a syslog target for the agent's flow events. Wait for it
// with waitListening(ns, port, true).
std::unique_ptr<Process> udpSink(const Netns& ns, int port, const std::filesystem::path& file);

// One bulkhead-agent process in namespace `ns`, its files in `dir` (made if
// missing, never removed: the directory belongs to the caller). Destroying
// it kills the process (SIGKILL to its group) and reaps it.
class AgentHost {
 public:
  AgentHost(const Netns& ns, std::filesystem::path dir);
  ~AgentHost();
  AgentHost(const AgentHost&) = delete;
  AgentHost& operator=(const AgentHost&) = delete;

  // Starts agentCommand(dir, flags, wrapper) and waits up to 10 s until it
  // answers `status`; false (the process left running) when it does not.
  // For code outside gtest (benches).
  bool launch(const std::string& flags = "", const std::string& wrapper = "");
  // launch(), as a fatal test failure that shows the log; call it as
  // ASSERT_NO_FATAL_FAILURE(agent.start(...)).
  void start(const std::string& flags = "", const std::string& wrapper = "");
  // `bulkhead push FILE`; a fatal test failure showing the output and the
  // log when it is refused.
  void push(const std::filesystem::path& policy) const;
  // Waits up to `ms` until no interface is staged (every registered one is
  // in @dispatch); a fatal test failure otherwise.
  void waitPromoted(int ms = 5000) const;

  // The process: signal, wait (exit status or -1, as Process::wait), state.
  void kill(int sig);
  int wait(int ms);
  bool running() const;
  pid_t pid() const;
  // SIGTERM, then waits up to `ms`; the exit status (-1 if none).
  int stop(int ms = 5000);

  CmdResult cli(const std::string& args) const { return agentCli(socket_, args); }
  std::string log() const;
  const std::string& socket() const { return socket_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  const Netns& ns_;
  std::filesystem::path dir_;
  std::string socket_;
  std::unique_ptr<Process> process_;
};

// A fixture for tests of the real agent between namespaces. setUpHost()
// from SetUp(); members are the test's to use. TearDown() stops the agent,
// then the listeners, then removes the namespaces and the directory: a
// subclass with processes of its own resets them first, then calls
// AgentHostTest::TearDown().
class AgentHostTest : public ::testing::Test {
 protected:
  // requirePrivileges(); dir_ = freshTestDir(tag); writes `policy` (when
  // not empty) to dir_/policy.yaml; a new Topology. ASSERT_NO_FATAL_FAILURE.
  void setUpHost(const std::string& tag, const std::string& policy = "");
  void TearDown() override;

  // A new agent in the hypervisor namespace (replacing agent_, which is
  // killed first if running), started as AgentHost::start.
  void launchAgent(const std::string& flags = "", const std::string& wrapper = "");
  // Pushes dir_/policy.yaml (fatal test failure when refused).
  void pushPolicy() const { agent_->push(dir_ / "policy.yaml"); }
  // A TCP listener answering "ok" on each port in `ns` (kept in procs_);
  // fails the test unless each listens within ~3 s.
  void listenTcp(const Netns& ns, std::initializer_list<int> ports);

  CmdResult cli(const std::string& args) const { return agentCli(socket_, args); }
  // The agent's stderr so far (also of agents that have stopped).
  std::string log() const { return readAll(dir_ / "agent.log"); }
  // The namespace behind hypervisor interface `iface`.
  const Netns& ns(const std::string& iface) { return *topo_->host(iface).ns; }

  std::filesystem::path dir_;
  std::string socket_;  // unix://dir_/agent.sock
  std::unique_ptr<Topology> topo_;
  std::vector<std::unique_ptr<Process>> procs_;  // listeners, receivers
  std::unique_ptr<AgentHost> agent_;
};

}  // namespace bulkhead::testing
