// Scan detection and automatic quarantine end to end, and `bulkhead
// suggest` on the events of an audit-mode app: real agent, real packets
// through the hypervisor namespace, events read back through the CLI and a
// JSON syslog receiver.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBin = binaryDir();

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: postgres-prod}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32]
      ports: [tcp/5432]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec:
  egress:
    - to: [postgres-prod]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: vulnscan, labels: {bulkhead.io/scanner: "true"}}
spec:
  egress:
    - to: [postgres-prod]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: inventory}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: shop}
spec:
  mode: audit
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: web-1}
spec: {app: web, interfaces: [vweb1], addresses: [192.0.2.30]}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: web-2}
spec: {app: web, interfaces: [vweb2], addresses: [192.0.2.31]}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: scanner-1}
spec: {app: vulnscan, interfaces: [vscan1], addresses: [192.0.2.50]}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: inventory-1}
spec: {app: inventory, interfaces: [vinv1], addresses: [192.0.2.70]}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: shop-1}
spec: {app: shop, interfaces: [vshop1], addresses: [192.0.2.60]}
)";

class ScanQuarantineTest : public AgentHostTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(setUpHost("scan", kPolicy));
    for (auto [iface, addr] : {std::pair{"vweb1", "192.0.2.30"},
                               {"vweb2", "192.0.2.31"},
                               {"vscan1", "192.0.2.50"},
                               {"vinv1", "192.0.2.70"},
                               {"vshop1", "192.0.2.60"}})
      topo_->addHost(iface, addr, "");
    auto& server = topo_->addHost("vsrv1", "198.51.100.10", "");
    // Thirty more addresses on the server, for the sweeps, and an address
    // no policy names.
    for (int i = 11; i <= 40; ++i)
      topo_->addAddress(server, "198.51.100." + std::to_string(i), true);
    topo_->addAddress(server, "203.0.113.50", true);
    ASSERT_NO_FATAL_FAILURE(listenTcp(*server.ns, {5432, 22, 443, 80}));
    ASSERT_NO_FATAL_FAILURE(listenTcp(ns("vinv1"), {8080}));
  }

  void TearDown() override {
    watch_.reset();
    siem_.reset();
    AgentHostTest::TearDown();
  }

  // The agent with a JSON syslog receiver, and `flows --follow --json`.
  void startAgent(const std::string& flags) {
    if (!siem_) {
      siem_ = udpSink(topo_->hv(), 10515, dir_ / "siem.jsonl");
      ASSERT_TRUE(waitListening(topo_->hv(), 10515, true));
    }
    ASSERT_NO_FATAL_FAILURE(
        launchAgent("--syslog udp://127.0.0.1:10515 --flow-format json " + flags));
    ASSERT_NO_FATAL_FAILURE(pushPolicy());
    watch_ = std::make_unique<Process>(topo_->hv(), "exec " + kBin + "/bulkhead --agent " +
                                                        socket_ + " flows --follow --json >>" +
                                                        (dir_ / "watch.jsonl").string());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the watcher subscribed
  }

  void stopAgent() {
    watch_.reset();
    EXPECT_EQ(agent_->stop(), 0) << log();
  }

  // Connection attempts to port 22 of `count` server addresses (denied).
  void sweep(const std::string& iface, int count) {
    ns(iface).exec("for i in $(seq 11 " + std::to_string(10 + count) +
                   "); do timeout 1 socat -T0.3 - TCP4:198.51.100.$i:22,connect-timeout=0.3 "
                   "</dev/null >/dev/null 2>&1; done");
  }

  bool quarantined(const std::string& workload) {
    return cli("quarantine ls --json").out.find("\"workload\": \"" + workload + "\"") !=
           std::string::npos;
  }

  std::unique_ptr<Process> siem_, watch_;
};

