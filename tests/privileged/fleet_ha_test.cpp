// Several controllers on one etcd, end to end: real etcd (tests/support/
// etcd_server.h) on loopback, two real bulkhead-controller processes on it
// (unix sockets), and three real agents in namespaces, each listing both
// controllers in its --controller, in different orders (ha and hb dial c0
// first, hc dials c1 first). What is checked is what the agents report
// (applied revision, bundles applied, remote workloads), read with the CLI:
// a push to either controller reaches every agent, a killed controller's
// agents move to the other and keep receiving pushes without a table
// rewrite, the killed one restarts and serves, a workload of a host on one
// controller reaches a host on the other, etcd restarted or compacted under
// the controllers, and a three-member etcd cluster with a member killed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "support/agent_host.h"
#include "support/etcd_server.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// frontend may reach payments-api (the workloads of app payments); the
// second and third bundles differ only by a comment (a new revision).
const char* kBundle = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: payments-api}
spec:
  appSelector: {app: payments}
  ports: [tcp/8443]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: frontend}
spec:
  egress:
    - to: [payments-api]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: payments}
spec: {}
)";

// A process in the root namespace (where etcd listens on loopback), in its
// own process group; killed and reaped on destruction.
class RootProcess {
 public:
  explicit RootProcess(const std::string& cmd) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      execlp("sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    setpgid(pid_, pid_);
  }
  ~RootProcess() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  RootProcess(const RootProcess&) = delete;
  RootProcess& operator=(const RootProcess&) = delete;
  void signal(int sig) { ::kill(-pid_, sig); }

 private:
  pid_t pid_ = -1;
};

struct Agent {
  std::string name;
  std::unique_ptr<Netns> ns;
  std::unique_ptr<AgentHost> host;
};

class FleetHaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("fleet-ha");
    std::ofstream(dir_ / "policy.yaml") << kBundle;
  }

  void TearDown() override {
    agents_.clear();
    controllers_.clear();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Two controllers on `etcd` (a comma-separated list), three agents.
  void startFleet(const std::string& etcd) {
    etcd_ = etcd;
    for (int i = 0; i < 2; ++i)
      ASSERT_NO_FATAL_FAILURE(startController(i));
    for (const auto& [name, first] :
         std::vector<std::pair<std::string, int>>{{"ha", 0}, {"hb", 0}, {"hc", 1}})
      ASSERT_NO_FATAL_FAILURE(startAgent(name, first));
    ASSERT_TRUE(waitFor([&] { return connected(0) == 3 && connected(1) == 3; }, 20000))
        << status(0) << logs();
  }

  // The fleet on `etcd`, and a first push that every agent applied.
  void startFleetAndPush(const std::string& etcd, const std::string& version, uint64_t* revision) {
    ASSERT_NO_FATAL_FAILURE(startFleet(etcd));
    const uint64_t r = push(0, version);
    ASSERT_GT(r, 0u) << logs();
    ASSERT_TRUE(waitFor([&] { return allApplied(r); }, 10000)) << logs();
    *revision = r;
  }

  std::string socket(int i) const { return (dir_ / ("c" + std::to_string(i) + ".sock")).string(); }

  void startController(int i) {
    fs::remove(socket(i));
    controllers_[i] = std::make_unique<RootProcess>(
        "exec " + binaryDir() + "/bulkhead-controller --listen unix://" + socket(i) + " --etcd " +
        etcd_ + " --host-ttl 60 2>>" + (dir_ / ("c" + std::to_string(i) + ".log")).string());
    ASSERT_TRUE(waitFor([&] { return ctl(i, "status --json").status == 0; }, 10000)) << logs();
  }

  void startAgent(const std::string& name, int first) {
    Agent& a = agents_[name];
    a.name = name;
    if (!a.ns) a.ns = std::make_unique<Netns>();
    a.host = std::make_unique<AgentHost>(*a.ns, dir_ / name);
    const std::string list = "unix://" + socket(first) + ",unix://" + socket(1 - first);
    ASSERT_TRUE(a.host->launch("--host " + name + " --controller " + list)) << logs();
  }

  CmdResult ctl(int i, const std::string& args) const {
    return sh(binaryDir() + "/bulkhead " + args + " --controller unix://" + socket(i));
  }

  nlohmann::json json(const CmdResult& r) const {
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }

  std::string status(int i) const { return ctl(i, "status --json").out; }

  // Hosts the fleet status of controller i shows connected (to any controller).
  int connected(int i) const {
    int n = 0;
    for (const auto& h : json(ctl(i, "status --json")).value("hosts", nlohmann::json::array()))
      n += h.value("connected", false) ? 1 : 0;
    return n;
  }

  uint64_t fleetRevision(int i) const {
    return json(ctl(i, "status --json")).value("revision", uint64_t(0));
  }

  nlohmann::json agentStatus(const std::string& name) const {
    return json(agents_.at(name).host->cli("status --json"));
  }
  uint64_t pushes(const std::string& name) const {
    return agentStatus(name).value("pushes", uint64_t(0));
  }

  // Every agent has `revision` in force: each host acked it (as a running
  // controller's fleet status shows) and each agent reports its version.
  bool allApplied(uint64_t revision) const {
    const int c = controllers_.count(0) ? 0 : 1;
    const auto hosts = json(ctl(c, "status --json")).value("hosts", nlohmann::json::array());
    int acked = 0;
    for (const auto& h : hosts)
      acked += h.value("acked_revision", uint64_t(0)) == revision ? 1 : 0;
    if (acked != int(agents_.size())) return false;
    for (const auto& [name, a] : agents_)
      if (agentStatus(name).value("version", "") != versions_.at(revision)) return false;
    return true;
  }

  // Pushes policy.yaml with `comment` appended through controller i; the
  // new revision (0 on failure). etcd may still be electing or
  // reconnecting: UNAVAILABLE is retried for `ms`.
  uint64_t push(int i, const std::string& comment, int ms = 1000) {
    std::ofstream(dir_ / "push.yaml") << kBundle << "# " << comment << "\n";
    uint64_t revision = 0;
    waitFor(
        [&] {
          const auto r = ctl(i, "push " + (dir_ / "push.yaml").string() + " --json");
          if (r.status != 0) return false;
          const auto j = json(r);
          revision = j.value("revision", uint64_t(0));
          if (revision) versions_[revision] = j.value("version", "");
          return revision != 0;
        },
        ms);
    return revision;
  }

  bool holdsRemote(const std::string& agent, const std::string& host, const std::string& name) {
    const auto j = json(agents_.at(agent).host->cli("workload ls --json"));
    for (const auto& w : j.value("workloads", nlohmann::json::array()))
      if (w.value("name", "") == name && w.value("host", "") == host) return true;
    return false;
  }

  // A workload on agent `agent`: a veth pair inside its namespace (the
  // workload side stays there: only the registration matters here).
  void addWorkload(const std::string& agent, const std::string& name, const std::string& app,
                   const std::string& iface, const std::string& addr) {
    const Agent& a = agents_.at(agent);
    ASSERT_TRUE(a.ns->exec("ip link add " + iface + " type veth peer name " + iface + "p").ok());
    const auto r = a.host->cli("workload add " + name + " --app " + app + " --iface " + iface +
                               " --addr " + addr);
    ASSERT_EQ(r.status, 0) << r.out;
  }

  std::string logs() const {
    std::string all;
    for (const std::string f :
         {"c0.log", "c1.log", "ha/agent.log", "hb/agent.log", "hc/agent.log"}) {
      std::string text = readAll((dir_ / f).string());
      if (text.size() > 2500) text = "..." + text.substr(text.size() - 2500);
      all += "\n--- " + f + "\n" + text;
    }
    return all;
  }

  int countInLog(int i, const std::string& needle) const {
    const std::string text = readAll((dir_ / ("c" + std::to_string(i) + ".log")).string());
    int n = 0;
    for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1))
      ++n;
    return n;
  }

  fs::path dir_;
  std::string etcd_;
  std::map<int, std::unique_ptr<RootProcess>> controllers_;
  std::map<std::string, Agent> agents_;
  std::map<uint64_t, std::string> versions_;  // revision -> version pushed
};

