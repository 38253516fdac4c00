// api_convert: the core's own types (core_types.h) to and from the wire's.
// Requests and records round-trip; responses and status are checked field
// by field, each field set to a value no other field holds, so a swapped or
// forgotten field shows.
#include <gtest/gtest.h>

#include <google/protobuf/util/message_differencer.h>

#include "bulkhead/agent/api_convert.h"

namespace bulkhead::agent {
namespace {

using google::protobuf::util::MessageDifferencer;

ChangeCounts counts() {
  ChangeCounts c;
  c.elementAdds = 101;
  c.elementRemoves = 102;
  c.setsAdded = 103;
  c.setsDeleted = 104;
  c.chainsAdded = 105;
  c.chainsRewritten = 106;
  c.chainsDeleted = 107;
  c.summary = "+101 -102 elements";
  return c;
}

void expectCounts(const v1::RulesetChange& c) {
  EXPECT_EQ(c.element_adds(), 101u);
  EXPECT_EQ(c.element_removes(), 102u);
  EXPECT_EQ(c.sets_added(), 103u);
  EXPECT_EQ(c.sets_deleted(), 104u);
  EXPECT_EQ(c.chains_added(), 105u);
  EXPECT_EQ(c.chains_rewritten(), 106u);
  EXPECT_EQ(c.chains_deleted(), 107u);
  EXPECT_EQ(c.summary(), "+101 -102 elements");
}

policy::Workload workload() {
  policy::Workload w;
  w.name = "web-1";
  w.app = "web";
  w.interfaces = {"veth1", "veth2"};
  w.addresses = {*policy::IpAddr::parse("192.0.2.10"), *policy::IpAddr::parse("2001:db8::10")};
  w.labels = {{"tier", "front"}, {"zone", "a"}};
  return w;
}

TEST(ApiConvertCoreTest, PolicyPushRoundTrips) {
  PolicyPush push{{{"a.yaml", "kind: App\n"}, {"b/c.yaml", ""}}, "v7", true};
  const v1::ApplyPolicyRequest request = toApi(push);
  ASSERT_EQ(request.files_size(), 2);
  EXPECT_EQ(request.files(0).name(), "a.yaml");
  EXPECT_EQ(request.files(0).content(), "kind: App\n");
  EXPECT_EQ(request.files(1).name(), "b/c.yaml");
  EXPECT_EQ(request.version(), "v7");
  EXPECT_TRUE(request.dry_run());
  const PolicyPush back = fromApi(request);
  ASSERT_EQ(back.files.size(), 2u);
  EXPECT_EQ(back.files[0].name, "a.yaml");
  EXPECT_EQ(back.files[0].content, "kind: App\n");
  EXPECT_EQ(back.files[1].name, "b/c.yaml");
  EXPECT_EQ(back.version, "v7");
  EXPECT_TRUE(back.dryRun);
  // Nothing is refused on the way in: the core checks a push itself.
  v1::ApplyPolicyRequest unnamed;
  unnamed.add_files()->set_content("x");
  EXPECT_EQ(fromApi(unnamed).files.size(), 1u);
}

TEST(ApiConvertCoreTest, ChangeCountsRoundTripFieldByField) {
  const v1::RulesetChange c = toApi(counts());
  expectCounts(c);
  EXPECT_EQ(fromApi(c), counts());
}

TEST(ApiConvertCoreTest, ChangeCountsOfADiff) {
  compiler::RulesetDiff diff;
  diff.elements.push_back({});
  diff.elements.back().add.resize(3);
  diff.elements.back().remove.resize(2);
  diff.addSets.push_back({});
  diff.addSets.back().elements.resize(4);
  diff.deleteSets.resize(1);
  diff.addChains.resize(2);
  diff.replaceChains.resize(3);
  diff.deleteChains.resize(4);
  const ChangeCounts c = ChangeCounts::of(diff);
  EXPECT_EQ(c.elementAdds, 7u);  // 3 into existing sets, 4 with a new set
  EXPECT_EQ(c.elementRemoves, 2u);
  EXPECT_EQ(c.setsAdded, 1u);
  EXPECT_EQ(c.setsDeleted, 1u);
  EXPECT_EQ(c.chainsAdded, 2u);
  EXPECT_EQ(c.chainsRewritten, 3u);
  EXPECT_EQ(c.chainsDeleted, 4u);
  EXPECT_EQ(c.summary, diff.summary());
}

TEST(ApiConvertCoreTest, PushOutcomeFieldByField) {
  PushOutcome o{"v9", true, counts(), {"a.yaml:1:1: w1", "a.yaml:2:1: w2"}, "table inet x {}"};
  const v1::ApplyPolicyResponse r = toApi(o);
  EXPECT_EQ(r.version(), "v9");
  EXPECT_TRUE(r.changed());
  ASSERT_TRUE(r.has_change());
  expectCounts(r.change());
  ASSERT_EQ(r.warnings_size(), 2);
  EXPECT_EQ(r.warnings(0), "a.yaml:1:1: w1");
  EXPECT_EQ(r.warnings(1), "a.yaml:2:1: w2");
  EXPECT_EQ(r.plan(), "table inet x {}");
  // Unchanged: no change record at all, as on the wire before.
  const v1::ApplyPolicyResponse same = toApi(PushOutcome{"v9", false, std::nullopt, {}, ""});
  EXPECT_FALSE(same.changed());
  EXPECT_FALSE(same.has_change());
}

TEST(ApiConvertCoreTest, WorkloadAndQuarantineOutcomesFieldByField) {
  const WorkloadOutcome w{counts(), {"no App document"}};
  const v1::UpsertWorkloadResponse up = toUpsertResponse(w);
  ASSERT_TRUE(up.has_change());
  expectCounts(up.change());
  ASSERT_EQ(up.warnings_size(), 1);
  EXPECT_EQ(up.warnings(0), "no App document");
  const v1::DeleteWorkloadResponse del = toDeleteResponse(w);
  ASSERT_TRUE(del.has_change());
  expectCounts(del.change());

  const v1::QuarantineResponse q = toApi(QuarantineOutcome{counts(), 42, {"not cut"}});
  ASSERT_TRUE(q.has_change());
  expectCounts(q.change());
  EXPECT_EQ(q.flushed_flows(), 42u);
  ASSERT_EQ(q.warnings_size(), 1);
  EXPECT_EQ(q.warnings(0), "not cut");
}

TEST(ApiConvertCoreTest, WorkloadSourcesRoundTrip) {
  for (auto s : {WorkloadSource::kApi, WorkloadSource::kBundle, WorkloadSource::kCni,
                 WorkloadSource::kLibvirt, WorkloadSource::kRemote})
    EXPECT_EQ(fromApi(toApi(s)), s);
  EXPECT_EQ(toApi(WorkloadSource::kBundle), v1::Workload::SOURCE_BUNDLE);
  EXPECT_EQ(toApi(WorkloadSource::kRemote), v1::Workload::SOURCE_REMOTE);
  EXPECT_EQ(fromApi(v1::Workload::SOURCE_UNSPECIFIED), WorkloadSource::kApi);
}

TEST(ApiConvertCoreTest, WorkloadViewRoundTripsFieldByField) {
  const WorkloadView view{workload(), WorkloadSource::kCni, "cni:abc", ""};
  const v1::Workload w = toApi(view);
  EXPECT_EQ(w.name(), "web-1");
  EXPECT_EQ(w.app(), "web");
  ASSERT_EQ(w.interfaces_size(), 2);
  EXPECT_EQ(w.interfaces(1), "veth2");
  ASSERT_EQ(w.addresses_size(), 2);
  EXPECT_EQ(w.addresses(0), "192.0.2.10");
  EXPECT_EQ(w.addresses(1), "2001:db8::10");
  EXPECT_EQ(w.labels().at("tier"), "front");
  EXPECT_EQ(w.source(), v1::Workload::SOURCE_CNI);
  EXPECT_EQ(w.owner(), "cni:abc");
  EXPECT_TRUE(w.host().empty());
  auto back = viewFromApi(w);
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_EQ(back->workload.name, view.workload.name);
  EXPECT_EQ(back->workload.interfaces, view.workload.interfaces);
  EXPECT_EQ(back->workload.addresses, view.workload.addresses);
  EXPECT_EQ(back->workload.labels, view.workload.labels);
  EXPECT_EQ(back->source, WorkloadSource::kCni);
  EXPECT_EQ(back->owner, "cni:abc");

  const v1::Workload remote = toApi(WorkloadView{workload(), WorkloadSource::kRemote, "", "h2"});
  EXPECT_EQ(remote.host(), "h2");
  EXPECT_EQ(remote.source(), v1::Workload::SOURCE_REMOTE);
  // A list keeps the order it is given.
  const auto list = toApi(std::vector<WorkloadView>{view, {workload(), {}, "", "h1"}});
  ASSERT_EQ(list.workloads_size(), 2);
  EXPECT_EQ(list.workloads(1).host(), "h1");
}

TEST(ApiConvertCoreTest, RegistrationChecksTheOrigin) {
  v1::Workload w = toApi(WorkloadView{workload(), WorkloadSource::kLibvirt, "vm-1", ""});
  auto r = registrationFromApi(w);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->source, WorkloadSource::kLibvirt);
  EXPECT_EQ(r->owner, "vm-1");
  EXPECT_EQ(r->workload.name, "web-1");
  w.set_source(v1::Workload::SOURCE_BUNDLE);
  EXPECT_EQ(registrationFromApi(w).error().code, ErrorCode::kInvalidInput);
  w.set_source(v1::Workload::SOURCE_API);
  w.set_owner("two words");
  EXPECT_EQ(registrationFromApi(w).error().code, ErrorCode::kInvalidInput);
  w.set_owner("");
  w.set_addresses(0, "192.0.2.0/24");  // not a host address
  EXPECT_EQ(registrationFromApi(w).error().code, ErrorCode::kInvalidInput);
}

TEST(ApiConvertCoreTest, QuarantineEntriesRoundTrip) {
  const QuarantineEntry e{"web-1", "auto/scan/hosts", 1700000000, 1700000600, 600, true};
  const v1::QuarantineRecord r = toApi(e);
  EXPECT_EQ(r.workload(), "web-1");
  EXPECT_EQ(r.reason(), "auto/scan/hosts");
  EXPECT_EQ(r.since_unix(), 1700000000);
  EXPECT_EQ(r.until_unix(), 1700000600);
  EXPECT_EQ(r.seconds(), 600u);
  EXPECT_TRUE(r.active());
  EXPECT_EQ(fromApi(r), e);
  const QuarantineEntry inactive{"db-1", "manual", 5, 0, 0, false};
  EXPECT_EQ(fromApi(toApi(inactive)), inactive);
  const auto list = toApi(std::vector<QuarantineEntry>{e, inactive});
  ASSERT_EQ(list.quarantines_size(), 2);
  EXPECT_EQ(list.quarantines(1).workload(), "db-1");
}

TEST(ApiConvertCoreTest, FlowCountsRoundTrip) {
  FlowFeedCounts c{11, 12, 13, {{"rate", 7}, {"dup", 6}}};
  const v1::FlowCounters w = toApi(c);
  EXPECT_EQ(w.seen(), 11u);
  EXPECT_EQ(w.exported(), 12u);
  EXPECT_EQ(w.suppressed(), 13u);
  EXPECT_EQ(w.suppressed_by_cause().at("rate"), 7u);
  EXPECT_EQ(w.suppressed_by_cause().at("dup"), 6u);
  EXPECT_EQ(fromApi(w), c);
}

AgentStatusView fullStatus() {
  AgentStatusView s;
  s.version = "v1";
  s.table = "bulkhead";
  s.host = "host-a";
  s.apps = 1;
  s.services = 2;
  s.globalPolicies = 3;
  s.workloads = 4;
  s.chains = 5;
  s.remoteWorkloads = 6;
  s.stagedInterfaces = 7;
  s.setElements = 8;
  s.appliedRevision = 9;
  s.pushes = 10;
  s.workloadChanges = 11;
  s.promotions = 12;
  s.driftRepairs = 13;
  s.lastError = "err";
  s.lastErrorTime = "2026-01-01T00:00:01Z";
  s.lastAppliedTime = "2026-01-01T00:00:02Z";
  s.lastDriftCheck = "periodic check: in sync";
  s.lastDriftCheckTime = "2026-01-01T00:00:03Z";
  s.applyLatency = {14, 1.5, 2.5, 3.5};
  s.workloadLatency = {15, 4.5, 5.5, 6.5};
  s.promotionLatency = {16, 7.5, 8.5, 9.5};
  s.flows = {17, 18, 19, {{"rate", 20}}};
  return s;
}

void expectLatency(const v1::Latency& l, uint64_t count, double p50, double p99, double max) {
  EXPECT_EQ(l.count(), count);
  EXPECT_EQ(l.p50_ms(), p50);
  EXPECT_EQ(l.p99_ms(), p99);
  EXPECT_EQ(l.max_ms(), max);
}

TEST(ApiConvertCoreTest, StatusFieldByField) {
  const v1::AgentStatus s = toApi(fullStatus());
  EXPECT_EQ(s.version(), "v1");
  EXPECT_EQ(s.table(), "bulkhead");
  EXPECT_EQ(s.host(), "host-a");
  EXPECT_EQ(s.apps(), 1u);
  EXPECT_EQ(s.services(), 2u);
  EXPECT_EQ(s.global_policies(), 3u);
  EXPECT_EQ(s.workloads(), 4u);
  EXPECT_EQ(s.chains(), 5u);
  EXPECT_EQ(s.remote_workloads(), 6u);
  EXPECT_EQ(s.staged_interfaces(), 7u);
  EXPECT_EQ(s.set_elements(), 8u);
  EXPECT_EQ(s.applied_revision(), 9u);
  EXPECT_EQ(s.pushes(), 10u);
  EXPECT_EQ(s.workload_changes(), 11u);
  EXPECT_EQ(s.promotions(), 12u);
  EXPECT_EQ(s.drift_repairs(), 13u);
  EXPECT_EQ(s.last_error(), "err");
  EXPECT_EQ(s.last_error_time(), "2026-01-01T00:00:01Z");
  EXPECT_EQ(s.last_applied_time(), "2026-01-01T00:00:02Z");
  EXPECT_EQ(s.last_drift_check(), "periodic check: in sync");
  EXPECT_EQ(s.last_drift_check_time(), "2026-01-01T00:00:03Z");
  expectLatency(s.apply_latency(), 14, 1.5, 2.5, 3.5);
  expectLatency(s.workload_latency(), 15, 4.5, 5.5, 6.5);
  expectLatency(s.promotion_latency(), 16, 7.5, 8.5, 9.5);
  EXPECT_EQ(s.flows().seen(), 17u);
  EXPECT_EQ(s.flows().exported(), 18u);
  EXPECT_EQ(s.flows().suppressed(), 19u);
  EXPECT_EQ(s.flows().suppressed_by_cause().at("rate"), 20u);
}

TEST(ApiConvertCoreTest, EmptyStatusStillCarriesItsSubmessages) {
  // GetStatus always answered with the latencies and the flow counters
  // present (zero when nothing happened); the wire stays the same.
  const v1::AgentStatus s = toApi(AgentStatusView{});
  EXPECT_TRUE(s.has_apply_latency());
  EXPECT_TRUE(s.has_workload_latency());
  EXPECT_TRUE(s.has_promotion_latency());
  EXPECT_TRUE(s.has_flows());
  v1::AgentStatus expected;
  expected.mutable_apply_latency();
  expected.mutable_workload_latency();
  expected.mutable_promotion_latency();
  expected.mutable_flows();
  EXPECT_TRUE(MessageDifferencer::Equals(s, expected));
}

}  // namespace
}  // namespace bulkhead::agent
