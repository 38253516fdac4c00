// api_convert.h: the core's outcomes, listings and status as the API's
// responses (and back where a record is read again).
#include "bulkhead/agent/api_convert.h"

namespace bulkhead::agent {

v1::RulesetChange toApi(const ChangeCounts& change) {
  v1::RulesetChange c;
  c.set_element_adds(change.elementAdds);
  c.set_element_removes(change.elementRemoves);
  c.set_sets_added(change.setsAdded);
  c.set_sets_deleted(change.setsDeleted);
  c.set_chains_added(change.chainsAdded);
  c.set_chains_rewritten(change.chainsRewritten);
  c.set_chains_deleted(change.chainsDeleted);
  c.set_summary(change.summary);
  return c;
}

ChangeCounts fromApi(const v1::RulesetChange& c) {
  ChangeCounts change;
  change.elementAdds = c.element_adds();
  change.elementRemoves = c.element_removes();
  change.setsAdded = c.sets_added();
  change.setsDeleted = c.sets_deleted();
  change.chainsAdded = c.chains_added();
  change.chainsRewritten = c.chains_rewritten();
  change.chainsDeleted = c.chains_deleted();
  change.summary = c.summary();
  return change;
}

v1::ApplyPolicyResponse toApi(const PushOutcome& outcome) {
  v1::ApplyPolicyResponse r;
  r.set_version(outcome.version);
  r.set_changed(outcome.changed);
  if (outcome.change) *r.mutable_change() = toApi(*outcome.change);
  for (const auto& w : outcome.warnings)
    r.add_warnings(w);
  r.set_plan(outcome.plan);
  return r;
}

v1::UpsertWorkloadResponse toUpsertResponse(const WorkloadOutcome& outcome) {
  v1::UpsertWorkloadResponse r;
  *r.mutable_change() = toApi(outcome.change);
  for (const auto& w : outcome.warnings)
    r.add_warnings(w);
  return r;
}

v1::DeleteWorkloadResponse toDeleteResponse(const WorkloadOutcome& outcome) {
  v1::DeleteWorkloadResponse r;
  *r.mutable_change() = toApi(outcome.change);
  return r;
}

v1::QuarantineResponse toApi(const QuarantineOutcome& outcome) {
  v1::QuarantineResponse r;
  *r.mutable_change() = toApi(outcome.change);
  r.set_flushed_flows(outcome.flushedFlows);
  for (const auto& w : outcome.warnings)
    r.add_warnings(w);
  return r;
}

v1::ListWorkloadsResponse toApi(const std::vector<WorkloadView>& workloads) {
  v1::ListWorkloadsResponse r;
  for (const auto& w : workloads)
    *r.add_workloads() = toApi(w);
  return r;
}

v1::QuarantineRecord toApi(const QuarantineEntry& entry) {
  v1::QuarantineRecord r;
  r.set_workload(entry.workload);
  r.set_reason(entry.reason);
  r.set_since_unix(entry.sinceUnix);
  r.set_until_unix(entry.untilUnix);
  r.set_seconds(entry.seconds);
  r.set_active(entry.active);
  return r;
}

QuarantineEntry fromApi(const v1::QuarantineRecord& r) {
  return {r.workload(), r.reason(), r.since_unix(), r.until_unix(), r.seconds(), r.active()};
}

v1::ListQuarantinesResponse toApi(const std::vector<QuarantineEntry>& entries) {
  v1::ListQuarantinesResponse r;
  for (const auto& e : entries)
    *r.add_quarantines() = toApi(e);
  return r;
}

v1::Latency toApi(const LatencySummary& latency) {
  v1::Latency l;
  l.set_count(latency.count);
  l.set_p50_ms(latency.p50Ms);
  l.set_p99_ms(latency.p99Ms);
  l.set_max_ms(latency.maxMs);
  return l;
}

v1::FlowCounters toApi(const FlowFeedCounts& counts) {
  v1::FlowCounters c;
  c.set_seen(counts.seen);
  c.set_exported(counts.exported);
  c.set_suppressed(counts.suppressed);
  for (const auto& [cause, n] : counts.suppressedByCause)
    (*c.mutable_suppressed_by_cause())[cause] = n;
  return c;
}

FlowFeedCounts fromApi(const v1::FlowCounters& c) {
  FlowFeedCounts counts;
  counts.seen = c.seen();
  counts.exported = c.exported();
  counts.suppressed = c.suppressed();
  for (const auto& [cause, n] : c.suppressed_by_cause())
    counts.suppressedByCause[cause] = n;
  return counts;
}

namespace {

void putCounts(const AgentStatusView& v, v1::AgentStatus& s) {
  s.set_apps(v.apps);
  s.set_services(v.services);
  s.set_global_policies(v.globalPolicies);
  s.set_workloads(v.workloads);
  s.set_set_elements(v.setElements);
  s.set_chains(v.chains);
  s.set_remote_workloads(v.remoteWorkloads);
  s.set_staged_interfaces(v.stagedInterfaces);
  s.set_drift_repairs(v.driftRepairs);
  s.set_pushes(v.pushes);
  s.set_workload_changes(v.workloadChanges);
  s.set_promotions(v.promotions);
}

}  // namespace

v1::AgentStatus toApi(const AgentStatusView& v) {
  v1::AgentStatus s;
  s.set_version(v.version);
  s.set_table(v.table);
  s.set_host(v.host);
  putCounts(v, s);
  s.set_applied_revision(v.appliedRevision);
  s.set_last_error(v.lastError);
  s.set_last_error_time(v.lastErrorTime);
  s.set_last_applied_time(v.lastAppliedTime);
  s.set_last_drift_check(v.lastDriftCheck);
  s.set_last_drift_check_time(v.lastDriftCheckTime);
  *s.mutable_apply_latency() = toApi(v.applyLatency);
  *s.mutable_workload_latency() = toApi(v.workloadLatency);
  *s.mutable_promotion_latency() = toApi(v.promotionLatency);
  *s.mutable_flows() = toApi(v.flows);
  if (v.controller) {
    auto& c = *s.mutable_controller();
    c.set_connected(v.controller->connected);
    c.set_url(v.controller->controller);
    c.set_last_error(v.controller->lastError);
    c.set_sessions(v.controller->sessions);
  }
  return s;
}

}  // namespace bulkhead::agent
