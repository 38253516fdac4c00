// The agent's controller link (controller_link.h) against a scripted
// controller: a real gRPC Controller service on a unix socket (or TCP with
// mTLS) in a temp dir, whose side of the stream each test drives, and a
// FleetMember double that records what the link hands it.
#include "bulkhead/agent/controller_link.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "bulkhead/v1/controller.grpc.pb.h"
#include "support/scratch.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds within = 5s) {
  const auto deadline = Clock::now() + within;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

policy::Workload localWorkload(const std::string& name, const std::string& address) {
  policy::Workload w;
  w.name = name;
  w.app = "web";
  w.labels["env"] = "prod";
  w.interfaces = {"veth-" + name};
  w.addresses = {*policy::IpAddr::parse(address)};
  return w;
}

// Records every call; answers with what the test sets.
class RecordingMember final : public FleetMember {
 public:
  struct Snapshot {
    std::optional<PolicyRevision> policy;
    std::vector<RemoteWorkload> remotes;
  };

  std::vector<LocalWorkload> localWorkloads() const override {
    std::lock_guard lock(mu);
    return locals;
  }
  uint64_t appliedRevision() const override {
    std::lock_guard lock(mu);
    return applied;
  }
  Status applySnapshot(const std::optional<PolicyRevision>& policy,
                       std::vector<RemoteWorkload> remotes) override {
    std::lock_guard lock(mu);
    snapshots.push_back({policy, std::move(remotes)});
    return {};
  }
  Status applyRevision(const PolicyRevision& policy) override {
    std::lock_guard lock(mu);
    revisions.push_back(policy);
    if (refuseRevisions) return makeError(ErrorCode::kInvalidInput, "policy.yaml:3:1: refused");
    applied = policy.revision;
    return {};
  }
  Status upsertRemoteWorkload(const RemoteWorkload& workload) override {
    std::lock_guard lock(mu);
    upserts.push_back(workload);
    return {};
  }
  Status deleteRemoteWorkload(const std::string& host, const std::string& name) override {
    std::lock_guard lock(mu);
    deletes.push_back(host + "/" + name);
    return {};
  }
  Status applyRemoteChanges(const std::vector<RemoteWorkload>& u,
                            const std::vector<RemoteWorkloadKey>& d) override {
    {
      std::lock_guard lock(mu);
      ++batchCalls;
    }
    return FleetMember::applyRemoteChanges(u, d);  // recorded one by one
  }
  void setLocalChangeListener(std::function<void(const LocalWorkloadChange&)> l) override {
    std::lock_guard lock(mu);
    listener = std::move(l);
  }

  // A local registration, as the core reports it.
  void change(const policy::Workload& w, bool removed) {
    std::function<void(const LocalWorkloadChange&)> l;
    {
      std::lock_guard lock(mu);
      l = listener;
    }
    ASSERT_TRUE(l);
    l(LocalWorkloadChange{w, removed});
  }
  size_t calls() const {
    std::lock_guard lock(mu);
    return snapshots.size() + revisions.size() + upserts.size() + deletes.size();
  }
  template <class T>
  T read(T RecordingMember::*field) const {
    std::lock_guard lock(mu);
    return this->*field;
  }

  mutable std::mutex mu;
  std::vector<LocalWorkload> locals;
  uint64_t applied = 0;
  bool refuseRevisions = false;
  std::vector<Snapshot> snapshots;
  std::vector<PolicyRevision> revisions;
  std::vector<RemoteWorkload> upserts;
  std::vector<std::string> deletes;
  int batchCalls = 0;
  std::function<void(const LocalWorkloadChange&)> listener;
};

// The controller's side, scripted: each stream gets `first` (an empty
// snapshot unless a test says otherwise), then what the test sends.
class ScriptedController final : public v1::Controller::Service {
 public:
  ScriptedController() { first.emplace().mutable_snapshot(); }

  grpc::Status Connect(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::ControllerMessage, v1::AgentMessage>* stream) override {
    {
      std::lock_guard lock(mu_);
      ++streams_;
      current_ = stream;
      currentCtx_ = ctx;
      peerNames_.clear();
      for (const auto& name : ctx->auth_context()->GetPeerIdentity())
        peerNames_.emplace_back(name.data(), name.size());
      if (first) stream->Write(*first);
    }
    v1::AgentMessage m;
    while (stream->Read(&m)) {
      std::lock_guard lock(mu_);
      received_.push_back(m);
    }
    std::lock_guard lock(mu_);
    if (current_ == stream) current_ = nullptr, currentCtx_ = nullptr;
    return grpc::Status::OK;
  }

