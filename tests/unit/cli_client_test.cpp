// The client commands of `bulkhead` (push, workload, status, quarantine,
// flows) driven in-process against a fake agent: an in-process gRPC server on
// a unix socket that records requests and returns scripted answers. The real
// agent is tested end to end by the privileged tests.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "bulkhead/cli/client.h"
#include "bulkhead/cli/commands.h"
#include "bulkhead/v1/agent.grpc.pb.h"
#include "support/cli_run.h"

namespace bulkhead::cli {
namespace {

namespace fs = std::filesystem;

class FakeAgent final : public v1::Agent::Service {
 public:
  grpc::Status ApplyPolicy(grpc::ServerContext*, const v1::ApplyPolicyRequest* request,
                           v1::ApplyPolicyResponse* response) override {
    std::lock_guard lock(mu);
    applies.push_back(*request);
    *response = applyResponse;
    return status;
  }
  grpc::Status UpsertWorkload(grpc::ServerContext*, const v1::UpsertWorkloadRequest* request,
                              v1::UpsertWorkloadResponse* response) override {
    std::lock_guard lock(mu);
    upserts.push_back(*request);
    response->mutable_change()->set_element_adds(3);
    return status;
  }
  grpc::Status DeleteWorkload(grpc::ServerContext*, const v1::DeleteWorkloadRequest* request,
                              v1::DeleteWorkloadResponse*) override {
    std::lock_guard lock(mu);
    deletes.push_back(request->name());
    return status;
  }
  grpc::Status ListWorkloads(grpc::ServerContext*, const v1::ListWorkloadsRequest*,
                             v1::ListWorkloadsResponse* response) override {
    std::lock_guard lock(mu);
    *response = listResponse;
    return status;
  }
  grpc::Status Quarantine(grpc::ServerContext*, const v1::QuarantineRequest* request,
                          v1::QuarantineResponse*) override {
    std::lock_guard lock(mu);
    quarantines.push_back(*request);
    return status;
  }
  grpc::Status ListQuarantines(grpc::ServerContext*, const v1::ListQuarantinesRequest*,
                               v1::ListQuarantinesResponse* response) override {
    std::lock_guard lock(mu);
    *response = quarantineList;
    return status;
  }
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::AgentStatus* response) override {
    std::lock_guard lock(mu);
    *response = agentStatus;
    return status;
  }
  grpc::Status WatchFlows(grpc::ServerContext* ctx, const v1::WatchFlowsRequest* request,
                          grpc::ServerWriter<v1::FlowEvent>* writer) override {
    std::vector<v1::FlowEvent> events;
    {
      std::lock_guard lock(mu);
      watches.push_back(*request);
      events = flowEvents;
    }
    for (const auto& e : events)
      writer->Write(e);
    while (!ctx->IsCancelled())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return grpc::Status::OK;
  }

  // Scripted answers; set before the CLI runs.
  grpc::Status status = grpc::Status::OK;
  v1::ApplyPolicyResponse applyResponse;
  v1::ListWorkloadsResponse listResponse;
  v1::AgentStatus agentStatus;
  v1::ListQuarantinesResponse quarantineList;
  std::vector<v1::FlowEvent> flowEvents;
  // Recorded requests; read after the CLI returns.
  std::vector<v1::ApplyPolicyRequest> applies;
  std::vector<v1::UpsertWorkloadRequest> upserts;
  std::vector<std::string> deletes;
  std::vector<v1::QuarantineRequest> quarantines;
  std::vector<v1::WatchFlowsRequest> watches;

  std::mutex mu;
};

using testing::CliRun;
using testing::contains;
using testing::run;

// A fake agent serving on dir/name.
class FakeServer {
 public:
  FakeServer(const fs::path& dir, const std::string& name) {
    address = "unix://" + (dir / name).string();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + (dir / name).string(), grpc::InsecureServerCredentials());
    builder.RegisterService(&agent);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { server_->Shutdown(std::chrono::system_clock::now()); }

  FakeAgent agent;
  std::string address;  // unix:///...

 private:
  std::unique_ptr<grpc::Server> server_;
};

const char* kApp = R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec:
  egress:
    - toCIDRs: [203.0.113.0/24]
      ports: [tcp/443]
)";

const char* kService = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: db}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32]
      ports: [tcp/5432]
)";

class CliClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    // Short: a unix socket path has at most 107 bytes.
    dir_ = fs::temp_directory_path() /
           ("bhc-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
    fs::create_directories(dir_);
    server_ = std::make_unique<FakeServer>(dir_, "agent.sock");
    unsetenv("BULKHEAD_AGENT");
  }
  void TearDown() override {
    server_.reset();
    unsetenv("BULKHEAD_AGENT");
    fs::remove_all(dir_);
  }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  FakeAgent& agent() { return server_->agent; }
  const std::string& addr() const { return server_->address; }

  fs::path dir_;
  std::unique_ptr<FakeServer> server_;
};

TEST(AgentAddressTest, ParsesUnixAndTcp) {
  AgentAddress a;
  std::string error;
  ASSERT_TRUE(parseAgentAddress("unix:///run/bulkhead/agent.sock", &a, &error));
  EXPECT_EQ(a.target, "unix:/run/bulkhead/agent.sock");
  EXPECT_FALSE(a.tcp);
  ASSERT_TRUE(parseAgentAddress("unix:/tmp/a.sock", &a, &error));
  EXPECT_EQ(a.target, "unix:/tmp/a.sock");
  ASSERT_TRUE(parseAgentAddress("tcp://hv01.example:7443", &a, &error));
  EXPECT_EQ(a.target, "hv01.example:7443");
  EXPECT_TRUE(a.tcp);
  EXPECT_EQ(a.host, "hv01.example");
  ASSERT_TRUE(parseAgentAddress("tcp://[2001:db8::1]:7443", &a, &error));
  EXPECT_EQ(a.host, "2001:db8::1");
  EXPECT_FALSE(parseAgentAddress("http://x:1", &a, &error));
  EXPECT_FALSE(parseAgentAddress("tcp://host", &a, &error));
  EXPECT_FALSE(parseAgentAddress("tcp://host:99999", &a, &error));
  EXPECT_FALSE(parseAgentAddress("unix:relative.sock", &a, &error));
}

