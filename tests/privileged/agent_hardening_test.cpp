// The real agent against an operator's crashes and an attacker's input:
// registrations without any push survive kill -9 (journal only, and after a
// torn journal tail) with the same kernel table; a config file with a
// non-scalar key is exit 2; a cross-document YAML alias bomb is refused
// cheaply by `bulkhead validate` and by a push; a version or file name with
// a newline is INVALID_ARGUMENT and forges no line in the agent's log.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bulkhead/agent/state_store.h"
#include "bulkhead/v1/agent.grpc.pb.h"
#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = binaryDir();
constexpr const char* kForgedLine = "2026-01-01T00:00:00Z info forged line";

// One App whose egress rule is repeated by 200 aliases of 4003 nodes each:
// about 0.8 M nodes, well under the per-document limit (4 M) and under the
// bundle's budget (1 M); a bundle of many such documents is what the
// per-bundle limit is for.
std::string aliasDocument(int index) {
  std::string doc = "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: a" +
                    std::to_string(index) + "}\nspec:\n  egress:\n    - &r {to: [";
  for (int i = 0; i < 4000; ++i)
    doc += i ? ",db" : "db";
  doc += "]}\n";
  for (int i = 0; i < 200; ++i)
    doc += "    - *r\n";
  return doc;
}

std::string aliasBomb(int documents) {
  std::string text =
      "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: db}\n"
      "spec: {endpoints: [{cidrs: [198.51.100.10/32], ports: [tcp/5432]}]}\n";
  for (int i = 0; i < documents; ++i)
    text += "---\n" + aliasDocument(i);
  return text;
}

