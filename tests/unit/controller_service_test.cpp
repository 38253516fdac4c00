// The Controller service over a real gRPC server on a unix socket, driven
// by simulated agents with real streams: hello and snapshot, span-filtered
// deltas, pushes, acks and rollouts, replacement, identity, keepalives.
#include <gtest/gtest.h>

#include "controller_harness.h"

namespace bulkhead::controller {
namespace {

using namespace testing_util;
using Kind = v1::ControllerMessage::MessageCase;

v1::PushPolicyResponse push(ControllerRig& rig, const std::string& content,
                            grpc::Status* status = nullptr) {
  grpc::ClientContext ctx;
  v1::PushPolicyResponse resp;
  auto st = rig.stub()->PushPolicy(&ctx, pushOf(content), &resp);
  if (status)
    *status = st;
  else
    EXPECT_TRUE(st.ok()) << st.error_message();
  return resp;
}

TEST(ControllerService, SnapshotCarriesBundleAndOnlySelectableRemoteWorkloads) {
  ControllerRig rig;
  const auto pushed = push(rig, kFleetBundle);
  EXPECT_EQ(pushed.revision(), 1u);
  EXPECT_TRUE(pushed.changed());
  SimAgent b(rig, "host-b");
  b.connect(
      {workload("pay-1", "payments", "192.0.2.21"), workload("batch-1", "batch", "192.0.2.22")});
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  SimAgent a(rig, "host-a");
  a.connect({workload("web-1", "frontend", "192.0.2.11")});
  auto snap = a.next(Kind::kSnapshot);
  ASSERT_TRUE(snap);
  ASSERT_TRUE(snap->snapshot().has_policy());
  EXPECT_EQ(snap->snapshot().policy().revision(), 1u);
  ASSERT_EQ(snap->snapshot().remote_workloads_size(), 1);
  const auto& w = snap->snapshot().remote_workloads(0);
  EXPECT_EQ(w.name(), "pay-1");
  EXPECT_EQ(w.host(), "host-b");
  EXPECT_EQ(w.source(), v1::Workload::SOURCE_REMOTE);
  EXPECT_EQ(w.interfaces_size(), 0);
  EXPECT_EQ(w.addresses(0), "192.0.2.21");
  // host-c's app selects nothing: it never gets host-b's workloads.
  SimAgent c(rig, "host-c");
  c.connect({workload("batch-9", "batch", "192.0.2.31")});
  snap = c.next(Kind::kSnapshot);
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->snapshot().remote_workloads_size(), 0);
  // host-b's own snapshot never holds its own workloads (nothing there selects).
}

TEST(ControllerService, WorkloadChangesReachOnlyInterestedHosts) {
  ControllerRig rig;
  push(rig, kFleetBundle);
  SimAgent a(rig, "host-a"), b(rig, "host-b"), c(rig, "host-c");
  a.connect({workload("web-1", "frontend", "192.0.2.11")});
  b.connect({});
  c.connect({workload("batch-9", "batch", "192.0.2.31")});
  for (auto* s : {&a, &b, &c})
    ASSERT_TRUE(s->next(Kind::kSnapshot));
  b.upsert(workload("pay-1", "payments", "192.0.2.21"));
  auto up = a.next([](const auto& m) { return isRemoteUpsertOf(m, "host-b", "pay-1"); });
  ASSERT_TRUE(up);
  EXPECT_EQ(up->remote_upsert().source(), v1::Workload::SOURCE_REMOTE);
  // A changed address is sent again; an identical re-report is not.
  b.upsert(workload("pay-1", "payments", "192.0.2.23"));
  up = a.next([](const auto& m) { return isRemoteUpsertOf(m, "host-b", "pay-1"); });
  ASSERT_TRUE(up);
  EXPECT_EQ(up->remote_upsert().addresses(0), "192.0.2.23");
  b.upsert(workload("pay-1", "payments", "192.0.2.23"));
  b.remove("pay-1");
  ASSERT_TRUE(a.next([](const auto& m) { return isRemoteDeleteOf(m, "host-b", "pay-1"); }));
  EXPECT_EQ(a.pending(), 0u);
  // Nothing of it ever reached host-c or host-b itself.
  EXPECT_EQ(c.pending(), 0u);
  EXPECT_EQ(b.pending(), 0u);
}

TEST(ControllerService, HostGainingAnAppReceivesWhatItNowNeeds) {
  ControllerRig rig;
  push(rig, kFleetBundle);
  SimAgent a(rig, "host-a"), b(rig, "host-b");
  b.connect({workload("pay-1", "payments", "192.0.2.21")});
  a.connect({workload("batch-1", "batch", "192.0.2.11")});
  auto snap = a.next(Kind::kSnapshot);
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->snapshot().remote_workloads_size(), 0);
  a.upsert(workload("web-1", "frontend", "192.0.2.12"));
  ASSERT_TRUE(a.next([](const auto& m) { return isRemoteUpsertOf(m, "host-b", "pay-1"); }));
  // And loses it with its last frontend workload.
  a.remove("web-1");
  ASSERT_TRUE(a.next([](const auto& m) { return isRemoteDeleteOf(m, "host-b", "pay-1"); }));
}

