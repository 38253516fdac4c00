// The controller side of `bulkhead` (push --controller [--wait], status
// --controller, workload ls --controller, $BULKHEAD_CONTROLLER) driven
// in-process against a fake controller: an in-process gRPC server on a unix
// socket with scripted answers and rollouts. The output formatting is
// checked byte for byte through the pure functions of fleet_output.h. The
// real controller is tested end to end by the privileged fleet tests.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "../../src/cli/fleet_output.h"
#include "bulkhead/cli/commands.h"
#include "bulkhead/v1/agent.grpc.pb.h"
#include "bulkhead/v1/controller.grpc.pb.h"
#include "support/cli_run.h"

namespace bulkhead::cli {
namespace {

namespace fs = std::filesystem;
using v1::HostRollout;

class FakeController final : public v1::Controller::Service {
 public:
  grpc::Status PushPolicy(grpc::ServerContext*, const v1::PushPolicyRequest* request,
                          v1::PushPolicyResponse* response) override {
    std::lock_guard lock(mu);
    pushes.push_back(*request);
    *response = pushResponse;
    return status;
  }
  grpc::Status WatchRollout(grpc::ServerContext*, const v1::WatchRolloutRequest* request,
                            grpc::ServerWriter<v1::RolloutProgress>* writer) override {
    std::vector<v1::RolloutProgress> script;
    {
      std::lock_guard lock(mu);
      watches.push_back(*request);
      script = rollout;
    }
    for (const auto& p : script)
      writer->Write(p);
    return rolloutStatus;
  }
  grpc::Status GetFleetStatus(grpc::ServerContext*, const v1::GetFleetStatusRequest*,
                              v1::FleetStatus* response) override {
    std::lock_guard lock(mu);
    ++statusCalls;
    *response = fleetStatus;
    return status;
  }
  grpc::Status ListFleetWorkloads(grpc::ServerContext*, const v1::ListFleetWorkloadsRequest*,
                                  v1::ListWorkloadsResponse* response) override {
    std::lock_guard lock(mu);
    *response = workloads;
    return status;
  }

