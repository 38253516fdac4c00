// The denied-flow feed end to end: real packets denied by the agent's rules,
// read from NFLOG, exported to a real rsyslog (Debian's, started here inside
// the hypervisor namespace, imudp and imtcp on loopback, omfile) and to raw
// receivers for JSON and CEF; a flood; the SIEM killed and restarted.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = binaryDir();

// kBillingPolicy, an audit-mode dev app a global policy keeps from prod, and
// the two workloads.
const std::string kPolicy = std::string(kBillingPolicy) + R"(---
apiVersion: bulkhead/v1
kind: App
metadata: {name: devtool, labels: {env: dev}}
spec:
  mode: audit
---
apiVersion: bulkhead/v1
kind: GlobalPolicy
metadata: {name: baseline}
spec:
  order: 100
  rules:
    - action: deny
      from: {env: dev}
      toSelector: {env: prod}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: billing-1}
spec: {app: billing, interfaces: [vbill1], addresses: [192.0.2.10]}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: devtool-1}
spec: {app: devtool, interfaces: [vdev1], addresses: [192.0.2.20]}
)";

class FlowsE2eTest : public AgentHostTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(setUpHost("flows", kPolicy));
    ASSERT_TRUE(sh("command -v rsyslogd").ok()) << "rsyslog is needed (packaging/install-deps.sh)";
    fs::create_directories(dir_ / "rsyslog");
    topo_->addHost("vbill1", "192.0.2.10", "");
    topo_->addHost("vdev1", "192.0.2.20", "");
    auto& server = topo_->addHost("vsrv1", "198.51.100.10", "");
    ASSERT_NO_FATAL_FAILURE(listenTcp(*server.ns, {5432, 22}));
    udpPort_ = 10514;
    tcpPort_ = 10601;
  }

  void TearDown() override {
    agent_.reset();
    rsyslog_.reset();
    AgentHostTest::TearDown();
  }

  void startRsyslog() {
    const std::string d = dir_.string();
    std::ofstream(dir_ / "rsyslog.conf")
        << "global(workDirectory=\"" << d << "/rsyslog\")\n"
        << "module(load=\"imudp\")\nmodule(load=\"imtcp\")\n"
        << "input(type=\"imudp\" address=\"127.0.0.1\" port=\"" << udpPort_
        << "\" ruleset=\"udp\")\n"
        << "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" << tcpPort_
        << "\" ruleset=\"tcp\")\n"
        << "ruleset(name=\"udp\") { action(type=\"omfile\" file=\"" << d
        << "/udp.log\" template=\"RSYSLOG_SyslogProtocol23Format\") }\n"
        << "ruleset(name=\"tcp\") { action(type=\"omfile\" file=\"" << d
        << "/tcp.log\" template=\"RSYSLOG_SyslogProtocol23Format\") }\n";
    rsyslog_ =
        std::make_unique<Process>(topo_->hv(), "exec rsyslogd -n -f " + d + "/rsyslog.conf -i " +
                                                   d + "/rsyslog.pid 2>>" + d + "/rsyslog.err");
    ASSERT_TRUE(waitListening(topo_->hv(), tcpPort_, false)) << readAll(dir_ / "rsyslog.err");
  }

  void startAgent(const std::string& targets) {
    ASSERT_NO_FATAL_FAILURE(launchAgent(targets));
    auto push = cli("push " + (dir_ / "policy.yaml").string());
    ASSERT_TRUE(push.ok()) << push.out;
  }

  // Every attempt is exported or counted as suppressed, once idle.
  void expectAccountingExact() {
    std::string status;
    EXPECT_TRUE(waitFor(
        [&] {
          status = cli("status --json").out;
          const uint64_t seen = jsonInt(status, "seen");
          return seen > 0 && seen == jsonInt(status, "exported") + jsonInt(status, "suppressed");
        },
        5000))
        << status;
  }

  int udpPort_ = 0, tcpPort_ = 0;
  std::unique_ptr<Process> rsyslog_;
};

