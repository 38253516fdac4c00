// The commands of `bulkhead`, one file per group (docs/cli.md):
//   policy_commands.cpp      validate, plan, push
//   workload_commands.cpp    workload add | rm | ls
//   status_command.cpp       status
//   quarantine_commands.cpp  quarantine NAME, quarantine ls
//   flows_commands.cpp       flows (and the agent side of suggest)
//   insight.cpp              suggest, graph
// Each returns an exit code; results go to `out`, errors to `err`.
#pragma once

#include <iosfwd>
#include <string>

#include "agent_connection.h"
#include "bulkhead/cli/commands.h"

namespace bulkhead::cli {

int validateCommand(const Args& args, std::ostream& out, std::ostream& err);
int planCommand(const Args& args, std::ostream& out, std::ostream& err);
int pushCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                std::ostream& err);

// The commands below talk to the one agent of `o`.
int workloadAddCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                       std::ostream& err);
int workloadRmCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                      std::ostream& err);
int workloadLsCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                      std::ostream& err);
int statusCommand(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err);
int quarantineCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                      std::ostream& err);
int quarantineLsCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                        std::ostream& err);
int flowsCommand(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err);

}  // namespace bulkhead::cli
