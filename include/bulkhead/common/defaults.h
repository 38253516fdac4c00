// Constants every binary shares: where the agent's socket is when nothing
// names one, and what an exit code means.
#pragma once

namespace bulkhead::common {

// The packaged unit's socket (RuntimeDirectory=bulkhead).
inline constexpr const char* kDefaultSocketPath = "/run/bulkhead/agent.sock";
// The same, as an endpoint (--listen's default, --agent's default).
inline constexpr const char* kDefaultAgent = "unix:///run/bulkhead/agent.sock";

// Exit codes of bulkhead and bulkhead-agent (docs/cli.md, docs/agent.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;   // agent unreachable, kernel refused, I/O
inline constexpr int kExitBadInput = 2;  // bad flag, config, policy or request

}  // namespace bulkhead::common
