// bulkhead-agent: puts the host's policy in its nftables table and keeps it
// there. Startup: load the saved state and put that table back, then (with
// --policies) apply the static policy, then serve the gRPC API. A watcher
// thread repairs drift (foreign changes to the table, seen as nftables
// netlink events, and a periodic check) and moves staged interfaces into
// the dispatch map. SIGHUP reloads --policies; SIGTERM
// stops serving and leaves the table in the kernel (fail-closed).
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "bulkhead/agent/auto_quarantine.h"
#include "bulkhead/agent/config.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/service.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/monitor.h"

namespace {

using namespace bulkhead;

constexpr int kExitRuntime = 1;
constexpr int kExitBadInput = 2;

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

// Repairs drift until `stop`: foreign changes to the table put it back whole
// (within about a second), and every resyncSeconds a check that it exists.
void watchDrift(agent::AgentCore& core, const agent::AgentConfig& config, uint32_t ownPortId,
                const std::atomic<bool>& stop) {
  auto monitor = nft::TableMonitor::open(config.table);
  if (!monitor) {
    spdlog::error("cannot watch nftables events ({}); drift is checked every {} s only",
                  monitor.error().describe(), config.resyncSeconds);
  } else {
    (*monitor)->ignorePortId(ownPortId);
  }
  auto nextCheck = std::chrono::steady_clock::now() + std::chrono::seconds(config.resyncSeconds);
  auto nextTrim = std::chrono::steady_clock::now();
  auto lastTrim = nextTrim;
  bool trimWanted = false;
  constexpr auto kTrimAtLeast = std::chrono::seconds(30);
  while (!stop) {
    std::string why;
    bool onlyLost = true;  // every event says "notifications lost"
    if (monitor) {
      auto events = (*monitor)->wait(100);
      if (events && !events->empty()) {
        why = events->front().what;
        for (const auto& e : *events)
          onlyLost &= e.kind == nft::TableEvent::Kind::kLostEvents;
        // One repair for a burst (a flush is many notifications).
        while (true) {
          auto more = (*monitor)->wait(30);
          if (!more || more->empty()) break;
          for (const auto& e : *more)
            onlyLost &= e.kind == nft::TableEvent::Kind::kLostEvents;
        }
      } else if (!events) {
        spdlog::error("watching nftables events: {}", events.error().describe());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!why.empty()) {
      auto r = onlyLost ? core.repairAfterLostEvents(why) : core.repair(true, why);
      if (r && *r) spdlog::warn("drift: {}; table inet {} restored", why, config.table);
      if (!r) spdlog::error("drift: {}; restoring failed: {}", why, r.error().describe());
    }
    // New interfaces are enforced through staged sets; move them into the
    // dispatch map here, in batches, off the request path.
    if (auto promoted = core.promoteStaged(); !promoted) {
      spdlog::error("moving staged interfaces into the dispatch map: {}",
                    promoted.error().describe());
    } else if (*promoted > 0) {
      spdlog::debug("{} staged interfaces moved into the dispatch map", *promoted);
      trimWanted = true;  // a batch's diff was freed
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= nextTrim) trimWanted = true;
    // Workload changes free small blocks all over the heap; give them back
    // off the request path. malloc_trim locks the arenas while it walks
    // them (tens of ms on a loaded heap) and would stall requests that
    // allocate meanwhile: wait for a quiet second, or 30 s at most.
    if (trimWanted &&
        (core.quietFor() >= std::chrono::seconds(1) || now >= lastTrim + kTrimAtLeast)) {
      malloc_trim(0);
      trimWanted = false;
      lastTrim = now;
      nextTrim = now + std::chrono::seconds(5);
    }
    if (std::chrono::steady_clock::now() >= nextCheck) {
      nextCheck = std::chrono::steady_clock::now() + std::chrono::seconds(config.resyncSeconds);
      auto r = core.repair(false, "periodic check");
      if (r && *r) spdlog::warn("table inet {} was missing; restored", config.table);
      if (!r)
        spdlog::error("periodic check of table inet {}: {}", config.table, r.error().describe());
    }
  }
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
  auto config = agent::parseAgentArgs({argv + 1, argv + argc});
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
  agent::CoreOptions options;
  options.stateDir = config->stateDir;
  options.maxBundleBytes = config->maxBundleBytes;
  options.host = hostName();
  agent::AgentCore core(**kernel, compile, options);

  if (auto st = core.restore(); !st) {
    spdlog::error("bulkhead-agent: cannot restore the saved state: {}", st.error().describe());
    spdlog::error(
        "bulkhead-agent: the table in the kernel is left as it is; fix or remove the "
        "state file, then start again");
    return kExitRuntime;
  }
  const auto restored = core.status();
  if (!restored.version().empty())
    spdlog::info("restored version {} from {}: {} workloads, {} elements in table inet {}",
                 restored.version(), config->stateDir, restored.workloads(),
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

  std::atomic<bool> stop{false};
  std::thread watcher(watchDrift, std::ref(core), std::cref(*config), (*kernel)->portId(),
                      std::cref(stop));

  for (;;) {
    const int sig = sigwaitinfo(&signals, nullptr);
    if (sig == SIGHUP) {
      if (config->policiesDir.empty()) {
        spdlog::info("SIGHUP: no --policies to reload");
      } else {
        spdlog::info("SIGHUP: reloading {}", config->policiesDir);
        applyPolicies(core, *config, &invalid);
      }
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  spdlog::info("stopping; table inet {} stays in the kernel", config->table);
  service.shutdown();
  core.flows().closeAll();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  stop = true;
  watcher.join();
  core.setFlowFeed(nullptr);
  autoQuarantine.stop();
  feed.stop();
  return 0;
}
