// Where an agent listens, as users, configs and hooks write it
// (`--agent`, $BULKHEAD_AGENT, a CNI config's `agent`, hook.yaml): one
// parser, one set of rules and messages, for the CLI and the hooks.
#pragma once

#include <string>

namespace bulkhead::common {

// The agent's address when nothing names one (the packaged unit's socket).
inline constexpr const char* kDefaultAgent = "unix:///run/bulkhead/agent.sock";

// An agent address turned into a gRPC target.
struct AgentAddress {
  std::string target;  // "unix:/path" or "host:port"
  bool tcp = false;    // tcp:// needs TLS
  std::string host;    // tcp only: the host part, for the TLS name check
};

// Accepts unix:///abs/path, unix:/abs/path and tcp://host:port (host may be a
// bracketed IPv6 address). On failure returns false with a message in *error.
bool parseAgentAddress(const std::string& address, AgentAddress* out, std::string* error);

}  // namespace bulkhead::common
