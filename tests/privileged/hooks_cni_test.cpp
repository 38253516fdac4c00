// bulkhead-cni end to end: Debian's real ptp and host-local plugins and
// bulkhead-cni, chained in a conflist and driven as a runtime drives them,
// wire a network namespace standing for a container to a hypervisor
// namespace running the real bulkhead-agent; then real traffic, a deny
// event, CHECK, DEL, the agent stopped, GC and STATUS.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "support/agent_host.h"
#include "support/hooks.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kBin = BULKHEAD_BINARY_DIR;
constexpr const char* kCniPath = "/usr/lib/cni";

class HooksCniTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
    ASSERT_TRUE(fs::exists(std::string(kCniPath) + "/ptp") &&
                fs::exists(std::string(kCniPath) + "/host-local"))
        << "needs Debian's containernetworking-plugins (packaging/install-deps.sh)";
    sweepStaleNamespaces();
    dir_ = freshTestDir("cni");
    fs::create_directories(dir_ / "ipam");
    topo_ = std::make_unique<Topology>();
    auto& server = topo_->addHost("vsrv1", "198.51.100.10", "");
    for (int port : {5432, 22})
      servers_.push_back(std::make_unique<Process>(*server.ns, tcpListenCmd(port, false)));
    ASSERT_TRUE(waitListening(*server.ns, 5432, false));
    // bulkhead-cni is installed next to the standard plugins; here CNI_PATH
    // is a directory holding links to all three.
    fs::create_directories(dir_ / "cni");
    for (const char* p : {"ptp", "host-local"})
      fs::create_symlink(std::string(kCniPath) + "/" + p, dir_ / "cni" / p);
    fs::create_symlink(kBin + "/bulkhead-cni", dir_ / "cni" / "bulkhead-cni");
    agent_ = std::make_unique<HookAgent>(topo_->hv(), dir_, failClosedFlags("veth*"));
    agent_->start();
  }

  void TearDown() override {
    // As a runtime would on teardown, so that ptp removes its veths and
    // routes from the hypervisor namespace before it goes.
    for (auto& [id, c] : containers_)
      if (!c.result.empty()) runtime().del(id, path(*c.ns), "", c.result);
    containers_.clear();
    agent_.reset();
    servers_.clear();
    topo_.reset();
    fs::remove_all(dir_);
  }

  json conflist(const std::string& version = "1.0.0") const {
    return json{{"cniVersion", version},
                {"name", "bhnet"},
                {"plugins",
                 {{{"type", "ptp"},
                   {"ipMasq", false},
                   {"ipam",
                    {{"type", "host-local"},
                     {"subnet", "192.0.2.0/24"},
                     {"dataDir", (dir_ / "ipam").string()},
                     {"routes", {{{"dst", "0.0.0.0/0"}}}}}}},
                  {{"type", "bulkhead-cni"}, {"agent", agent_->socket()}, {"appLabel", "app"}}}}};
  }
  CniRuntime runtime() const {
    return CniRuntime(topo_->hv(), conflist(), (dir_ / "cni").string());
  }
  static std::string path(const Netns& ns) { return "/run/netns/" + ns.name(); }

  struct Container {
    std::unique_ptr<Netns> ns;
    std::string result;  // of the ADD, for DEL
  };
  // A container's namespace, wired by the conflist; returns the ADD run.
  PluginRun addContainer(const std::string& id, const std::string& args) {
    auto& c = containers_[id];
    c.ns = std::make_unique<Netns>();
    PluginRun r = runtime().add(id, path(*c.ns), args);
    if (r.status == 0) c.result = r.out;
    return r;
  }
  std::string containerAddress(const std::string& id) {
    const json result = json::parse(containers_[id].result);
    const std::string cidr = result["ips"][0]["address"];
    return cidr.substr(0, cidr.find('/'));
  }
  json workloads() {
    auto ls = agent_->cli("workload ls --json");
    EXPECT_TRUE(ls.ok()) << ls.out;
    return json::parse(ls.out)["workloads"];
  }
  const json* workload(const json& list, const std::string& name) {
    for (const auto& w : list)
      if (w["name"] == name) return &w;
    return nullptr;
  }
  // bulkhead-cni alone, for the 1.1 commands (Debian's ptp speaks 1.0.0).
  PluginRun cni11(const std::string& command, json conf) {
    conf["cniVersion"] = "1.1.0";
    conf["name"] = "bhnet";
    conf["type"] = "bulkhead-cni";
    conf["agent"] = agent_->socket();
    return runPlugin(topo_->hv(), kBin + "/bulkhead-cni", command, "", "", "", "", conf.dump());
  }

  fs::path dir_;
  std::unique_ptr<Topology> topo_;
  std::vector<std::unique_ptr<Process>> servers_;
  std::unique_ptr<HookAgent> agent_;
  std::map<std::string, Container> containers_;
};

