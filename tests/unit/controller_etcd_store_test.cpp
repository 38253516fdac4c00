// The controller on etcd (EtcdStore + ControllerCore), against a real etcd
// on loopback (tests/support/etcd_server.h): the store's round trip and
// compare-and-swap, two cores on one etcd seeing each other's bundle and
// hosts, a host record expiring with its lease, a host moving between
// controllers, and a compaction forcing a reload.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "bulkhead/controller/core.h"
#include "bulkhead/controller/etcd_store.h"
#include "controller_harness.h"
#include "support/etcd_server.h"

namespace bulkhead::controller {
namespace {

using namespace std::chrono_literals;
using testing_util::kFleetBundle;
using testing_util::pushOf;
using testing_util::workload;
using Clock = std::chrono::steady_clock;

// An agent's stream as the core sees it: what was sent, kept in order.
class TestSink : public AgentSink {
 public:
  bool send(Outgoing message) override {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    inbox_.push_back(message.decode());
    cv_.notify_all();
    return true;
  }
  void close(int, const std::string&) override {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }
  // The next message matching `pred` (skipping the others), or nullopt.
  std::optional<v1::ControllerMessage> next(
      const std::function<bool(const v1::ControllerMessage&)>& pred,
      std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock lock(mu_);
    std::optional<v1::ControllerMessage> out;
    cv_.wait_for(lock, timeout, [&] {
      while (!inbox_.empty()) {
        auto m = std::move(inbox_.front());
        inbox_.pop_front();
        if (pred(m)) {
          out = std::move(m);
          return true;
        }
      }
      return false;
    });
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::ControllerMessage> inbox_;
  bool closed_ = false;
};

bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

v1::AgentHello hello(const std::string& host, const std::vector<v1::Workload>& workloads,
                     uint64_t applied = 0) {
  v1::AgentHello h;
  h.set_host(host);
  h.set_agent_version("test");
  h.set_applied_revision(applied);
  for (const auto& w : workloads)
    *h.add_workloads() = w;
  return h;
}

bool hasWorkload(const v1::ListWorkloadsResponse& r, const std::string& host,
                 const std::string& name) {
  for (const auto& w : r.workloads())
    if (w.host() == host && w.name() == name) return true;
  return false;
}

// One controller on the shared etcd: its own client, store and core.
struct Ctl {
  std::unique_ptr<EtcdStore> store;
  std::unique_ptr<ControllerCore> core;

  Ctl(const std::string& endpoint, const std::string& name, std::chrono::seconds ttl = 300s) {
    etcd::ClientOptions options;
    options.endpoints = {endpoint};
    auto client = etcd::Client::connect(options);
    EXPECT_TRUE(client) << (client ? "" : client.error().describe());
    store =
        std::make_unique<EtcdStore>(std::move(*client), EtcdStoreOptions{"/bulkhead/", ttl, name});
    ControllerOptions o;
    o.name = name;
    o.hostTtl = ttl;
    core = std::make_unique<ControllerCore>(*store, o);
    auto st = core->load();
    EXPECT_TRUE(st) << (st ? "" : st.error().describe());
    core->start();
  }
  ~Ctl() {
    core->stop();
    core.reset();
    store.reset();
  }
};

class ControllerEtcd : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(etcd_.ok()) << etcd_.log(); }
  testing::EtcdServer etcd_;
};

TEST_F(ControllerEtcd, StoreRoundTripAndCompareAndSwap) {
  etcd::ClientOptions options;
  options.endpoints = {etcd_.endpoint()};
  auto client = etcd::Client::connect(options);
  ASSERT_TRUE(client) << client.error().describe();
  EtcdStore store(std::move(*client), {"/bulkhead/", 10s, "ctl"});
  auto empty = store.loadAll();
  ASSERT_TRUE(empty) << empty.error().describe();
  EXPECT_FALSE(empty->bundle);
  EXPECT_TRUE(empty->hosts.empty());

  v1::PolicyRevision bundle;
  bundle.set_version("v1");
  auto* f = bundle.add_files();
  f->set_name("fleet.yaml");
  f->set_content(kFleetBundle);
  auto first = store.putBundle(bundle, 0);
  ASSERT_TRUE(first) << first.error().describe();
  ASSERT_TRUE(*first);
  // Another controller pushing on top of "nothing" loses: one was stored.
  auto late = store.putBundle(bundle, 0);
  ASSERT_TRUE(late);
  EXPECT_FALSE(*late);
  bundle.set_version("v2");
  auto second = store.putBundle(bundle, **first);
  ASSERT_TRUE(second && *second);
  EXPECT_GT(**second, **first);
  auto loaded = store.loadBundle();
  ASSERT_TRUE(loaded && *loaded);
  EXPECT_EQ((*loaded)->revision(), **second);  // the key's mod_revision
  EXPECT_EQ((*loaded)->version(), "v2");
  EXPECT_EQ((*loaded)->files(0).content(), kFleetBundle);

  StoredHost h;
  h.host = "host-a";
  h.connected = true;
  h.ackedRevision = **second;
  auto w = workload("pay-1", "payments", "192.0.2.10");
  w.set_host("host-a");
  h.workloads.push_back(w);
  ASSERT_TRUE(store.putHost(h));
  auto all = store.loadAll();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->hosts.size(), 1u);
  EXPECT_EQ(all->hosts[0].host, "host-a");
  EXPECT_EQ(all->hosts[0].controller, store.instance());
  EXPECT_TRUE(all->hosts[0].connected);
  ASSERT_EQ(all->hosts[0].workloads.size(), 1u);
  EXPECT_EQ(all->hosts[0].workloads[0].name(), "pay-1");
}

