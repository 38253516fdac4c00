#include "bulkhead/common/agent_address.h"

namespace bulkhead::common {

bool parseAgentAddress(const std::string& address, AgentAddress* out, std::string* error) {
  auto endpoint = parseEndpoint(address, kAgentSchemes, "--agent");
  if (!endpoint) {
    *error = endpoint.error().message;
    return false;
  }
  out->target = endpoint->grpcTarget();
  out->tcp = endpoint->scheme == Scheme::kTcp;
  out->host = out->tcp ? endpoint->host : std::string();
  return true;
}

}  // namespace bulkhead::common
