// The fleet end to end: three "hosts" (network namespaces, each with a real
// bulkhead-agent and its own workload namespaces) behind a routed fabric
// namespace, and a real bulkhead-controller on the fabric reached over TCP
// with mutual TLS (certificates made here with openssl). Real traffic
// decides every case: app selectors across hosts following registrations,
// span filtering, fail-static while the controller is away, a restart from
// its state, a rollout with a host down, and the identity checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBin = BULKHEAD_BINARY_DIR;
constexpr const char* kFabricIp = "203.0.113.1";  // the controller listens here
constexpr int kControllerPort = 7444;

// The bundle: frontend (host a) may reach payments-api, the workloads of
// app payments (host b); nobody may reach an app labelled zone=secret
// (vault, host b) though frontend's egress would allow it; reporting (host
// c) reaches frontend only, so c needs a's workloads and never b's.
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
    - toCIDRs: [192.0.2.0/24]
      ports: [tcp/9000]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: payments}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: vault, labels: {zone: secret}}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: reporting}
spec:
  egress:
    - to: [frontend]
      ports: [tcp/8080]
---
apiVersion: bulkhead/v1
kind: GlobalPolicy
metadata: {name: no-secrets}
spec:
  rules:
    - {action: deny, from: {app: frontend}, toSelector: {zone: secret}}
)";

struct Workload {
  std::string name, app, iface, addr;
  std::unique_ptr<Netns> ns;
};

struct Host {
  std::string name;    // --host, and the name in its certificate
  std::string uplink;  // its address on the fabric
  std::unique_ptr<Netns> ns;
  std::unique_ptr<Process> agent;
  std::map<std::string, Workload> workloads;
};