TEST_F(ControllerEtcd, TwoCoresShareBundleHostsAndAcks) {
  Ctl a(etcd_.endpoint(), "ctl-a"), b(etcd_.endpoint(), "ctl-b");
  // frontend on host-b (served by b) selects payments on host-a (served by a).
  auto sinkB = std::make_shared<TestSink>();
  ASSERT_TRUE(b.core->connect(hello("host-b", {workload("web-1", "frontend", "192.0.2.20")}), sinkB,
                              "peer-b"));
  auto pushed = a.core->push(pushOf(kFleetBundle, "v1"));
  ASSERT_TRUE(pushed) << pushed.error().describe();
  const uint64_t rev = pushed->revision();
  // The push to a reaches b's agent as a new revision.
  auto policy = sinkB->next([](const auto& m) { return m.has_policy(); });
  ASSERT_TRUE(policy);
  EXPECT_EQ(policy->policy().revision(), rev);
  EXPECT_EQ(b.core->revision(), rev);

  auto sinkA = std::make_shared<TestSink>();
  auto sessionA = a.core->connect(
      hello("host-a", {workload("pay-1", "payments", "192.0.2.10")}, rev), sinkA, "peer-a");
  ASSERT_TRUE(sessionA);
  // A workload on a host of a reaches b's host through etcd.
  ASSERT_TRUE(sinkB->next(
      [](const auto& m) { return testing_util::isRemoteUpsertOf(m, "host-a", "pay-1"); }));
  EXPECT_TRUE(hasWorkload(b.core->fleetWorkloads(""), "host-a", "pay-1"));
  // Status and rollout on b cover host-a (acked by its hello on a).
  ASSERT_TRUE(waitUntil([&] {
    auto r = b.core->rollout(rev);
    return r && r->acked() == 1;
  }));
  auto status = b.core->fleetStatus();
  bool sawA = false;
  for (const auto& h : status.hosts())
    if (h.host() == "host-a") {
      sawA = true;
      EXPECT_TRUE(h.connected());
      EXPECT_EQ(h.acked_revision(), rev);
    }
  EXPECT_TRUE(sawA);
  // And a sees the same: host-a acked by its hello, host-b pending.
  ASSERT_TRUE(waitUntil([&] {
    auto r = a.core->rollout(rev);
    return r && r->acked() == 1 && r->total() == 2;
  }));

  // The workload removed on a: b's host loses it.
  v1::AgentMessage rm;
  rm.mutable_workload()->set_deleted("pay-1");
  ASSERT_TRUE(a.core->received(*sessionA, rm));
  ASSERT_TRUE(sinkB->next(
      [](const auto& m) { return testing_util::isRemoteDeleteOf(m, "host-a", "pay-1"); }));
  EXPECT_FALSE(hasWorkload(b.core->fleetWorkloads(""), "host-a", "pay-1"));
}

