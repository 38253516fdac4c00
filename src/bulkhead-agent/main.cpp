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
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bulkhead/agent/auto_quarantine.h"
#include "bulkhead/agent/config.h"
#include "bulkhead/agent/conntrack.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/housekeeping.h"
#include "bulkhead/agent/notifier.h"
#include "bulkhead/agent/service.h"
#include "bulkhead/common/defaults.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/monitor.h"

namespace {

using namespace bulkhead;

using common::kExitBadInput;
using common::kExitRuntime;

// Applies --policies DIR; false (logged) when it is invalid or was refused.
bool applyPolicies(agent::AgentCore& core, const agent::AgentConfig& config, bool* invalid) {
  auto refused = [&](const Error& e) {
    *invalid = e.code == ErrorCode::kInvalidInput || e.code == ErrorCode::kTooLarge;
    spdlog::error("policy in {} {}:\n{}", config.policiesDir,
                  *invalid ? "rejected, nothing applied" : "not applied", e.describe());
    return false;
  };
  auto files = agent::AgentCore::readPolicyFiles(config.policiesDir, config.maxBundleBytes);
  if (!files) return refused(files.error());
  v1::ApplyPolicyRequest req;
  for (auto& f : *files)
    *req.add_files() = std::move(f);
  auto r = core.applyPolicy(req);
  if (!r) return refused(r.error());
  for (const auto& w : r->warnings())
    spdlog::warn("{}", w);
  const auto st = core.status();
  spdlog::info("policy from {} in force in table inet {}: version {}, {} elements, {} chains ({})",
               config.policiesDir, st.table(), r->version(), st.set_elements(), st.chains(),
               r->changed() ? r->change().summary() : "unchanged");
  return true;
}

// The nftables event monitor for the housekeeping loop; empty when it is
// switched off or cannot open (drift is then found by the periodic check).
agent::TableEventWait openMonitor(const agent::AgentConfig& config, uint32_t ownPortId,
                                  std::unique_ptr<nft::TableMonitor>& holder) {
  if (!config.driftEvents) {
    spdlog::warn(
        "nftables event monitor off (--drift-events=false): drift is found by the "
        "check every {} s only",
        config.resyncSeconds);
    return {};
  }
  auto monitor = nft::TableMonitor::open(config.table);
  if (!monitor) {
    spdlog::error("cannot watch nftables events ({}); drift is checked every {} s only",
                  monitor.error().describe(), config.resyncSeconds);
    return {};
  }
  (*monitor)->ignorePortId(ownPortId);
  holder = std::move(*monitor);
  return [m = holder.get()](int timeoutMs) { return m->wait(timeoutMs); };
}

// SIGHUP: the config file is read again; --policies (possibly a new
// directory) takes effect now, other settings at the next start.
void reloadConfig(const std::vector<std::string>& args, agent::AgentConfig& config) {
  auto fresh = agent::parseAgentArgs(args);
  if (!fresh) {
    spdlog::error("SIGHUP: config not reloaded, the one in force stays: {}", fresh.error().message);
    return;
  }
  auto same = *fresh;
  same.policiesDir = config.policiesDir;
  if (!(same == config))
    spdlog::warn("SIGHUP: settings other than policies take effect when the agent restarts");
  config.policiesDir = fresh->policiesDir;
}

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives every thread that allocates its own arena and keeps what it
  // freed there; gRPC's worker threads would each hold tens of MiB of a
  // past push. Two arenas are plenty for one lock-serialized agent.
  mallopt(M_ARENA_MAX, 2);
  // Fixed thresholds: glibc otherwise raises them (up to 32 MiB) each time a
  // large block is freed, and then keeps that much freed memory mapped.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  mallopt(M_TRIM_THRESHOLD, 1 << 20);
  // Diagnostics go to stderr (journald under systemd); the denied-flow feed
  // has its own path.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("bulkhead-agent"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "--version") {
      const auto text = arg == "--help" ? agent::agentUsage() : "bulkhead-agent 0.1.0\n";
      fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    }
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

  // Signals are taken synchronously in the main loop; blocked before any
  // thread starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP})
    sigaddset(&signals, s);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto kernel = nft::MnlKernel::open();
  if (!kernel) {
    spdlog::error("bulkhead-agent: cannot reach nftables: {}", kernel.error().describe());
    return kExitRuntime;
  }
  compiler::CompileOptions compile;
  compile.table = config->table;
  compile.logGroup = config->logGroup;
  compile.logRatePerSecond = config->logRate;
  compile.logBurst = 2 * config->logRate;
  compile.workloadInterfacePatterns = config->workloadInterfaces;
  agent::CoreOptions options;
  options.stateDir = config->stateDir;
  options.maxBundleBytes = config->maxBundleBytes;
  options.host = hostName();
  agent::AgentCore core(**kernel, compile, options);
  // Quarantine cuts the workload's live flows through this table; without
  // it, quarantine still drops every new flow.
  auto conntrack = agent::NetfilterConntrack::open();
  if (!conntrack) {
    spdlog::error("connection tracking not reachable ({}); quarantine will not cut live flows",
                  conntrack.error().describe());
  } else {
    core.setConntrack(conntrack->get());
  }

  if (auto st = core.restore(); !st) {
    spdlog::error("bulkhead-agent: cannot restore the saved state: {}", st.error().describe());
    spdlog::error(
        "bulkhead-agent: the table in the kernel is left as it is; fix or remove the "
        "state file, then start again");
    return kExitRuntime;
  }
  const auto restored = core.status();
  if (!restored.version().empty() || restored.workloads() > 0)
    spdlog::info("restored version {} from {}: {} workloads, {} elements in table inet {}",
                 escapeForLog(restored.version()), config->stateDir, restored.workloads(),
                 restored.set_elements(), restored.table());

  // The denied-flow feed: NFLOG in this namespace, exporters, accounting.
  // Enforcement does not depend on it: if it cannot start, the agent says so
  // and goes on enforcing.
  agent::FlowFeed feed(*config, options.host, core.flows(), core.interfaces());
  // Scan findings -> automatic quarantine; expiry of every timed quarantine.
  agent::AutoQuarantine::Options aq;
  aq.quarantineScanners = config->autoQuarantine;
  aq.seconds = config->quarantineSeconds;
  agent::AutoQuarantine autoQuarantine(core, aq,
                                       [&feed](const flows::FlowEvent& e) { feed.publish(e); });
  feed.onScan([&autoQuarantine](const agent::ScanFinding& f) { autoQuarantine.submit(f); });
  autoQuarantine.start();
  if (auto st = feed.start(); !st) {
    spdlog::error("denied-flow feed not started: {}", st.error().describe());
  } else {
    core.setFlowFeed(&feed);
  }

  bool invalid = false;
  if (!config->policiesDir.empty() && !applyPolicies(core, *config, &invalid))
    return invalid ? kExitBadInput : kExitRuntime;

  agent::AgentService service(core);
  const mode_t oldMask = umask(0117);  // the unix socket is born 0660
  auto server = agent::startServer(service, *config, config->maxBundleBytes + (1u << 20));
  umask(oldMask);
  if (!server) {
    spdlog::error("bulkhead-agent: {}", server.error().describe());
    return server.error().code == ErrorCode::kInvalidInput ? kExitBadInput : kExitRuntime;
  }
  for (const auto& l : config->listen)
    spdlog::info("serving on {}", l);

  // The table is in the kernel and the listeners accept: ready.
  auto notifier = agent::Notifier::fromEnvironment();
  notifier.ready(core.status());
  std::unique_ptr<nft::TableMonitor> monitor;
  agent::HousekeepingOptions housekeepingOptions;
  housekeepingOptions.table = config->table;
  housekeepingOptions.resync = std::chrono::seconds(config->resyncSeconds);
  // Watchdog keep-alive and STATUS=, from the loop that proves the agent
  // works, only after it took the core's lock.
  housekeepingOptions.afterRound = [&] { notifier.housekeeping(core); };
  agent::Housekeeping housekeeping(core, housekeepingOptions,
                                   openMonitor(*config, (*kernel)->portId(), monitor));
  // Large transactions of ours leave the monitor's group meanwhile.
  core.setNotificationGate(monitor.get());
  std::atomic<bool> stop{false};
  std::thread watcher([&] { housekeeping.run(stop); });

  for (;;) {
    const int sig = sigwaitinfo(&signals, nullptr);
    if (sig == SIGHUP) {
      notifier.reloading("config and policies");
      reloadConfig(args, *config);
      if (config->policiesDir.empty()) {
        spdlog::info("SIGHUP: no --policies to reload");
      } else {
        spdlog::info("SIGHUP: reloading {}", config->policiesDir);
        applyPolicies(core, *config, &invalid);
      }
      notifier.ready(core.status());
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  notifier.stopping();
  spdlog::info("stopping; table inet {} stays in the kernel", config->table);
  service.shutdown();
  core.flows().closeAll();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  stop = true;
  watcher.join();
  core.setNotificationGate(nullptr);
  core.setFlowFeed(nullptr);
  autoQuarantine.stop();
  feed.stop();
  return 0;
}