TEST_F(ScanQuarantineTest, SweepOfPort22IsQuarantinedWithinTwoSecondsAndExpires) {
  // The quarantine must outlast what follows the detection before the
  // restart below: the rest of the sweep (its dropped attempts wait out
  // their timeout), the event checks, a stop and a start. 6 s was not
  // always enough on a loaded machine; 15 s is.
  startAgent("--auto-quarantine --quarantine-seconds 15");
  ASSERT_TRUE(tcpProbe(ns("vweb1"), "198.51.100.10", 5432).ok);
  sweep("vweb1", 30);
  const auto swept = Clock::now();
  ASSERT_TRUE(waitFor([&] { return quarantined("web-1"); }, 2000))
      << cli("quarantine ls").out << log();
  EXPECT_LT(Clock::now() - swept, std::chrono::seconds(2));
  // Its allowed traffic stops.
  EXPECT_FALSE(tcpProbe(ns("vweb1"), "198.51.100.10", 5432, 1.0).ok);
  const std::string ls = cli("quarantine ls --json").out;
  EXPECT_NE(ls.find("\"reason\": \"auto/scan/hosts\""), std::string::npos) << ls;
  EXPECT_EQ(jsonInt(ls, "seconds"), 15u) << ls;
  const std::string table = cli("quarantine ls").out;
  EXPECT_NE(table.find("WORKLOAD"), std::string::npos);
  EXPECT_NE(table.find("web-1"), std::string::npos);

  // One anomaly event with its evidence, and the quarantine event, to the
  // watcher and to the syslog target.
  for (const char* file : {"watch.jsonl", "siem.jsonl"}) {
    std::string text;
    EXPECT_TRUE(waitFor(
        [&] {
          text = readAll(dir_ / file);
          return text.find("\"reason\":\"auto/scan/hosts\"") != std::string::npos ||
                 text.find("\"reason\": \"auto/scan/hosts\"") != std::string::npos;
        },
        3000))
        << file << ": " << text;
    size_t anomalies = 0;
    for (size_t p = 0; (p = text.find("anomaly", p)) != std::string::npos; ++p)
      ++anomalies;
    EXPECT_EQ(anomalies, 1u) << file << ": " << text;
    EXPECT_NE(text.find("scan/hosts"), std::string::npos);
    EXPECT_NE(text.find("\"distinct\""), std::string::npos) << text;
    EXPECT_NE(text.find("tcp/22"), std::string::npos);
  }

  // The quarantine survives a restart with its expiry...
  const uint64_t until = jsonInt(ls, "seconds");
  stopAgent();
  startAgent("--auto-quarantine --quarantine-seconds 15");
  const std::string after = cli("quarantine ls --json").out;
  const double sinceSweep = std::chrono::duration<double>(Clock::now() - swept).count();
  EXPECT_NE(after.find("web-1"), std::string::npos) << after << sinceSweep << " s after the sweep";
  EXPECT_EQ(jsonInt(after, "seconds"), until);
  EXPECT_EQ(jsonString(after, "until"), jsonString(ls, "until"));
  // Its allowed traffic stays stopped.
  EXPECT_FALSE(tcpProbe(ns("vweb1"), "198.51.100.10", 5432, 1.0).ok);
  // ...and the expiry releases it.
  ASSERT_TRUE(waitFor([&] { return !quarantined("web-1"); }, 18000)) << cli("quarantine ls").out;
  EXPECT_TRUE(tcpProbe(ns("vweb1"), "198.51.100.10", 5432).ok);
  // Caught again within a day (a port scan this time): twice as long.
  ns("vweb1").exec(
      "for p in $(seq 1000 1019); do timeout 1 socat -T0.3 - "
      "TCP4:198.51.100.12:$p,connect-timeout=0.3 </dev/null >/dev/null 2>&1; done");
  ASSERT_TRUE(waitFor([&] { return quarantined("web-1"); }, 2000)) << cli("quarantine ls").out;
  const std::string again = cli("quarantine ls --json").out;
  EXPECT_NE(again.find("\"reason\": \"auto/scan/ports\""), std::string::npos) << again;
  EXPECT_EQ(jsonInt(again, "seconds"), 30u) << again;
  // Released by hand before its expiry.
  ASSERT_TRUE(cli("quarantine web-1 --release").ok());
  EXPECT_FALSE(quarantined("web-1"));
  EXPECT_TRUE(tcpProbe(ns("vweb1"), "198.51.100.10", 5432).ok) << cli("quarantine ls").out << log();
}

TEST_F(ScanQuarantineTest, FewAttemptsAndTheScannerAppAreNotQuarantined) {
  startAgent("--auto-quarantine");
  sweep("vweb2", 3);
  sweep("vscan1", 30);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(cli("quarantine ls --json").out.find("\"workload\""), std::string::npos)
      << cli("quarantine ls").out;
  EXPECT_TRUE(tcpProbe(ns("vweb2"), "198.51.100.10", 5432).ok);
  EXPECT_TRUE(tcpProbe(ns("vscan1"), "198.51.100.10", 5432).ok);
  const std::string events = readAll(dir_ / "watch.jsonl");
  EXPECT_EQ(events.find("anomaly"), std::string::npos) << events;
  // The scanner's attempts were denied and reported as such.
  EXPECT_NE(events.find("\"workload\": \"scanner-1\""), std::string::npos) << events;
}