TEST_F(ControllerEtcd, AcksRecordedInEtcdCompleteRolloutsEverywhere) {
  Ctl a(etcd_.endpoint(), "ctl-a"), b(etcd_.endpoint(), "ctl-b");
  auto sinkA = std::make_shared<TestSink>();
  auto sinkB = std::make_shared<TestSink>();
  auto sa = a.core->connect(hello("host-a", {}), sinkA, "peer-a");
  auto sb = b.core->connect(hello("host-b", {}), sinkB, "peer-b");
  ASSERT_TRUE(sa && sb);
  auto pushed = b.core->push(pushOf(kFleetBundle, "v1"));
  ASSERT_TRUE(pushed) << pushed.error().describe();
  const uint64_t rev = pushed->revision();
  ASSERT_TRUE(sinkA->next([&](const auto& m) { return m.has_policy(); }));
  // Both hosts count as targets on both controllers, pending until acked.
  ASSERT_TRUE(waitUntil([&] {
    auto r = b.core->rollout(rev);
    return r && r->total() == 2 && !r->done();
  }));
  for (auto [core, session] : {std::pair{a.core.get(), *sa}, std::pair{b.core.get(), *sb}}) {
    v1::AgentMessage ack;
    ack.mutable_ack()->set_revision(rev);
    ack.mutable_ack()->set_applied(true);
    ASSERT_TRUE(core->received(session, ack));
  }
  for (auto* core : {a.core.get(), b.core.get()})
    ASSERT_TRUE(waitUntil([&] {
      auto r = core->rollout(rev);
      return r && r->acked() == 2 && r->done();
    }));
}

TEST_F(ControllerEtcd, AFailedRevisionIsFailedOnEveryController) {
  Ctl a(etcd_.endpoint(), "ctl-a"), b(etcd_.endpoint(), "ctl-b");
  auto sinkA = std::make_shared<TestSink>();
  auto sa = a.core->connect(hello("host-a", {}), sinkA, "peer-a");
  ASSERT_TRUE(sa);
  auto pushed = b.core->push(pushOf(kFleetBundle, "v1"));
  ASSERT_TRUE(pushed) << pushed.error().describe();
  const uint64_t rev = pushed->revision();
  ASSERT_TRUE(sinkA->next([&](const auto& m) { return m.has_policy(); }));
  v1::AgentMessage ack;
  ack.mutable_ack()->set_revision(rev);
  ack.mutable_ack()->set_applied(false);
  ack.mutable_ack()->set_error("kernel refused: set too large");
  ASSERT_TRUE(a.core->received(*sa, ack));
  // b never held host-a's stream: it learns the failure from etcd, and the
  // rollout it reports is finished, not pending.
  for (auto* core : {a.core.get(), b.core.get()}) {
    ASSERT_TRUE(waitUntil([&] {
      auto r = core->rollout(rev);
      return r && r->hosts_size() == 1 && r->hosts(0).state() == v1::HostRollout::STATE_FAILED &&
             r->done();
    })) << (core == b.core.get() ? "ctl-b" : "ctl-a");
    auto r = core->rollout(rev);
    EXPECT_EQ(r->hosts(0).error(), "kernel refused: set too large");
    auto status = core->fleetStatus();
    ASSERT_EQ(status.hosts_size(), 1);
    EXPECT_EQ(status.hosts(0).failed_revision(), rev);
  }
}