TEST_F(FleetHaTest, PushesReachEveryAgentAcrossAControllerFailover) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok()) << etcd.log();
  ASSERT_NO_FATAL_FAILURE(startFleet(etcd.endpoint()));
  // A push to c0 reaches the agents of both controllers.
  const uint64_t r1 = push(0, "first");
  ASSERT_GT(r1, 0u) << logs();
  ASSERT_TRUE(waitFor([&] { return allApplied(r1); }, 10000)) << logs();
  EXPECT_EQ(fleetRevision(1), r1);
  const uint64_t pushesBefore = pushes("ha");

  // c0 dies: ha and hb move to c1, which re-takes their records.
  controllers_[0]->signal(SIGKILL);
  controllers_.erase(0);
  ASSERT_TRUE(waitFor(
      [&] {
        const auto j = json(ctl(1, "status --json"));
        int onC1 = 0;
        for (const auto& h : j.value("hosts", nlohmann::json::array()))
          onC1 += h.value("connected", false) && !h.value("address", "").empty() ? 1 : 0;
        return onC1 == 3;
      },
      20000))
      << status(1) << logs();
  // The resumed stream re-applied nothing: the same revision, no new bundle.
  EXPECT_TRUE(allApplied(r1));
  EXPECT_EQ(pushes("ha"), pushesBefore);
  // A push made after the kill reaches every agent through c1.
  const uint64_t r2 = push(1, "after the kill");
  ASSERT_GT(r2, r1) << logs();
  ASSERT_TRUE(waitFor([&] { return allApplied(r2); }, 10000)) << logs();

  // c0 restarts from etcd and serves again: ha, restarted, dials c0 first.
  ASSERT_NO_FATAL_FAILURE(startController(0));
  EXPECT_EQ(fleetRevision(0), r2);
  ASSERT_NO_FATAL_FAILURE(startAgent("ha", 0));
  ASSERT_TRUE(waitFor(
      [&] {
        for (const auto& h : json(ctl(0, "status --json")).value("hosts", nlohmann::json::array()))
          if (h.value("host", "") == "ha")
            return h.value("connected", false) && !h.value("address", "").empty();
        return false;
      },
      15000))
      << status(0) << logs();
  const uint64_t r3 = push(1, "c0 back");
  ASSERT_GT(r3, r2);
  ASSERT_TRUE(waitFor([&] { return allApplied(r3); }, 10000)) << logs();
}

TEST_F(FleetHaTest, AWorkloadOnOneControllersHostReachesTheOthers) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok()) << etcd.log();
  uint64_t r1 = 0;
  ASSERT_NO_FATAL_FAILURE(startFleetAndPush(etcd.endpoint(), "first", &r1));
  // frontend on hc (served by c1) selects payments on ha (served by c0).
  ASSERT_NO_FATAL_FAILURE(addWorkload("hc", "fe-1", "frontend", "vfe1", "192.0.2.30"));
  ASSERT_NO_FATAL_FAILURE(addWorkload("ha", "pay-1", "payments", "vpay1", "192.0.2.10"));
  EXPECT_TRUE(waitFor([&] { return holdsRemote("hc", "ha", "pay-1"); }, 5000)) << logs();
  // hb runs no app that selects payments: span filtering holds across
  // controllers too.
  EXPECT_FALSE(holdsRemote("hb", "ha", "pay-1"));
  ASSERT_EQ(agents_.at("ha").host->cli("workload rm pay-1").status, 0);
  EXPECT_TRUE(waitFor([&] { return !holdsRemote("hc", "ha", "pay-1"); }, 5000)) << logs();
  // Every controller lists the fleet's workloads.
  EXPECT_NE(ctl(0, "workload ls --json").out.find("fe-1"), std::string::npos);
}

