// The commands of `bulkhead`, one file per group (docs/cli.md):
//   policy_commands.cpp      validate, plan, push
//   workload_commands.cpp    workload add | rm | ls
//   status_command.cpp       status
//   quarantine_commands.cpp  quarantine NAME, quarantine ls
//   flows_commands.cpp       flows (and the agent side of suggest)
//   insight.cpp              suggest, graph
//   controller_commands.cpp  push, status and workload ls against a controller
// Each returns an exit code; results go to `out`, errors to `err`.
#pragma once

#include <iosfwd>
#include <set>
#include <string>

#include "agent_connection.h"
#include "bulkhead/cli/commands.h"

namespace bulkhead::cli {

int validateCommand(const Args& args, std::ostream& out, std::ostream& err);
int planCommand(const Args& args, std::ostream& out, std::ostream& err);
int pushCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                std::ostream& err);

// push's words: at least one path, and a value for --version. False after
// saying what is wrong.
bool pushWordsOk(const Args& args, std::ostream& err);

// Reads and validates the bundle of push as `validate` does, into `files`;
// false (nothing is to be sent) after printing the errors. `known`: the
// warnings printed here, not to repeat when a daemon sends them back.
bool loadForPush(const Args& args, google::protobuf::RepeatedPtrField<v1::PolicyFile>* files,
                 std::set<std::string>* known, std::ostream& err);

// push, status and workload ls are served by a controller too. They go to
// one when --controller names it, or when `envController`
// ($BULKHEAD_CONTROLLER) does and no --agent is given.
bool servedByController(const std::string& command);
bool toController(const Args& args, const std::string& envController);

// Runs one of them against the controller.
int controllerCommand(const Args& args, const std::string& envController, std::ostream& out,
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
