// The agent core as the API sees it: each call checks the request's strings
// (request_checks.h), converts it (api_convert.h), calls AgentCore and
// converts the answer. The gRPC service (service.h) is these calls plus
// error mapping and logging; tests that speak the wire use them too.
#pragma once

#include <string>

#include "bulkhead/agent/core.h"
#include "bulkhead/common/result.h"
#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::agent::api {

Result<v1::ApplyPolicyResponse> applyPolicy(AgentCore& core, const v1::ApplyPolicyRequest& request);
Result<v1::UpsertWorkloadResponse> upsertWorkload(AgentCore& core, const v1::Workload& workload);
Result<v1::DeleteWorkloadResponse> deleteWorkload(AgentCore& core, const std::string& name,
                                                  const std::string& owner = "");
v1::ListWorkloadsResponse listWorkloads(const AgentCore& core, const std::string& name = "");
Result<v1::QuarantineResponse> quarantine(AgentCore& core, const std::string& name, bool release,
                                          const QuarantineWhy& why = {});
v1::ListQuarantinesResponse listQuarantines(const AgentCore& core);
v1::AgentStatus status(const AgentCore& core);

}  // namespace bulkhead::agent::api
