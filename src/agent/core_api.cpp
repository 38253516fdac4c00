#include "bulkhead/agent/core_api.h"

#include "bulkhead/agent/api_convert.h"
#include "bulkhead/agent/request_checks.h"

namespace bulkhead::agent::api {

Result<v1::ApplyPolicyResponse> applyPolicy(AgentCore& core,
                                            const v1::ApplyPolicyRequest& request) {
  // The core checks the push itself (after its controller check), so a
  // refusal reads the same whoever calls it.
  auto r = core.applyPolicy(fromApi(request));
  if (!r) return r.takeError();
  return toApi(*r);
}

Result<v1::UpsertWorkloadResponse> upsertWorkload(AgentCore& core, const v1::Workload& workload) {
  if (auto st = checkWorkload(workload); !st) return st.takeError();
  auto registration = registrationFromApi(workload);
  if (!registration) return registration.takeError();
  auto r = core.upsertWorkload(*registration);
  if (!r) return r.takeError();
  return toUpsertResponse(*r);
}

Result<v1::DeleteWorkloadResponse> deleteWorkload(AgentCore& core, const std::string& name,
                                                  const std::string& owner) {
  auto r = core.deleteWorkload(name, owner);
  if (!r) return r.takeError();
  return toDeleteResponse(*r);
}

v1::ListWorkloadsResponse listWorkloads(const AgentCore& core, const std::string& name) {
  return toApi(core.listWorkloads(name));
}

Result<v1::QuarantineResponse> quarantine(AgentCore& core, const std::string& name, bool release,
                                          const QuarantineWhy& why) {
  auto r = core.quarantine(name, release, why);
  if (!r) return r.takeError();
  return toApi(*r);
}

v1::ListQuarantinesResponse listQuarantines(const AgentCore& core) {
  return toApi(core.listQuarantines());
}

v1::AgentStatus status(const AgentCore& core) {
  return toApi(core.status());
}

}  // namespace bulkhead::agent::api