TEST_F(FlowsE2eTest, DeniedFlowsReachRsyslogOverUdpAndTcpWithEveryField) {
  startRsyslog();
  startAgent("--syslog udp://127.0.0.1:" + std::to_string(udpPort_) +
             " --syslog tcp://127.0.0.1:" + std::to_string(tcpPort_));
  // deny (default), audit (default), deny (global policy), spoof.
  EXPECT_FALSE(tcpProbe(ns("vbill1"), "198.51.100.10", 22, 2.0).ok);
  EXPECT_TRUE(tcpProbe(ns("vdev1"), "198.51.100.10", 22).ok);
  EXPECT_FALSE(tcpProbe(ns("vdev1"), "198.51.100.10", 5432, 2.0).ok);
  topo_->addAddress(topo_->host("vbill1"), "192.0.2.77", true);
  EXPECT_FALSE(tcpProbe(ns("vbill1"), "198.51.100.10", 5432, 1.0, "192.0.2.77").ok);

  const std::regex line(
      "<([0-9]+)>1 (\\S+) (\\S+) bulkhead-agent ([0-9]+) (DENY|AUDIT|SPOOF) \\[flow@32473 "
      "action=\"([a-z]+)\" app=\"([^\"]*)\" workload=\"([^\"]*)\" src=\"([^\"]+)\" "
      "sport=\"([0-9]+)\" dst=\"([^\"]+)\" dport=\"([0-9]+)\" proto=\"([a-z0-9]+)\" "
      "reason=\"([^\"]*)\" count=\"([0-9]+)\"\\] .*");
  for (const char* file : {"udp.log", "tcp.log"}) {
    std::string text;
    ASSERT_TRUE(waitFor(
        [&] {
          text = readAll(dir_ / file);
          return text.find("action=\"spoof\"") != std::string::npos &&
                 text.find("reason=\"globalpolicy/baseline/0\"") != std::string::npos &&
                 text.find("action=\"audit\"") != std::string::npos;
        },
        5000))
        << file << ":\n"
        << text << readAll(dir_ / "agent.log");
    std::istringstream in(text);
    int parsed = 0;
    for (std::string l; std::getline(in, l);) {
      std::smatch m;
      ASSERT_TRUE(std::regex_match(l, m, line)) << file << ": " << l;
      ++parsed;
      if (m[6] == "deny" && m[14] == "default") {
        EXPECT_EQ(m[8], "billing-1");
        EXPECT_EQ(m[7], "billing");
        EXPECT_EQ(m[9], "192.0.2.10");
        EXPECT_EQ(m[11], "198.51.100.10");
        EXPECT_EQ(m[12], "22");
        EXPECT_EQ(m[13], "tcp");
      }
      if (m[6] == "audit") {
        EXPECT_EQ(m[8], "devtool-1");
      }
      if (m[6] == "spoof") {
        EXPECT_EQ(m[9], "192.0.2.77");
      }
    }
    EXPECT_GE(parsed, 4);
  }
  expectAccountingExact();
}

TEST_F(FlowsE2eTest, JsonAndCefFormatsParse) {
  const int jsonPort = 10700, cefPort = 10701;
  procs_.push_back(udpSink(topo_->hv(), jsonPort, dir_ / "json.log"));
  waitListening(topo_->hv(), jsonPort, true);
  startAgent("--flow-format json --syslog udp://127.0.0.1:" + std::to_string(jsonPort));
  EXPECT_FALSE(tcpProbe(ns("vbill1"), "198.51.100.10", 22, 2.0).ok);
  std::string json;
  ASSERT_TRUE(waitFor(
      [&] { return (json = readAll(dir_ / "json.log")).find("billing-1") != std::string::npos; },
      5000))
      << readAll(dir_ / "agent.log");
  EXPECT_NE(json.find("\"action\":\"deny\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"dport\":22"), std::string::npos) << json;
  EXPECT_NE(json.find("\"count\":1"), std::string::npos) << json;
  // Each line is one object that python's json module accepts.
  std::ofstream(dir_ / "check.py") << "import json,sys\nfor l in open(sys.argv[1]):\n"
                                      "  l=l.strip()\n  if l: json.loads(l[l.index('{'):])\n";
  auto py = sh("python3 " + (dir_ / "check.py").string() + " " + (dir_ / "json.log").string());
  EXPECT_TRUE(py.ok() || !sh("command -v python3").ok()) << py.out << json;

  agent_.reset();
  procs_.push_back(udpSink(topo_->hv(), cefPort, dir_ / "cef.log"));
  waitListening(topo_->hv(), cefPort, true);
  startAgent("--flow-format cef --syslog udp://127.0.0.1:" + std::to_string(cefPort));
  EXPECT_FALSE(tcpProbe(ns("vbill1"), "198.51.100.10", 22, 2.0).ok);
  std::string cef;
  ASSERT_TRUE(waitFor(
      [&] { return (cef = readAll(dir_ / "cef.log")).find("CEF:0|") != std::string::npos; }, 5000))
      << readAll(dir_ / "agent.log");
  EXPECT_TRUE(std::regex_search(
      cef,
      std::regex("CEF:0\\|[^|]*\\|[^|]*\\|[^|]*\\|[^|]*\\|[^|]*\\|[0-9]+\\|.*src=192\\.0\\.2\\.10.*"
                 "dst=198\\.51\\.100\\.10.*dpt=22")))
      << cef;
}