const std::string kPodArgs =
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=billing-7;app=billing";
const std::string kId1 = "c0ffee0000000000000000000000000000000000000000000000000000000001";

TEST_F(HooksCniTest, PtpThenBulkheadCniEnforcesAndExportsDenyThenDelAndCheck) {
  // The flow stream, watching before any traffic.
  const std::string flows = (dir_ / "flows.jsonl").string();
  Process follow(topo_->hv(), kBin + "/bulkhead --agent " + agent_->socket() +
                                  " flows --follow --json > " + flows);
  PluginRun add = addContainer(kId1, kPodArgs);
  ASSERT_EQ(add.status, 0) << add.out << add.err << agent_->log();
  // bulkhead-cni's result is ptp's, unchanged.
  const json result = json::parse(add.out);
  ASSERT_EQ(result["interfaces"].size(), 2u) << add.out;
  const std::string hostVeth = result["interfaces"][0]["name"];
  EXPECT_EQ(hostVeth.rfind("veth", 0), 0u) << add.out;

  const json list = workloads();
  const json* w = workload(list, "prod/billing-7");
  ASSERT_NE(w, nullptr) << list.dump();
  EXPECT_EQ((*w)["app"], "billing");
  EXPECT_EQ((*w)["source"], "cni");
  EXPECT_EQ((*w)["owner"], "bhnet/" + kId1 + "/eth0");
  EXPECT_EQ((*w)["interfaces"], json::array({hostVeth}));
  EXPECT_EQ((*w)["addresses"], json::array({containerAddress(kId1)}));  // /24 from IPAM, /32 here
  auto ls = agent_->cli("workload ls");
  EXPECT_NE(ls.out.find("bhnet/" + kId1 + "/eth0"), std::string::npos) << ls.out;

  const Netns& c = *containers_[kId1].ns;
  auto allowed = tcpProbe(c, "198.51.100.10", 5432);
  EXPECT_TRUE(allowed.ok) << allowed.out;
  auto denied = tcpProbe(c, "198.51.100.10", 22, 2.0);
  EXPECT_FALSE(denied.ok) << denied.out;
  std::string events;
  EXPECT_TRUE(waitFor(
      [&] {
        events = readAll(flows);
        return events.find("\"workload\": \"prod/billing-7\"") != std::string::npos &&
               events.find("\"action\": \"deny\"") != std::string::npos &&
               events.find("\"dport\": 22") != std::string::npos;
      },
      5000))
      << events;

  auto check = runtime().check(kId1, path(c), kPodArgs, containers_[kId1].result);
  EXPECT_EQ(check.status, 0) << check.out << check.err;

  auto del = runtime().del(kId1, path(c), kPodArgs, containers_[kId1].result);
  ASSERT_EQ(del.status, 0) << del.out << del.err;
  EXPECT_EQ(workload(workloads(), "prod/billing-7"), nullptr);
  // DEL again (runtimes retry) succeeds.
  EXPECT_EQ(runtime().del(kId1, path(c), kPodArgs, containers_[kId1].result).status, 0);
  // CHECK after DEL fails, with the spec's error object.
  auto after =
      runPlugin(topo_->hv(), kBin + "/bulkhead-cni", "CHECK", kId1, path(c), "eth0", kPodArgs, [&] {
        json conf = conflist()["plugins"][1];
        conf["cniVersion"] = "1.0.0";
        conf["name"] = "bhnet";
        conf["prevResult"] = json::parse(containers_[kId1].result);
        return conf.dump();
      }());
  EXPECT_NE(after.status, 0);
  const json error = json::parse(after.out, nullptr, false);
  ASSERT_FALSE(error.is_discarded()) << after.out;
  EXPECT_EQ(error["code"], 101) << after.out;
  EXPECT_NE(std::string(error["msg"]).find("not registered"), std::string::npos) << after.out;
  containers_[kId1].result.clear();
}

TEST_F(HooksCniTest, AddWithTheAgentStoppedFailsAndRegistersNothing) {
  agent_->stop();
  const std::string id = "deadbeef00000000000000000000000000000000000000000000000000000002";
  PluginRun add = addContainer(id, "IgnoreUnknown=1;app=billing");
  EXPECT_NE(add.status, 0) << add.out;
  const json error = json::parse(add.out);
  EXPECT_EQ(error["code"], 11) << add.out;
  EXPECT_NE(add.out.find("unreachable"), std::string::npos) << add.out;
  // The runtime tears down what ptp made (DEL without a result: best effort).
  EXPECT_EQ(runtime().del(id, path(*containers_[id].ns), "IgnoreUnknown=1;app=billing", "").status,
            0);
  agent_->start();
  EXPECT_EQ(workload(workloads(), "deadbeef0000/eth0"), nullptr);
  EXPECT_EQ(workloads().size(), 0u);
}