  bool send(const v1::ControllerMessage& m) {
    std::lock_guard lock(mu_);
    return current_ && current_->Write(m);
  }
  bool connected() const {
    std::lock_guard lock(mu_);
    return current_ != nullptr;
  }
  int streams() const {
    std::lock_guard lock(mu_);
    return streams_;
  }
  std::vector<v1::AgentMessage> received() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  std::vector<v1::AgentMessage> receivedOf(v1::AgentMessage::MessageCase which) const {
    std::vector<v1::AgentMessage> out;
    for (auto& m : received())
      if (m.message_case() == which) out.push_back(m);
    return out;
  }
  std::vector<std::string> peerNames() const {
    std::lock_guard lock(mu_);
    return peerNames_;
  }

  std::optional<v1::ControllerMessage> first;

 private:
  mutable std::mutex mu_;
  int streams_ = 0;
  grpc::ServerReaderWriter<v1::ControllerMessage, v1::AgentMessage>* current_ = nullptr;
  grpc::ServerContext* currentCtx_ = nullptr;
  std::vector<v1::AgentMessage> received_;
  std::vector<std::string> peerNames_;
};

class ControllerServer {
 public:
  ControllerServer(
      ScriptedController& service, const std::string& listen,
      std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(listen, credentials, &port);
    builder.RegisterService(&service);
    server_ = builder.BuildAndStart();
  }
  ~ControllerServer() { stop(); }
  void stop() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
  }
  bool started() const { return server_ != nullptr; }
  int port = 0;

 private:
  std::unique_ptr<grpc::Server> server_;
};

v1::Workload remoteWorkload(const std::string& host, const std::string& name,
                            const std::string& address) {
  v1::Workload w;
  w.set_host(host);
  w.set_name(name);
  w.set_app("payments");
  w.add_addresses(address);
  (*w.mutable_labels())["app"] = "payments";
  w.set_source(v1::Workload::SOURCE_REMOTE);
  return w;
}

v1::PolicyRevision revision(uint64_t n) {
  v1::PolicyRevision p;
  p.set_revision(n);
  p.set_version("v" + std::to_string(n));
  auto* f = p.add_files();
  f->set_name("policy.yaml");
  f->set_content("# revision " + std::to_string(n) + "\n");
  return p;
}

class ControllerLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchPath("bh-link");
    fs::create_directories(dir_);
    member_.locals = {{localWorkload("web-1", "192.0.2.10")},
                      {localWorkload("web-2", "2001:db8::2")}};
    member_.applied = 7;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string socket(const std::string& name = "ctl.sock") { return (dir_ / name).string(); }
  ControllerLinkOptions options(std::vector<std::string> controllers) {
    ControllerLinkOptions o;
    o.controllers = std::move(controllers);
    o.host = "host-a";
    o.agentVersion = "9.9.9";
    o.backoffMin = 20ms;
    o.backoffMax = 100ms;
    return o;
  }
  // A link to one controller on the default socket, connected (its
  // snapshot applied).
  std::unique_ptr<ControllerLink> connectedLink(ControllerLinkOptions o) {
    auto link = std::make_unique<ControllerLink>(member_, std::move(o));
    EXPECT_TRUE(eventually([&] { return link->status().connected; }));
    return link;
  }

  fs::path dir_;
  RecordingMember member_;
  ScriptedController controller_;
};

TEST_F(ControllerLinkTest, HelloCarriesHostVersionRevisionAndLocalWorkloads) {
  ControllerServer server(controller_, "unix:" + socket());
  auto link = connectedLink(options({"unix://" + socket()}));
  ASSERT_TRUE(eventually([&] { return !controller_.received().empty(); }));
  const auto first = controller_.received().front();
  ASSERT_EQ(first.message_case(), v1::AgentMessage::kHello);
  const auto& hello = first.hello();
  EXPECT_EQ(hello.host(), "host-a");
  EXPECT_EQ(hello.agent_version(), "9.9.9");
  EXPECT_EQ(hello.applied_revision(), 7u);
  ASSERT_EQ(hello.workloads_size(), 2);
  EXPECT_EQ(hello.workloads(0).name(), "web-1");
  EXPECT_EQ(hello.workloads(0).app(), "web");
  EXPECT_EQ(hello.workloads(0).host(), "host-a");
  EXPECT_EQ(hello.workloads(0).labels().at("env"), "prod");
  ASSERT_EQ(hello.workloads(0).addresses_size(), 1);
  EXPECT_EQ(hello.workloads(0).addresses(0), "192.0.2.10");
  EXPECT_EQ(hello.workloads(0).interfaces_size(), 0) << "interfaces mean nothing to other hosts";
  EXPECT_EQ(hello.workloads(1).addresses(0), "2001:db8::2");
  const auto status = link->status();
  EXPECT_TRUE(status.connected);
  EXPECT_EQ(status.controller, "unix://" + socket());
  EXPECT_EQ(status.sessions, 1u);
}