TEST_F(FlowsE2eTest, FloodKeepsAllowedTrafficAndStatusResponsiveAndAccountsForEveryAttempt) {
  startRsyslog();
  startAgent("--flow-summary-seconds 1 --syslog udp://127.0.0.1:" + std::to_string(udpPort_));
  // Thousands of distinct denied attempts (a port scan), as fast as bash goes.
  Process flood(ns("vbill1"),
                "exec bash -c 'for p in $(seq 1000 5999); do echo x > /dev/udp/198.51.100.10/$p; "
                "done'");
  const auto start = std::chrono::steady_clock::now();
  int statusCalls = 0, allowedOk = 0;
  while (flood.running() && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(cli("status --json").ok());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2)) << "status stalled";
    ++statusCalls;
    allowedOk += tcpProbe(ns("vbill1"), "198.51.100.10", 5432).ok;
  }
  EXPECT_GT(statusCalls, 0);
  EXPECT_EQ(allowedOk, statusCalls) << "allowed traffic failed during the flood";
  std::string status;
  expectAccountingExact();
  // `seen` comes from the rule counters, sampled every second: an exact
  // account may still be of a sample taken before the flood's last packets.
  EXPECT_TRUE(waitFor(
      [&] {
        status = cli("status --json").out;
        return jsonInt(status, "seen") >= 5000u;
      },
      5000))
      << status;
  // The kernel's log limit (100/s by default) kept most of the scan from
  // the feed: counted, and told to the SIEM in a summary event.
  EXPECT_GT(jsonInt(status, "kernel"), 0u) << status;
  std::string siem;
  EXPECT_TRUE(waitFor(
      [&] {
        return (siem = readAll(dir_ / "udp.log")).find("action=\"summary\"") != std::string::npos;
      },
      5000))
      << readAll(dir_ / "agent.log");
}

TEST_F(FlowsE2eTest, SiemKilledAndRestartedMidStream) {
  startRsyslog();
  startAgent("--syslog tcp://127.0.0.1:" + std::to_string(tcpPort_));
  EXPECT_FALSE(tcpProbe(ns("vbill1"), "198.51.100.10", 22, 2.0).ok);
  ASSERT_TRUE(waitFor(
      [&] { return readAll(dir_ / "tcp.log").find("dport=\"22\"") != std::string::npos; }, 5000));
  rsyslog_.reset();  // the SIEM dies
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int p = 2000; p < 2005; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(tcpProbe(ns("vbill1"), "198.51.100.10", p, 2.0).ok);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500))
        << "enforcement must not wait for the SIEM";
  }
  EXPECT_TRUE(cli("status").ok());
  startRsyslog();  // back
  // The agent reconnects; later events arrive.
  std::string text;
  EXPECT_TRUE(waitFor(
      [&] {
        tcpProbe(ns("vbill1"), "198.51.100.10", 3000, 1.0);
        text = readAll(dir_ / "tcp.log");
        return text.find("dport=\"3000\"") != std::string::npos;
      },
      15000))
      << text << readAll(dir_ / "agent.log");
  expectAccountingExact();
}

TEST_F(FlowsE2eTest, FlowsCommandStreamsEvents) {
  startAgent("");
  const std::string out = (dir_ / "flows.jsonl").string();
  auto follow =
      std::make_unique<Process>(topo_->hv(), kBin + "/bulkhead --agent " + socket_ +
                                                 " flows --follow --json --app billing > " + out);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(tcpProbe(ns("vbill1"), "198.51.100.10", 22, 2.0).ok);
  EXPECT_TRUE(tcpProbe(ns("vdev1"), "198.51.100.10", 22).ok);  // another app: filtered out
  std::string text;
  EXPECT_TRUE(
      waitFor([&] { return (text = readAll(out)).find("billing-1") != std::string::npos; }, 5000))
      << text;
  EXPECT_EQ(text.find("devtool-1"), std::string::npos) << text;
}

}  // namespace
}  // namespace bulkhead::testing