TEST(ControllerService, PolicyChangeSendsRevisionAndNewlySelectableWorkloads) {
  ControllerRig rig;
  push(rig, kFleetBundle);
  SimAgent a(rig, "host-a"), b(rig, "host-b");
  a.connect({workload("batch-1", "batch", "192.0.2.11")});
  b.connect({workload("pay-1", "payments", "192.0.2.21")});
  ASSERT_TRUE(a.next(Kind::kSnapshot));
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  // batch now egresses to payments-api too.
  std::string bundle = kFleetBundle;
  bundle.replace(bundle.find("metadata: {name: batch}\nspec: {}"),
                 std::string("metadata: {name: batch}\nspec: {}").size(),
                 "metadata: {name: batch}\nspec:\n  egress:\n    - to: [payments-api]");
  const auto r = push(rig, bundle);
  EXPECT_EQ(r.revision(), 2u);
  EXPECT_EQ(r.hosts_connected(), 2u);
  auto policy = a.next(Kind::kPolicy);
  ASSERT_TRUE(policy);
  EXPECT_EQ(policy->policy().revision(), 2u);
  ASSERT_TRUE(a.next([](const auto& m) { return isRemoteUpsertOf(m, "host-b", "pay-1"); }));
  // The same bundle again: no new revision, nothing sent.
  const auto again = push(rig, bundle);
  EXPECT_FALSE(again.changed());
  EXPECT_EQ(again.revision(), 2u);
  EXPECT_FALSE(a.next(Kind::kPolicy, 300ms));
}

TEST(ControllerService, InvalidPushIsRefusedWithEveryMessage) {
  ControllerRig rig;
  grpc::Status st;
  push(rig,
       "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: Bad_Name}\nspec:\n  egress:\n    - "
       "to: [nowhere]\n",
       &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("fleet.yaml:"), std::string::npos) << st.error_message();
  EXPECT_EQ(rig.core().revision(), 0u);
}

TEST(ControllerService, RolloutFinishesWhenEveryConnectedHostAcked) {
  ControllerRig rig;
  push(rig, kFleetBundle);
  SimAgent a(rig, "host-a"), b(rig, "host-b", /*autoAck=*/false), gone(rig, "host-gone");
  a.connect({});
  b.connect({});
  gone.connect({});
  ASSERT_TRUE(gone.next(Kind::kSnapshot));
  gone.hangUp();
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  // The controller notices the hang-up (its stream ends) before the push.
  for (int i = 0; i < 100 && rig.core().fleetStatus().hosts(2).connected(); ++i)
    std::this_thread::sleep_for(20ms);
  ASSERT_FALSE(rig.core().fleetStatus().hosts(2).connected());
  const auto r = push(rig, std::string(kFleetBundle) + "# v2\n");
  ASSERT_EQ(r.revision(), 2u);
  grpc::ClientContext ctx;
  v1::WatchRolloutRequest req;
  req.set_revision(2);
  req.set_timeout_seconds(10);
  auto stub = rig.stub();
  auto reader = stub->WatchRollout(&ctx, req);
  ASSERT_TRUE(b.next(Kind::kPolicy));
  b.ack(2, false, "the kernel refused");
  v1::RolloutProgress p, last;
  int messages = 0;
  while (reader->Read(&p)) {
    last = p;
    ++messages;
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(last.done());
  EXPECT_EQ(last.acked(), 1u);
  EXPECT_EQ(last.total(), 2u);
  ASSERT_EQ(last.hosts_size(), 3);
  EXPECT_EQ(last.hosts(0).host(), "host-a");
  EXPECT_EQ(last.hosts(0).state(), v1::HostRollout::STATE_APPLIED);
  EXPECT_EQ(last.hosts(1).state(), v1::HostRollout::STATE_FAILED);
  EXPECT_EQ(last.hosts(1).error(), "the kernel refused");
  EXPECT_EQ(last.hosts(2).host(), "host-gone");
  EXPECT_EQ(last.hosts(2).state(), v1::HostRollout::STATE_DISCONNECTED);
  // Fleet status says the same.
  grpc::ClientContext sctx;
  v1::FleetStatus status;
  ASSERT_TRUE(stub->GetFleetStatus(&sctx, {}, &status).ok());
  EXPECT_EQ(status.revision(), 2u);
  EXPECT_EQ(status.controller(), "test-controller");
  ASSERT_EQ(status.hosts_size(), 3);
  EXPECT_TRUE(status.hosts(0).connected());
  EXPECT_EQ(status.hosts(0).acked_revision(), 2u);
  EXPECT_EQ(status.hosts(1).last_error(), "the kernel refused");
  EXPECT_GT(status.hosts(1).lag_seconds(), 0.0);
  EXPECT_FALSE(status.hosts(2).connected());
  EXPECT_EQ(status.hosts(2).agent_version(), "sim");
}

TEST(ControllerService, RolloutTimesOutWithPendingHosts) {
  ControllerRig rig;
  push(rig, kFleetBundle);
  SimAgent silent(rig, "host-s", /*autoAck=*/false);
  silent.connect({});
  ASSERT_TRUE(silent.next(Kind::kSnapshot));
  grpc::ClientContext ctx;
  v1::WatchRolloutRequest req;
  req.set_timeout_seconds(1);
  auto reader = rig.stub()->WatchRollout(&ctx, req);
  v1::RolloutProgress p, last;
  const auto start = std::chrono::steady_clock::now();
  while (reader->Read(&p))
    last = p;
  EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
  EXPECT_TRUE(last.done());
  EXPECT_EQ(last.acked(), 0u);
  ASSERT_EQ(last.hosts_size(), 1);
  EXPECT_EQ(last.hosts(0).state(), v1::HostRollout::STATE_PENDING);
}

TEST(ControllerService, SecondStreamOfAHostReplacesTheFirst) {
  ControllerRig rig;
  push(rig, kFleetBundle);
  SimAgent first(rig, "host-a"), second(rig, "host-a"), b(rig, "host-b");
  first.connect({workload("web-1", "frontend", "192.0.2.11")});
  ASSERT_TRUE(first.next(Kind::kSnapshot));
  second.connect({workload("web-1", "frontend", "192.0.2.11")});
  ASSERT_TRUE(second.next(Kind::kSnapshot));
  auto end = first.ended();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->error_code(), grpc::StatusCode::ABORTED);
  b.connect({workload("pay-1", "payments", "192.0.2.21")});
  ASSERT_TRUE(second.next([](const auto& m) { return isRemoteUpsertOf(m, "host-b", "pay-1"); }));
}