TEST_F(ControllerLinkTest, SnapshotIsAppliedAndItsRevisionAcked) {
  v1::ControllerMessage snapshot;
  *snapshot.mutable_snapshot()->mutable_policy() = revision(3);
  auto* remotes = snapshot.mutable_snapshot()->mutable_remote_workloads();
  *remotes->Add() = remoteWorkload("host-b", "pay-1", "198.51.100.7");
  remotes->Add()->CopyFrom(remoteWorkload("host-b", "pay-2", "198.51.100.8"));
  remotes->Mutable(1)->add_interfaces("eth0");                          // never enforced here
  *remotes->Add() = remoteWorkload("host-a", "web-1", "203.0.113.66");  // our own name
  *remotes->Add() = remoteWorkload("", "nohost", "203.0.113.67");
  *remotes->Add() = remoteWorkload("host-c", "bad", "not-an-address");
  controller_.first = snapshot;
  ControllerServer server(controller_, "unix:" + socket());
  auto link = connectedLink(options({"unix://" + socket()}));
  ASSERT_TRUE(eventually([&] { return !controller_.receivedOf(v1::AgentMessage::kAck).empty(); }));
  const auto ack = controller_.receivedOf(v1::AgentMessage::kAck).front().ack();
  EXPECT_EQ(ack.revision(), 3u);
  EXPECT_TRUE(ack.applied());
  EXPECT_EQ(ack.error(), "");
  const auto snapshots = member_.read(&RecordingMember::snapshots);
  ASSERT_EQ(snapshots.size(), 1u);
  ASSERT_TRUE(snapshots[0].policy.has_value());
  EXPECT_EQ(snapshots[0].policy->revision, 3u);
  EXPECT_EQ(snapshots[0].policy->version, "v3");
  ASSERT_EQ(snapshots[0].policy->files.size(), 1u);
  EXPECT_EQ(snapshots[0].policy->files[0].name, "policy.yaml");
  ASSERT_EQ(snapshots[0].remotes.size(), 2u) << "this host's name, no host, bad address: dropped";
  EXPECT_EQ(snapshots[0].remotes[0].host, "host-b");
  EXPECT_EQ(snapshots[0].remotes[0].workload.name, "pay-1");
  EXPECT_EQ(snapshots[0].remotes[0].workload.addresses[0].toString(), "198.51.100.7");
  EXPECT_TRUE(snapshots[0].remotes[1].workload.interfaces.empty());
}

TEST_F(ControllerLinkTest, RevisionsAreAckedAppliedOrWithTheirError) {
  ControllerServer server(controller_, "unix:" + socket());
  auto link = connectedLink(options({"unix://" + socket()}));
  v1::ControllerMessage m;
  *m.mutable_policy() = revision(4);
  ASSERT_TRUE(controller_.send(m));
  ASSERT_TRUE(
      eventually([&] { return controller_.receivedOf(v1::AgentMessage::kAck).size() == 1; }));
  auto acks = controller_.receivedOf(v1::AgentMessage::kAck);
  EXPECT_EQ(acks[0].ack().revision(), 4u);
  EXPECT_TRUE(acks[0].ack().applied());
  EXPECT_EQ(member_.appliedRevision(), 4u);
  {
    std::lock_guard lock(member_.mu);
    member_.refuseRevisions = true;
  }
  *m.mutable_policy() = revision(5);
  ASSERT_TRUE(controller_.send(m));
  ASSERT_TRUE(
      eventually([&] { return controller_.receivedOf(v1::AgentMessage::kAck).size() == 2; }));
  acks = controller_.receivedOf(v1::AgentMessage::kAck);
  EXPECT_EQ(acks[1].ack().revision(), 5u);
  EXPECT_FALSE(acks[1].ack().applied());
  EXPECT_NE(acks[1].ack().error().find("policy.yaml:3:1: refused"), std::string::npos)
      << acks[1].ack().error();
  EXPECT_EQ(member_.read(&RecordingMember::revisions).size(), 2u);
  // Revision 0 is "none": refused without reaching the member.
  *m.mutable_policy() = revision(0);
  ASSERT_TRUE(controller_.send(m));
  ASSERT_TRUE(
      eventually([&] { return controller_.receivedOf(v1::AgentMessage::kAck).size() == 3; }));
  EXPECT_FALSE(controller_.receivedOf(v1::AgentMessage::kAck)[2].ack().applied());
  EXPECT_EQ(member_.read(&RecordingMember::revisions).size(), 2u);
  EXPECT_EQ(controller_.streams(), 1);
}

