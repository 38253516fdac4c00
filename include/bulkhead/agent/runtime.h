// What bulkhead-agent runs around the core, kept in the library so that the
// binary's main() only wires and tests can drive each piece: the settings
// derived from the config, the --policies push, the SIGHUP reload, and the
// housekeeping thread with its nftables event monitor.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bulkhead/agent/config.h"
#include "bulkhead/agent/controller_link.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/housekeeping.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/nft/monitor.h"

namespace bulkhead::agent {

inline constexpr const char* kAgentVersion = "0.1.0";

compiler::CompileOptions compileOptions(const AgentConfig& config);
CoreOptions coreOptions(const AgentConfig& config, std::string host);
// gethostname(), or "localhost".
std::string hostName();
// This agent's name in status, flow events and the fleet: --host, else
// hostName().
std::string agentHost(const AgentConfig& config);

// The controller link's settings: --controller and its TLS files, read and
// checked (kInvalidInput naming the flag and the file).
Result<ControllerLinkOptions> controllerLinkOptions(const AgentConfig& config,
                                                    const std::string& host);
// The link to --controller, dialling already; nullptr when there is none.
Result<std::unique_ptr<ControllerLink>> startControllerLink(FleetMember& member,
                                                            const AgentConfig& config,
                                                            const std::string& host);

// Applies --policies DIR (logged either way): kInvalid when the bundle was
// refused as invalid or too large (nothing applied), kFailed when it could
// not be read or the kernel refused it. With --controller, the controller
// is the one source of policy: the directory is ignored (with a warning).
enum class PolicyOutcome : uint8_t { kApplied, kInvalid, kFailed };
PolicyOutcome applyPolicyDir(AgentCore& core, const AgentConfig& config);

// SIGHUP: the config is read again from `args`; --policies (possibly a new
// directory) takes effect now, the other settings at the next start (said
// in the log). A config that no longer parses leaves `config` as it is.
void reloadConfig(const std::vector<std::string>& args, AgentConfig& config);

// The nftables event monitor for the housekeeping loop; empty when it is
// switched off or cannot open (drift is then found by the periodic check).
// `holder` keeps the monitor alive as long as the returned function.
TableEventWait openTableEvents(const AgentConfig& config, uint32_t ownPortId,
                               std::unique_ptr<nft::TableMonitor>& holder);

// Housekeeping (drift repair, promotion, memory) on its own thread, from
// construction until stop() or destruction.
class HousekeepingThread {
 public:
  HousekeepingThread(AgentCore& core, HousekeepingOptions options, TableEventWait events);
  ~HousekeepingThread();
  HousekeepingThread(const HousekeepingThread&) = delete;
  HousekeepingThread& operator=(const HousekeepingThread&) = delete;

  void stop();

 private:
  Housekeeping housekeeping_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace bulkhead::agent
