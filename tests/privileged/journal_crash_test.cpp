// Durability of acknowledged registrations under a crash: eight clients
// register workloads concurrently (their journal records share fdatasyncs),
// the agent is killed with SIGKILL right after the acknowledgements reach a
// count, with calls still in flight, and restarted; every acknowledged
// workload must be back, listed by the agent and in the kernel's table. Three
// rounds, each on the state the last crash left.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "bulkhead/v1/agent.grpc.pb.h"
#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

class JournalCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("crash");
  }
  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }

  std::string socketPath() const { return (dir_ / "agent.sock").string(); }
  std::string log() const { return readAll(dir_ / "agent.log"); }
  CmdResult cli(const std::string& args) const { return agentCli("unix://" + socketPath(), args); }

  void startAgent() {
    agent_ = std::make_unique<AgentHost>(hv_, dir_);
    agent_->start();
  }

  // Registers workloads "r<round>c<client>n<i>" from `clients` threads until
  // the agent stops answering; kills it with SIGKILL as soon as `killAfter`
  // registrations have been acknowledged. Returns the acknowledged names.
  std::set<std::string> registerUntilKilled(int round, int clients, int killAfter) {
    std::mutex mu;
    std::set<std::string> acked;
    std::atomic<int> count{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        auto stub = v1::Agent::NewStub(
            grpc::CreateChannel("unix:" + socketPath(), grpc::InsecureChannelCredentials()));
        for (int i = 0; !stop && i < 10000; ++i) {
          const std::string name =
              "r" + std::to_string(round) + "c" + std::to_string(c) + "n" + std::to_string(i);
          v1::UpsertWorkloadRequest req;
          auto* w = req.mutable_workload();
          w->set_name(name);
          w->set_app("billing");
          w->add_interfaces(name);
          w->add_addresses("2001:db8:" + std::to_string(round + 1) + ":" + std::to_string(c) +
                           "::" + std::to_string(i + 1));
          v1::UpsertWorkloadResponse resp;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          if (!stub->UpsertWorkload(&ctx, req, &resp).ok()) break;  // killed
          {
            std::lock_guard lock(mu);
            acked.insert(name);
          }
          if (++count == killAfter) {
            agent_->kill(SIGKILL);  // at once: other clients' calls are in flight
            stop = true;
          }
        }
      });
    for (auto& t : threads)
      t.join();
    agent_->wait(5000);
    agent_.reset();
    return acked;
  }

  std::set<std::string> listWorkloads() const {
    auto stub = v1::Agent::NewStub(
        grpc::CreateChannel("unix:" + socketPath(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListWorkloadsResponse resp;
    const auto st = stub->ListWorkloads(&ctx, v1::ListWorkloadsRequest(), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::set<std::string> names;
    for (const auto& w : resp.workloads())
      names.insert(w.name());
    return names;
  }

  Netns hv_;
  fs::path dir_;
  std::unique_ptr<AgentHost> agent_;
};

TEST_F(JournalCrashTest, EveryAcknowledgedRegistrationSurvivesKillNine) {
  std::set<std::string> acked;
  for (int round = 0; round < 3; ++round) {
    startAgent();
    const auto now = registerUntilKilled(round, 8, 60);
    ASSERT_GE(now.size(), 60u) << log();
    acked.insert(now.begin(), now.end());

    startAgent();
    const std::set<std::string> listed = listWorkloads();
    const std::string table = hv_.exec("nft list table inet bulkhead").out;
    size_t missing = 0;
    for (const auto& name : acked) {
      const bool isListed = listed.count(name) > 0;
      const bool enforced = table.find("\"" + name + "\"") != std::string::npos;
      if (!isListed || !enforced) {
        ADD_FAILURE() << "round " << round << ": acknowledged " << name << " is "
                      << (isListed ? "listed but not in the table" : "lost");
        if (++missing > 5) break;
      }
    }
    ASSERT_EQ(missing, 0u) << log();
    agent_.reset();
  }
}

}  // namespace
}  // namespace bulkhead::testing
