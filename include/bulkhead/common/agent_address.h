// Where an agent listens, as users, configs and hooks write it
// (`--agent`, $BULKHEAD_AGENT, a CNI config's `agent`, hook.yaml): the
// endpoint parser's rules (common/endpoint.h) for unix:// and tcp://, turned
// into a gRPC target.
#pragma once

#include <string>

#include "bulkhead/common/defaults.h"
#include "bulkhead/common/endpoint.h"

namespace bulkhead::common {

// What an agent address may be: the local socket, or TCP with TLS.
inline constexpr Schemes kAgentSchemes{Scheme::kUnix, Scheme::kTcp};

// An agent address turned into a gRPC target.
struct AgentAddress {
  std::string target;  // "unix:/path" or "host:port"
  bool tcp = false;    // tcp:// needs TLS
  std::string host;    // tcp only: the host part, for the TLS name check
};

// Accepts unix:///abs/path, unix:/abs/path and tcp://host:port (host may be a
// bracketed IPv6 address). On failure returns false with the message in
// *error: `--agent "ADDR": why; expected ...`.
bool parseAgentAddress(const std::string& address, AgentAddress* out, std::string* error);

}  // namespace bulkhead::common
