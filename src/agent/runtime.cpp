#include "bulkhead/agent/runtime.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <tuple>

#include "bulkhead/common/file.h"
#include "bulkhead/common/thread_name.h"

namespace bulkhead::agent {

namespace {

// The core refuses local pushes when it follows a controller; a core
// without that option (CoreOptions::controller) is left as it is.
std::string joinedControllers(const AgentConfig& config) {
  std::string controllers;
  for (const auto& c : config.controllers)
    controllers += (controllers.empty() ? "" : ",") + c;
  return controllers;
}

template <class Options>
void followController(Options& options, const AgentConfig& config) {
  if constexpr (requires { options.controller = std::string(); })
    options.controller = joinedControllers(config);
}

}  // namespace

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
  followController(options, config);
  return options;
}

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

std::string agentHost(const AgentConfig& config) {
  return config.host.empty() ? hostName() : config.host;
}

namespace {

// One PEM file of the controller's TLS settings; `flag` names it in errors.
Result<std::string> readPem(const std::string& flag, const std::string& path,
                            common::PemKind kind) {
  constexpr size_t kMaxPemBytes = 1 << 20;  // a PEM file is a few kilobytes
  if (path.empty()) return std::string();
  auto text = common::readFileBounded(path, kMaxPemBytes);
  if (!text)
    return makeError(ErrorCode::kInvalidInput, flag + " " + path + ": " + text.error().describe());
  if (!common::looksLikePem(*text, kind))
    return makeError(ErrorCode::kInvalidInput,
                     flag + " " + path + ": not a PEM " +
                         (kind == common::PemKind::kPrivateKey ? "private key" : "certificate"));
  return text;
}

}  // namespace

Result<ControllerLinkOptions> controllerLinkOptions(const AgentConfig& config,
                                                    const std::string& host) {
  ControllerLinkOptions options;
  options.controllers = config.controllers;
  options.host = host;
  options.agentVersion = kAgentVersion;
  // A bundle as large as a push may be, and its envelope.
  options.maxMessageBytes = int(config.maxBundleBytes + (1u << 20));
  const std::tuple<const char*, const std::string*, common::PemKind, std::string*> pems[] = {
      {"--controller-ca", &config.controllerCa, common::PemKind::kCertificate, &options.tls.caPem},
      {"--controller-cert", &config.controllerCert, common::PemKind::kCertificate,
       &options.tls.certPem},
      {"--controller-key", &config.controllerKey, common::PemKind::kPrivateKey,
       &options.tls.keyPem}};
  for (const auto& [flag, path, kind, out] : pems) {
    auto pem = readPem(flag, *path, kind);
    if (!pem) return pem.takeError();
    *out = std::move(*pem);
  }
  return options;
}

Result<std::unique_ptr<ControllerLink>> startControllerLink(FleetMember& member,
                                                            const AgentConfig& config,
                                                            const std::string& host) {
  if (config.controllers.empty()) return std::unique_ptr<ControllerLink>();
  auto options = controllerLinkOptions(config, host);
  if (!options) return options.takeError();
  spdlog::info("following controller {} as host {}", joinedControllers(config), host);
  return std::make_unique<ControllerLink>(member, std::move(*options));
}

PolicyOutcome applyPolicyDir(AgentCore& core, const AgentConfig& config) {
  if (!config.controllers.empty()) {
    spdlog::warn("--policies {} ignored: this agent takes its policy from its controller",
                 config.policiesDir);
    return PolicyOutcome::kApplied;
  }
  auto refused = [&](const Error& e) {
    const bool invalid = e.code == ErrorCode::kInvalidInput || e.code == ErrorCode::kTooLarge;
    spdlog::error("policy in {} {}:\n{}", config.policiesDir,
                  invalid ? "rejected, nothing applied" : "not applied", e.describe());
    return invalid ? PolicyOutcome::kInvalid : PolicyOutcome::kFailed;
  };
  auto files = AgentCore::readPolicyFiles(config.policiesDir, config.maxBundleBytes);
  if (!files) return refused(files.error());
  PolicyPush push;
  push.files = std::move(*files);
  auto r = core.applyPolicy(push);
  if (!r) return refused(r.error());
  for (const auto& w : r->warnings)
    spdlog::warn("{}", w);
  const auto st = core.status();
  spdlog::info("policy from {} in force in table inet {}: version {}, {} elements, {} chains ({})",
               config.policiesDir, st.table, r->version, st.setElements, st.chains,
               r->changed && r->change ? r->change->summary : "unchanged");
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
    : housekeeping_(core, std::move(options), std::move(events)), thread_([this] {
        common::nameThisThread("bh-housekeeping");
        housekeeping_.run(stop_);
      }) {}

HousekeepingThread::~HousekeepingThread() {
  stop();
}

void HousekeepingThread::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace bulkhead::agent
