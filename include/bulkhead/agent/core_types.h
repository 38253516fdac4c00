// What the agent core takes and answers, as plain values: a policy push and
// its outcome, a workload registration, the workloads and quarantines as
// listed, the status. The wire forms (proto/bulkhead/v1) are made from these
// and back in one place, api_convert.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/compiler/diff.h"
#include "bulkhead/policy/loader.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::agent {

// Who put a workload on this agent.
enum class WorkloadSource : uint8_t {
  kApi,      // registered through the API (and the default)
  kBundle,   // a Workload document of the policy bundle
  kCni,      // registered by the bulkhead-cni plugin
  kLibvirt,  // registered by the bulkhead-libvirt-hook
  kRemote,   // another host's, from the controller
};

// A policy push: the bundle's files (names and contents), the version to
// record (empty: the content hash), and whether only to plan it.
struct PolicyPush {
  std::vector<policy::SourceFile> files;
  std::string version;
  bool dryRun = false;
};

// What a change did to the ruleset, counted.
struct ChangeCounts {
  uint64_t elementAdds = 0, elementRemoves = 0;
  uint32_t setsAdded = 0, setsDeleted = 0;
  uint32_t chainsAdded = 0, chainsRewritten = 0, chainsDeleted = 0;
  std::string summary;  // one line for people

  static ChangeCounts of(const compiler::RulesetDiff& diff);
  bool operator==(const ChangeCounts&) const = default;
};

struct PushOutcome {
  std::string version;                 // in force (or that would be, for a dry run)
  bool changed = false;                // false: that bundle was in force already
  std::optional<ChangeCounts> change;  // none: unchanged (not a dry run)
  std::vector<std::string> warnings;   // "file:line:column: message"
  std::string plan;                    // a dry run: the ruleset as nft text
};

// A local registration: the workload, who registered it (kApi, kCni or
// kLibvirt) and, optionally, the owner that alone may delete it.
struct WorkloadRegistration {
  policy::Workload workload;
  WorkloadSource source = WorkloadSource::kApi;
  std::string owner;
};

// An upsert's or a delete's outcome.
struct WorkloadOutcome {
  ChangeCounts change;
  std::vector<std::string> warnings;
};

// A workload as listed: with its source, owner and host (remote only).
struct WorkloadView {
  policy::Workload workload;
  WorkloadSource source = WorkloadSource::kApi;
  std::string owner;
  std::string host;
};

struct QuarantineOutcome {
  ChangeCounts change;
  uint64_t flushedFlows = 0;  // conntrack entries deleted
  std::vector<std::string> warnings;
};

// A quarantine in force (or, inactive, kept for the doubling).
struct QuarantineEntry {
  std::string workload;
  std::string reason;  // "manual", "auto/scan/hosts", ...
  int64_t sinceUnix = 0;
  int64_t untilUnix = 0;  // 0: until released
  uint32_t seconds = 0;   // length of an automatic quarantine
  bool active = true;
  bool operator==(const QuarantineEntry&) const = default;
};

struct LatencySummary {
  uint64_t count = 0;
  double p50Ms = 0, p99Ms = 0, maxMs = 0;
  bool operator==(const LatencySummary&) const = default;
};

// The flow feed's counters as status shows them.
struct FlowFeedCounts {
  uint64_t seen = 0, exported = 0, suppressed = 0;
  std::map<std::string, uint64_t> suppressedByCause;
  bool operator==(const FlowFeedCounts&) const = default;
};

// The agent's link to --controller (ControllerLink) as status shows it.
struct ControllerLinkStatus {
  bool connected = false;  // a stream is up and its snapshot applied
  std::string controller;  // the one connected, else the last one tried
  std::string lastError;   // why the last stream or dial ended; "" when none
  uint64_t sessions = 0;   // streams established since start
  bool operator==(const ControllerLinkStatus&) const = default;
};

// The agent's status: what is in force, counters, latencies, last errors.
struct AgentStatusView {
  std::string version, table, host;
  uint32_t apps = 0, services = 0, globalPolicies = 0, workloads = 0, chains = 0;
  uint32_t remoteWorkloads = 0, stagedInterfaces = 0;
  uint64_t setElements = 0, appliedRevision = 0;
  uint64_t pushes = 0, workloadChanges = 0, promotions = 0, driftRepairs = 0;
  std::string lastError, lastErrorTime, lastAppliedTime;  // times RFC 3339, UTC
  std::string lastDriftCheck, lastDriftCheckTime;
  LatencySummary applyLatency, workloadLatency, promotionLatency;
  FlowFeedCounts flows;
  std::optional<ControllerLinkStatus> controller;  // none without --controller
  bool operator==(const AgentStatusView&) const = default;
};

}  // namespace bulkhead::agent