// Peak RSS (KiB) and wall time of one command, run in a child of its own
// so that the figure is that process's and no one else's.
struct Measured {
  int status = -1;
  long maxRssKib = 0;
  double seconds = 0;
};
Measured measure(const std::string& cmd) {
  Measured m;
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  if (pid > 0 && wait4(pid, &status, 0, &usage) == pid) {
    m.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    m.maxRssKib = usage.ru_maxrss;
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

long peakRssKib(pid_t pid) {
  std::istringstream in(readAll("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class AgentHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("hard");
    socket_ = "unix://" + (dir_ / "agent.sock").string();
  }

  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }

  void startAgent() {
    agent_ = std::make_unique<AgentHost>(hv_, dir_);
    agent_->start();
  }

  void killAgent() {
    agent_->kill(SIGKILL);
    agent_->wait(2000);
    agent_.reset();
  }

  CmdResult cli(const std::string& args) const { return agentCli(socket_, args); }

  void add(const std::string& name, const std::string& iface, const std::string& addr) {
    auto r = cli("workload add " + name + " --app billing --iface " + iface + " --addr " + addr);
    ASSERT_TRUE(r.ok()) << r.out << log();
  }

  void waitPromoted() { agent_->waitPromoted(); }

  // What must be equal before a crash and after the restart: the workloads
  // (with their quarantine) and the kernel's table.
  struct Snapshot {
    std::string workloads;
    std::vector<std::string> table;
  };
  Snapshot snapshot() const {
    return {cli("workload ls --json").out,
            normalizedNftLines(hv_.exec("nft list table inet bulkhead").out)};
  }

  std::unique_ptr<v1::Agent::Stub> stub() const {
    return v1::Agent::NewStub(grpc::CreateChannel("unix:" + (dir_ / "agent.sock").string(),
                                                  grpc::InsecureChannelCredentials()));
  }

  std::string log() const { return readAll(dir_ / "agent.log"); }

  Netns hv_;
  fs::path dir_;
  std::string socket_;
  std::unique_ptr<AgentHost> agent_;
};

TEST_F(AgentHardeningTest, RegistrationsWithoutAPushSurviveKillNine) {
  startAgent();
  add("billing-1", "vbill1", "192.0.2.10");
  add("billing-2", "vbill2", "192.0.2.11");
  ASSERT_TRUE(cli("quarantine billing-2").ok()) << log();
  waitPromoted();
  const Snapshot before = snapshot();
  ASSERT_NE(before.workloads.find("billing-1"), std::string::npos) << before.workloads;
  ASSERT_FALSE(before.table.empty());
  ASSERT_FALSE(fs::exists(dir_ / "state" / "state.pb")) << "no push: no snapshot either";
  killAgent();

  startAgent();
  waitPromoted();
  const Snapshot after = snapshot();
  EXPECT_EQ(after.workloads, before.workloads) << log();
  EXPECT_EQ(after.table, before.table) << log();
  // The next registration keeps them.
  add("billing-3", "vbill3", "192.0.2.12");
  const std::string ls = cli("workload ls").out;
  for (const char* name : {"billing-1", "billing-2", "billing-3"})
    EXPECT_NE(ls.find(name), std::string::npos) << name << "\n" << ls;
}

TEST_F(AgentHardeningTest, TornJournalTailThenAppendThenRestartLosesNothing) {
  startAgent();
  add("billing-1", "vbill1", "192.0.2.10");
  add("billing-2", "vbill2", "192.0.2.11");
  ASSERT_TRUE(cli("quarantine billing-1").ok()) << log();
  killAgent();
  // A crash mid-write: a length announcing more than was written, just
  // after the last whole record.
  const fs::path journal = dir_ / "state" / "journal.pb";
  ASSERT_TRUE(fs::exists(journal));
  size_t whole = 0;
  {
    agent::StateStore store((dir_ / "state").string());
    ASSERT_TRUE(store.load().ok());
    whole = store.journal().bytes();
  }
  {
    std::fstream f(journal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(whole));
    f << std::string("\x40\x00\x00\x00\x01\x02\x03\x04xyz", 11);
  }

  startAgent();
  add("billing-3", "vbill3", "192.0.2.12");
  waitPromoted();
  const Snapshot before = snapshot();
  {
    agent::StateStore store((dir_ / "state").string());
    ASSERT_TRUE(store.load().ok());
    EXPECT_GT(store.journal().bytes(), whole) << "billing-3 written where the torn record was";
  }
  killAgent();

  startAgent();
  waitPromoted();
  const Snapshot after = snapshot();
  for (const char* name : {"billing-1", "billing-2", "billing-3"})
    EXPECT_NE(after.workloads.find(name), std::string::npos) << name << "\n"
                                                             << after.workloads << log();
  EXPECT_EQ(after.workloads, before.workloads) << log();
  EXPECT_EQ(after.table, before.table) << log();
}

TEST_F(AgentHardeningTest, ConfigWithNonScalarKeyIsExitTwoWithPosition) {
  const fs::path config = dir_ / "agent.yaml";
  for (const std::string text : {"? [a, b]\n: 1\n", "table: x\n? {a: 1}\n: [b]\n"}) {
    std::ofstream(config, std::ios::trunc) << text;
    const auto r = hv_.exec(kBin + "/bulkhead-agent --config " + config.string() + " --listen " +
                            socket_ + " 2>&1");
    EXPECT_EQ(r.status, 2) << text << r.out;
    EXPECT_NE(r.out.find(config.string() + ":"), std::string::npos) << r.out;
    const std::string where = text[0] == '?' ? ":1:3: " : ":2:3: ";
    EXPECT_NE(r.out.find(config.string() + where), std::string::npos) << r.out;
  }
}

TEST_F(AgentHardeningTest, CrossDocumentAliasBombIsRefusedCheaply) {
  const int kDocuments = 128;  // ~100 M names if expanded; ~1.8 MB of YAML
  fs::create_directories(dir_ / "bomb");
  std::ofstream(dir_ / "bomb" / "bomb.yaml") << aliasBomb(kDocuments);

  const auto validate = measure(kBin + "/bulkhead validate " + (dir_ / "bomb").string());
  EXPECT_EQ(validate.status, 2);
  EXPECT_LT(validate.maxRssKib, 512 * 1024) << "peak RSS of bulkhead validate";
  EXPECT_LT(validate.seconds, 10.0);
  const auto said = sh(kBin + "/bulkhead validate " + (dir_ / "bomb").string() + " 2>&1");
  EXPECT_NE(said.out.find("aliases expand to more than"), std::string::npos) << said.out;
  std::cout << "validate: " << validate.maxRssKib / 1024 << " MiB peak, " << validate.seconds
            << " s\n";

  startAgent();
  v1::ApplyPolicyRequest push;
  auto* file = push.add_files();
  file->set_name("bomb.yaml");
  file->set_content(readAll(dir_ / "bomb" / "bomb.yaml"));
  v1::ApplyPolicyResponse response;
  grpc::ClientContext ctx;
  const auto start = std::chrono::steady_clock::now();
  const auto st = stub()->ApplyPolicy(&ctx, push, &response);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("aliases expand to more than"), std::string::npos);
  EXPECT_LT(seconds, 10.0);
  const long agentPeak = peakRssKib(agent_->pid());
  ASSERT_GT(agentPeak, 0);
  EXPECT_LT(agentPeak, 512 * 1024) << "peak RSS of the agent";
  std::cout << "push: agent " << agentPeak / 1024 << " MiB peak, " << seconds << " s\n";
}

TEST_F(AgentHardeningTest, NewlinesInVersionOrNamesAreRefusedAndForgeNoLogLine) {
  startAgent();
  const std::string forged = std::string("v1\n") + kForgedLine;
  auto s = stub();
  const std::string policy =
      "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: billing}\nspec: {}\n";
  {
    v1::ApplyPolicyRequest r;
    r.set_version(forged);
    auto* f = r.add_files();
    f->set_name("policy.yaml");
    f->set_content(policy);
    grpc::ClientContext ctx;
    v1::ApplyPolicyResponse resp;
    const auto st = s->ApplyPolicy(&ctx, r, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_EQ(st.error_message().rfind("version:", 0), 0u) << st.error_message();
  }
  {
    v1::ApplyPolicyRequest r;
    auto* f = r.add_files();
    f->set_name("policy.yaml\n" + std::string(kForgedLine));
    f->set_content(policy);
    grpc::ClientContext ctx;
    v1::ApplyPolicyResponse resp;
    const auto st = s->ApplyPolicy(&ctx, r, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_EQ(st.error_message().rfind("files[0].name:", 0), 0u) << st.error_message();
  }
  {
    v1::QuarantineRequest r;
    r.set_name("billing-1\n" + std::string(kForgedLine));
    grpc::ClientContext ctx;
    v1::QuarantineResponse resp;
    EXPECT_EQ(s->Quarantine(&ctx, r, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::DeleteWorkloadRequest r;
    r.set_name("billing-1\r\n" + std::string(kForgedLine));
    grpc::ClientContext ctx;
    v1::DeleteWorkloadResponse resp;
    EXPECT_EQ(s->DeleteWorkload(&ctx, r, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::UpsertWorkloadRequest r;
    auto* w = r.mutable_workload();
    w->set_name("billing-1");
    w->set_app("billing");
    w->add_interfaces("vbill1");
    w->add_addresses("192.0.2.10");
    (*w->mutable_labels())["env"] = "prod\n" + std::string(kForgedLine);
    grpc::ClientContext ctx;
    v1::UpsertWorkloadResponse resp;
    EXPECT_EQ(s->UpsertWorkload(&ctx, r, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The CLI sends a version as given, too.
  std::ofstream(dir_ / "policy.yaml") << policy;
  const auto viaCli =
      cli("push " + (dir_ / "policy.yaml").string() + " --version 'v1\n" + kForgedLine + "'");
  EXPECT_EQ(viaCli.status, 2) << viaCli.out;
  const std::string status = cli("status --json").out;
  EXPECT_EQ(status.find("forged"), std::string::npos) << "nothing was applied: " << status;

  const std::string text = log();
  // The refusals were logged (so the check below looks at real lines)...
  EXPECT_NE(text.find("ApplyPolicy from"), std::string::npos) << text;
  EXPECT_NE(text.find("info forged line"), std::string::npos) << text;
  // ...and none of them starts a line of its own.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_NE(line.rfind("2026-01-01T00:00:00Z", 0), 0u) << "forged line: " << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace bulkhead::testing