TEST_F(CliClientTest, PushSendsEveryFileWithItsContentAfterValidatingLocally) {
  write("policy/b.yaml", kApp);
  write("policy/a/db.yml", kService);
  write("policy/README.txt", "not policy");
  agent().applyResponse.set_version("v7");
  agent().applyResponse.set_changed(true);
  agent().applyResponse.mutable_change()->set_element_adds(4);
  agent().applyResponse.mutable_change()->set_chains_added(2);
  const std::string dir = (dir_ / "policy").string();
  auto r = run({"push", dir, "--agent", addr(), "--version", "v7"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  ASSERT_EQ(agent().applies.size(), 1u);
  const auto& req = agent().applies[0];
  EXPECT_EQ(req.version(), "v7");
  EXPECT_FALSE(req.dry_run());
  ASSERT_EQ(req.files_size(), 2);
  EXPECT_EQ(req.files(0).name(), dir + "/a/db.yml");
  EXPECT_EQ(req.files(0).content(), kService);
  EXPECT_EQ(req.files(1).name(), dir + "/b.yaml");
  EXPECT_EQ(req.files(1).content(), kApp);
  EXPECT_EQ(r.out, addr() + ": applied version v7 (4 element adds, 2 chains added)\n");
}

TEST_F(CliClientTest, PushOfAnInvalidBundleSendsNothingAndExitsTwo) {
  const std::string f = write("bad.yaml", "apiVersion: bulkhead/v1\nkind: Nope\n");
  auto r = run({"push", f, "--agent", addr()});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_TRUE(contains(r.err, f + ":2:")) << r.err;
  EXPECT_TRUE(contains(r.err, "nothing sent")) << r.err;
  EXPECT_TRUE(agent().applies.empty());
  EXPECT_EQ(run({"push", (dir_ / "missing.yaml").string(), "--agent", addr()}).code, kExitBadInput);
  EXPECT_EQ(run({"push", "--agent", addr()}).code, kExitBadInput);
  EXPECT_EQ(run({"push", f, "--agent", addr(), "--version"}).code, kExitBadInput);
  EXPECT_TRUE(agent().applies.empty());
}

TEST_F(CliClientTest, PushDryRunUnchangedAndJson) {
  const std::string f = write("app.yaml", kApp);
  agent().applyResponse.set_version("sha256:ab");
  agent().applyResponse.set_changed(true);
  agent().applyResponse.mutable_change()->set_summary("1 chain rewritten");
  agent().applyResponse.set_plan("table inet bulkhead {\n}\n");
  auto r = run({"--dry-run", "push", f, "--agent=" + addr()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  ASSERT_EQ(agent().applies.size(), 1u);
  EXPECT_TRUE(agent().applies[0].dry_run());
  EXPECT_EQ(agent().applies[0].version(), "");
  EXPECT_EQ(r.out,
            addr() + ": dry run: version sha256:ab would change the table (1 chain rewritten)\n");

  auto j = run({"push", f, "--agent", addr(), "--dry-run", "--json"});
  ASSERT_EQ(j.code, kExitOk) << j.err;
  EXPECT_TRUE(contains(j.out, "\"plan\": \"table inet bulkhead {\\n}\\n\"")) << j.out;
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(j.out, &parsed).ok()) << j.out;
  EXPECT_EQ(parsed.fields().at("change").struct_value().fields().at("chains_added").kind_case(),
            google::protobuf::Value::kNumberValue);

  agent().applyResponse.set_changed(false);
  auto u = run({"push", f, "--agent", addr()});
  ASSERT_EQ(u.code, kExitOk) << u.err;
  EXPECT_EQ(u.out, addr() + ": unchanged: version sha256:ab already in force\n");
}

TEST_F(CliClientTest, PushToSeveralAgentsReportsEachAndTheWorstExitCode) {
  FakeServer second(dir_, "second.sock");
  const std::string f = write("app.yaml", kApp);
  agent().applyResponse.set_version("v1");
  agent().applyResponse.set_changed(true);
  second.agent.status =
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "app.yaml:3:1: one\napp.yaml:4:2: two");
  auto r = run({"push", f, "--agent", addr(), "--agent", second.address});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_EQ(agent().applies.size(), 1u);
  EXPECT_EQ(second.agent.applies.size(), 1u);
  EXPECT_TRUE(contains(r.out, addr() + ": applied version v1")) << r.out;
  EXPECT_TRUE(contains(r.err, second.address + ": app.yaml:3:1: one\n")) << r.err;
  EXPECT_TRUE(contains(r.err, second.address + ": app.yaml:4:2: two\n")) << r.err;
}

TEST_F(CliClientTest, ErrorsMapToExitCodes) {
  const std::string f = write("app.yaml", kApp);
  agent().status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "kernel said no");
  auto r = run({"push", f, "--agent", addr()});
  EXPECT_EQ(r.code, kExitRuntime);
  EXPECT_TRUE(contains(r.err, addr() + ": UNAVAILABLE: kernel said no")) << r.err;

  agent().status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "bundle too big");
  EXPECT_EQ(run({"push", f, "--agent", addr()}).code, kExitBadInput);
  agent().status = grpc::Status(grpc::StatusCode::NOT_FOUND, "no workload \"x\"");
  auto nf = run({"workload", "rm", "x", "--agent", addr()});
  EXPECT_EQ(nf.code, kExitBadInput);
  EXPECT_TRUE(contains(nf.err, "NOT_FOUND: no workload \"x\"")) << nf.err;
  EXPECT_EQ(run({"quarantine", "x", "--agent", addr()}).code, kExitBadInput);
  agent().status = grpc::Status(grpc::StatusCode::INTERNAL, "bug");
  EXPECT_EQ(run({"status", "--agent", addr()}).code, kExitRuntime);
}

TEST_F(CliClientTest, AnUnreachableAgentIsARuntimeFailureWithAClearMessage) {
  const std::string nowhere = "unix://" + (dir_ / "nobody.sock").string();
  auto r = run({"status", "--agent", nowhere});
  EXPECT_EQ(r.code, kExitRuntime);
  EXPECT_TRUE(contains(r.err, nowhere + ": cannot reach the agent")) << r.err;
  auto f = run({"flows", "--agent", nowhere});
  EXPECT_EQ(f.code, kExitRuntime);
  EXPECT_TRUE(contains(f.err, nowhere + ": cannot reach the agent")) << f.err;
}

TEST_F(CliClientTest, BadAddressesAndTlsFlagsExitTwo) {
  auto tcp = run({"status", "--agent", "tcp://127.0.0.1:7443"});
  EXPECT_EQ(tcp.code, kExitBadInput);
  EXPECT_TRUE(contains(tcp.err, "--tls-ca")) << tcp.err;
  EXPECT_EQ(run({"status", "--agent", "http://x:1"}).code, kExitBadInput);
  EXPECT_EQ(
      run({"status", "--agent", "tcp://127.0.0.1:7443", "--tls-ca", (dir_ / "nope.pem").string()})
          .code,
      kExitBadInput);
  EXPECT_EQ(run({"status", "--agent", addr(), "--tls-cert", "c.pem"}).code, kExitBadInput);
  EXPECT_EQ(run({"status", "--agent", addr(), "--timeout", "0"}).code, kExitBadInput);
  EXPECT_EQ(run({"status", "--agent", addr(), "--dry-run"}).code, kExitBadInput);
  EXPECT_EQ(run({"status", "--agent", addr(), "--agent", addr()}).code, kExitBadInput);
  EXPECT_EQ(run({"workload", "frob"}).code, kExitBadInput);
}