TEST_F(ControllerLinkTest, RemoteUpsertsAndDeletesReachTheMember) {
  ControllerServer server(controller_, "unix:" + socket());
  auto link = connectedLink(options({"unix://" + socket()}));
  v1::ControllerMessage up;
  *up.mutable_remote_upsert() = remoteWorkload("host-b", "pay-1", "198.51.100.7");
  ASSERT_TRUE(controller_.send(up));
  *up.mutable_remote_upsert() = remoteWorkload("host-a", "web-9", "198.51.100.9");  // ours: no
  ASSERT_TRUE(controller_.send(up));
  v1::ControllerMessage del;
  del.mutable_remote_delete()->set_host("host-b");
  del.mutable_remote_delete()->set_name("pay-1");
  ASSERT_TRUE(controller_.send(del));
  ASSERT_TRUE(eventually([&] { return member_.read(&RecordingMember::deletes).size() == 1; }));
  const auto upserts = member_.read(&RecordingMember::upserts);
  ASSERT_EQ(upserts.size(), 1u);
  EXPECT_EQ(upserts[0].host, "host-b");
  EXPECT_EQ(upserts[0].workload.name, "pay-1");
  EXPECT_EQ(upserts[0].workload.app, "payments");
  EXPECT_EQ(upserts[0].workload.labels.at("app"), "payments");
  EXPECT_EQ(member_.read(&RecordingMember::deletes)[0], "host-b/pay-1");
}

TEST_F(ControllerLinkTest, HelloTakesBatchesAndABatchReachesTheMemberAtOnce) {
  ControllerServer server(controller_, "unix:" + socket());
  auto link = connectedLink(options({"unix://" + socket()}));
  ASSERT_TRUE(
      eventually([&] { return !controller_.receivedOf(v1::AgentMessage::kHello).empty(); }));
  EXPECT_TRUE(controller_.receivedOf(v1::AgentMessage::kHello)[0].hello().remote_batches());
  v1::ControllerMessage m;
  auto* batch = m.mutable_remote_batch();
  *batch->add_upserts() = remoteWorkload("host-b", "pay-1", "198.51.100.7");
  *batch->add_upserts() = remoteWorkload("host-a", "web-9", "198.51.100.9");  // ours: skipped
  *batch->add_upserts() = remoteWorkload("host-c", "pay-2", "198.51.100.8");
  batch->add_deletes()->set_host("host-b");
  batch->mutable_deletes(0)->set_name("pay-0");
  ASSERT_TRUE(controller_.send(m));
  ASSERT_TRUE(eventually([&] { return member_.read(&RecordingMember::upserts).size() == 2; }));
  EXPECT_EQ(member_.read(&RecordingMember::batchCalls), 1);
  const auto upserts = member_.read(&RecordingMember::upserts);
  EXPECT_EQ(upserts[0].host + "/" + upserts[0].workload.name, "host-b/pay-1");
  EXPECT_EQ(upserts[1].host + "/" + upserts[1].workload.name, "host-c/pay-2");
  EXPECT_EQ(member_.read(&RecordingMember::deletes), std::vector<std::string>{"host-b/pay-0"});
  EXPECT_TRUE(link->status().connected);
}

TEST_F(ControllerLinkTest, ADeltaBeforeTheSnapshotIsRefusedAndTheStreamDialledAgain) {
  v1::ControllerMessage early;
  *early.mutable_remote_upsert() = remoteWorkload("host-b", "pay-1", "198.51.100.7");
  controller_.first = early;
  ControllerServer server(controller_, "unix:" + socket());
  ControllerLink link(member_, options({"unix://" + socket()}));
  ASSERT_TRUE(eventually([&] { return controller_.streams() >= 2; }));
  EXPECT_EQ(member_.calls(), 0u);
  EXPECT_FALSE(link.status().connected);
  EXPECT_NE(link.status().lastError.find("before its snapshot"), std::string::npos)
      << link.status().lastError;
}

