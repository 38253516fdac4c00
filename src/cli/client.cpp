// The agent and controller commands' common start (docs/cli.md): gRPC's
// logging, agent or controller, its flags, then the command of its group
// file (command_groups.h).
#include "bulkhead/cli/client.h"

#include <grpc/support/log.h>

#include <cstdlib>
#include <ostream>

#include "command_groups.h"

namespace bulkhead::cli {

bool isClientCommand(std::string_view command) {
  return command == "push" || command == "workload" || command == "status" ||
         command == "quarantine" || command == "flows";
}

int runClientCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                     std::ostream& err) {
  // gRPC's own log lines would repeat, less clearly, what the command prints;
  // GRPC_VERBOSITY=debug (or any value) brings them back.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  const std::string& name = args.command;
  const char* env = std::getenv("BULKHEAD_CONTROLLER");
  const std::string envController = env ? env : "";
  if (args.has("--controller") && args.has("--agent")) {
    err << "bulkhead " << name << ": --agent and --controller exclude each other\n";
    return kExitBadInput;
  }
  if (servedByController(name) && toController(args, envController))
    return controllerCommand(args, envController, out, err);
  if (args.has("--wait")) {
    err << "bulkhead " << name
        << ": --wait waits for a controller's rollout; name one with --controller URL or "
           "$BULKHEAD_CONTROLLER\n";
    return kExitBadInput;
  }
  if (name == "push") return pushCommand(args, envAgent, out, err);
  AgentOptions o;
  if (!readAgentOptions(args, envAgent, name, &o, err) || !oneAgent(o, name, err))
    return kExitBadInput;
  if (name == "workload add") return workloadAddCommand(args, o, out, err);
  if (name == "workload rm") return workloadRmCommand(args, o, out, err);
  if (name == "workload ls") return workloadLsCommand(args, o, out, err);
  if (name == "status") return statusCommand(args, o, out, err);
  if (name == "quarantine") return quarantineCommand(args, o, out, err);
  if (name == "quarantine ls") return quarantineLsCommand(args, o, out, err);
  return flowsCommand(args, o, out, err);
}

}  // namespace bulkhead::cli
