// The agent's side of a fleet, in the policy model's terms: what the
// controller link (controller_link.h) reads from the agent (its local
// workloads, the revision it applied, each local change) and hands to it
// (a policy revision, the other hosts' workloads its apps can select).
// AgentCore implements it; the link never sees the kernel or the core.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/policy/loader.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::agent {

// A workload of another host: its addresses count in this host's selectors
// (appSelector services, `to: <App>`, GlobalPolicy selectors); it has no
// interfaces here and is never enforced here. Identified by (host, name).
struct RemoteWorkload {
  std::string host;
  policy::Workload workload;  // interfaces empty
  bool operator==(const RemoteWorkload&) const = default;
};

// A remote workload by its identity, for a delete.
struct RemoteWorkloadKey {
  std::string host;
  std::string name;
};

// One revision of the fleet's bundle as the controller sends it.
struct PolicyRevision {
  uint64_t revision = 0;
  std::string version;
  std::vector<policy::SourceFile> files;
};

// Who registered a local workload; the controller lists it with this.
enum class LocalSource : uint8_t { kApi, kCni, kLibvirt };

// A local registration, as the hello reports it.
struct LocalWorkload {
  policy::Workload workload;
  LocalSource source = LocalSource::kApi;
};

// A local registration changed (API, CNI, libvirt): reported to the
// controller as it happens. `removed`: only workload.name is meaningful.
struct LocalWorkloadChange {
  policy::Workload workload;
  bool removed = false;
  LocalSource source = LocalSource::kApi;
};

class FleetMember {
 public:
  virtual ~FleetMember() = default;

  // Local registrations (not the bundle's Workload documents, not remote
  // workloads), for the hello.
  virtual std::vector<LocalWorkload> localWorkloads() const = 0;
  // The last revision applied (kept across restarts); 0: none.
  virtual uint64_t appliedRevision() const = 0;

  // What a (re)connection sends first: the bundle (nullopt: the controller
  // has none yet; keep what is in force) and the complete set of remote
  // workloads. One transaction; a snapshot equal to what is in force changes
  // nothing in the kernel. Error: nothing applied (the caller acks the error).
  virtual Status applySnapshot(const std::optional<PolicyRevision>& policy,
                               std::vector<RemoteWorkload> remotes) = 0;
  // A new revision (validated and applied as a push is).
  virtual Status applyRevision(const PolicyRevision& policy) = 0;
  // Element changes only (not table rewrites) where the policy allows.
  virtual Status upsertRemoteWorkload(const RemoteWorkload& workload) = 0;
  virtual Status deleteRemoteWorkload(const std::string& host, const std::string& name) = 0;
  // Several remote changes at once (a controller's batch; each key at most
  // once). An entry refused as invalid is skipped (logged), a delete of an
  // unknown one is nothing; any other error: the caller resyncs. AgentCore
  // applies them as one transaction; this default, one by one.
  virtual Status applyRemoteChanges(const std::vector<RemoteWorkload>& upserts,
                                    const std::vector<RemoteWorkloadKey>& deletes) {
    for (const auto& d : deletes)
      if (auto st = deleteRemoteWorkload(d.host, d.name);
          !st && st.error().code != ErrorCode::kNotFound &&
          st.error().code != ErrorCode::kInvalidInput)
        return st;
    for (const auto& u : upserts)
      if (auto st = upsertRemoteWorkload(u); !st && st.error().code != ErrorCode::kInvalidInput)
        return st;
    return {};
  }

  // Called after every local workload change is applied and saved, outside
  // the member's lock, in the order of the changes; at most one listener
  // (nullptr: none).
  virtual void setLocalChangeListener(std::function<void(const LocalWorkloadChange&)> listener) = 0;
};

}  // namespace bulkhead::agent