TEST_F(ControllerLinkTest, LocalChangesAreForwardedInOrder) {
  ControllerServer server(controller_, "unix:" + socket());
  auto link = connectedLink(options({"unix://" + socket()}));
  member_.change(localWorkload("web-3", "192.0.2.13"), false);
  member_.change(localWorkload("web-1", "192.0.2.10"), true);
  ASSERT_TRUE(
      eventually([&] { return controller_.receivedOf(v1::AgentMessage::kWorkload).size() == 2; }));
  const auto changes = controller_.receivedOf(v1::AgentMessage::kWorkload);
  ASSERT_TRUE(changes[0].workload().has_upsert());
  EXPECT_EQ(changes[0].workload().upsert().name(), "web-3");
  EXPECT_EQ(changes[0].workload().upsert().host(), "host-a");
  EXPECT_EQ(changes[0].workload().upsert().interfaces_size(), 0);
  EXPECT_EQ(changes[1].workload().deleted(), "web-1");
}

TEST_F(ControllerLinkTest, ReconnectsToTheSecondControllerWhenTheFirstIsDown) {
  ControllerServer server(controller_, "unix:" + socket("second.sock"));
  auto link = connectedLink(
      options({"unix://" + socket("first-is-down.sock"), "unix://" + socket("second.sock")}));
  EXPECT_EQ(link->status().controller, "unix://" + socket("second.sock"));
  EXPECT_TRUE(
      eventually([&] { return controller_.receivedOf(v1::AgentMessage::kHello).size() == 1; }));
}

// Fail-static: while the controller is away nothing reaches the member; a
// change made meanwhile is not queued but carried by the next hello.
TEST_F(ControllerLinkTest, ControllerGoneChangesNothingAndTheNextHelloCarriesEverything) {
  auto server = std::make_unique<ControllerServer>(controller_, "unix:" + socket());
  auto link = connectedLink(options({"unix://" + socket()}));
  ASSERT_EQ(member_.calls(), 1u);  // the snapshot
  server.reset();
  ASSERT_TRUE(eventually([&] { return !link->status().connected; }));
  {
    std::lock_guard lock(member_.mu);
    member_.locals.push_back({localWorkload("web-late", "192.0.2.99")});
  }
  member_.change(localWorkload("web-late", "192.0.2.99"), false);
  std::this_thread::sleep_for(300ms);  // several redials against nothing
  EXPECT_EQ(member_.calls(), 1u);
  EXPECT_FALSE(link->status().lastError.empty());
  ScriptedController back;
  fs::remove(socket());
  ControllerServer again(back, "unix:" + socket());
  ASSERT_TRUE(eventually([&] { return link->status().connected; }));
  EXPECT_EQ(link->status().sessions, 2u);
  // Connected is the link's view; the hello may still be on its way.
  ASSERT_TRUE(eventually([&] { return back.receivedOf(v1::AgentMessage::kHello).size() == 1; }));
  const auto hellos = back.receivedOf(v1::AgentMessage::kHello);
  ASSERT_EQ(hellos.size(), 1u);
  EXPECT_EQ(hellos[0].hello().workloads_size(), 3);
  EXPECT_EQ(hellos[0].hello().workloads(2).name(), "web-late");
  EXPECT_TRUE(back.receivedOf(v1::AgentMessage::kWorkload).empty()) << "not queued while away";
}

TEST_F(ControllerLinkTest, KeepalivesAreSentAndASilentControllerIsDropped) {
  ControllerServer server(controller_, "unix:" + socket());
  auto o = options({"unix://" + socket()});
  o.keepAlive = 50ms;
  auto link = connectedLink(o);
  // The controller answers nothing: after three periods the stream is
  // cancelled and dialled again.
  ASSERT_TRUE(eventually([&] { return controller_.streams() >= 2; }, 3s));
  EXPECT_GE(controller_.receivedOf(v1::AgentMessage::kKeepalive).size(), 1u);
  EXPECT_TRUE(eventually([&] {
    return link->status().lastError.find("nothing heard") != std::string::npos;
  })) << link->status().lastError;
}