  grpc::Status status = grpc::Status::OK;
  grpc::Status rolloutStatus = grpc::Status::OK;
  v1::PushPolicyResponse pushResponse;
  std::vector<v1::RolloutProgress> rollout;
  v1::FleetStatus fleetStatus;
  v1::ListWorkloadsResponse workloads;
  std::vector<v1::PushPolicyRequest> pushes;
  std::vector<v1::WatchRolloutRequest> watches;
  int statusCalls = 0;
  std::mutex mu;
};

// An agent that must not be called: counts what reaches it.
class CountingAgent final : public v1::Agent::Service {
 public:
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::AgentStatus*) override {
    ++calls;
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
};

using testing::CliRun;
using testing::contains;
using testing::run;

const char* kApp = R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec:
  egress:
    - toCIDRs: [203.0.113.0/24]
      ports: [tcp/443]
)";

HostRollout* addHost(v1::RolloutProgress* p, const std::string& host, HostRollout::State state,
                     const std::string& error = "") {
  auto* h = p->add_hosts();
  h->set_host(host);
  h->set_state(state);
  h->set_error(error);
  return h;
}

class CliControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("bhctl-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    fs::create_directories(dir_);
    address_ = "unix://" + (dir_ / "ctl.sock").string();
    agentAddress_ = "unix://" + (dir_ / "agent.sock").string();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + (dir_ / "ctl.sock").string(),
                             grpc::InsecureServerCredentials());
    builder.AddListeningPort("unix:" + (dir_ / "agent.sock").string(),
                             grpc::InsecureServerCredentials());
    builder.RegisterService(&controller_);
    builder.RegisterService(&agent_);
    server_ = builder.BuildAndStart();
    unsetenv("BULKHEAD_CONTROLLER");
    unsetenv("BULKHEAD_AGENT");
    policy_ = (dir_ / "app.yaml").string();
    std::ofstream(policy_) << kApp;
    controller_.pushResponse.set_revision(7);
    controller_.pushResponse.set_version("v7");
    controller_.pushResponse.set_changed(true);
    controller_.pushResponse.set_hosts_connected(3);
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now());
    unsetenv("BULKHEAD_CONTROLLER");
    unsetenv("BULKHEAD_AGENT");
    fs::remove_all(dir_);
  }
  // A rollout of revision 7 over a, b, c ending with `last` states.
  void script(HostRollout::State a, HostRollout::State b, HostRollout::State c,
              const std::string& error = "") {
    v1::RolloutProgress first;
    first.set_revision(7);
    first.set_total(3);
    addHost(&first, "a", HostRollout::STATE_PENDING);
    addHost(&first, "b", HostRollout::STATE_PENDING);
    addHost(&first, "c", HostRollout::STATE_PENDING);
    v1::RolloutProgress last;
    last.set_revision(7);
    last.set_total(3);
    last.set_done(true);
    uint32_t acked = 0;
    for (auto [host, state] : {std::pair{"a", a}, {"b", b}, {"c", c}}) {
      addHost(&last, host, state, state == HostRollout::STATE_FAILED ? error : "");
      acked += state == HostRollout::STATE_APPLIED ? 1 : 0;
    }
    last.set_acked(acked);
    controller_.rollout = {first, last};
  }

  fs::path dir_;
  std::string address_, agentAddress_, policy_;
  FakeController controller_;
  CountingAgent agent_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(CliControllerTest, PushSendsTheBundleToTheControllerAndSaysWhatItStored) {
  auto r = run({"push", policy_, "--controller", address_, "--version", "v7"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  ASSERT_EQ(controller_.pushes.size(), 1u);
  EXPECT_EQ(controller_.pushes[0].version(), "v7");
  ASSERT_EQ(controller_.pushes[0].files_size(), 1);
  EXPECT_EQ(controller_.pushes[0].files(0).content(), kApp);
  EXPECT_TRUE(controller_.watches.empty());  // no --wait: no rollout watched
  EXPECT_EQ(r.out, address_ + ": stored revision 7 (version v7), sent to 3 connected host(s)\n");

  controller_.pushResponse.set_changed(false);
  auto u = run({"push", policy_, "--controller", address_});
  EXPECT_EQ(u.out, address_ + ": unchanged: revision 7 (version v7) already in force\n");
  auto d = run({"push", policy_, "--controller", address_, "--dry-run", "--wait"});
  ASSERT_EQ(d.code, kExitOk) << d.err;
  EXPECT_TRUE(controller_.pushes.back().dry_run());
  EXPECT_TRUE(controller_.watches.empty());  // a dry run stores nothing to roll out
}

TEST_F(CliControllerTest, PushWaitPrintsEachHostAsItAcksAndExitsZeroWhenAllDid) {
  script(HostRollout::STATE_APPLIED, HostRollout::STATE_APPLIED, HostRollout::STATE_APPLIED);
  auto r = run({"push", policy_, "--controller", address_, "--wait"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  ASSERT_EQ(controller_.watches.size(), 1u);
  EXPECT_EQ(controller_.watches[0].revision(), 7u);
  EXPECT_EQ(controller_.watches[0].timeout_seconds(), 60u);  // the default wait
  EXPECT_EQ(r.out, address_ +
                       ": stored revision 7 (version v7), sent to 3 connected host(s)\n"
                       "a: applied revision 7\nb: applied revision 7\nc: applied revision 7\n"
                       "revision 7 applied by 3/3 host(s)\n");
  EXPECT_EQ(r.err, "");
  run({"push", policy_, "--controller", address_, "--wait", "--timeout", "5"});
  EXPECT_EQ(controller_.watches.back().timeout_seconds(), 5u);
}

TEST_F(CliControllerTest, PushWaitNamesEveryHostThatDidNotApplyAndExitsOne) {
  script(HostRollout::STATE_APPLIED, HostRollout::STATE_DISCONNECTED, HostRollout::STATE_FAILED,
         "netlink: Operation not permitted");
  auto r = run({"push", policy_, "--controller", address_, "--wait", "--timeout", "9"});
  EXPECT_EQ(r.code, kExitRuntime);
  EXPECT_EQ(r.err,
            "b: disconnected (gets revision 7 when it reconnects)\n"
            "c: failed: netlink: Operation not permitted\n"
            "bulkhead push: revision 7 not applied by 2 of 3 host(s): b, c\n");

  script(HostRollout::STATE_PENDING, HostRollout::STATE_APPLIED, HostRollout::STATE_APPLIED);
  auto t = run({"push", policy_, "--controller", address_, "--wait", "--timeout", "9"});
  EXPECT_EQ(t.code, kExitRuntime);
  EXPECT_TRUE(contains(t.err, "a: timed out, no ack within 9 s\n")) << t.err;
  EXPECT_TRUE(contains(t.err, "not applied by 1 of 3 host(s): a\n")) << t.err;
}

TEST_F(CliControllerTest, PushWaitFailsWhenTheRolloutStreamBreaks) {
  script(HostRollout::STATE_APPLIED, HostRollout::STATE_APPLIED, HostRollout::STATE_APPLIED);
  controller_.rollout.pop_back();  // never done
  controller_.rolloutStatus = grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
  auto r = run({"push", policy_, "--controller", address_, "--wait"});
  EXPECT_EQ(r.code, kExitRuntime);
  EXPECT_TRUE(contains(r.err, address_ + ": UNAVAILABLE: shutting down")) << r.err;
  controller_.rolloutStatus = grpc::Status::OK;
  auto e = run({"push", policy_, "--controller", address_, "--wait"});
  EXPECT_EQ(e.code, kExitRuntime);
  EXPECT_TRUE(contains(e.err, "ended before the rollout was done")) << e.err;
}

TEST_F(CliControllerTest, PushJsonIsOneObjectWithTheRollout) {
  script(HostRollout::STATE_APPLIED, HostRollout::STATE_FAILED, HostRollout::STATE_APPLIED, "x");
  auto r = run({"push", policy_, "--controller", address_, "--wait", "--json"});
  EXPECT_EQ(r.code, kExitRuntime);
  EXPECT_EQ(r.out,
            "{\"controller\": \"" + address_ +
                "\", \"ok\": false, \"revision\": 7, \"version\": \"v7\", \"changed\": true, "
                "\"dry_run\": false, \"hosts_connected\": 3, \"warnings\": [], \"rollout\": "
                "{\"revision\": 7, \"acked\": 2, \"total\": 3, \"done\": true, \"hosts\": "
                "[{\"host\": \"a\", \"state\": \"applied\", \"error\": \"\"}, {\"host\": \"b\", "
                "\"state\": \"failed\", \"error\": \"x\"}, {\"host\": \"c\", \"state\": "
                "\"applied\", \"error\": \"\"}]}}\n");
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok());
}

TEST_F(CliControllerTest, AnInvalidBundleReachesNoController) {
  const std::string bad = (dir_ / "bad.yaml").string();
  std::ofstream(bad) << "apiVersion: bulkhead/v1\nkind: Nope\n";
  auto r = run({"push", bad, "--controller", address_, "--wait"});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_TRUE(contains(r.err, "nothing sent")) << r.err;
  EXPECT_TRUE(controller_.pushes.empty());
  controller_.status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a.yaml:1:1: no");
  auto refused = run({"push", policy_, "--controller", address_});
  EXPECT_EQ(refused.code, kExitBadInput);
  EXPECT_EQ(refused.err, address_ + ": a.yaml:1:1: no\n");
}

TEST_F(CliControllerTest, StatusShowsEveryHost) {
  auto& st = controller_.fleetStatus;
  st.set_revision(7);
  st.set_version("v7");
  st.set_controller("ctl1");
  auto* a = st.add_hosts();
  a->set_host("hv-a");
  a->set_connected(true);
  a->set_acked_revision(7);
  a->set_workloads(12);
  a->set_last_seen("2026-11-28T15:00:00Z");
  auto* b = st.add_hosts();
  b->set_host("hv-b");
  b->set_acked_revision(6);
  b->set_lag_seconds(42.25);
  b->set_last_error("kernel said no");
  auto r = run({"status", "--controller", address_});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "controller:  " + address_ +
                       " (ctl1)\n"
                       "revision:    7 (version v7)\n"
                       "hosts:       1 connected of 2\n"
                       "\n"
                       "HOST  CONNECTED  ACKED  WORKLOADS  LAG     LAST SEEN             LAST "
                       "ERROR\n"
                       "hv-a  yes        7      12         0 s     2026-11-28T15:00:00Z  -\n"
                       "hv-b  no         6      0          42.2 s  -                     kernel "
                       "said no\n");
  auto j = run({"status", "--json", "--controller", address_});
  ASSERT_EQ(j.code, kExitOk) << j.err;
  EXPECT_TRUE(contains(j.out,
                       "\"hosts\": [{\"host\": \"hv-a\", \"connected\": true, "
                       "\"acked_revision\": 7, \"workloads\": 12, \"last_error\": \"\", "
                       "\"lag_seconds\": 0, "))
      << j.out;
  EXPECT_TRUE(contains(j.out, "\"lag_seconds\": 42.25")) << j.out;
  EXPECT_EQ(agent_.calls.load(), 0);
}

TEST_F(CliControllerTest, WorkloadLsListsTheFleetWithHosts) {
  auto* w = controller_.workloads.add_workloads();
  w->set_host("hv-b");
  w->set_name("pay-1");
  w->set_app("payments");
  w->add_addresses("198.51.100.20");
  (*w->mutable_labels())["tier"] = "db";
  (*w->mutable_labels())["app"] = "payments";
  w->set_source(v1::Workload::SOURCE_API);
  auto r = run({"workload", "ls", "--controller", address_});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "HOST  NAME   APP       ADDRESSES      LABELS                SOURCE\n"
            "hv-b  pay-1  payments  198.51.100.20  app=payments,tier=db  api\n");
  auto j = run({"workload", "ls", "--json", "--controller", address_});
  EXPECT_EQ(j.out,
            R"({"workloads": [{"host": "hv-b", "name": "pay-1", "app": "payments", )"
            R"("addresses": ["198.51.100.20"], "labels": {"app": "payments", "tier": "db"}, )"
            R"("source": "api"}]})"
            "\n");
}

TEST_F(CliControllerTest, TheEnvironmentNamesTheControllerUnlessAnAgentIsGiven) {
  setenv("BULKHEAD_CONTROLLER", address_.c_str(), 1);
  EXPECT_EQ(run({"status"}).code, kExitOk);
  EXPECT_EQ(controller_.statusCalls, 1);
  EXPECT_EQ(agent_.calls.load(), 0);
  // --agent wins over the environment's controller.
  EXPECT_EQ(run({"status", "--agent", agentAddress_}).code, kExitOk);
  EXPECT_EQ(agent_.calls.load(), 1);
  EXPECT_EQ(controller_.statusCalls, 1);
  // Commands only an agent serves ignore it.
  setenv("BULKHEAD_AGENT", agentAddress_.c_str(), 1);
  EXPECT_NE(run({"quarantine", "ls"}).err.find(agentAddress_), std::string::npos);
}

TEST_F(CliControllerTest, BadCommandLinesExitTwo) {
  auto both = run({"status", "--controller", address_, "--agent", agentAddress_});
  EXPECT_EQ(both.code, kExitBadInput);
  EXPECT_TRUE(contains(both.err, "--agent and --controller exclude each other")) << both.err;
  auto wait = run({"push", policy_, "--agent", agentAddress_, "--wait"});
  EXPECT_EQ(wait.code, kExitBadInput);
  EXPECT_TRUE(contains(wait.err, "--wait waits for a controller")) << wait.err;
  auto add = run({"workload", "add", "w", "--app", "a", "--iface", "v", "--addr", "192.0.2.1",
                  "--controller", address_});
  EXPECT_EQ(add.code, kExitBadInput);
  EXPECT_TRUE(contains(add.err, "does not apply")) << add.err;
  auto tcp = run({"status", "--controller", "tcp://127.0.0.1:7444"});
  EXPECT_EQ(tcp.code, kExitBadInput);
  EXPECT_TRUE(contains(tcp.err, "tcp:// controllers need TLS")) << tcp.err;
  auto scheme = run({"status", "--controller", "http://x:1"});
  EXPECT_EQ(scheme.code, kExitBadInput);
  EXPECT_TRUE(contains(scheme.err, "--controller")) << scheme.err;
  EXPECT_EQ(run({"push", "--controller", address_}).code, kExitBadInput);
  EXPECT_EQ(run({"status", "extra", "--controller", address_}).code, kExitBadInput);
  EXPECT_TRUE(controller_.pushes.empty());
}

TEST_F(CliControllerTest, AnUnreachableControllerIsARuntimeFailureNamingIt) {
  const std::string nowhere = "unix://" + (dir_ / "nobody.sock").string();
  auto r = run({"status", "--controller", nowhere});
  EXPECT_EQ(r.code, kExitRuntime);
  EXPECT_TRUE(contains(r.err, nowhere + ": cannot reach the controller (is bulkhead-controller "
                                        "running?)"))
      << r.err;
}

TEST(FleetOutput, ProgressOnATerminalAndAsLines) {
  v1::RolloutProgress before, now;
  now.set_revision(3);
  now.set_acked(1);
  now.set_total(2);
  addHost(&now, "a", HostRollout::STATE_APPLIED);
  addHost(&now, "b", HostRollout::STATE_PENDING);
  EXPECT_EQ(progressLine(now), "hosts acked 1/2");
  EXPECT_EQ(progressChanges(before, now), std::vector<std::string>{"a: applied revision 3"});
  EXPECT_TRUE(progressChanges(now, now).empty());  // nothing new, nothing printed
  v1::RolloutProgress later = now;
  later.mutable_hosts(1)->set_state(HostRollout::STATE_FAILED);
  later.mutable_hosts(1)->set_error("bad");
  EXPECT_EQ(progressChanges(now, later), std::vector<std::string>{"b: failed: bad"});
  EXPECT_EQ(rolloutFailures(later, 60), std::vector<std::string>{"b: failed: bad"});
  EXPECT_EQ(std::string(rolloutStateName(HostRollout::STATE_DISCONNECTED)), "disconnected");
  EXPECT_EQ(std::string(sourceName(v1::Workload::SOURCE_REMOTE)), "remote");
}

}  // namespace
}  // namespace bulkhead::cli
