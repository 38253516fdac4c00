// The agent's state machine behind the gRPC API: policy pushes, workload
// registrations and quarantines, each serialized and committed as one
// kernel transaction, then saved to the state directory; status and
// latencies; drift repair. As a fleet member (fleet.h): the controller's
// revisions and the other hosts' workloads, through the same path.
// Transport-free and in its own types (core_types.h), so tests drive it
// directly; the wire's messages are made from those in api_convert.h, and
// core_api.h is the core as the gRPC service (service.h) calls it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "bulkhead/agent/conntrack.h"
#include "bulkhead/agent/core_types.h"
#include "bulkhead/agent/enforcer.h"
#include "bulkhead/agent/fleet.h"
#include "bulkhead/agent/flow_feed.h"
#include "bulkhead/agent/flow_hub.h"
#include "bulkhead/agent/quarantine_book.h"
#include "bulkhead/agent/state_store.h"
#include "bulkhead/common/result.h"
#include "bulkhead/common/time_format.h"

namespace bulkhead::agent {

struct CoreOptions {
  std::string stateDir;               // "": nothing is saved (tests)
  size_t maxBundleBytes = 64u << 20;  // names + contents of one push
  std::string host;                   // reported in status and flow events
  // Staged interfaces (enforced at once) move into the dispatch map once no
  // workload has changed for promoteIdle, or the oldest waited promoteMaxAge.
  std::chrono::milliseconds promoteIdle{100};
  std::chrono::milliseconds promoteMaxAge{1000};
  // At most this many per transaction: a request that arrives meanwhile
  // waits for one batch (~15 ms at 10,000 workloads), not for a whole burst.
  size_t promoteBatch = Enforcer::kPromoteBatch;
  // The controller this agent follows (--controller, as given); non-empty:
  // policy comes from there only and a local push is refused
  // (kFailedPrecondition; a dry run is still answered).
  std::string controller;
};

// Rolling latency figures over the last samples.
class LatencyWindow {
 public:
  void add(double ms);
  LatencySummary summary() const;

 private:
  static constexpr size_t kSamples = 1024;
  std::deque<double> samples_;
  uint64_t count_ = 0;
};

class AgentCore : public FleetMember {
 public:
  AgentCore(nft::NftKernel& kernel, compiler::CompileOptions compile, CoreOptions options);

  // Loads the saved state and puts its ruleset in the kernel (one
  // transaction). No state yet: nothing happens. A state file that cannot
  // be read or parsed is an error and the kernel is not touched.
  Status restore();

  // Errors: kInvalidInput (every "file:line:column: message", one a line),
  // kTooLarge, kKernel / kUnavailable (nothing applied), kIo (applied, not
  // saved), kFailedPrecondition (the agent follows a controller).
  Result<PushOutcome> applyPolicy(const PolicyPush& push);
  // kInvalidInput: the workload does not validate, or the source is not
  // kApi, kCni or kLibvirt, or the owner is not printable ASCII (<= 256).
  Result<WorkloadOutcome> upsertWorkload(const WorkloadRegistration& registration);
  // `owner` non-empty: only when the registration's owner is that (else
  // kNotFound).
  Result<WorkloadOutcome> deleteWorkload(const std::string& name, const std::string& owner = "");
  // `name` non-empty: that workload only (none when absent). Bundle, local
  // and remote workloads, by name then host.
  std::vector<WorkloadView> listWorkloads(const std::string& name = "") const;
  // `why`: recorded with it (reason, expiry), listed by listQuarantines().
  Result<QuarantineOutcome> quarantine(const std::string& name, bool release,
                                       const QuarantineWhy& why = {});
  // In force, sorted by workload.
  std::vector<QuarantineEntry> listQuarantines() const;
  // Quarantines whose expiry has passed (the caller releases them).
  std::vector<std::string> dueQuarantines() const;
  AgentStatusView status() const;

  // Moves staged interfaces into the dispatch map when due (see CoreOptions)
  // or `force`d, one batch; returns how many moved (0: none staged, or not
  // due yet). What is left of a burst stays due.
  // Called from the agent's housekeeping loop, off the request path.
  Result<size_t> promoteStaged(bool force = false);

  // Time since the last policy or workload change.
  common::SteadyClock::duration quietFor() const;

