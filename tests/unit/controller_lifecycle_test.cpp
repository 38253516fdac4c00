// The controller over time: keepalives, silent agents, the host TTL, and a
// restart from the embedded store (short periods through options).
#include <gtest/gtest.h>

#include <algorithm>

#include "controller_harness.h"

namespace bulkhead::controller {
namespace {

using namespace testing_util;
using Kind = v1::ControllerMessage::MessageCase;

void pushFleet(ControllerRig& rig) {
  grpc::ClientContext ctx;
  v1::PushPolicyResponse resp;
  ASSERT_TRUE(rig.stub()->PushPolicy(&ctx, pushOf(kFleetBundle), &resp).ok());
}

TEST(ControllerLifecycle, KeepAlivesFlowAndASilentAgentIsDropped) {
  ControllerOptions options;
  options.keepAlive = 100ms;
  ControllerRig rig(options);
  SimAgent a(rig, "host-a");
  a.connect({});
  ASSERT_TRUE(a.next(Kind::kSnapshot));
  ASSERT_TRUE(a.next(Kind::kKeepalive, 1000ms));
  // The simulated agent sends nothing after its hello: after three periods
  // the controller closes its stream.
  auto end = a.ended(2000ms);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(rig.core().fleetStatus().hosts(0).connected());
}

TEST(ControllerLifecycle, AgentKeepAlivesKeepTheStream) {
  ControllerOptions options;
  options.keepAlive = 100ms;
  ControllerRig rig(options);
  SimAgent a(rig, "host-a");
  a.connect({});
  ASSERT_TRUE(a.next(Kind::kSnapshot));
  for (int i = 0; i < 8; ++i) {
    v1::AgentMessage m;
    m.mutable_keepalive()->set_sent_unix_ms(1);
    a.write(m);
    std::this_thread::sleep_for(80ms);
  }
  EXPECT_FALSE(a.ended(10ms));
  EXPECT_TRUE(rig.core().fleetStatus().hosts(0).connected());
}

TEST(ControllerLifecycle, HostGoneLongerThanTheTtlIsWithdrawnAShortBlipChangesNothing) {
  ControllerOptions options;
  // Long enough that a reconnect on a loaded machine is well within it.
  options.hostTtl = 1500ms;
  ControllerRig rig(options);
  pushFleet(rig);
  SimAgent a(rig, "host-a"), b(rig, "host-b");
  a.connect({workload("web-1", "frontend", "192.0.2.11")});
  b.connect({workload("pay-1", "payments", "192.0.2.21")});
  auto snapshot = a.next(Kind::kSnapshot);
  ASSERT_TRUE(snapshot);
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  // pay-1 reaches host-a in its snapshot, or as an upsert when host-b's
  // hello came after host-a's.
  const auto& remotes = snapshot->snapshot().remote_workloads();
  if (std::none_of(remotes.begin(), remotes.end(),
                   [](const v1::Workload& w) { return w.name() == "pay-1"; })) {
    ASSERT_TRUE(a.next([](const auto& m) { return isRemoteUpsertOf(m, "host-b", "pay-1"); }));
  }
  // A blip: back within the TTL with the same workloads. host-a hears nothing.
  b.hangUp();
  std::this_thread::sleep_for(100ms);
  b.connect({workload("pay-1", "payments", "192.0.2.21")});
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  std::this_thread::sleep_for(1700ms);  // past the TTL of the hang-up
  EXPECT_EQ(a.pending(), 0u);
  // Gone for longer than the TTL: withdrawn from host-a.
  b.hangUp();
  ASSERT_TRUE(a.next([](const auto& m) { return isRemoteDeleteOf(m, "host-b", "pay-1"); }, 5000ms));
  // Back: sent again.
  b.connect({workload("pay-1", "payments", "192.0.2.21")});
  ASSERT_TRUE(a.next([](const auto& m) { return isRemoteUpsertOf(m, "host-b", "pay-1"); }));
}

TEST(ControllerLifecycle, RestartedControllerServesTheLastKnownInventory) {
  TempDir dir;
  {
    ControllerRig rig({}, dir.path);
    pushFleet(rig);
    SimAgent b(rig, "host-b");
    b.connect({workload("pay-1", "payments", "192.0.2.21")});
    ASSERT_TRUE(b.next(Kind::kSnapshot));
    b.ack(1);
    // The inventory is written within the persist delay (or at the stop).
    std::this_thread::sleep_for(300ms);
    b.hangUp();
    rig.stop();
  }
  ControllerRig rig({}, dir.path);
  EXPECT_EQ(rig.core().revision(), 1u);
  // host-a comes back first: host-b's workload is served from the store.
  SimAgent a(rig, "host-a");
  a.connect({workload("web-1", "frontend", "192.0.2.11")}, 1);
  auto snap = a.next(Kind::kSnapshot);
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->snapshot().policy().revision(), 1u);
  ASSERT_EQ(snap->snapshot().remote_workloads_size(), 1);
  EXPECT_EQ(snap->snapshot().remote_workloads(0).name(), "pay-1");
  // host-b reconnects with the same inventory: nothing new for host-a.
  SimAgent b(rig, "host-b");
  b.connect({workload("pay-1", "payments", "192.0.2.21")}, 1);
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(a.pending(), 0u);
  const auto status = rig.core().fleetStatus();
  ASSERT_EQ(status.hosts_size(), 2);
  EXPECT_EQ(status.hosts(1).acked_revision(), 1u);
}

TEST(ControllerLifecycle, CorruptStoreRefusesToStart) {
  TempDir dir;
  {
    ControllerRig rig({}, dir.path);
    pushFleet(rig);
  }
  std::filesystem::resize_file(dir.path + "/state/bundle.bin", 20);
  FileStore store(dir.path + "/state");
  ControllerCore core(store, {});
  auto st = core.load();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("bundle.bin"), std::string::npos);
}

}  // namespace
}  // namespace bulkhead::controller
