// Test support for the orchestration hooks: the real bulkhead-agent in a
// hypervisor namespace with a policy pushed, a CNI runtime driving real
// plugins as libcni does (conflist, CNI_* environment, each result fed as
// the next plugin's prevResult), and bulk registration over the API.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {

// The agent flags that drop packets of unregistered interfaces matching
// `pattern` (the runtime's naming) until the hook has registered them.
std::string failClosedFlags(const std::string& pattern);

// bulkhead-agent in `hv`, its socket and state in `dir`, with kBillingPolicy
// pushed once.
class HookAgent {
 public:
  HookAgent(Netns& hv, std::filesystem::path dir, std::string extraFlags = "");
  void start();  // and waits until it answers; pushes kBillingPolicy once
  void stop();   // SIGTERM, waits
  bool running() const { return agent_.pid() != -1; }
  const std::string& socket() const { return agent_.socket(); }
  CmdResult cli(const std::string& args) const { return agent_.cli(args); }
  std::string log() const { return agent_.log(); }
  // Registers `n` API workloads (name "bulk-<i>", app billing, interface
  // "bk<i>", address 203.0.113.0/24 + 10.x... from 198.18.0.0/15) quickly,
  // in-process over gRPC.
  void registerBulk(int n);

 private:
  AgentHost agent_;
  std::string extra_;
  bool pushed_ = false;
};

// One plugin invocation's outcome.
struct PluginRun {
  int status = -1;
  std::string out, err;
};

// Runs `binary` in `ns` (the hypervisor) with the CNI environment and
// `stdinJson`.
PluginRun runPlugin(const Netns& ns, const std::string& binary, const std::string& command,
                    const std::string& containerId, const std::string& netnsPath,
                    const std::string& ifname, const std::string& cniArgs,
                    const std::string& stdinJson, const std::string& extraEnv = "");

// A conflist executed as a runtime does.
class CniRuntime {
 public:
  CniRuntime(const Netns& hv, nlohmann::json conflist, std::string cniPath)
      : hv_(hv), list_(std::move(conflist)), path_(std::move(cniPath)) {}
  // ADD through every plugin; the last result (or the failing plugin's
  // output, with its status).
  PluginRun add(const std::string& id, const std::string& netns, const std::string& args);
  // CHECK / DEL with the ADD's result as prevResult (DEL in reverse order).
  PluginRun check(const std::string& id, const std::string& netns, const std::string& args,
                  const std::string& result);
  PluginRun del(const std::string& id, const std::string& netns, const std::string& args,
                const std::string& result);

 private:
  nlohmann::json pluginConf(size_t i) const;
  const Netns& hv_;
  nlohmann::json list_;
  std::string path_;
};

}  // namespace bulkhead::testing