  // Drift: the kernel's table differs from what was applied (compared by
  // content: see checkDrift), or `force` (someone changed it): put the whole
  // ruleset back. True when it did. Counted in status.
  Result<bool> repair(bool force, const std::string& why);
  // The periodic check: compares the kernel's table with what was applied
  // (chains, rules, sets, elements) and puts the whole ruleset back when
  // they differ. Returns what differed (nullopt: nothing). The outcome is
  // in status (last_drift_check, last_drift_check_time).
  Result<std::optional<std::string>> checkDrift(const std::string& why);
  // Notifications were lost: nothing to do when no one else has committed
  // anything in the namespace since the table was last known to hold ours
  // (Enforcer::untouchedSinceLastCommit);
  // else compared by content as checkDrift (on a kernel that cannot read a
  // table back: repaired as `force`).
  Result<bool> repairAfterLostEvents(const std::string& why);

  FlowHub& flows() { return flows_; }
  const InterfaceDirectory& interfaces() const { return interfaces_; }
  // The flow feed, once started: sampled before changes that reset the
  // kernel's counters, and asked for its counters in status().
  void setFlowFeed(FlowFeed* feed);
  // The connection tracking table that quarantine flushes the workload's
  // entries from (nullptr: none; quarantine then only changes the table).
  void setConntrack(ConntrackTable* conntrack);
  // The table monitor, paused around large transactions (see
  // nft::NotificationGate); nullptr: none. Outlives its use here.
  void setNotificationGate(nft::NotificationGate* gate);
  // A kernel connection of its own (its own netlink socket) for the drift
  // checks' read-back, which then runs piece by piece without the core's
  // lock (PiecewiseCheck): requests wait for one piece's read at most, not
  // for the table's (~0.5 s at 131,000 elements in 3,000 sets). Without
  // one the read-back goes through the writer's connection, under the
  // lock.
  // Outlives its use here; set before the housekeeping thread starts.
  void setTableReader(nft::NftKernel* reader);
  // Where status() reads the link to --controller from (empty: no link).
  // Called without the core's lock held, under a lock of its own: the
  // link's threads call into the core while holding theirs.
  void setControllerStatus(std::function<ControllerLinkStatus()> status);
  // FleetMember (fleet.h). Remote workloads and the revision are saved
  // with the rest of the state and restored with it.
  std::vector<LocalWorkload> localWorkloads() const override;
  uint64_t appliedRevision() const override;
  Status applySnapshot(const std::optional<PolicyRevision>& policy,
                       std::vector<RemoteWorkload> remotes) override;
  Status applyRevision(const PolicyRevision& policy) override;
  Status upsertRemoteWorkload(const RemoteWorkload& workload) override;
  Status deleteRemoteWorkload(const std::string& host, const std::string& name) override;
  Status applyRemoteChanges(const std::vector<RemoteWorkload>& upserts,
                            const std::vector<RemoteWorkloadKey>& deletes) override;
  void setLocalChangeListener(std::function<void(const LocalWorkloadChange&)> listener) override;

  // Reads a directory of policy files as a push would send them.
  static Result<std::vector<policy::SourceFile>> readPolicyFiles(const std::string& path,
                                                                 size_t maxBytes);

