// bulkhead-controller: wires the store, the core, the gRPC service and the
// signals. SIGTERM/SIGINT stop it cleanly (the inventory is written);
// SIGHUP pushes --policies again.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bulkhead/common/allocator.h"
#include "bulkhead/common/defaults.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/common/signals.h"
#include "bulkhead/controller/config.h"
#include "bulkhead/controller/core.h"
#include "bulkhead/controller/etcd_store.h"
#include "bulkhead/controller/server.h"
#include "bulkhead/controller/service.h"
#include "bulkhead/controller/store.h"

namespace {

using namespace bulkhead;
using common::kExitBadInput;
using common::kExitRuntime;

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

// kExitOk when applied or unchanged.
int pushPolicies(controller::ControllerCore& core, const controller::ControllerConfig& config) {
  if (config.policiesDir.empty()) return common::kExitOk;
  auto r = controller::pushPolicyDir(core, config.policiesDir, config.maxBundleBytes);
  if (!r) {
    spdlog::error("policy in {} rejected, nothing changed:\n{}", config.policiesDir,
                  r.error().describe());
    return r.error().code == ErrorCode::kInvalidInput || r.error().code == ErrorCode::kTooLarge
               ? kExitBadInput
               : kExitRuntime;
  }
  for (const auto& w : r->warnings())
    spdlog::warn("{}", w);
  spdlog::info("policy from {}: revision {} (version {}, {})", config.policiesDir, r->revision(),
               escapeForLog(r->version()), r->changed() ? "new" : "unchanged");
  return common::kExitOk;
}

// The embedded store under --state-dir, or etcd with --etcd.
Result<std::unique_ptr<controller::Store>> openStore(const controller::ControllerConfig& config,
                                                     const std::string& name) {
  if (config.etcdEndpoints.empty())
    return std::unique_ptr<controller::Store>(
        std::make_unique<controller::FileStore>(config.stateDir));
  etcd::ClientOptions options;
  options.endpoints = config.etcdEndpoints;
  options.caFile = config.etcdCa;
  options.certFile = config.etcdCert;
  options.keyFile = config.etcdKey;
  auto client = etcd::Client::connect(options);
  if (!client) return client.takeError();
  controller::EtcdStoreOptions storeOptions;
  storeOptions.prefix = config.etcdPrefix;
  storeOptions.hostTtl = std::chrono::seconds(config.hostTtlSeconds);
  storeOptions.name = name;
  return std::unique_ptr<controller::Store>(
      std::make_unique<controller::EtcdStore>(std::move(*client), std::move(storeOptions)));
}

std::string storeName(const controller::ControllerConfig& config) {
  if (config.etcdEndpoints.empty()) return config.stateDir;
  std::string out = "etcd ";
  for (const auto& e : config.etcdEndpoints)
    out += (out.size() > 5 ? "," : "") + e;
  return out + " under " + config.etcdPrefix;
}

}  // namespace

int main(int argc, char** argv) {
  // Its core is serialized by one lock, but gRPC's threads encode and send
  // to many agents at once: a few arenas more than the agent's two.
  common::boundAllocator(4);
  spdlog::set_default_logger(spdlog::stderr_logger_mt("bulkhead-controller"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") {
      fputs(controller::controllerUsage(), stdout);
      return 0;
    }
    if (arg == "--version") {
      fputs("bulkhead-controller 0.1.0\n", stdout);
      return 0;
    }
  }
  auto config = controller::parseControllerArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!config) {
    spdlog::error("bulkhead-controller: {}", config.error().message);
    return kExitBadInput;
  }
  const sigset_t signals = common::blockDaemonSignals();
  auto store = openStore(*config, hostName());
  if (!store) {
    spdlog::error("bulkhead-controller: {}", store.error().describe());
    return store.error().code == ErrorCode::kInvalidInput ? kExitBadInput : kExitRuntime;
  }
  controller::ControllerCore core(**store, controller::controllerOptions(*config, hostName()));
  if (auto st = core.load(); !st) {
    spdlog::error("bulkhead-controller: cannot load the state in {}: {}", storeName(*config),
                  st.error().describe());
    return kExitRuntime;
  }
  if (const int rc = pushPolicies(core, *config); rc != common::kExitOk) return rc;
  core.start();
  controller::ControllerService service(core);
  auto server = controller::startServer(service, *config);
  if (!server) {
    spdlog::error("bulkhead-controller: {}", server.error().describe());
    return server.error().code == ErrorCode::kInvalidInput ? kExitBadInput : kExitRuntime;
  }
  spdlog::info("serving on {} (revision {}, state in {})", config->listen, core.revision(),
               storeName(*config));
  sd_notify(0, "READY=1");
  for (;;) {
    const int sig = sigwaitinfo(&signals, nullptr);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) pushPolicies(core, *config);
  }
  sd_notify(0, "STOPPING=1");
  spdlog::info("stopping");
  service.shutdown();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  core.stop();
  return 0;
}
