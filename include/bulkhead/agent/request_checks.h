// Checks on every string a client sends that can reach a log line, the
// state journal, `status` or the SIEM, before anything else looks at it:
// control characters (below 0x20, and 0x7f) and over-long values are
// refused as kInvalidInput with the field named, so no client can forge a
// line anywhere downstream. The deeper checks (DNS-label names, label
// syntax, addresses) stay where they are (policy validation, fromApi).
#pragma once

#include <string>
#include <string_view>

#include "bulkhead/agent/core_types.h"
#include "bulkhead/common/result.h"
#include "bulkhead/policy/model.h"
#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::agent {

inline constexpr size_t kMaxVersionBytes = 256;
inline constexpr size_t kMaxFileNameBytes = 4096;

// One string field: `field` names it in the message ("version",
// "files[3].name"); the refused value itself is shown escaped.
Status checkClientString(std::string_view field, std::string_view value, size_t maxBytes);

Status checkApplyPolicy(const v1::ApplyPolicyRequest& request);
// The same checks on a push as the core takes it.
Status checkPolicyPush(const PolicyPush& push);
Status checkWorkload(const v1::Workload& workload);
// A workload name in DeleteWorkload or Quarantine (`field`: "name").
Status checkWorkloadName(std::string_view field, std::string_view name);
// A registration's owner (workload.owner): printable ASCII without spaces,
// at most 256 bytes.
Status checkOwner(std::string_view owner);
// A workload as policy validation sees it (a remote one from the
// controller: validateRemoteWorkload), every error in one message
// "workload: a; b".
Status checkValidWorkload(const policy::Workload& workload, bool remote);
Status checkWatchFlows(const v1::WatchFlowsRequest& request);

}  // namespace bulkhead::agent
