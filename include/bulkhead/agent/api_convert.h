// The agent core's one boundary with the wire types of proto/bulkhead/v1:
// API messages and state records to and from the policy model and the
// compiler's values. The core speaks these functions, not the fields.
#pragma once

#include <set>
#include <string>
#include <vector>

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
// The source recorded for an upsert: UNSPECIFIED is API.
v1::Workload::Source recordedSource(const v1::Workload& w);
// A recorded source as the fleet link reports it, and back (CNI and
// libvirt as such, anything else API).
LocalSource localSource(v1::Workload::Source source);
v1::Workload::Source toApi(LocalSource source);
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
// Bytes of names and contents: what the bundle limit counts.
size_t bundleBytes(const PolicyFiles& files);

// --- changes -------------------------------------------------------------------
v1::RulesetChange toApi(const compiler::RulesetDiff& diff);

// --- state records (state.proto) ------------------------------------------------
v1::StateJournalEntry upsertRecord(v1::Workload w);
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
v1::AgentState snapshotRecord(const std::string& version, const PolicyFiles& files,
                              std::vector<v1::Workload> workloads,
                              const std::set<std::string>& quarantined, const QuarantineBook& book,
                              const SnapshotExtras& extras = {});

}  // namespace bulkhead::agent