TEST_F(FleetHaTest, EtcdRestartedOrCompactedUnderRunningControllers) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok()) << etcd.log();
  uint64_t r1 = 0;
  ASSERT_NO_FATAL_FAILURE(startFleetAndPush(etcd.endpoint(), "first", &r1));

  // etcd restarted: the watches resume; a push after it is back reaches all.
  ASSERT_TRUE(etcd.restart()) << etcd.log();
  const uint64_t r2 = push(1, "after the restart", 20000);
  ASSERT_GT(r2, r1) << logs();
  ASSERT_TRUE(waitFor([&] { return allApplied(r2) && fleetRevision(0) == r2; }, 15000)) << logs();

  // c0 frozen while etcd restarts and c1 pushes and etcd compacts: c0's watch
  // resumes from a compacted revision, reloads once and carries on.
  controllers_[0]->signal(SIGSTOP);
  etcd.stop();  // c0's watch breaks while it sleeps
  ASSERT_TRUE(etcd.restart()) << etcd.log();
  const uint64_t r3 = push(1, "while c0 sleeps", 10000);
  ASSERT_GT(r3, r2);
  // One more write (outside bulkhead's prefix) and the history compacted up
  // to it: c0 resumes its watch at r3 at the latest, whatever it had read
  // before it froze, so below the compaction.
  auto client = etcd::Client::connect(etcd.clientOptions());
  ASSERT_TRUE(client.ok());
  auto marker = (*client)->put("/elsewhere/marker", "x");
  ASSERT_TRUE(marker.ok()) << marker.error().describe();
  ASSERT_GT(*marker, int64_t(r3));
  ASSERT_TRUE(etcd.compact(*marker));
  controllers_[0]->signal(SIGCONT);
  // c0 has r3 only through the reload (its watch never delivered it).
  ASSERT_TRUE(waitFor([&] { return fleetRevision(0) == r3; }, 15000)) << logs();
  ASSERT_TRUE(waitFor([&] { return countInLog(0, "etcd reloaded at revision") == 1; }, 5000))
      << logs();
  ASSERT_TRUE(waitFor([&] { return allApplied(r3); }, 15000)) << logs();
  const uint64_t r4 = push(0, "c0 pushes after its reload", 10000);
  ASSERT_GT(r4, r3) << logs();
  ASSERT_TRUE(waitFor([&] { return allApplied(r4); }, 10000)) << logs();
  // A workload registered on c1's host after the reload reaches c0's host:
  // c0's new watch delivers.
  ASSERT_NO_FATAL_FAILURE(addWorkload("ha", "fe-1", "frontend", "vfe1", "192.0.2.30"));
  ASSERT_NO_FATAL_FAILURE(addWorkload("hc", "pay-1", "payments", "vpay1", "192.0.2.10"));
  EXPECT_TRUE(waitFor([&] { return holdsRemote("ha", "hc", "pay-1"); }, 5000)) << logs();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  // Exactly one reload, not an error loop.
  EXPECT_EQ(countInLog(0, "compacted past the watched revision"), 1) << logs();
  EXPECT_EQ(countInLog(0, "etcd reloaded at revision"), 1) << logs();
  EXPECT_EQ(countInLog(0, "etcd reload failed"), 0) << logs();
}

TEST_F(FleetHaTest, ThreeMemberEtcdWithOneMemberKilledKeepsWorking) {
  EtcdCluster cluster(3);
  ASSERT_TRUE(cluster.ok()) << cluster.log(0);
  std::string list;
  for (const auto& e : cluster.endpoints())
    list += (list.empty() ? "" : ",") + e;
  uint64_t r1 = 0;
  ASSERT_NO_FATAL_FAILURE(startFleetAndPush(list, "three members", &r1));
  cluster.killMember(0);
  const uint64_t r2 = push(1, "one member down", 20000);
  ASSERT_GT(r2, r1) << logs();
  ASSERT_TRUE(waitFor([&] { return allApplied(r2); }, 15000)) << logs();
  ASSERT_NO_FATAL_FAILURE(addWorkload("hc", "fe-1", "frontend", "vfe1", "192.0.2.30"));
  ASSERT_NO_FATAL_FAILURE(addWorkload("ha", "pay-1", "payments", "vpay1", "192.0.2.10"));
  EXPECT_TRUE(waitFor([&] { return holdsRemote("hc", "ha", "pay-1"); }, 10000)) << logs();
}

}  // namespace
}  // namespace bulkhead::testing
