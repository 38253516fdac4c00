// The commands of `bulkhead` that talk gRPC to agents (SPEC §4): push,
// workload add|rm|ls, status, quarantine, flows. gRPC stays out of this
// header; src/cli/client.cpp holds the channel, the calls and the output.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

#include "bulkhead/cli/commands.h"

namespace bulkhead::cli {

// The agent address used when neither --agent nor $BULKHEAD_AGENT names one.
inline constexpr const char* kDefaultAgent = "unix:///run/bulkhead/agent.sock";

// How long `flows` without --follow listens before it exits.
inline constexpr int kFlowsWindowMs = 1000;

// True for the commands runClientCommand() serves.
bool isClientCommand(std::string_view command);

// Runs one of them. `envAgent` is $BULKHEAD_AGENT ("" when unset); --agent
// flags override it. Returns an exit code (kExitOk, kExitRuntime,
// kExitBadInput).
int runClientCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                     std::ostream& err);

// An agent address as the user writes it, turned into a gRPC target.
struct AgentAddress {
  std::string target;  // "unix:/path" or "host:port"
  bool tcp = false;    // tcp:// needs TLS
  std::string host;    // tcp only: the host part, for the TLS name check
};

// Accepts unix:///abs/path, unix:/abs/path and tcp://host:port (host may be a
// bracketed IPv6 address). On failure returns false with a message in *error.
bool parseAgentAddress(const std::string& address, AgentAddress* out, std::string* error);

// Listens to one agent's flow events (WatchFlows) for `ms` milliseconds
// (or until interrupted); each event as a JSON line (the agent's json
// format) to `sink`. An exit code; errors on `err`.
int watchFlowsFor(const Args& args, const std::string& envAgent, const std::string& command,
                  long ms, const std::function<void(const std::string&)>& sink, std::ostream& err);

// `text` as a JSON string literal, quotes included.
std::string jsonQuote(std::string_view text);

}  // namespace bulkhead::cli