class FleetE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
    ASSERT_TRUE(sh("command -v openssl && command -v socat").ok()) << "needs openssl and socat";
    sweepStaleNamespaces();
    dir_ = fs::temp_directory_path() / ("bhf-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    makeCertificates();
    fabric_ = std::make_unique<Netns>();
    ASSERT_TRUE(fabric_
                    ->exec("sysctl -qw net.ipv4.ip_forward=1 && ip addr add " +
                           std::string(kFabricIp) + "/32 dev lo")
                    .ok());
    int n = 11;
    for (const char* name : {"ha", "hb", "hc"})
      addHost(name, "203.0.113." + std::to_string(n++));
    std::ofstream(dir_ / "policy.yaml") << kBundle;
    startController();
    for (auto& [name, h] : hosts_)
      startAgent(h);
    ASSERT_TRUE(waitFor([&] { return connectedHosts() == 3; }, 15000)) << fleetStatus() << logs();
    const auto pushed = ctl("push " + (dir_ / "policy.yaml").string() + " --wait --timeout 20");
    ASSERT_EQ(pushed.status, 0) << pushed.out << logs();
  }

  void TearDown() override {
    for (auto& [name, h] : hosts_) {
      h.agent.reset();
      h.workloads.clear();
    }
    controller_.reset();
    hosts_.clear();
    fabric_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // A CA; the controller's server certificate (for the fabric address);
  // one client certificate per host (its name as DNS SAN and CN), and one
  // for the operator's CLI.
  void makeCertificates() {
    std::string script = "cd " + dir_.string() +
                         " && set -e && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                         "-nodes' && openssl req -x509 $K -keyout ca.key -out ca.crt -days 1 "
                         "-subj /CN=bulkhead-fleet-test-ca"
                         " && printf 'subjectAltName=IP:" +
                         std::string(kFabricIp) +
                         "\\nextendedKeyUsage=serverAuth\\n' > ctl.ext"
                         " && openssl req $K -keyout ctl.key -out ctl.csr -subj /CN=controller"
                         " && openssl x509 -req -in ctl.csr -CA ca.crt -CAkey ca.key "
                         "-CAcreateserial -days 1 -extfile ctl.ext -out ctl.crt";
    for (const char* n : {"ha", "hb", "hc", "ops"})
      script += std::string(" && printf 'subjectAltName=DNS:") + n +
                "\\nextendedKeyUsage=clientAuth\\n' > " + n + ".ext && openssl req $K -keyout " +
                n + ".key -out " + n + ".csr -subj /CN=" + n + " && openssl x509 -req -in " + n +
                ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile " + n +
                ".ext -out " + n + ".crt";
    const auto made = sh("(" + script + ") >/dev/null 2>&1 || echo failed");
    ASSERT_EQ(made.out, "") << "openssl failed";
  }

  // A host namespace on the fabric: uplink veth, default route via the
  // fabric, forwarding on (it routes for its workloads).
  void addHost(const std::string& name, const std::string& uplink) {
    Host& h = hosts_[name];
    h.name = name;
    h.uplink = uplink;
    h.ns = std::make_unique<Netns>();
    const std::string f = fabric_->name(), n = h.ns->name();
    const auto r =
        sh("set -e; ip -n " + f + " link add f" + name + " type veth peer name up0 netns " + n +
           "; ip -n " + f + " link set f" + name + " up; ip -n " + f + " route add " + uplink +
           "/32 dev f" + name + "; ip -n " + n + " link set up0 up; ip -n " + n + " addr add " +
           uplink + "/32 dev up0; ip -n " + n + " route add " + kFabricIp + " dev up0; ip -n " + n +
           " route add default via " + kFabricIp + " dev up0; ip netns exec " + n +
           " sysctl -qw net.ipv4.ip_forward=1");
    ASSERT_TRUE(r.ok()) << r.out;
  }

  // A workload namespace on host `host`: veth `iface` on the host, eth0 with
  // `addr`/32, routed by the host and, through it, by the fabric.
  Workload& addWorkload(const std::string& host, const std::string& name, const std::string& app,
                        const std::string& iface, const std::string& addr) {
    Host& h = hosts_.at(host);
    Workload& w = h.workloads[name];
    w.name = name;
    w.app = app;
    w.iface = iface;
    w.addr = addr;
    w.ns = std::make_unique<Netns>();
    const std::string hn = h.ns->name(), wn = w.ns->name();
    const auto r =
        sh("set -e; ip -n " + hn + " link add " + iface + " type veth peer name eth0 netns " + wn +
           "; ip -n " + hn + " link set " + iface + " up; ip -n " + hn +
           " addr add 192.0.2.1/32 dev " + iface + "; ip -n " + hn + " route add " + addr +
           "/32 dev " + iface + "; ip -n " + wn + " link set eth0 up; ip -n " + wn + " addr add " +
           addr + "/32 dev eth0; ip -n " + wn + " route add 192.0.2.1 dev eth0; ip -n " + wn +
           " route add default via 192.0.2.1 dev eth0; ip -n " + fabric_->name() + " route add " +
           addr + "/32 via " + h.uplink + " dev f" + host + " onlink");
    EXPECT_TRUE(r.ok()) << r.out;
    return w;
  }

  void startController() {
    const std::string d = dir_.string();
    controller_ = std::make_unique<Process>(
        *fabric_, "exec " + kBin + "/bulkhead-controller --listen tcp://" + kFabricIp + ":" +
                      std::to_string(kControllerPort) + " --tls-cert " + d + "/ctl.crt --tls-key " +
                      d + "/ctl.key --tls-client-ca " + d + "/ca.crt --state-dir " + d +
                      "/ctl-state 2>>" + d + "/controller.log");
    ASSERT_TRUE(waitListening(*fabric_, kControllerPort, false)) << logs();
  }

  std::string agentSocket(const Host& h) const {
    return "unix://" + (dir_ / (h.name + ".sock")).string();
  }

  void startAgent(Host& h) {
    const std::string d = dir_.string();
    fs::remove(dir_ / (h.name + ".sock"));
    h.agent = std::make_unique<Process>(
        *h.ns, "exec " + kBin + "/bulkhead-agent --listen " + agentSocket(h) + " --state-dir " + d +
                   "/" + h.name + "-state --host " + h.name + " --controller tcp://" + kFabricIp +
                   ":" + std::to_string(kControllerPort) + " --controller-ca " + d +
                   "/ca.crt --controller-cert " + d + "/" + h.name + ".crt --controller-key " + d +
                   "/" + h.name + ".key 2>>" + d + "/" + h.name + ".log");
    ASSERT_TRUE(waitFor([&] { return fs::exists(dir_ / (h.name + ".sock")); }, 10000)) << logs();
  }

  // `bulkhead ARGS` against the controller, from the fabric, as the operator.
  CmdResult ctl(const std::string& args) const {
    const std::string d = dir_.string();
    return fabric_->exec(kBin + "/bulkhead " + args + " --controller tcp://" + kFabricIp + ":" +
                         std::to_string(kControllerPort) + " --tls-ca " + d +
                         "/ca.crt --tls-cert " + d + "/ops.crt --tls-key " + d + "/ops.key");
  }

  // `bulkhead ARGS` against host `host`'s agent (its unix socket).
  CmdResult agentCli(const std::string& host, const std::string& args) const {
    return sh(kBin + "/bulkhead " + args + " --agent " + agentSocket(hosts_.at(host)));
  }

  void registerWorkload(const std::string& host, const Workload& w) {
    const auto r = agentCli(host, "workload add " + w.name + " --app " + w.app + " --iface " +
                                      w.iface + " --addr " + w.addr);
    ASSERT_EQ(r.status, 0) << r.out;
  }

  std::string fleetStatus() const { return ctl("status --json").out; }

  nlohmann::json fleetJson() const {
    const auto j = nlohmann::json::parse(fleetStatus(), nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }

  int connectedHosts() const {
    int n = 0;
    for (const auto& h : fleetJson().value("hosts", nlohmann::json::array()))
      n += h.value("connected", false) ? 1 : 0;
    return n;
  }

  uint64_t ackedRevision(const std::string& host) const {
    for (const auto& h : fleetJson().value("hosts", nlohmann::json::array()))
      if (h.value("host", "") == host) return h.value("acked_revision", uint64_t(0));
    return 0;
  }

  // Host `host`'s agent's link to the controller, as `bulkhead status`
  // shows it (null without one).
  nlohmann::json agentLink(const std::string& host) const {
    const auto j = nlohmann::json::parse(agentCli(host, "status --json").out, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j.value("controller", nlohmann::json());
  }

  // The names of the workloads host `host`'s agent lists, and their hosts.
  std::string agentWorkloads(const std::string& host) const {
    return agentCli(host, "workload ls --json").out;
  }

  bool reaches(const Workload& from, const Workload& to, int port) const {
    return tcpProbe(*from.ns, to.addr, port, 1.5).ok;
  }

  // Waits up to `ms` for reaches() to become `want`; the seconds it took,
  // or -1.
  double until(bool want, const Workload& from, const Workload& to, int port, int ms) const {
    const auto start = Clock::now();
    if (!waitFor([&] { return reaches(from, to, port) == want; }, ms)) return -1;
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  void listen(const Workload& w, int port) {
    listeners_.push_back(std::make_unique<Process>(*w.ns, tcpListenCmd(port, false)));
    ASSERT_TRUE(waitListening(*w.ns, port, false));
  }

  std::string logs() const {
    std::string all;
    for (const char* f : {"controller.log", "ha.log", "hb.log", "hc.log"}) {
      std::string text = readAll((dir_ / f).string());
      if (text.size() > 3000) text = "..." + text.substr(text.size() - 3000);
      all += std::string("\n--- ") + f + "\n" + text;
    }
    return all;
  }

  fs::path dir_;
  std::unique_ptr<Netns> fabric_;
  std::map<std::string, Host> hosts_;
  std::unique_ptr<Process> controller_;
  std::vector<std::unique_ptr<Process>> listeners_;
};

TEST_F(FleetE2eTest, CrossHostSelectorsFollowRegistrationsAndSpanFiltering) {
  Workload& fe = addWorkload("ha", "fe-1", "frontend", "vfe1", "192.0.2.10");
  Workload& pay = addWorkload("hb", "pay-1", "payments", "vpay1", "192.0.2.20");
  Workload& vault = addWorkload("hb", "vault-1", "vault", "vvault1", "192.0.2.21");
  Workload& rep = addWorkload("hc", "rep-1", "reporting", "vrep1", "192.0.2.30");
  listen(pay, 8443);
  listen(vault, 9000);
  registerWorkload("ha", fe);
  registerWorkload("hc", rep);

  // payments is not registered anywhere yet: frontend's selector is empty.
  EXPECT_FALSE(reaches(fe, pay, 8443));
  registerWorkload("hb", pay);
  const double allowed = until(true, fe, pay, 8443, 1000);
  EXPECT_GE(allowed, 0) << "frontend did not reach payments within 1 s of its registration on hb"
                        << logs();
  ASSERT_EQ(agentCli("hb", "workload rm pay-1").status, 0);
  const double denied = until(false, fe, pay, 8443, 1000);
  EXPECT_GE(denied, 0) << "payments still reachable 1 s after its removal on hb" << logs();

  // The GlobalPolicy's toSelector on a remote app's labels: frontend's
  // egress allows tcp/9000 to 192.0.2.0/24, until a zone=secret workload
  // holds the address.
  EXPECT_TRUE(reaches(fe, vault, 9000));
  registerWorkload("hb", vault);
  EXPECT_GE(until(false, fe, vault, 9000, 1000), 0)
      << "the GlobalPolicy deny did not cover the remote vault within 1 s" << logs();
  ASSERT_EQ(agentCli("hb", "workload rm vault-1").status, 0);
  EXPECT_GE(until(true, fe, vault, 9000, 1000), 0) << logs();

  // Span filtering: a's agent holds b's workloads while it needed them; c,
  // whose reporting app selects only frontend, holds a's and never b's.
  registerWorkload("hb", pay);
  ASSERT_GE(until(true, fe, pay, 8443, 1000), 0);
  const std::string onA = agentWorkloads("ha");
  EXPECT_NE(onA.find("\"pay-1\""), std::string::npos) << onA;
  EXPECT_NE(onA.find("\"remote\""), std::string::npos) << onA;
  const std::string onC = agentWorkloads("hc");
  EXPECT_NE(onC.find("\"fe-1\""), std::string::npos) << onC;
  EXPECT_EQ(onC.find("\"pay-1\""), std::string::npos) << onC;
  EXPECT_EQ(onC.find("\"vault-1\""), std::string::npos) << onC;
  const auto fleet = ctl("workload ls --json");
  ASSERT_EQ(fleet.status, 0) << fleet.out;
  EXPECT_NE(fleet.out.find(R"("host": "hb", "name": "pay-1")"), std::string::npos) << fleet.out;
}

TEST_F(FleetE2eTest, ControllerAwayIsFailStaticAndARestartResyncsWithoutRewriting) {
  Workload& fe = addWorkload("ha", "fe-1", "frontend", "vfe1", "192.0.2.10");
  Workload& fe2 = addWorkload("ha", "fe-2", "frontend", "vfe2", "192.0.2.11");
  Workload& pay = addWorkload("hb", "pay-1", "payments", "vpay1", "192.0.2.20");
  Workload& rep = addWorkload("hc", "rep-1", "reporting", "vrep1", "192.0.2.30");
  listen(pay, 8443);
  listen(rep, 9000);
  registerWorkload("ha", fe);
  registerWorkload("hb", pay);
  registerWorkload("hc", rep);
  ASSERT_GE(until(true, fe, pay, 8443, 2000), 0) << logs();
  const uint64_t revision = fleetJson().value("revision", uint64_t(0));
  ASSERT_GT(revision, 0u);
  EXPECT_TRUE(waitFor([&] { return agentLink("ha").value("connected", false); }, 5000))
      << agentLink("ha");
  EXPECT_EQ(agentLink("ha").value("sessions", 0), 1) << agentLink("ha");

  controller_->kill(SIGKILL);
  controller_->wait(5000);
  // The agent's status says so, with the reason.
  EXPECT_TRUE(waitFor([&] { return !agentLink("ha").value("connected", true); }, 5000))
      << agentLink("ha");
  EXPECT_NE(agentLink("ha").value("last_error", ""), "") << agentLink("ha");
  // Decisions stay as they were; a registration on a works and is enforced.
  EXPECT_TRUE(reaches(fe, pay, 8443));
  EXPECT_FALSE(reaches(fe, rep, 8443));
  registerWorkload("ha", fe2);
  EXPECT_GE(until(true, fe2, pay, 8443, 1000), 0) << logs();
  EXPECT_FALSE(reaches(fe2, rep, 8443)) << "fe-2 is not under frontend's policy";

  // Back from its state: the same revision, the agents resync without any
  // chain or rule being written, and fe-2 reaches the others (c's
  // reporting selects frontend).
  // Chains, rules and sets with their kernel handles: a rewrite gives new
  // handles. (`nft monitor` cannot be used here: nftables 1.0.6 mis-prints,
  // and may exit on, the concatenated interval elements of the app sets.)
  auto objects = [&](const std::string& host) {
    return sh("ip netns exec " + hosts_.at(host).ns->name() +
              " nft -a list table inet bulkhead | grep '# handle' | sort")
        .out;
  };
  std::map<std::string, std::string> before;
  for (const char* h : {"ha", "hb", "hc"})
    before[h] = objects(h);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  startController();
  ASSERT_TRUE(waitFor([&] { return connectedHosts() == 3; }, 15000)) << fleetStatus() << logs();
  EXPECT_EQ(fleetJson().value("revision", uint64_t(0)), revision);
  EXPECT_TRUE(waitFor([&] { return agentLink("ha").value("connected", false); }, 5000))
      << agentLink("ha");
  EXPECT_EQ(agentLink("ha").value("sessions", 0), 2) << agentLink("ha");
  for (const char* h : {"ha", "hb", "hc"})
    EXPECT_TRUE(waitFor([&] { return ackedRevision(h) == revision; }, 5000)) << h << fleetStatus();
  EXPECT_TRUE(
      waitFor([&] { return agentWorkloads("hc").find("\"fe-2\"") != std::string::npos; }, 5000))
      << agentWorkloads("hc");
  const auto fleet = ctl("workload ls --json");
  EXPECT_NE(fleet.out.find(R"("host": "ha", "name": "fe-2")"), std::string::npos) << fleet.out;
  EXPECT_TRUE(reaches(fe, pay, 8443));
  for (const char* h : {"ha", "hb", "hc"}) {
    EXPECT_NE(before[h].find("chain"), std::string::npos) << h << ": no table listed";
    EXPECT_EQ(objects(h), before[h]) << h << ": chains, rules or sets were rewritten";
  }
}

TEST_F(FleetE2eTest, PushWaitNamesAHostThatIsDownAndItCatchesUpOnReconnect) {
  Workload& fe = addWorkload("ha", "fe-1", "frontend", "vfe1", "192.0.2.10");
  Workload& rep = addWorkload("hc", "rep-1", "reporting", "vrep1", "192.0.2.30");
  listen(rep, 7000);
  registerWorkload("ha", fe);
  registerWorkload("hc", rep);
  EXPECT_FALSE(reaches(fe, rep, 7000));
  Host& c = hosts_.at("hc");
  c.agent->kill(SIGKILL);
  c.agent->wait(5000);

  // The next revision lets frontend reach 192.0.2.30:7000.
  std::ofstream(dir_ / "policy.yaml", std::ios::app) << R"(---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: reports}
spec:
  endpoints:
    - cidrs: [192.0.2.30/32]
      ports: [tcp/7000]
)";
  std::string text = readAll((dir_ / "policy.yaml").string());
  text.replace(text.find("    - to: [payments-api]"), 24, "    - to: [payments-api, reports]");
  std::ofstream(dir_ / "policy.yaml") << text;
  const auto pushed = ctl("push " + (dir_ / "policy.yaml").string() + " --wait --timeout 5");
  EXPECT_EQ(pushed.status, 1) << pushed.out;
  EXPECT_NE(pushed.out.find("hc:"), std::string::npos) << pushed.out;
  EXPECT_NE(pushed.out.find("not applied by 1 of 3 host(s): hc"), std::string::npos) << pushed.out;
  EXPECT_NE(pushed.out.find("ha: applied revision"), std::string::npos) << pushed.out;
  const uint64_t revision = fleetJson().value("revision", uint64_t(0));
  EXPECT_EQ(ackedRevision("ha"), revision);
  EXPECT_LT(ackedRevision("hc"), revision);
  EXPECT_GE(until(true, fe, rep, 7000, 2000), 0) << "a applied the new revision" << logs();

  startAgent(c);
  EXPECT_TRUE(waitFor([&] { return ackedRevision("hc") == revision; }, 15000))
      << fleetStatus() << logs();
}

TEST_F(FleetE2eTest, AHostReportsOnlyItsOwnWorkloadsAndTheControllerIsTheOneSourceOfPolicy) {
  // An agent holding a's certificate that calls itself hb, on a fourth
  // host of the fabric: its hello is refused, so its workload reaches
  // nobody, and hb's own link stays.
  addHost("hx", "203.0.113.14");
  Host& rogue = hosts_.at("hx");
  const std::string d = dir_.string();
  rogue.agent = std::make_unique<Process>(
      *rogue.ns, "exec " + kBin + "/bulkhead-agent --listen " + agentSocket(rogue) +
                     " --state-dir " + d + "/hx-state --host hb --controller tcp://" + kFabricIp +
                     ":" + std::to_string(kControllerPort) + " --controller-ca " + d +
                     "/ca.crt --controller-cert " + d + "/ha.crt --controller-key " + d +
                     "/ha.key 2>>" + d + "/hx.log");
  ASSERT_TRUE(waitFor([&] { return fs::exists(dir_ / "hx.sock"); }, 10000))
      << readAll(d + "/hx.log");
  const auto added =
      agentCli("hx", "workload add evil-1 --app payments --iface vevil1 --addr 192.0.2.99");
  EXPECT_EQ(added.status, 0) << added.out;  // local registrations work without a controller
  std::this_thread::sleep_for(std::chrono::seconds(3));  // several reconnect attempts
  const auto fleet = ctl("workload ls --json");
  EXPECT_EQ(fleet.status, 0) << fleet.out;
  EXPECT_EQ(fleet.out.find("evil-1"), std::string::npos) << fleet.out;
  EXPECT_EQ(connectedHosts(), 3) << fleetStatus();
  for (const auto& h : fleetJson().value("hosts", nlohmann::json::array())) {
    if (h.value("host", "") == "hb") {
      EXPECT_NE(h.value("address", "").find("203.0.113.12"), std::string::npos) << h.dump();
    }
  }

  // An agent with --controller refuses a push of its own, naming the
  // controller.
  const auto local = agentCli("ha", "push " + d + "/policy.yaml");
  EXPECT_EQ(local.status, 1) << local.out;
  EXPECT_NE(local.out.find("FAILED_PRECONDITION"), std::string::npos) << local.out;
  EXPECT_NE(local.out.find(kFabricIp), std::string::npos) << local.out;
}

}  // namespace
}  // namespace bulkhead::testing