TEST_F(ControllerLinkTest, AControllerThatKeepsAliveKeepsItsStream) {
  ControllerServer server(controller_, "unix:" + socket());
  auto o = options({"unix://" + socket()});
  o.keepAlive = 50ms;
  auto link = connectedLink(o);
  std::atomic<bool> done{false};
  std::thread beat([&] {
    v1::ControllerMessage k;
    k.mutable_keepalive()->set_sent_unix_ms(1);
    while (!done) {
      controller_.send(k);
      std::this_thread::sleep_for(20ms);
    }
  });
  std::this_thread::sleep_for(600ms);  // twelve periods
  const int streams = controller_.streams();
  const size_t keepalives = controller_.receivedOf(v1::AgentMessage::kKeepalive).size();
  done = true;
  beat.join();
  EXPECT_EQ(streams, 1);
  EXPECT_GE(keepalives, 5u);
  EXPECT_TRUE(link->status().connected);
}

// "Prompt" is far below what a stop would take if it waited: the dial hangs
// for ever and the backoff is 60 s. The bound leaves room for a loaded
// machine (a stop joins gRPC's threads), where 500 ms was once exceeded.
TEST_F(ControllerLinkTest, StopIsPromptWhileConnectedDiallingOrWaiting) {
  constexpr auto kPrompt = 2s;
  ControllerServer server(controller_, "unix:" + socket());
  auto connected = connectedLink(options({"unix://" + socket()}));
  auto start = Clock::now();
  connected->stop();
  EXPECT_LT(Clock::now() - start, kPrompt);
  EXPECT_TRUE(eventually([&] { return !controller_.connected(); }));

  // A TCP peer on loopback that accepts the connection and never says a
  // word: the TLS handshake hangs, the dial waits.
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 4), 0);
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ControllerLink dialling(member_,
                          options({"tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))}));
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(dialling.status().connected);
  start = Clock::now();
  dialling.stop();
  EXPECT_LT(Clock::now() - start, kPrompt);
  ::close(silent);

  auto o = options({"unix://" + socket("nobody.sock")});
  o.backoffMin = o.backoffMax = 60s;
  ControllerLink waiting(member_, o);
  std::this_thread::sleep_for(100ms);
  start = Clock::now();
  waiting.stop();
  EXPECT_LT(Clock::now() - start, kPrompt);
}

// tcp:// is TLS: the controller's certificate verified against the CA, the
// agent's certificate presented; a controller from another CA is not
// trusted.
TEST_F(ControllerLinkTest, TcpControllersAreReachedOverMutualTls) {
  ASSERT_EQ(std::system("command -v openssl >/dev/null 2>&1"), 0) << "openssl is needed";
  const std::string d = dir_.string();
  const std::string script =
      "cd " + d +
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
      "-subj /CN=test-ca"
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 1 "
      "-subj /CN=other-ca"
      " && openssl req -newkey rsa:2048 -nodes -keyout ctl.key -out ctl.csr -subj /CN=ctl"
      " && printf 'subjectAltName=DNS:localhost' > ctl.ext"
      " && openssl x509 -req -in ctl.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
      "-extfile ctl.ext -out ctl.pem"
      " && openssl req -newkey rsa:2048 -nodes -keyout a.key -out a.csr -subj /CN=host-a"
      " && printf 'subjectAltName=DNS:host-a' > a.ext"
      " && openssl x509 -req -in a.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
      "-extfile a.ext -out a.pem";
  ASSERT_EQ(std::system(("(" + script + ") >/dev/null 2>&1").c_str()), 0);
  auto slurp = [&](const std::string& name) {
    std::ifstream in(dir_ / name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = slurp("ca.pem");
  tls.pem_key_cert_pairs.push_back({slurp("ctl.key"), slurp("ctl.pem")});
  ControllerServer server(controller_, "127.0.0.1:0", grpc::SslServerCredentials(tls));
  ASSERT_GT(server.port, 0);
  auto o = options({"tcp://localhost:" + std::to_string(server.port)});
  o.tls = {slurp("ca.pem"), slurp("a.pem"), slurp("a.key"), ""};
  auto link = connectedLink(o);
  const auto names = controller_.peerNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "host-a"), names.end());
  link->stop();

  // The controller's certificate is not signed by the CA the agent trusts.
  auto untrusted = options({"tcp://localhost:" + std::to_string(server.port)});
  untrusted.tls = {slurp("other.pem"), slurp("a.pem"), slurp("a.key"), ""};
  ControllerLink refused(member_, untrusted);
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(refused.status().connected);
  EXPECT_NE(refused.status().lastError.find("cannot connect"), std::string::npos)
      << refused.status().lastError;
  EXPECT_EQ(controller_.streams(), 1);
}

}  // namespace
}  // namespace bulkhead::agent
