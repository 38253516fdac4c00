// bulkhead-cni: a chained CNI plugin (CNI spec 1.0.0 and 1.1.0) that
// registers a container with the local agent after an interface plugin
// (ptp, ...) made its routed host-side veth. Fail-closed: when the workload
// cannot be registered, ADD fails and the runtime tears the container down.
// See docs/hooks.md.
#pragma once

#include <string>

#include "bulkhead/hooks/agent_link.h"

namespace bulkhead::hooks {

// What the runtime passes in the environment.
struct CniEnv {
  std::string command;      // CNI_COMMAND
  std::string containerId;  // CNI_CONTAINERID
  std::string netns;        // CNI_NETNS
  std::string ifname;       // CNI_IFNAME
  std::string args;         // CNI_ARGS: "K=V;K=V"
  std::string agent;        // $BULKHEAD_AGENT ("" when unset)

  static CniEnv fromProcess();
};

// What the plugin prints and returns: the result (ADD), the version
// (VERSION), nothing (DEL, CHECK, STATUS, GC) or the spec's error object,
// with a non-zero exit code.
struct CniOutcome {
  int exitCode = 0;
  std::string out;  // stdout
  std::string err;  // stderr: one line for people, or nothing
};

// The spec's well-known error codes bulkhead-cni returns, and its own (100+).
enum class CniCode : int {
  kIncompatibleVersion = 1,
  kBadEnvironment = 4,
  kDecode = 6,
  kBadConfig = 7,
  kTryAgainLater = 11,   // the agent is unreachable
  kNotAvailable = 50,    // STATUS: the agent is unreachable
  kAgentRefused = 100,   // the agent refused (its message in details)
  kNotRegistered = 101,  // CHECK: the agent does not hold the workload as ADD left it
};

inline constexpr const char* kCniVersions[] = {"1.0.0", "1.1.0"};

// One plugin run. `config` is stdin (the network configuration).
CniOutcome runCni(const CniEnv& env, const std::string& config, const AgentConnector& connect);

}  // namespace bulkhead::hooks