TEST_F(ScanQuarantineTest, PortScanIsAnomalyWithoutAutoQuarantine) {
  startAgent("");
  ns("vweb1").exec(
      "for p in $(seq 1000 1019); do timeout 1 socat -T0.3 - "
      "TCP4:198.51.100.11:$p,connect-timeout=0.3 </dev/null >/dev/null 2>&1; done");
  std::string text;
  EXPECT_TRUE(waitFor(
      [&] {
        text = readAll(dir_ / "watch.jsonl");
        return text.find("scan/ports") != std::string::npos;
      },
      3000))
      << text;
  EXPECT_NE(text.find("\"dst\": \"198.51.100.11\""), std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(quarantined("web-1"));
}

TEST_F(ScanQuarantineTest, FastPortScanUnderTheKernelLogBudgetIsCaughtInItsFirstSecond) {
  // Default budgets: the kernel logs 100 attempts/s per rule (burst 200).
  startAgent("--auto-quarantine");
  const auto t0 = Clock::now();
  Process scan(ns("vweb1"),
               "exec bash -c 'for p in $(seq 1 10000); do echo > /dev/udp/198.51.100.11/$p; "
               "done 2>/dev/null'");
  std::string text;
  ASSERT_TRUE(waitFor(
      [&] {
        text = readAll(dir_ / "watch.jsonl");
        return text.find("scan/ports") != std::string::npos;
      },
      3000))
      << text;
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  EXPECT_TRUE(waitFor([&] { return quarantined("web-1"); }, 2000));
  // The scan itself runs at thousands of ports a second (about 40,000/s
  // when the machine is idle). How fast the shell loop goes is the
  // machine's business, not the agent's (a build beside it once slowed it
  // to ~1,000/s): what the issue bounds is the detection above.
  EXPECT_GE(scan.wait(30000), 0);
}

TEST_F(ScanQuarantineTest, SuggestFromAuditFlowsValidatesAndEnforces) {
  startAgent("");
  // `suggest --agent --since` listens to the agent meanwhile.
  const fs::path live = dir_ / "live.yaml";
  std::thread listener([&] {
    sh(kBin + "/bulkhead suggest --agent " + socket_ + " --since 8s --policies " +
       (dir_ / "policy.yaml").string() + " --app shop -o " + live.string() + " 2>" +
       (dir_ / "live.err").string());
  });
  // Joined however the test ends (the CLI stops after --since).
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{listener};
  // Time for the CLI to start and subscribe (a loaded machine starts it
  // late; it prints only when done), inside a window (8 s) that outlasts
  // the probes below.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // shop is in audit mode: these connect, and each is logged as audit.
  EXPECT_TRUE(tcpProbe(ns("vshop1"), "198.51.100.10", 5432).ok);
  EXPECT_TRUE(tcpProbe(ns("vshop1"), "192.0.2.70", 8080).ok);
  EXPECT_TRUE(tcpProbe(ns("vshop1"), "203.0.113.50", 443).ok);
  std::string events;
  ASSERT_TRUE(waitFor(
      [&] {
        events = readAll(dir_ / "watch.jsonl");
        return events.find("203.0.113.50") != std::string::npos &&
               events.find("192.0.2.70") != std::string::npos &&
               events.find("\"dport\": 5432") != std::string::npos;
      },
      3000))
      << events;
  const fs::path out = dir_ / "suggested.yaml";
  auto s = sh(kBin + "/bulkhead suggest " + (dir_ / "watch.jsonl").string() + " --policies " +
              (dir_ / "policy.yaml").string() + " --app shop -o " + out.string());
  ASSERT_TRUE(s.ok()) << s.out;
  const std::string yaml = readAll(out);
  listener.join();
  const std::string liveYaml = readAll(live);
  EXPECT_NE(liveYaml.find("- to: [postgres-prod]\n      ports: [tcp/5432]"), std::string::npos)
      << liveYaml << readAll(dir_ / "live.err");
  EXPECT_NE(liveYaml.find("- to: [inventory]"), std::string::npos);
  EXPECT_NE(liveYaml.find("\"203.0.113.50/32\""), std::string::npos);
  EXPECT_NE(yaml.find("- to: [postgres-prod]\n      ports: [tcp/5432]"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("- to: [inventory]\n      ports: [tcp/8080]"), std::string::npos);
  EXPECT_NE(yaml.find("cidrs: [\"203.0.113.50/32\"]\n      ports: [tcp/443]"), std::string::npos);
  EXPECT_EQ(yaml.find("0.0.0.0/0"), std::string::npos);

  // The policy with shop's document replaced by the suggestion, enforced.
  std::string policy = kPolicy;
  const std::string shopDoc =
      "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: shop}\nspec:\n  mode: audit\n---\n";
  ASSERT_NE(policy.find(shopDoc), std::string::npos);
  policy.erase(policy.find(shopDoc), shopDoc.size());
  std::string enforced = yaml;
  enforced.replace(enforced.find("mode: audit"), 11, "mode: enforce");
  fs::create_directories(dir_ / "next");
  std::ofstream(dir_ / "next" / "policy.yaml") << policy;
  std::ofstream(dir_ / "next" / "shop.yaml") << enforced;
  auto v = sh(kBin + "/bulkhead validate " + (dir_ / "next").string());
  ASSERT_TRUE(v.ok()) << v.out << enforced;
  auto push = cli("push " + (dir_ / "next").string());
  ASSERT_TRUE(push.ok()) << push.out;
  EXPECT_TRUE(tcpProbe(ns("vshop1"), "198.51.100.10", 5432).ok);
  EXPECT_TRUE(tcpProbe(ns("vshop1"), "192.0.2.70", 8080).ok);
  EXPECT_TRUE(tcpProbe(ns("vshop1"), "203.0.113.50", 443).ok);
  // Never seen: denied (reject fails at once).
  EXPECT_FALSE(tcpProbe(ns("vshop1"), "203.0.113.50", 80, 1.5).ok);
  EXPECT_FALSE(tcpProbe(ns("vshop1"), "198.51.100.10", 22, 1.5).ok);
  EXPECT_FALSE(tcpProbe(ns("vshop1"), "198.51.100.11", 443, 1.5).ok);
}

}  // namespace
}  // namespace bulkhead::testing