 private:
  Status save();
  // applyPolicy without the controller check; `revision`: the controller's.
  Result<PushOutcome> pushPolicy(const PolicyPush& push, std::optional<uint64_t> revision);
  // A push's bundle, parsed, within the size limit; its warnings into `outcome`.
  Result<policy::Bundle> readBundle(const PolicyPush& push, PushOutcome& outcome) const;
  // A push's size against the limit (kTooLarge).
  Status checkBundleSize(const PolicyPush& push) const;
  // The bundle in force pushed again: records its new version (and the
  // controller's revision), if any.
  Status renamePolicy(const std::string& version, std::optional<uint64_t> revision);
  // Applies a snapshot's bundle (parsed, or nullopt: the one in force) and
  // remote set as one transaction; under mu_.
  Status loadSnapshot(std::optional<policy::Bundle> bundle, compiler::RemoteWorkloads remotes);
  // A local change for the listener: queued under mu_ (returns its number),
  // delivered without mu_ once saved, every queued change up to `upTo` in
  // order (a later change's wait covers the earlier ones' records).
  uint64_t queueLocalChange(LocalWorkloadChange change);
  void deliverLocalChanges(uint64_t upTo);
  // Journals one workload change (a full save every so often) and waits
  // until it is durable, all under mu_.
  Status saveChange(const v1::StateJournalEntry& entry);
  // The same in two steps, so that the wait runs without mu_ and concurrent
  // changes share one fdatasync: writeChange under mu_, then awaitSaved
  // (which takes mu_ only to note an error). Ticket 0: nothing to wait for.
  Result<StateStore::Ticket> writeChange(const v1::StateJournalEntry& entry);
  Status awaitSaved(StateStore::Ticket ticket);
  // A dry run: the change `bundle` would make and its plan, into `outcome`.
  Status planPolicy(const policy::Bundle& bundle, PushOutcome& outcome) const;
  void noteError(const Error& e);
  Result<policy::Bundle> parseFiles(const std::vector<policy::SourceFile>& files,
                                    std::vector<std::string>* warnings) const;
  void markQuarantined(policy::Bundle& bundle) const;
  // After a quarantine is in force: deletes the workload's conntrack entries.
  void flushFlows(const policy::Workload& workload, QuarantineOutcome& outcome);
  // Before a change that may rewrite chains (and so reset their counters).
  void beforeRewrite();
  // Puts the whole ruleset back after drift; under mu_.
  Status repairLocked();
  // Enforcer::drift(), with the read-back done through reader_ piece by
  // piece, `lock` let go while each piece is read (PiecewiseCheck).
  Result<std::optional<std::string>> driftRead(std::unique_lock<std::mutex>& lock,
                                               bool mustCompare);
  // Records a check's outcome in status and repairs what differs.
  Result<std::optional<std::string>> repairDrift(const std::string& why,
                                                 Result<std::optional<std::string>> drift);
  void publishAllInterfaces();
  // `app`: the workload's App document, if it has one.
  static flows::Attribution attributionOf(const policy::Workload& w, const policy::App* app);
  void publishInterfaces(const policy::Workload* before, const policy::Workload* after);
  // After every change: when the first interface was staged, for promotion.
  void trackStaged();
  // A local registration as listed and saved, with who registered it.
  WorkloadView localView(const policy::Workload& w) const;
  // status() but for the link to the controller.
  AgentStatusView coreStatus() const;
  // The restored state's bundle, workloads and quarantines, into the kernel.
  Status restoreState(const v1::AgentState& state);

  mutable std::mutex mu_;
  Enforcer enforcer_;
  CoreOptions options_;
  std::optional<StateStore> store_;
  FlowHub flows_;
  InterfaceDirectory interfaces_;
  FlowFeed* feed_ = nullptr;
  ConntrackTable* conntrack_ = nullptr;
  nft::NftKernel* reader_ = nullptr;
  mutable std::mutex controllerMu_;  // guards controllerStatus_ only
  std::function<ControllerLinkStatus()> controllerStatus_;

  std::string version_;
  std::string contentHash_;
  std::vector<policy::SourceFile> files_;
  std::set<std::string> quarantined_;
  // Who registered each API workload (source, owner), by name; absent: API.
  struct Origin {
    WorkloadSource source = WorkloadSource::kApi;
    std::string owner;
  };
  std::unordered_map<std::string, Origin> origins_;
  QuarantineBook quarantineBook_;

  std::string lastError_, lastErrorTime_, lastAppliedTime_;
  std::string lastDriftCheck_, lastDriftCheckTime_;
  // How long the last driftRead() took to read the table back through the
  // reader; nullopt when it read nothing that way.
  std::optional<std::chrono::milliseconds> readBackTook_;
  LatencyWindow applyLatency_, workloadLatency_, promotionLatency_;
  uint64_t driftRepairs_ = 0, pushes_ = 0, workloadChanges_ = 0, promotions_ = 0;
  common::SteadyClock::time_point lastChange_{};
  std::optional<common::SteadyClock::time_point> stagedSince_;
  uint64_t appliedRevision_ = 0;

  // Local changes on their way to the listener. Lock order: mu_, then
  // queueMu_; deliverMu_ is never taken with mu_ held, so the listener may
  // call back into the core.
  uint64_t localChangeSeq_ = 0;  // under mu_
  std::mutex queueMu_;
  std::deque<std::pair<uint64_t, LocalWorkloadChange>> localChanges_;
  std::mutex deliverMu_;
  std::function<void(const LocalWorkloadChange&)> listener_;
};

std::string nowRfc3339();

}  // namespace bulkhead::agent
