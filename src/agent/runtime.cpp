#include "bulkhead/agent/runtime.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace bulkhead::agent {

compiler::CompileOptions compileOptions(const AgentConfig& config) {
  compiler::CompileOptions compile;
  compile.table = config.table;
  compile.logGroup = config.logGroup;
  compile.logRatePerSecond = config.logRate;
  compile.logBurst = 2 * config.logRate;
  compile.workloadInterfacePatterns = config.workloadInterfaces;
  return compile;
}

CoreOptions coreOptions(const AgentConfig& config, std::string host) {
  CoreOptions options;
  options.stateDir = config.stateDir;
  options.maxBundleBytes = config.maxBundleBytes;
  options.host = std::move(host);
  return options;
}

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

PolicyOutcome applyPolicyDir(AgentCore& core, const AgentConfig& config) {
  auto refused = [&](const Error& e) {
    const bool invalid = e.code == ErrorCode::kInvalidInput || e.code == ErrorCode::kTooLarge;
    spdlog::error("policy in {} {}:\n{}", config.policiesDir,
                  invalid ? "rejected, nothing applied" : "not applied", e.describe());
    return invalid ? PolicyOutcome::kInvalid : PolicyOutcome::kFailed;
  };
  auto files = AgentCore::readPolicyFiles(config.policiesDir, config.maxBundleBytes);
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
  return PolicyOutcome::kApplied;
}

void reloadConfig(const std::vector<std::string>& args, AgentConfig& config) {
  auto fresh = parseAgentArgs(args);
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

TableEventWait openTableEvents(const AgentConfig& config, uint32_t ownPortId,
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

HousekeepingThread::HousekeepingThread(AgentCore& core, HousekeepingOptions options,
                                       TableEventWait events)
    : housekeeping_(core, std::move(options), std::move(events)),
      thread_([this] { housekeeping_.run(stop_); }) {}

HousekeepingThread::~HousekeepingThread() {
  stop();
}

void HousekeepingThread::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace bulkhead::agent
