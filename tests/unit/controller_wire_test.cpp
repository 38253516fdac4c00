// The controller's pre-encoded messages (wire.h) parse as the messages they
// stand for, with shared parts referenced rather than copied; and the
// silence check of ControllerCore counts a busy controller's backlog as its
// own, not as the agent's silence.
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "bulkhead/controller/core.h"
#include "bulkhead/controller/wire.h"
#include "controller_harness.h"

namespace bulkhead::controller {
namespace {

using namespace std::chrono_literals;

v1::Workload remoteWorkload(const std::string& host, const std::string& name, size_t labelBytes) {
  v1::Workload w;
  w.set_host(host);
  w.set_name(name);
  w.set_app("payments");
  w.add_addresses("192.0.2.21");
  (*w.mutable_labels())["note"] = std::string(labelBytes, 'x');
  w.set_source(v1::Workload::SOURCE_REMOTE);
  return w;
}

v1::PolicyRevision revision(size_t bytes) {
  v1::PolicyRevision p;
  p.set_revision(7);
  p.set_version("v7");
  auto* f = p.add_files();
  f->set_name("fleet.yaml");
  f->set_content(std::string(bytes, '#'));
  return p;
}

TEST(ControllerWire, SnapshotParsesAsTheMessageItStandsFor) {
  // Lengths of one, two and three varint bytes.
  const std::vector<v1::Workload> remotes = {remoteWorkload("host-b", "small", 3),
                                             remoteWorkload("host-b", "medium", 300),
                                             remoteWorkload("host-c", "large", 70000)};
  const v1::PolicyRevision policy = revision(20000);
  std::vector<SharedBytes> encoded;
  v1::ControllerMessage want;
  *want.mutable_snapshot()->mutable_policy() = policy;
  for (const auto& w : remotes) {
    encoded.push_back(encodeShared(w));
    *want.mutable_snapshot()->add_remote_workloads() = w;
  }
  const SharedBytes policyBytes = encodeShared(policy);
  const Outgoing out = Outgoing::snapshot(policyBytes, encoded);
  EXPECT_EQ(out.kind(), Outgoing::Kind::kSnapshot);
  EXPECT_EQ(out.bytes(), want.SerializeAsString());
  EXPECT_EQ(out.size(), want.ByteSizeLong());
  // The bundle is referenced, not copied.
  bool shared = false;
  for (const auto& part : out.parts())
    shared = shared || part == policyBytes;
  EXPECT_TRUE(shared);

  // No bundle yet, nothing to hold: still a snapshot.
  const Outgoing empty = Outgoing::snapshot(nullptr, {});
  const v1::ControllerMessage parsed = empty.decode();
  EXPECT_TRUE(parsed.has_snapshot());
  EXPECT_FALSE(parsed.snapshot().has_policy());
  EXPECT_EQ(parsed.snapshot().remote_workloads_size(), 0);
}

TEST(ControllerWire, PolicyUpsertDeleteAndKeepAliveParse) {
  const v1::PolicyRevision policy = revision(200);
  v1::ControllerMessage want;
  *want.mutable_policy() = policy;
  EXPECT_EQ(Outgoing::policy(encodeShared(policy)).bytes(), want.SerializeAsString());

  const v1::Workload w = remoteWorkload("host-b", "pay-1", 10);
  const Outgoing up = Outgoing::upsert("host-b", "pay-1", encodeShared(w));
  want.Clear();
  *want.mutable_remote_upsert() = w;
  EXPECT_EQ(up.bytes(), want.SerializeAsString());
  EXPECT_TRUE(up.isRemoteChange());

  const v1::ControllerMessage del = Outgoing::remove("host-b", "pay-1").decode();
  EXPECT_EQ(del.remote_delete().host(), "host-b");
  EXPECT_EQ(del.remote_delete().name(), "pay-1");
  EXPECT_EQ(Outgoing::keepAlive(42).decode().keepalive().sent_unix_ms(), 42);
  EXPECT_FALSE(Outgoing::keepAlive(42).isRemoteChange());
}

TEST(ControllerWire, FoldKeepsTheLastStateOfEachKey) {
  const v1::Workload first = remoteWorkload("host-b", "pay-1", 1);
  v1::Workload second = first;
  second.set_app("payments-v2");
  const std::vector<Outgoing> run = {
      Outgoing::upsert("host-b", "pay-1", encodeShared(first)),
      Outgoing::upsert("host-b", "gone", encodeShared(remoteWorkload("host-b", "gone", 1))),
      Outgoing::remove("host-b", "gone"),
      Outgoing::upsert("host-b", "pay-1", encodeShared(second))};
  const v1::ControllerMessage m = foldRemoteChanges(run).decode();
  ASSERT_TRUE(m.has_remote_batch());
  ASSERT_EQ(m.remote_batch().upserts_size(), 1);
  EXPECT_EQ(m.remote_batch().upserts(0).app(), "payments-v2");
  ASSERT_EQ(m.remote_batch().deletes_size(), 1);
  EXPECT_EQ(m.remote_batch().deletes(0).name(), "gone");
}

// Records the messages and the close of one stream.
class Sink : public AgentSink {
 public:
  bool send(Outgoing) override { return !closed(); }
  void close(int, const std::string&) override {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  std::mutex mu_;
  bool closed_ = false;
};

v1::AgentMessage keepAlive() {
  v1::AgentMessage m;
  m.mutable_keepalive()->set_sent_unix_ms(1);
  return m;
}

TEST(ControllerSilence, BacklogIsNotThePeersSilence) {
  testing_util::TempDir dir;
  FileStore store(dir.path);
  ControllerOptions options;
  options.keepAlive = 100ms;  // silent after 300 ms; a read 20 ms late is a backlog
  ControllerCore core(store, options);
  ASSERT_TRUE(core.load().ok());
  v1::AgentHello hello;
  hello.set_host("host-a");
  auto sink = std::make_shared<Sink>();
  const auto t0 = std::chrono::steady_clock::now();
  auto session = core.connect(hello, sink, "test");
  ASSERT_TRUE(session.ok());

  // A keepalive the stream read at t0 + 10 ms reaches the core only at
  // t0 + 250 ms (the core was busy): the controller was behind.
  std::this_thread::sleep_until(t0 + 250ms);
  ASSERT_TRUE(core.received(*session, keepAlive(), t0 + 10ms).ok());
  // 390 ms after the last read, but only 150 ms after the backlog: open.
  std::this_thread::sleep_until(t0 + 400ms);
  core.tick();
  EXPECT_FALSE(sink->closed());
  // Caught up, and still nothing from the agent for 300 ms: silent.
  std::this_thread::sleep_until(t0 + 600ms);
  core.tick();
  EXPECT_TRUE(sink->closed());
}

TEST(ControllerSilence, SilentPeerIsClosedAndTalkingOneIsNot) {
  testing_util::TempDir dir;
  FileStore store(dir.path);
  ControllerOptions options;
  options.keepAlive = 100ms;
  ControllerCore core(store, options);
  ASSERT_TRUE(core.load().ok());
  v1::AgentHello a, b;
  a.set_host("host-a");
  b.set_host("host-b");
  auto sinkA = std::make_shared<Sink>();
  auto sinkB = std::make_shared<Sink>();
  auto sa = core.connect(a, sinkA, "test");
  auto sb = core.connect(b, sinkB, "test");
  ASSERT_TRUE(sa.ok() && sb.ok());
  const auto t0 = std::chrono::steady_clock::now();
  for (auto t = t0 + 50ms; t < t0 + 450ms; t += 50ms) {
    std::this_thread::sleep_until(t);
    ASSERT_TRUE(core.received(*sb, keepAlive()).ok());  // read now, on time
    core.tick();
  }
  EXPECT_TRUE(sinkA->closed());
  EXPECT_FALSE(sinkB->closed());
}

}  // namespace
}  // namespace bulkhead::controller