TEST(ControllerService, HostMayReportOnlyItsOwnWorkloads) {
  ControllerRig rig;
  SimAgent a(rig, "host-a");
  auto foreign = workload("pay-1", "payments", "192.0.2.21");
  foreign.set_host("host-b");
  a.connect({foreign});
  auto end = a.ended();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // After the hello too.
  SimAgent a2(rig, "host-a");
  a2.connect({});
  ASSERT_TRUE(a2.next(Kind::kSnapshot));
  a2.upsert(foreign);
  end = a2.ended();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext ctx;
  v1::ListFleetWorkloadsRequest req;
  v1::ListWorkloadsResponse resp;
  ASSERT_TRUE(rig.stub()->ListFleetWorkloads(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.workloads_size(), 0);
}

TEST(ControllerService, AddressHeldByAnotherHostIsNotTaken) {
  ControllerRig rig;
  push(rig, kFleetBundle);
  SimAgent a(rig, "host-a"), b(rig, "host-b"), evil(rig, "host-e");
  a.connect({workload("web-1", "frontend", "192.0.2.11")});
  b.connect({workload("pay-1", "payments", "192.0.2.21")});
  ASSERT_TRUE(a.next(Kind::kSnapshot));
  ASSERT_TRUE(b.next(Kind::kSnapshot));  // host-b's hello is in
  // host-e claims payments on host-b's address: refused, a never sees it.
  evil.connect({workload("pay-x", "payments", "192.0.2.21")});
  ASSERT_TRUE(evil.next(Kind::kSnapshot));
  EXPECT_FALSE(a.next([](const auto& m) { return isRemoteUpsertOf(m, "host-e", "pay-x"); }, 300ms));
}

TEST(ControllerService, FirstMessageMustBeAHello) {
  ControllerRig rig;
  SimAgent a(rig, "host-a");
  a.connect({});
  ASSERT_TRUE(a.next(Kind::kSnapshot));
  v1::AgentMessage again;
  again.mutable_hello()->set_host("host-a");
  a.write(again);
  auto end = a.ended();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(ControllerService, ListsTheFleetsWorkloadsSortedWithHosts) {
  ControllerRig rig;
  SimAgent a(rig, "host-a"), b(rig, "host-b");
  b.connect(
      {workload("pay-2", "payments", "192.0.2.22"), workload("pay-1", "payments", "192.0.2.21")});
  a.connect({workload("web-1", "frontend", "2001:db8::11/128")});
  ASSERT_TRUE(a.next(Kind::kSnapshot));
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  grpc::ClientContext ctx;
  v1::ListFleetWorkloadsRequest req;
  v1::ListWorkloadsResponse resp;
  ASSERT_TRUE(rig.stub()->ListFleetWorkloads(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.workloads_size(), 3);
  EXPECT_EQ(resp.workloads(0).host(), "host-a");
  EXPECT_EQ(resp.workloads(0).addresses(0), "2001:db8::11");
  EXPECT_EQ(resp.workloads(1).name(), "pay-1");
  EXPECT_EQ(resp.workloads(2).name(), "pay-2");
  EXPECT_EQ(resp.workloads(2).source(), v1::Workload::SOURCE_API);
  grpc::ClientContext ctx2;
  req.set_host("host-b");
  ASSERT_TRUE(rig.stub()->ListFleetWorkloads(&ctx2, req, &resp).ok());
  EXPECT_EQ(resp.workloads_size(), 2);
}

}  // namespace
}  // namespace bulkhead::controller
