#include "support/hooks.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "bulkhead/hooks/agent_link.h"

namespace bulkhead::testing {

namespace fs = std::filesystem;

namespace {

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

std::string failClosedFlags(const std::string& pattern) {
  return "--workload-interfaces " + shellQuote(pattern);
}

HookAgent::HookAgent(Netns& hv, fs::path dir, std::string extraFlags)
    : agent_(hv, std::move(dir)), extra_(std::move(extraFlags)) {}

void HookAgent::start() {
  ASSERT_NO_FATAL_FAILURE(agent_.start(extra_));
  if (pushed_) return;
  std::ofstream(agent_.dir() / "policy.yaml") << kBillingPolicy;
  ASSERT_NO_FATAL_FAILURE(agent_.push(agent_.dir() / "policy.yaml"));
  pushed_ = true;
}

void HookAgent::stop() {
  agent_.stop(10000);
}

void HookAgent::registerBulk(int n) {
  auto link = hooks::grpcConnector(std::chrono::minutes(10))(socket());
  ASSERT_TRUE(link.ok()) << link.error().message;
  for (int i = 0; i < n; ++i) {
    v1::Workload w;
    w.set_name("bulk-" + std::to_string(i));
    w.set_app("billing");
    w.add_interfaces("bk" + std::to_string(i));
    char addr[64];
    std::snprintf(addr, sizeof addr, "2001:db8:b::%x:%x", i >> 16, i & 0xffff);
    w.add_addresses(addr);
    auto st = (*link)->upsert(w);
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
}

PluginRun runPlugin(const Netns& ns, const std::string& binary, const std::string& command,
                    const std::string& containerId, const std::string& netnsPath,
                    const std::string& ifname, const std::string& cniArgs,
                    const std::string& stdinJson, const std::string& extraEnv) {
  static int counter = 0;
  const std::string base =
      "/tmp/bht-cni-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
  std::ofstream(base + ".in") << stdinJson;
  // Grouped: sh() sends the group's stderr to its output, not the plugin's.
  const std::string cmd =
      "{ ip netns exec " + ns.name() + " env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin" +
      " CNI_COMMAND=" + command + " CNI_CONTAINERID=" + shellQuote(containerId) +
      " CNI_NETNS=" + shellQuote(netnsPath) + " CNI_IFNAME=" + ifname +
      " CNI_ARGS=" + shellQuote(cniArgs) + " CNI_PATH=/usr/lib/cni " + extraEnv + " " + binary +
      " <" + base + ".in >" + base + ".out 2>" + base + ".err; }";
  PluginRun r;
  r.status = sh(cmd).status;
  r.out = readAll(base + ".out");
  r.err = readAll(base + ".err");
  for (const char* ext : {".in", ".out", ".err"})
    ::unlink((base + ext).c_str());
  return r;
}

nlohmann::json CniRuntime::pluginConf(size_t i) const {
  nlohmann::json c = list_["plugins"][i];
  c["name"] = list_["name"];
  c["cniVersion"] = list_["cniVersion"];
  return c;
}

PluginRun CniRuntime::add(const std::string& id, const std::string& netns,
                          const std::string& args) {
  PluginRun last;
  nlohmann::json prev;
  for (size_t i = 0; i < list_["plugins"].size(); ++i) {
    nlohmann::json c = pluginConf(i);
    if (!prev.is_null()) c["prevResult"] = prev;
    const std::string type = c["type"];
    last = runPlugin(hv_, path_ + "/" + type, "ADD", id, netns, "eth0", args, c.dump());
    if (last.status != 0) return last;
    prev = nlohmann::json::parse(last.out);
  }
  return last;
}

PluginRun CniRuntime::check(const std::string& id, const std::string& netns,
                            const std::string& args, const std::string& result) {
  PluginRun last;
  for (size_t i = 0; i < list_["plugins"].size(); ++i) {
    nlohmann::json c = pluginConf(i);
    c["prevResult"] = nlohmann::json::parse(result);
    last = runPlugin(hv_, path_ + "/" + std::string(c["type"]), "CHECK", id, netns, "eth0", args,
                     c.dump());
    if (last.status != 0) return last;
  }
  return last;
}

PluginRun CniRuntime::del(const std::string& id, const std::string& netns, const std::string& args,
                          const std::string& result) {
  PluginRun last;
  for (size_t i = list_["plugins"].size(); i-- > 0;) {
    nlohmann::json c = pluginConf(i);
    if (!result.empty()) c["prevResult"] = nlohmann::json::parse(result);
    last = runPlugin(hv_, path_ + "/" + std::string(c["type"]), "DEL", id, netns, "eth0", args,
                     c.dump());
    if (last.status != 0) return last;
  }
  return last;
}

}  // namespace bulkhead::testing
