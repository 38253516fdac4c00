// bulkhead-agent: puts the host's policy in its nftables table and keeps it
// there. Startup: load the saved state and put that table back, then (with
// --policies) apply the static policy, then serve the gRPC API. A watcher
// thread (agent::Housekeeping) repairs drift (foreign changes to the table,
// seen as nftables netlink events, and a periodic check by content) and
// moves staged interfaces into the dispatch map, and feeds the service
// manager's watchdog (agent::Notifier). Quarantine cuts live flows through
// ctnetlink (agent::NetfilterConntrack). SIGHUP re-reads the config and
// reloads --policies; SIGTERM stops serving and leaves the table in the
// kernel (fail-closed).
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "bulkhead/agent/auto_quarantine.h"
#include "bulkhead/agent/config.h"
#include "bulkhead/agent/conntrack.h"
#include "bulkhead/agent/controller_link.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/notifier.h"
#include "bulkhead/agent/runtime.h"
#include "bulkhead/agent/service.h"
#include "bulkhead/common/allocator.h"
#include "bulkhead/common/defaults.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/common/signals.h"
#include "bulkhead/nft/counters.h"
#include "bulkhead/nft/mnl_kernel.h"

namespace {

using namespace bulkhead;

using common::kExitBadInput;
using common::kExitRuntime;

void setUpProcess() {
  // Two arenas are plenty for one lock-serialized agent.
  common::boundAllocator(2);
  // Diagnostics go to stderr (journald under systemd); the denied-flow feed
  // has its own path.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("bulkhead-agent"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
}

// The text of --help or --version when one is given.
std::optional<std::string> infoText(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") return std::string(agent::agentUsage());
    if (arg == "--version") return "bulkhead-agent " + std::string(agent::kAgentVersion) + "\n";
  }
  return std::nullopt;
}

// Quarantine cuts the workload's live flows through this table; without
// it, quarantine still drops every new flow.
std::unique_ptr<agent::ConntrackTable> attachConntrack(agent::AgentCore& core) {
  auto conntrack = agent::NetfilterConntrack::open();
  if (!conntrack) {
    spdlog::error("connection tracking not reachable ({}); quarantine will not cut live flows",
                  conntrack.error().describe());
    return nullptr;
  }
  core.setConntrack(conntrack->get());
  return std::move(*conntrack);
}

agent::AutoQuarantine::Options autoQuarantineOptions(const agent::AgentConfig& config) {
  agent::AutoQuarantine::Options aq;
  aq.quarantineScanners = config.autoQuarantine;
  aq.seconds = config.quarantineSeconds;
  return aq;
}

// The denied-flow feed (NFLOG in this namespace, exporters, accounting) and
// automatic quarantine of what it finds. Enforcement does not depend on
// them: if the feed cannot start, the agent says so and goes on enforcing.
struct FlowSide {
  FlowSide(agent::AgentCore& core, const agent::AgentConfig& config, const std::string& host)
      : core_(core),
        feed(config, host, core.flows(), core.interfaces(), counters),
        autoQuarantine(core, autoQuarantineOptions(config),
                       [this](const flows::FlowEvent& e) { feed.publish(e); }) {
    feed.onScan([this](const agent::ScanFinding& f) { autoQuarantine.submit(f); });
    autoQuarantine.start();
    if (auto st = feed.start(); !st) {
      spdlog::error("denied-flow feed not started: {}", st.error().describe());
    } else {
      core.setFlowFeed(&feed);
    }
  }
  ~FlowSide() {
    core_.setFlowFeed(nullptr);
    autoQuarantine.stop();
    feed.stop();
  }

  agent::AgentCore& core_;
  nft::MnlCounterReader counters;
  agent::FlowFeed feed;
  agent::AutoQuarantine autoQuarantine;
};

// The link to --controller (nullptr without one). The core is the fleet
// member when it implements FleetMember; a core that does not cannot follow
// a controller.
template <class Core>
Result<std::unique_ptr<agent::ControllerLink>> followController(Core& core,
                                                                const agent::AgentConfig& config,
                                                                const std::string& host) {
  if constexpr (std::is_base_of_v<agent::FleetMember, Core>) {
    return agent::startControllerLink(core, config, host);
  } else {
    if (config.controllers.empty()) return std::unique_ptr<agent::ControllerLink>();
    return makeError(ErrorCode::kInvalidInput, "--controller: this agent cannot follow one");
  }
}

// Until SIGTERM or SIGINT; SIGHUP re-reads the config and reloads --policies.
void handleSignals(const sigset_t& signals, agent::AgentCore& core, agent::AgentConfig& config,
                   const std::vector<std::string>& args, agent::Notifier& notifier) {
  for (;;) {
    const int sig = sigwaitinfo(&signals, nullptr);
    if (sig == SIGTERM || sig == SIGINT) return;
    if (sig != SIGHUP) continue;
    notifier.reloading("config and policies");
    agent::reloadConfig(args, config);
    if (config.policiesDir.empty()) {
      spdlog::info("SIGHUP: no --policies to reload");
    } else {
      spdlog::info("SIGHUP: reloading {}", config.policiesDir);
      agent::applyPolicyDir(core, config);
    }
    notifier.ready(core.status());
  }
}

