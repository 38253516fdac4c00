// The controller link's wire side (controller.proto): the messages it sends
// built from the agent's values, and the controller's messages checked and
// turned into FleetMember's. Field copying lives in api_convert; this adds
// what the fleet stream needs around it.
#pragma once

#include <string>

#include "bulkhead/agent/fleet.h"
#include "bulkhead/common/result.h"
#include "bulkhead/v1/controller.pb.h"

namespace bulkhead::agent {

// A local workload as the controller sees it: this host's, with its source
// (API, CNI, libvirt), no interfaces (they mean nothing elsewhere), no owner.
v1::Workload reportedWorkload(const policy::Workload& w, LocalSource source,
                              const std::string& host);

v1::AgentMessage helloMessage(const std::string& host, const std::string& version,
                              uint64_t appliedRevision,
                              const std::vector<LocalWorkload>& workloads);
v1::AgentMessage changeMessage(const LocalWorkloadChange& change, const std::string& host);
v1::AgentMessage ackMessage(uint64_t revision, const Status& applied);
v1::AgentMessage keepAliveMessage();

// A revision as FleetMember takes it; kInvalidInput for revision 0 or a
// file the loader would refuse.
Result<PolicyRevision> revisionFromApi(const v1::PolicyRevision& p);

// Another host's workload. Refused (kInvalidInput, saying why): no host,
// this host's name (the controller never sends a host its own workloads,
// and such an entry must not shadow a local one), or a workload that does
// not validate. Interfaces and quarantine are dropped: a remote workload
// is never enforced here.
Result<RemoteWorkload> remoteFromApi(const v1::Workload& w, const std::string& ownHost);

}  // namespace bulkhead::agent
