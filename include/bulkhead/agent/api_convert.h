// The agent's one boundary with the wire types of proto/bulkhead/v1: API
// messages and state records to and from the core's values (core_types.h),
// the policy model and the compiler's values. The core speaks its own types;
// its callers (the gRPC service through core_api.h, the controller link, the
// runtime) and the state records convert here, not field by field elsewhere.
// Workloads, files and records: this file; responses, quarantines and status:
// api_convert_responses.cpp.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "bulkhead/agent/core_types.h"
#include "bulkhead/agent/fleet.h"
#include "bulkhead/agent/quarantine_book.h"
#include "bulkhead/common/result.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/policy/loader.h"
#include "bulkhead/policy/model.h"
#include "bulkhead/v1/agent.pb.h"
#include "bulkhead/v1/state.pb.h"

namespace bulkhead::agent {

using PolicyFiles = google::protobuf::RepeatedPtrField<v1::PolicyFile>;

// --- workloads ---------------------------------------------------------------
// An API workload as the policy model's (addresses parsed, a /32 or /128
// taken as its address, validated); kInvalidInput names the field.
Result<policy::Workload> fromApi(const v1::Workload& w);
v1::Workload toApi(const policy::Workload& w, v1::Workload::Source source);
// The origin an upsert asks for: kInvalidInput for BUNDLE, an unknown source
// or an owner that is not printable ASCII of at most 256 bytes.
Status checkOrigin(const v1::Workload& w);
// A recorded source as the fleet link reports it, and back (CNI and
// libvirt as such, anything else API).
LocalSource localSource(v1::Workload::Source source);
v1::Workload::Source toApi(LocalSource source);
// Who registered a workload, and back (UNSPECIFIED is API).
v1::Workload::Source toApi(WorkloadSource source);
WorkloadSource fromApi(v1::Workload::Source source);
// An upsert as the core takes it: fromApi, then checkOrigin.
Result<WorkloadRegistration> registrationFromApi(const v1::Workload& w);
// A listed (or saved) workload: source, owner and host set.
v1::Workload toApi(const WorkloadView& w);
// A saved workload (validated as fromApi; source and owner as recorded).
Result<WorkloadView> viewFromApi(const v1::Workload& w);
// Another host's workload as a controller sends it (host set, no
// interfaces; source and quarantine ignored); kInvalidInput names the field.
Result<RemoteWorkload> remoteFromApi(const v1::Workload& w);
// Source REMOTE, host set.
v1::Workload toApi(const RemoteWorkload& w);
// A host name as hosts are named in a fleet: 1-253 bytes of letters,
// digits and `-._`.
Status checkHostName(const std::string& host);

// --- policy files --------------------------------------------------------------
// A push's files as the loader's; kInvalidInput for a file without a name
// (or one over 4096 bytes).
Result<std::vector<policy::SourceFile>> fromApi(const PolicyFiles& files);
v1::PolicyFile toApi(policy::SourceFile file);
PolicyFiles toApi(const std::vector<policy::SourceFile>& files);
// A push as the core takes it (nothing checked yet: the core checks it).
PolicyPush fromApi(const v1::ApplyPolicyRequest& request);
v1::ApplyPolicyRequest toApi(const PolicyPush& push);

// --- outcomes, quarantines, status (api_convert_responses.cpp) -----------------
v1::RulesetChange toApi(const ChangeCounts& change);
ChangeCounts fromApi(const v1::RulesetChange& change);
v1::ApplyPolicyResponse toApi(const PushOutcome& outcome);
v1::UpsertWorkloadResponse toUpsertResponse(const WorkloadOutcome& outcome);
v1::DeleteWorkloadResponse toDeleteResponse(const WorkloadOutcome& outcome);
v1::QuarantineResponse toApi(const QuarantineOutcome& outcome);
v1::ListWorkloadsResponse toApi(const std::vector<WorkloadView>& workloads);
v1::QuarantineRecord toApi(const QuarantineEntry& entry);
QuarantineEntry fromApi(const v1::QuarantineRecord& record);
v1::ListQuarantinesResponse toApi(const std::vector<QuarantineEntry>& entries);
v1::Latency toApi(const LatencySummary& latency);
v1::FlowCounters toApi(const FlowFeedCounts& counts);
FlowFeedCounts fromApi(const v1::FlowCounters& counters);
v1::AgentStatus toApi(const AgentStatusView& status);

// --- state records (state.proto) ------------------------------------------------
v1::StateJournalEntry upsertRecord(const WorkloadView& w);
v1::StateJournalEntry deleteRecord(const std::string& name);
// The whole quarantined set and the book: each record sets absolute values.
v1::StateJournalEntry quarantineRecord(const std::set<std::string>& quarantined,
                                       const QuarantineBook& book);

v1::StateJournalEntry remoteUpsertRecord(const RemoteWorkload& w);
v1::StateJournalEntry remoteDeleteRecord(const std::string& host, const std::string& name);

// What a snapshot holds besides the API's workloads.
struct SnapshotExtras {
  std::vector<RemoteWorkload> remotes;
  uint64_t appliedRevision = 0;
};

// A snapshot: the bundle in force, the API's workloads, the quarantines,
// the remote workloads and the controller's revision.
v1::AgentState snapshotRecord(const std::string& version,
                              const std::vector<policy::SourceFile>& files,
                              const std::vector<WorkloadView>& workloads,
                              const std::set<std::string>& quarantined, const QuarantineBook& book,
                              const SnapshotExtras& extras = {});

}  // namespace bulkhead::agent