TEST_F(HooksCniTest, GcRemovesStaleRegistrationsAndStatusReportsTheAgent) {
  const std::string keep = "aaaa000000000000000000000000000000000000000000000000000000000003";
  const std::string stale = "bbbb000000000000000000000000000000000000000000000000000000000004";
  ASSERT_EQ(addContainer(keep, "IgnoreUnknown=1;app=billing").status, 0) << agent_->log();
  ASSERT_EQ(addContainer(stale, "IgnoreUnknown=1;app=billing").status, 0) << agent_->log();
  ASSERT_EQ(agent_->cli("workload add api-1 --app billing --iface vapi1 --addr 192.0.2.250").status,
            0);
  ASSERT_EQ(workloads().size(), 3u);
  auto gc = cni11(
      "GC", json{{"cni.dev/valid-attachments", {{{"containerID", keep}, {"ifname", "eth0"}}}}});
  ASSERT_EQ(gc.status, 0) << gc.out << gc.err;
  const json list = workloads();
  EXPECT_NE(workload(list, "aaaa00000000/eth0"), nullptr) << list.dump();
  EXPECT_EQ(workload(list, "bbbb00000000/eth0"), nullptr) << list.dump();
  EXPECT_NE(workload(list, "api-1"), nullptr) << list.dump();  // not the plugin's

  EXPECT_EQ(cni11("STATUS", json::object()).status, 0);
  agent_->stop();
  auto down = cni11("STATUS", json::object());
  EXPECT_NE(down.status, 0);
  EXPECT_EQ(json::parse(down.out)["code"], 50) << down.out;
  auto version = runPlugin(topo_->hv(), kBin + "/bulkhead-cni", "VERSION", "", "", "", "",
                           R"({"cniVersion":"1.1.0"})");
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(json::parse(version.out)["supportedVersions"], json::array({"1.0.0", "1.1.0"}));
  agent_->start();
}

// The agent runs with --workload-interfaces 'veth*': between ptp's ADD and
// bulkhead-cni's, the container's veth exists unregistered and its packets
// are dropped, even to a destination its app may reach.
TEST_F(HooksCniTest, TheVethIsDroppedUntilTheRegistrationLands) {
  const std::string id = "cccc000000000000000000000000000000000000000000000000000000000005";
  auto& c = containers_[id];
  c.ns = std::make_unique<Netns>();
  json ptp = conflist()["plugins"][0];
  ptp["name"] = "bhnet";
  ptp["cniVersion"] = "1.0.0";
  PluginRun wired = runPlugin(topo_->hv(), std::string(kCniPath) + "/ptp", "ADD", id, path(*c.ns),
                              "eth0", "IgnoreUnknown=1;app=billing", ptp.dump());
  ASSERT_EQ(wired.status, 0) << wired.out << wired.err;
  c.result = wired.out;  // for the teardown
  auto gap = tcpProbe(*c.ns, "198.51.100.10", 5432, 2.0);
  EXPECT_FALSE(gap.ok) << gap.out;
  json conf = conflist()["plugins"][1];
  conf["name"] = "bhnet";
  conf["cniVersion"] = "1.0.0";
  conf["prevResult"] = json::parse(wired.out);
  PluginRun add = runPlugin(topo_->hv(), kBin + "/bulkhead-cni", "ADD", id, path(*c.ns), "eth0",
                            "IgnoreUnknown=1;app=billing", conf.dump());
  ASSERT_EQ(add.status, 0) << add.out << add.err;
  EXPECT_EQ(json::parse(add.out), json::parse(wired.out));
  auto after = tcpProbe(*c.ns, "198.51.100.10", 5432);
  EXPECT_TRUE(after.ok) << after.out << agent_->log();
}

TEST_F(HooksCniTest, AgainstAnAgentHolding1000Workloads) {
  agent_->registerBulk(1000);
  PluginRun add = addContainer(kId1, kPodArgs);
  ASSERT_EQ(add.status, 0) << add.out << add.err;
  EXPECT_EQ(workloads().size(), 1001u);
  auto allowed = tcpProbe(*containers_[kId1].ns, "198.51.100.10", 5432);
  EXPECT_TRUE(allowed.ok) << allowed.out;
  EXPECT_FALSE(tcpProbe(*containers_[kId1].ns, "198.51.100.10", 22, 2.0).ok);
  auto del = runtime().del(kId1, path(*containers_[kId1].ns), kPodArgs, containers_[kId1].result);
  ASSERT_EQ(del.status, 0) << del.out;
  containers_[kId1].result.clear();
  EXPECT_EQ(workloads().size(), 1000u);
}

}  // namespace
}  // namespace bulkhead::testing