// From the restored table to a stop: --policies, the API, housekeeping.
int serve(agent::AgentCore& core, agent::AgentConfig& config, const std::vector<std::string>& args,
          uint32_t ownPortId, const sigset_t& signals, const std::string& host) {
  FlowSide flows(core, config, host);
  if (!config.policiesDir.empty()) {
    const auto outcome = agent::applyPolicyDir(core, config);
    if (outcome != agent::PolicyOutcome::kApplied)
      return outcome == agent::PolicyOutcome::kInvalid ? kExitBadInput : kExitRuntime;
  }
  agent::AgentService service(core);
  const mode_t oldMask = umask(0117);  // the unix socket is born 0660
  auto server = agent::startServer(service, config, config.maxBundleBytes + (1u << 20));
  umask(oldMask);
  if (!server) {
    spdlog::error("bulkhead-agent: {}", server.error().describe());
    return server.error().code == ErrorCode::kInvalidInput ? kExitBadInput : kExitRuntime;
  }
  for (const auto& l : config.listen)
    spdlog::info("serving on {}", l);
  // Fail-static: readiness does not wait for the controller.
  auto link = followController(core, config, host);
  if (!link) {
    spdlog::error("bulkhead-agent: {}", link.error().describe());
    (*server)->Shutdown(std::chrono::system_clock::now());
    return kExitBadInput;
  }
  if (*link) core.setControllerStatus([l = link->get()] { return l->status(); });
  // The table is in the kernel and the listeners accept: ready.
  auto notifier = agent::Notifier::fromEnvironment();
  notifier.ready(core.status());
  agent::HousekeepingOptions housekeeping;
  housekeeping.table = config.table;
  housekeeping.resync = std::chrono::seconds(config.resyncSeconds);
  // Watchdog keep-alive and STATUS=, from the loop that proves the agent
  // works, only after it took the core's lock.
  housekeeping.afterRound = [&] { notifier.housekeeping(core); };
  std::unique_ptr<nft::TableMonitor> monitor;
  agent::HousekeepingThread watcher(core, housekeeping,
                                    agent::openTableEvents(config, ownPortId, monitor));
  // Large transactions of ours leave the monitor's group meanwhile.
  core.setNotificationGate(monitor.get());
  handleSignals(signals, core, config, args, notifier);
  notifier.stopping();
  spdlog::info("stopping; table inet {} stays in the kernel", config.table);
  if (*link) (*link)->stop();
  service.shutdown();
  core.flows().closeAll();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  watcher.stop();
  core.setNotificationGate(nullptr);
  core.setControllerStatus(nullptr);  // the link goes with this scope
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setUpProcess();
  if (auto text = infoText(argc, argv)) {
    fwrite(text->data(), 1, text->size(), stdout);
    return 0;
  }
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto config = agent::parseAgentArgs(args);
  if (config) {
    if (auto st = agent::checkHostNames(*config); !st) config = st.takeError();
  }
  if (!config) {
    spdlog::error("bulkhead-agent: {}", config.error().message);
    return kExitBadInput;
  }
  const sigset_t signals = common::blockDaemonSignals();
  auto kernel = nft::MnlKernel::open();
  if (!kernel) {
    spdlog::error("bulkhead-agent: cannot reach nftables: {}", kernel.error().describe());
    return kExitRuntime;
  }
  // The drift checks read the table back on a connection of their own,
  // without holding up requests (AgentCore::setTableReader).
  auto reader = nft::MnlKernel::open();
  if (!reader) {
    spdlog::error("bulkhead-agent: cannot reach nftables: {}", reader.error().describe());
    return kExitRuntime;
  }
  const std::string host = agent::agentHost(*config);
  agent::AgentCore core(**kernel, agent::compileOptions(*config),
                        agent::coreOptions(*config, host));
  core.setTableReader(reader->get());
  const auto conntrack = attachConntrack(core);
  if (auto st = core.restore(); !st) {
    spdlog::error("bulkhead-agent: cannot restore the saved state: {}", st.error().describe());
    spdlog::error(
        "bulkhead-agent: the table in the kernel is left as it is; fix or remove the "
        "state file, then start again");
    return kExitRuntime;
  }
  const auto restored = core.status();
  if (!restored.version.empty() || restored.workloads > 0)
    spdlog::info("restored version {} from {}: {} workloads, {} elements in table inet {}",
                 escapeForLog(restored.version), config->stateDir, restored.workloads,
                 restored.setElements, restored.table);
  return serve(core, *config, args, (*kernel)->portId(), signals, host);
}
