// The commands of `bulkhead` that talk gRPC to agents (docs/cli.md): push,
// workload add|rm|ls, status, quarantine, flows. gRPC stays out of this
// header: src/cli/agent_connection.cpp holds the channel, output.cpp the
// JSON and tables, one file per command group the calls.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

#include "bulkhead/cli/commands.h"
#include "bulkhead/common/agent_address.h"

namespace bulkhead::cli {

// How long `flows` without --follow listens before it exits.
inline constexpr int kFlowsWindowMs = 1000;

// True for the commands runClientCommand() serves.
bool isClientCommand(std::string_view command);

// Runs one of them. `envAgent` is $BULKHEAD_AGENT ("" when unset); --agent
// flags override it. Returns an exit code (kExitOk, kExitRuntime,
// kExitBadInput).
int runClientCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                     std::ostream& err);

// The agent address: common/agent_address.h (the hooks parse it too).
using common::AgentAddress;
using common::kDefaultAgent;
using common::parseAgentAddress;

// Listens to one agent's flow events (WatchFlows) for `ms` milliseconds
// (or until interrupted); each event as a JSON line (the agent's json
// format) to `sink`. An exit code; errors on `err`.
int watchFlowsFor(const Args& args, const std::string& envAgent, const std::string& command,
                  long ms, const std::function<void(const std::string&)>& sink, std::ostream& err);

}  // namespace bulkhead::cli