TEST_F(ControllerEtcd, ConcurrentPushesGetDistinctRevisionsAndConverge) {
  Ctl a(etcd_.endpoint(), "ctl-a"), b(etcd_.endpoint(), "ctl-b");
  Result<v1::PushPolicyResponse> ra = makeError(ErrorCode::kInternal, "not run");
  Result<v1::PushPolicyResponse> rb = makeError(ErrorCode::kInternal, "not run");
  std::thread ta([&] { ra = a.core->push(pushOf(kFleetBundle, "from-a")); });
  std::thread tb(
      [&] { rb = b.core->push(pushOf(std::string(kFleetBundle) + "\n# b\n", "from-b")); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra) << ra.error().describe();
  ASSERT_TRUE(rb) << rb.error().describe();
  EXPECT_NE(ra->revision(), rb->revision());
  const uint64_t last = std::max(ra->revision(), rb->revision());
  ASSERT_TRUE(waitUntil([&] { return a.core->revision() == last && b.core->revision() == last; }))
      << a.core->revision() << " " << b.core->revision() << " want " << last;
}

// On etcd a push's revision is etcd's: a dry run reports the one the push
// would get if nothing else is written first, not the bundle's + 1.
TEST_F(ControllerEtcd, DryRunReportsTheRevisionThePushWouldGet) {
  Ctl a(etcd_.endpoint(), "ctl-a");
  auto first = a.core->push(pushOf(kFleetBundle, "v1"));
  ASSERT_TRUE(first) << first.error().describe();
  // Other writes move etcd's revision past the bundle's.
  auto client = etcd::Client::connect(etcd_.clientOptions());
  ASSERT_TRUE(client);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE((*client)->put("/elsewhere/" + std::to_string(i), "x"));
  auto dry = pushOf(std::string(kFleetBundle) + "\n# v2\n", "v2");
  dry.set_dry_run(true);
  auto planned = a.core->push(dry);
  ASSERT_TRUE(planned) << planned.error().describe();
  EXPECT_TRUE(planned->changed());
  EXPECT_EQ(a.core->revision(), first->revision());  // nothing stored
  dry.set_dry_run(false);
  auto pushed = a.core->push(dry);
  ASSERT_TRUE(pushed) << pushed.error().describe();
  EXPECT_EQ(planned->revision(), pushed->revision());
  EXPECT_EQ(pushed->revision(), first->revision() + 4);
}

TEST_F(ControllerEtcd, LeaseExpiryWithdrawsAHostGoneEverywhere) {
  Ctl a(etcd_.endpoint(), "ctl-a", 2s), b(etcd_.endpoint(), "ctl-b", 2s);
  ASSERT_TRUE(a.core->push(pushOf(kFleetBundle)));
  auto sinkB = std::make_shared<TestSink>();
  ASSERT_TRUE(b.core->connect(hello("host-b", {workload("web-1", "frontend", "192.0.2.20")}), sinkB,
                              "peer-b"));
  auto sinkA = std::make_shared<TestSink>();
  auto sessionA =
      a.core->connect(hello("host-a", {workload("pay-1", "payments", "192.0.2.10")}), sinkA, "a");
  ASSERT_TRUE(sessionA);
  ASSERT_TRUE(sinkB->next(
      [](const auto& m) { return testing_util::isRemoteUpsertOf(m, "host-a", "pay-1"); }));
  // Within the TTL the host is still served to the others...
  const auto gone = Clock::now();
  a.core->disconnected(*sessionA);
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(hasWorkload(b.core->fleetWorkloads(""), "host-a", "pay-1"));
  // ...then its record expires and every controller withdraws it.
  ASSERT_TRUE(sinkB->next(
      [](const auto& m) { return testing_util::isRemoteDeleteOf(m, "host-a", "pay-1"); }, 10000ms));
  EXPECT_GE(Clock::now() - gone, 1500ms);
  ASSERT_TRUE(
      waitUntil([&] { return !hasWorkload(a.core->fleetWorkloads(""), "host-a", "pay-1"); }));
  EXPECT_FALSE(hasWorkload(b.core->fleetWorkloads(""), "host-a", "pay-1"));
  // host-b, connected to b all along, stays: b keeps its lease alive.
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(hasWorkload(a.core->fleetWorkloads(""), "host-b", "web-1"));
}

TEST_F(ControllerEtcd, HostMovingToAnotherControllerKeepsItsEntries) {
  Ctl a(etcd_.endpoint(), "ctl-a", 2s), b(etcd_.endpoint(), "ctl-b", 2s);
  ASSERT_TRUE(a.core->push(pushOf(kFleetBundle)));
  auto sinkB = std::make_shared<TestSink>();
  ASSERT_TRUE(b.core->connect(hello("host-b", {workload("web-1", "frontend", "192.0.2.20")}), sinkB,
                              "peer-b"));
  auto sinkA = std::make_shared<TestSink>();
  auto w = workload("pay-1", "payments", "192.0.2.10");
  auto sessionA = a.core->connect(hello("host-a", {w}), sinkA, "a");
  ASSERT_TRUE(sessionA);
  ASSERT_TRUE(sinkB->next(
      [](const auto& m) { return testing_util::isRemoteUpsertOf(m, "host-a", "pay-1"); }));
  // host-a's stream moves to b without a goodbye (a still thinks it is
  // connected): a closes its stale stream when b takes the host.
  auto sinkA2 = std::make_shared<TestSink>();
  ASSERT_TRUE(b.core->connect(hello("host-a", {w}), sinkA2, "a2"));
  ASSERT_TRUE(waitUntil([&] { return sinkA->closed(); }));
  // Past the TTL the host is still everywhere, with nothing withdrawn.
  std::this_thread::sleep_for(4s);
  EXPECT_FALSE(sinkB->next(
      [](const auto& m) { return testing_util::isRemoteDeleteOf(m, "host-a", "pay-1"); }, 10ms));
  EXPECT_TRUE(hasWorkload(a.core->fleetWorkloads(""), "host-a", "pay-1"));
  bool connected = false;
  const auto status = a.core->fleetStatus();
  for (const auto& h : status.hosts())
    if (h.host() == "host-a") connected = h.connected();
  EXPECT_TRUE(connected);
}

TEST_F(ControllerEtcd, CompactionReloadsInsteadOfLooping) {
  etcd::ClientOptions options;
  options.endpoints = {etcd_.endpoint()};
  auto ca = etcd::Client::connect(options);
  auto cb = etcd::Client::connect(options);
  ASSERT_TRUE(ca && cb);
  EtcdStore a(std::move(*ca), {"/bulkhead/", 10s, "ctl-a"});
  EtcdStore b(std::move(*cb), {"/bulkhead/", 10s, "ctl-b"});
  ASSERT_TRUE(b.loadAll());  // b's view is now older than what follows
  v1::PolicyRevision bundle;
  bundle.set_version("v1");
  auto rev = a.putBundle(bundle, 0);
  ASSERT_TRUE(rev && *rev);
  StoredHost h;
  h.host = "host-a";
  h.connected = true;
  ASSERT_TRUE(a.putHost(h));
  bundle.set_version("v2");
  auto rev2 = a.putBundle(bundle, **rev);
  ASSERT_TRUE(rev2 && *rev2);
  ASSERT_TRUE(etcd_.compact(int64_t(**rev2)));

  std::mutex mu;
  int reloads = 0, bundles = 0;
  std::optional<SharedStore::Contents> reloaded;
  SharedStore::Events events;
  events.onBundle = [&](v1::PolicyRevision) {
    std::lock_guard lock(mu);
    ++bundles;
  };
  events.onReload = [&](SharedStore::Contents c) {
    std::lock_guard lock(mu);
    ++reloads;
    reloaded = std::move(c);
  };
  b.watch(events);
  ASSERT_TRUE(waitUntil([&] {
    b.poll();
    std::lock_guard lock(mu);
    return reloads == 1;
  }));
  {
    std::lock_guard lock(mu);
    ASSERT_TRUE(reloaded->bundle);
    EXPECT_EQ(reloaded->bundle->revision(), **rev2);
    EXPECT_EQ(reloaded->bundle->version(), "v2");
    ASSERT_EQ(reloaded->hosts.size(), 1u);
    EXPECT_EQ(reloaded->hosts[0].host, "host-a");
  }
  // The new watch delivers what follows, and no second reload comes.
  bundle.set_version("v3");
  ASSERT_TRUE(a.putBundle(bundle, **rev2));
  ASSERT_TRUE(waitUntil([&] {
    b.poll();
    std::lock_guard lock(mu);
    return bundles == 1;
  }));
  for (int i = 0; i < 20; ++i) {
    b.poll();
    std::this_thread::sleep_for(50ms);
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(reloads, 1);
  b.stopWatching();
}

}  // namespace
}  // namespace bulkhead::controller