TEST_F(CliClientTest, WorkloadAddBuildsTheWorkloadFromFlagsBeforeOrAfterTheCommand) {
  auto r = run({"--agent", addr(), "workload", "add", "web-1", "--app", "web", "--iface", "veth1",
                "--iface=tap2", "--addr", "192.0.2.9", "--addr", "2001:db8::9", "--label",
                "env=prod", "--label", "tier=front"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  ASSERT_EQ(agent().upserts.size(), 1u);
  const auto& w = agent().upserts[0].workload();
  EXPECT_EQ(w.name(), "web-1");
  EXPECT_EQ(w.app(), "web");
  ASSERT_EQ(w.interfaces_size(), 2);
  EXPECT_EQ(w.interfaces(0), "veth1");
  EXPECT_EQ(w.interfaces(1), "tap2");
  ASSERT_EQ(w.addresses_size(), 2);
  EXPECT_EQ(w.addresses(1), "2001:db8::9");
  EXPECT_EQ(w.labels().at("env"), "prod");
  EXPECT_EQ(w.labels().at("tier"), "front");
  EXPECT_EQ(r.out, addr() + ": workload web-1 registered (3 element adds)\n");

  // Caught locally: nothing sent.
  EXPECT_EQ(
      run({"workload", "add", "web-2", "--iface", "v", "--addr", "192.0.2.1", "--agent", addr()})
          .code,
      kExitBadInput);
  auto badAddr = run({"workload", "add", "web-2", "--app", "web", "--iface", "v", "--addr",
                      "192.0.2.300", "--agent", addr()});
  EXPECT_EQ(badAddr.code, kExitBadInput);
  EXPECT_TRUE(contains(badAddr.err, "workload.addresses[0]: bad address \"192.0.2.300\""))
      << badAddr.err;
  EXPECT_EQ(run({"workload", "add", "web-2", "--app", "web", "--iface", "v", "--addr",
                 "192.0.2.1/24", "--agent", addr()})
                .code,
            kExitBadInput);
  EXPECT_EQ(
      run({"workload", "add", "web-2", "--app", "web", "--addr", "192.0.2.1", "--agent", addr()})
          .code,
      kExitBadInput);
  EXPECT_EQ(run({"workload", "add", "web-2", "--app", "web", "--iface", "v", "--addr", "192.0.2.1",
                 "--label", "novalue", "--agent", addr()})
                .code,
            kExitBadInput);
  EXPECT_EQ(agent().upserts.size(), 1u);
  // A host prefix is accepted, as the agent accepts it, and sent as written.
  ASSERT_EQ(run({"workload", "add", "web-3", "--app", "web", "--iface", "v3", "--addr",
                 "192.0.2.3/32", "--agent", addr()})
                .code,
            kExitOk);
  EXPECT_EQ(agent().upserts.back().workload().addresses(0), "192.0.2.3/32");
}

TEST_F(CliClientTest, WorkloadRmAndLs) {
  ASSERT_EQ(run({"workload", "rm", "web-1", "--agent", addr()}).code, kExitOk);
  ASSERT_EQ(agent().deletes, std::vector<std::string>{"web-1"});

  auto* w = agent().listResponse.add_workloads();
  w->set_name("web-1");
  w->set_app("web");
  w->add_interfaces("veth1");
  w->add_interfaces("tap2");
  w->add_addresses("192.0.2.9");
  w->set_source(v1::Workload::SOURCE_API);
  w->set_quarantined(true);
  (*w->mutable_labels())["env"] = "prod";
  auto* b = agent().listResponse.add_workloads();
  b->set_name("db-1");
  b->set_app("db");
  b->add_interfaces("veth2");
  b->add_addresses("192.0.2.10");
  b->set_source(v1::Workload::SOURCE_BUNDLE);
  auto* c = agent().listResponse.add_workloads();
  c->set_name("default/web-2");
  c->set_app("web");
  c->add_interfaces("veth3");
  c->add_addresses("192.0.2.11");
  c->set_source(v1::Workload::SOURCE_CNI);
  c->set_owner("0123456789ab/eth0");
  auto r = run({"workload", "ls", "--agent", addr()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "NAME           APP  INTERFACES  ADDRESSES   SOURCE  OWNER              QUARANTINED\n"
            "web-1          web  veth1,tap2  192.0.2.9   api     -                  yes\n"
            "db-1           db   veth2       192.0.2.10  bundle  -                  no\n"
            "default/web-2  web  veth3       192.0.2.11  cni     0123456789ab/eth0  no\n");
  auto j = run({"workload", "ls", "--json", "--agent", addr()});
  ASSERT_EQ(j.code, kExitOk) << j.err;
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(j.out, &parsed).ok()) << j.out;
  const auto& list = parsed.fields().at("workloads").list_value();
  ASSERT_EQ(list.values_size(), 3);
  const auto& third = list.values(2).struct_value().fields();
  EXPECT_EQ(third.at("source").string_value(), "cni");
  EXPECT_EQ(third.at("owner").string_value(), "0123456789ab/eth0");
  const auto& first = list.values(0).struct_value().fields();
  EXPECT_EQ(first.at("name").string_value(), "web-1");
  EXPECT_TRUE(first.at("quarantined").bool_value());
  EXPECT_EQ(first.at("source").string_value(), "api");
  EXPECT_EQ(first.at("labels").struct_value().fields().at("env").string_value(), "prod");
}

TEST_F(CliClientTest, QuarantineAndRelease) {
  ASSERT_EQ(run({"quarantine", "web-1", "--agent", addr()}).code, kExitOk);
  auto r = run({"--release", "quarantine", "web-1", "--agent", addr()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  ASSERT_EQ(agent().quarantines.size(), 2u);
  EXPECT_FALSE(agent().quarantines[0].release());
  EXPECT_TRUE(agent().quarantines[1].release());
  EXPECT_EQ(agent().quarantines[1].name(), "web-1");
  EXPECT_TRUE(contains(r.out, "workload web-1 released")) << r.out;
}

// JSON lines byte for byte as docs/cli.md shows them: one line, ", " and
// ": " between items, keys in the documented order, strings escaped as JSON,
// counts as integers, latencies as the shortest decimal.
TEST_F(CliClientTest, JsonOutputKeepsItsDocumentedLayout) {
  auto* w = agent().listResponse.add_workloads();
  w->set_name("a\"b\\c\n\x01");
  w->set_app("web");
  w->add_interfaces("veth1");
  w->set_source(v1::Workload::SOURCE_API);
  (*w->mutable_labels())["z"] = "1";
  (*w->mutable_labels())["a"] = "2";
  auto ls = run({"workload", "ls", "--json", "--agent", addr()});
  ASSERT_EQ(ls.code, kExitOk) << ls.err;
  EXPECT_EQ(ls.out,
            R"({"workloads": [{"name": "a\"b\\c\n\u0001", "app": "web", "interfaces": ["veth1"], )"
            R"("addresses": [], "labels": {"a": "2", "z": "1"}, "source": "api", "owner": "", )"
            R"("quarantined": false, "host": ""}]})"
            "\n");

  auto& st = agent().agentStatus;
  st.mutable_apply_latency()->set_count(2);
  st.mutable_apply_latency()->set_p50_ms(1.5);
  st.mutable_apply_latency()->set_p99_ms(2.0);
  st.mutable_apply_latency()->set_max_ms(0.1);
  auto status = run({"status", "--json", "--agent", addr()});
  ASSERT_EQ(status.code, kExitOk) << status.err;
  EXPECT_EQ(status.out.rfind(R"({"version": "", "table": "", "apps": 0, "services": 0, )", 0), 0u)
      << status.out;
  EXPECT_TRUE(contains(
      status.out, R"("apply_latency": {"count": 2, "p50_ms": 1.5, "p99_ms": 2, "max_ms": 0.1}, )"))
      << status.out;
  EXPECT_TRUE(contains(status.out, R"("flows": {"seen": 0, "exported": 0, "suppressed": 0, )"
                                   R"("suppressed_by_cause": {}}, )"))
      << status.out;

  auto* manual = agent().quarantineList.add_quarantines();
  manual->set_workload("db-1");
  manual->set_reason("manual");
  manual->set_since_unix(1795858802);  // 2026-11-28T09:40:02Z
  auto* scan = agent().quarantineList.add_quarantines();
  scan->set_workload("web-1");
  scan->set_reason("auto/scan/hosts");
  scan->set_since_unix(1795858802);
  scan->set_until_unix(1795860602);
  scan->set_seconds(1800);
  auto q = run({"quarantine", "ls", "--json", "--agent", addr()});
  ASSERT_EQ(q.code, kExitOk) << q.err;
  EXPECT_EQ(q.out, R"({"quarantines": [{"workload": "db-1", "reason": "manual", )"
                   R"("since": "2026-11-28T09:40:02Z", "until": null}, {"workload": "web-1", )"
                   R"("reason": "auto/scan/hosts", "since": "2026-11-28T09:40:02Z", )"
                   R"("until": "2026-11-28T10:10:02Z", "seconds": 1800}]})"
                   "\n");
  auto table = run({"quarantine", "ls", "--agent", addr()});
  ASSERT_EQ(table.code, kExitOk) << table.err;
  EXPECT_EQ(table.out,
            "WORKLOAD  REASON           SINCE                 UNTIL\n"
            "db-1      manual           2026-11-28T09:40:02Z  released by hand\n"
            "web-1     auto/scan/hosts  2026-11-28T09:40:02Z  2026-11-28T10:10:02Z\n");
}

// An agent (or whoever answers on its socket) may send bytes that are not
// UTF-8: protobuf refuses such a string field, so the call fails (exit 1)
// with a message, and nothing half-written reaches stdout.
TEST_F(CliClientTest, AnswersThatAreNotUtf8FailCleanly) {
  auto* w = agent().listResponse.add_workloads();
  w->set_name("bad\xff\xfe-\xc3\xa9");
  w->set_app("web");
  for (const char* json : {"--json", ""}) {
    std::vector<std::string> argv = {"workload", "ls", "--agent", addr()};
    if (*json) argv.push_back(json);
    auto r = run(argv);
    EXPECT_EQ(r.code, kExitRuntime) << r.out;
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(contains(r.err, addr() + ": ")) << r.err;
  }
}

TEST_F(CliClientTest, StatusShowsStagedInterfacesAndPromotions) {
  auto& st = agent().agentStatus;
  st.set_version("v7");
  st.set_staged_interfaces(3);
  st.set_promotions(12);
  st.mutable_promotion_latency()->set_count(12);
  st.mutable_promotion_latency()->set_p50_ms(1.25);
  st.mutable_promotion_latency()->set_p99_ms(14.5);
  st.mutable_promotion_latency()->set_max_ms(14.5);
  auto r = run({"status", "--agent", addr()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_TRUE(contains(r.out, "staged interfaces:  3\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "promotions:         12 (latency p50 1.25 ms, p99 14.50 ms"))
      << r.out;
  auto j = run({"status", "--json", "--agent", addr()});
  ASSERT_EQ(j.code, kExitOk) << j.err;
  EXPECT_TRUE(contains(j.out, "\"staged_interfaces\": 3")) << j.out;
  EXPECT_TRUE(contains(j.out, "\"promotions\": 12")) << j.out;
}

TEST_F(CliClientTest, StatusShowsTheLinkToTheControllerOnlyWhenThereIsOne) {
  auto& st = agent().agentStatus;
  st.set_version("v7");
  st.set_applied_revision(12);
  st.set_remote_workloads(40);
  auto none = run({"status", "--agent", addr()});
  ASSERT_EQ(none.code, kExitOk) << none.err;
  EXPECT_FALSE(contains(none.out, "controller:")) << none.out;
  auto noneJson = run({"status", "--json", "--agent", addr()});
  EXPECT_TRUE(contains(noneJson.out, "\"controller\": null")) << noneJson.out;
  EXPECT_TRUE(contains(noneJson.out, "\"applied_revision\": 12")) << noneJson.out;

  auto& c = *st.mutable_controller();
  c.set_url("tcp://c1:7443");
  c.set_connected(true);
  c.set_sessions(1);
  auto up = run({"status", "--agent", addr()});
  ASSERT_EQ(up.code, kExitOk) << up.err;
  EXPECT_TRUE(contains(up.out,
                       "controller:         tcp://c1:7443, connected (revision 12, 1 "
                       "session, 40 remote workloads)\n"))
      << up.out;

  c.set_connected(false);
  c.set_last_error("connect: refused");
  c.set_sessions(2);
  auto down = run({"status", "--agent", addr()});
  EXPECT_TRUE(contains(down.out,
                       "tcp://c1:7443, not connected: connect: refused (revision 12, "
                       "2 sessions, 40 remote workloads)"))
      << down.out;
  auto j = run({"status", "--json", "--agent", addr()});
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(j.out, &parsed).ok()) << j.out;
  const auto& link = parsed.fields().at("controller").struct_value().fields();
  EXPECT_FALSE(link.at("connected").bool_value());
  EXPECT_EQ(link.at("url").string_value(), "tcp://c1:7443");
  EXPECT_EQ(link.at("last_error").string_value(), "connect: refused");
  EXPECT_EQ(link.at("sessions").number_value(), 2);
}

TEST_F(CliClientTest, StatusJsonHasIntegerCountersAndTheEnvironmentNamesTheAgent) {
  auto& st = agent().agentStatus;
  st.set_version("v7");
  st.set_table("bulkhead");
  st.set_apps(3);
  st.set_set_elements(1234567890123ull);
  st.set_host("hv01");
  st.mutable_apply_latency()->set_count(4);
  st.mutable_apply_latency()->set_p50_ms(1.5);
  st.mutable_apply_latency()->set_p99_ms(9.25);
  st.mutable_flows()->set_seen(5);
  st.mutable_flows()->set_exported(3);
  st.mutable_flows()->set_suppressed(2);
  (*st.mutable_flows()->mutable_suppressed_by_cause())["rate_limit"] = 2;
  setenv("BULKHEAD_AGENT", addr().c_str(), 1);
  auto r = run({"status", "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_TRUE(contains(r.out, "\"seen\": 5")) << r.out;
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok()) << r.out;
  const auto& f = parsed.fields();
  const auto& flows = f.at("flows").struct_value().fields();
  for (const char* key : {"seen", "exported", "suppressed"})
    EXPECT_EQ(flows.at(key).kind_case(), google::protobuf::Value::kNumberValue) << key;
  EXPECT_EQ(flows.at("seen").number_value(), 5);
  EXPECT_EQ(flows.at("suppressed_by_cause").struct_value().fields().at("rate_limit").number_value(),
            2);
  EXPECT_EQ(f.at("set_elements").kind_case(), google::protobuf::Value::kNumberValue);
  EXPECT_TRUE(contains(r.out, "\"set_elements\": 1234567890123")) << r.out;
  EXPECT_EQ(f.at("version").string_value(), "v7");
  EXPECT_EQ(f.at("apply_latency").struct_value().fields().at("p99_ms").number_value(), 9.25);
  for (const char* key : {"table",
                          "apps",
                          "services",
                          "global_policies",
                          "workloads",
                          "chains",
                          "last_error",
                          "last_error_time",
                          "workload_latency",
                          "drift_repairs",
                          "last_applied_time",
                          "pushes",
                          "workload_changes",
                          "host",
                          "staged_interfaces",
                          "promotions",
                          "promotion_latency",
                          "applied_revision",
                          "remote_workloads",
                          "controller"})
    EXPECT_TRUE(f.count(key)) << key;

  // --agent beats the environment.
  setenv("BULKHEAD_AGENT", ("unix://" + (dir_ / "nobody.sock").string()).c_str(), 1);
  EXPECT_EQ(run({"status"}).code, kExitRuntime);
  auto h = run({"--agent", addr(), "status"});
  ASSERT_EQ(h.code, kExitOk) << h.err;
  EXPECT_TRUE(contains(h.out, "version:")) << h.out;
  EXPECT_TRUE(contains(h.out, "v7")) << h.out;
  EXPECT_TRUE(contains(h.out, "p50 1.50 ms, p99 9.25 ms")) << h.out;
  EXPECT_TRUE(contains(h.out, "seen 5, exported 3, suppressed 2 (rate_limit: 2)")) << h.out;
}

TEST_F(CliClientTest, FlowsPrintsWhatArrivesInTheWindowThenExits) {
  v1::FlowEvent e;
  e.set_time("2026-11-25T13:06:40.343246Z");
  e.set_host("hv01");
  e.set_action("deny");
  e.set_app("billing");
  e.set_workload("billing-7f9c");
  e.set_src("192.0.2.10");
  e.set_sport(43910);
  e.set_dst("198.51.100.10");
  e.set_dport(22);
  e.set_proto("tcp");
  e.set_reason("default");
  e.set_count(1);
  agent().flowEvents.push_back(e);
  e.set_dst("2001:db8::1");
  e.set_dport(443);
  e.set_count(7);
  e.set_reason("globalpolicy/baseline/0");
  agent().flowEvents.push_back(e);

  const auto start = std::chrono::steady_clock::now();
  auto r = run({"flows", "--agent", addr(), "--app", "billing"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "2026-11-25T13:06:40.343246Z billing-7f9c -> 198.51.100.10:22/tcp deny (default, "
            "count 1)\n"
            "2026-11-25T13:06:40.343246Z billing-7f9c -> [2001:db8::1]:443/tcp deny "
            "(globalpolicy/baseline/0, count 7)\n");
  ASSERT_EQ(agent().watches.size(), 1u);
  EXPECT_EQ(agent().watches[0].app(), "billing");

  auto j = run({"--json", "flows", "--agent", addr(), "--workload", "billing-7f9c"});
  ASSERT_EQ(j.code, kExitOk) << j.err;
  EXPECT_EQ(agent().watches[1].workload(), "billing-7f9c");
  std::istringstream lines(j.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    google::protobuf::Struct parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
    const auto& f = parsed.fields();
    EXPECT_EQ(f.at("workload").string_value(), "billing-7f9c");
    EXPECT_EQ(f.at("dport").kind_case(), google::protobuf::Value::kNumberValue);
    EXPECT_EQ(f.at("count").kind_case(), google::protobuf::Value::kNumberValue);
    for (const char* key :
         {"time", "host", "action", "app", "src", "sport", "dst", "proto", "reason"})
      EXPECT_TRUE(f.count(key)) << key;
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST_F(CliClientTest, FlowsFollowRunsUntilInterruptedThenExitsZero) {
  v1::FlowEvent e;
  e.set_time("2026-11-25T13:06:40.343246Z");
  e.set_action("quarantine");
  e.set_workload("web-1");
  e.set_dst("198.51.100.1");
  e.set_proto("icmp");
  e.set_reason("quarantine");
  e.set_count(2);
  agent().flowEvents.push_back(e);
  CliRun r{};
  std::thread cli([&] { r = run({"flows", "--follow", "--agent", addr()}); });
  // The handler is in place before the call reaches the agent.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(agent().mu);
      if (!agent().watches.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // longer than the window
  raise(SIGINT);
  cli.join();
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "2026-11-25T13:06:40.343246Z web-1 -> 198.51.100.1/icmp quarantine (quarantine, "
            "count 2)\n");
}

// tcp:// agents: TLS with the CA of --tls-ca and the client certificate of
// --tls-cert/--tls-key, against a server that requires one. Needs the openssl
// command to make the certificates.
TEST_F(CliClientTest, TcpAgentsAreReachedOverMutualTls) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl";
  const std::string d = dir_.string();
  const std::string script =
      "cd " + d +
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
      "-subj /CN=test-ca"
      " && openssl req -newkey rsa:2048 -nodes -keyout agent.key -out agent.csr -subj /CN=agent"
      " && printf 'subjectAltName=DNS:localhost' > san.ext"
      " && openssl x509 -req -in agent.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
      "-extfile san.ext -out agent.pem"
      " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "
      "/CN=client"
      " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
      "-out client.pem) >/dev/null 2>&1";
  ASSERT_EQ(std::system(("(" + script).c_str()), 0);
  auto slurp = [&](const std::string& name) {
    std::ifstream in(dir_ / name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = slurp("ca.pem");
  tls.pem_key_cert_pairs.push_back({slurp("agent.key"), slurp("agent.pem")});
  FakeAgent fake;
  fake.agentStatus.set_version("v-tls");
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &port);
  builder.RegisterService(&fake);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  ASSERT_GT(port, 0);
  const std::string agentAddr = "tcp://localhost:" + std::to_string(port);
  auto ok = run({"status", "--json", "--agent", agentAddr, "--tls-ca", d + "/ca.pem", "--tls-cert",
                 d + "/client.pem", "--tls-key", d + "/client.key"});
  EXPECT_EQ(ok.code, kExitOk) << ok.err;
  EXPECT_TRUE(contains(ok.out, "\"version\": \"v-tls\"")) << ok.out;
  // Connecting by IP: the name to check comes from --tls-server-name.
  auto byIp = run({"status", "--agent", "tcp://127.0.0.1:" + std::to_string(port), "--tls-ca",
                   d + "/ca.pem", "--tls-cert", d + "/client.pem", "--tls-key", d + "/client.key",
                   "--tls-server-name", "localhost"});
  EXPECT_EQ(byIp.code, kExitOk) << byIp.err;
  // No client certificate: the agent refuses the handshake.
  auto anonymous =
      run({"status", "--agent", agentAddr, "--tls-ca", d + "/ca.pem", "--timeout", "5"});
  EXPECT_EQ(anonymous.code, kExitRuntime);
  EXPECT_TRUE(contains(anonymous.err, agentAddr + ": cannot reach the agent over TLS"))
      << anonymous.err;
  // An agent certificate from another CA is not trusted.
  auto untrusted = run({"status", "--agent", agentAddr, "--tls-ca", d + "/client.pem", "--tls-cert",
                        d + "/client.pem", "--tls-key", d + "/client.key", "--timeout", "5"});
  EXPECT_EQ(untrusted.code, kExitRuntime);
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace bulkhead::cli
