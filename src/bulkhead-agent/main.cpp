// bulkhead-agent: compiles policy into the host's nftables table and keeps it
// there. This version serves static policy (--policies DIR); SIGHUP reloads
// it, a timer re-checks that the table is still in the kernel, and SIGTERM
// exits leaving the table in place (fail-closed).
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <string>
#include <vector>

#include "bulkhead/agent/config.h"
#include "bulkhead/agent/enforcer.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/policy/loader.h"

namespace {

using namespace bulkhead;

constexpr int kExitRuntime = 1;
constexpr int kExitBadInput = 2;

// Loads and applies the policy directory; false (logged) when it is invalid
// or the kernel refused it, in which case the previous policy stays.
bool loadAndApply(agent::Enforcer& enforcer, const std::string& dir, bool* invalid) {
  auto loaded = policy::loadPaths({dir});
  for (const auto& w : loaded.warnings)
    spdlog::warn("{}", w.toString());
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors)
      spdlog::error("{}", e.toString());
    spdlog::error("policy in {} rejected ({} errors); nothing applied", dir, loaded.errors.size());
    *invalid = true;
    return false;
  }
  auto diff = enforcer.setPolicy(std::move(loaded.bundle));
  if (!diff) {
    spdlog::error("applying policy from {} failed: {}", dir, diff.error().describe());
    *invalid = diff.error().code == ErrorCode::kInvalidInput;
    return false;
  }
  const auto& rs = enforcer.ruleset();
  spdlog::info("policy from {} in force in table inet {}: {} sets, {} elements, {} chains ({})",
               dir, rs.table, rs.sets.size(), rs.elementCount(), rs.chains.size(), diff->summary());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Diagnostics go to stderr (journald under systemd); the denied-flow feed
  // has its own path.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("bulkhead-agent"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  auto config = agent::parseAgentArgs({argv + 1, argv + argc});
  if (!config) {
    spdlog::error("bulkhead-agent: {}", config.error().message);
    return kExitBadInput;
  }
  if (!config->listen.empty() || config->policiesDir.empty()) {
    spdlog::error(
        "bulkhead-agent: this version serves static policy only: give --policies DIR "
        "(the gRPC listeners are not built yet)");
    return kExitBadInput;
  }

  // Signals are taken synchronously in the main loop, not in handlers.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP})
    sigaddset(&signals, s);
  sigprocmask(SIG_BLOCK, &signals, nullptr);

  auto kernel = nft::MnlKernel::open();
  if (!kernel) {
    spdlog::error("bulkhead-agent: cannot reach nftables: {}", kernel.error().describe());
    return kExitRuntime;
  }
  compiler::CompileOptions options;
  options.table = config->table;
  options.logGroup = config->logGroup;
  agent::Enforcer enforcer(**kernel, options);

  bool invalid = false;
  if (!loadAndApply(enforcer, config->policiesDir, &invalid))
    return invalid ? kExitBadInput : kExitRuntime;

  for (;;) {
    timespec timeout{static_cast<time_t>(config->resyncSeconds), 0};
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("stopping; table inet {} stays in the kernel", config->table);
      return 0;
    }
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", config->policiesDir);
      loadAndApply(enforcer, config->policiesDir, &invalid);
      continue;
    }
    auto repaired = enforcer.repairIfMissing();
    if (!repaired) {
      spdlog::error("re-checking table inet {}: {}", config->table, repaired.error().describe());
    } else if (*repaired) {
      spdlog::warn("table inet {} was missing; restored it", config->table);
    }
  }
}
