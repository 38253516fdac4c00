#include "support/agent_host.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "support/scratch.h"

namespace bulkhead::testing {

namespace fs = std::filesystem;

std::string binaryDir() {
  return BULKHEAD_BINARY_DIR;
}

const char* const kBillingPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: postgres-prod, labels: {env: prod}}
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
    - to: [postgres-prod]
)";

fs::path freshTestDir(const std::string& tag) {
  const fs::path dir = scratchPath("bht-" + tag);
  fs::create_directories(dir);
  return dir;
}

void requirePrivileges() {
  ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
  sweepStaleNamespaces();
}

std::string agentCommand(const fs::path& dir, const std::string& flags,
                         const std::string& wrapper) {
  return "exec " + (wrapper.empty() ? "" : wrapper + " ") + binaryDir() +
         "/bulkhead-agent --listen unix://" + (dir / "agent.sock").string() + " --state-dir " +
         (dir / "state").string() + " " + flags + " 2>>" + (dir / "agent.log").string();
}

CmdResult agentCli(const std::string& socket, const std::string& args) {
  return sh(binaryDir() + "/bulkhead --agent " + socket + " " + args);
}

std::unique_ptr<Process> udpSink(const Netns& ns, int port, const fs::path& file) {
  return std::make_unique<Process>(ns, "exec socat -u UDP4-RECV:" + std::to_string(port) +
                                           ",bind=127.0.0.1 OPEN:" + file.string() +
                                           ",creat,append");
}

AgentHost::AgentHost(const Netns& ns, fs::path dir)
    : ns_(ns), dir_(std::move(dir)), socket_("unix://" + (dir_ / "agent.sock").string()) {
  fs::create_directories(dir_);
}

AgentHost::~AgentHost() = default;

bool AgentHost::launch(const std::string& flags, const std::string& wrapper) {
  process_.reset();
  process_ = std::make_unique<Process>(ns_, agentCommand(dir_, flags, wrapper));
  return waitFor([&] { return cli("status").ok(); }, 10000);
}

void AgentHost::start(const std::string& flags, const std::string& wrapper) {
  ASSERT_TRUE(launch(flags, wrapper)) << log();
}

void AgentHost::push(const fs::path& policy) const {
  const auto pushed = cli("push " + policy.string());
  ASSERT_TRUE(pushed.ok()) << pushed.out << log();
}

void AgentHost::waitPromoted(int ms) const {
  const bool done = waitFor(
      [&] {
        const auto st = cli("status --json");
        return st.ok() && jsonInt(st.out, "staged_interfaces") == 0;
      },
      ms);
  ASSERT_TRUE(done) << cli("status").out << log();
}

void AgentHost::kill(int sig) {
  if (process_) process_->kill(sig);
}

int AgentHost::wait(int ms) {
  return process_ ? process_->wait(ms) : -1;
}

bool AgentHost::running() const {
  return process_ && process_->running();
}

pid_t AgentHost::pid() const {
  return process_ ? process_->pid() : -1;
}

int AgentHost::stop(int ms) {
  if (!process_) return -1;
  process_->kill(SIGTERM);
  const int status = process_->wait(ms);
  process_.reset();
  return status;
}

std::string AgentHost::log() const {
  return readAll(dir_ / "agent.log");
}

void AgentHostTest::setUpHost(const std::string& tag, const std::string& policy) {
  ASSERT_NO_FATAL_FAILURE(requirePrivileges());
  dir_ = freshTestDir(tag);
  socket_ = "unix://" + (dir_ / "agent.sock").string();
  if (!policy.empty()) std::ofstream(dir_ / "policy.yaml") << policy;
  topo_ = std::make_unique<Topology>();
}

void AgentHostTest::TearDown() {
  agent_.reset();
  procs_.clear();
  topo_.reset();
  if (!dir_.empty()) fs::remove_all(dir_);
}

void AgentHostTest::launchAgent(const std::string& flags, const std::string& wrapper) {
  agent_.reset();
  agent_ = std::make_unique<AgentHost>(topo_->hv(), dir_);
  agent_->start(flags, wrapper);
}

void AgentHostTest::listenTcp(const Netns& ns, std::initializer_list<int> ports) {
  for (int port : ports)
    procs_.push_back(std::make_unique<Process>(ns, tcpListenCmd(port, false)));
  for (int port : ports)
    ASSERT_TRUE(waitListening(ns, port, false)) << "nothing listens on tcp/" << port;
}

}  // namespace bulkhead::testing
