// Enforcement against the real kernel with real packets: a hypervisor
// namespace running bulkhead's table, workloads and a server in their own
// namespaces, routed through it (see tests/support/netns.h).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "bulkhead/compiler/diff.h"
#include "bulkhead/compiler/incremental.h"
#include "bulkhead/compiler/render.h"
#include "bulkhead/policy/loader.h"
#include "support/apply.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

constexpr const char* kPolicy = R"(
apiVersion: bulkhead/v1
kind: Service
metadata: {name: postgres-prod, labels: {env: prod}}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32, "2001:db8:10::10/128"]
      ports: [tcp/5432]
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: dns}
spec:
  endpoints:
    - cidrs: [198.51.100.53/32, "2001:db8:10::53/128"]
      ports: [udp/53]
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: host-metrics}
spec:
  endpoints:
    - cidrs: [203.0.113.1/32, "2001:db8:ff::1/128"]
      ports: [tcp/9100]
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: stream}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32]
      ports: [tcp/7000]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: billing, labels: {env: prod}}
spec:
  mode: enforce
  denyAction: reject
  egress:
    - to: [postgres-prod, dns, host-metrics, stream]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: devtool, labels: {env: dev}}
spec:
  denyAction: drop
  egress:
    - to: [postgres-prod, dns]
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
spec: {app: billing, interfaces: [vbill1], addresses: [192.0.2.10, "2001:db8:2::10"]}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: devtool-1}
spec: {app: devtool, interfaces: [vdev1], addresses: [192.0.2.20, "2001:db8:2::20"]}
)";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto pos = text.find(from);
  if (pos == std::string::npos) throw std::runtime_error("no \"" + from + "\" in policy");
  return text.replace(pos, from.size(), to);
}

class EnforceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!havePrivileges()) return;
    sweepStaleNamespaces();
    topo_ = new Topology();
    topo_->addHost("vbill1", "192.0.2.10", "2001:db8:2::10");
    topo_->addHost("vdev1", "192.0.2.20", "2001:db8:2::20");
    topo_->addHost("vfree1", "192.0.2.99", "2001:db8:2::99");  // in no workload
    auto& server = topo_->addHost("vsrv1", "198.51.100.10", "2001:db8:10::10");
    topo_->addAddress(server, "198.51.100.53", true);
    topo_->addAddress(server, "2001:db8:10::53", true);
    streamFile_ = new std::string("/tmp/bht-stream-" + std::to_string(getpid()));
    processes_ = new std::vector<std::unique_ptr<Process>>();
    for (int port : {5432, 22, 7001}) {
      processes_->push_back(std::make_unique<Process>(*server.ns, tcpListenCmd(port, false)));
      processes_->push_back(std::make_unique<Process>(*server.ns, tcpListenCmd(port, true)));
    }
    processes_->push_back(std::make_unique<Process>(
        *server.ns,
        "exec socat -u TCP-LISTEN:7000,reuseaddr,fork OPEN:" + *streamFile_ + ",creat,append"));
    for (int port : {53, 5353}) {
      processes_->push_back(
          std::make_unique<Process>(*server.ns, udpListenCmd(port, false, "198.51.100.53")));
      processes_->push_back(
          std::make_unique<Process>(*server.ns, udpListenCmd(port, true, "2001:db8:10::53")));
    }
    for (int port : {9100, 22}) {
      processes_->push_back(std::make_unique<Process>(topo_->hv(), tcpListenCmd(port, false)));
      processes_->push_back(std::make_unique<Process>(topo_->hv(), tcpListenCmd(port, true)));
    }
    waitListening(*server.ns, 5432, false);
    waitListening(*server.ns, 7000, false);
    waitListening(*server.ns, 53, true);
    waitListening(topo_->hv(), 9100, false);
  }

  static void TearDownTestSuite() {
    delete processes_;  // before the namespaces they run in
    delete topo_;
    if (streamFile_) std::filesystem::remove(*streamFile_);
    delete streamFile_;
    processes_ = nullptr;
    topo_ = nullptr;
    streamFile_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
    ASSERT_NE(topo_, nullptr);
    applier_ = std::make_unique<KernelApplier>(topo_->hv());
    ASSERT_TRUE(applier_->replace(compileYaml(kPolicy)).ok());
  }

  void TearDown() override {
    if (topo_) topo_->hv().exec("nft delete table inet bulkhead; nft delete table inet other");
  }

  static const Netns& ns(const std::string& iface) { return *topo_->host(iface).ns; }

  static Topology* topo_;
  static std::vector<std::unique_ptr<Process>>* processes_;
  static std::string* streamFile_;
  std::unique_ptr<KernelApplier> applier_;
};

Topology* EnforceTest::topo_ = nullptr;
std::vector<std::unique_ptr<Process>>* EnforceTest::processes_ = nullptr;
std::string* EnforceTest::streamFile_ = nullptr;

struct Addrs {
  const char* postgres;
  const char* dns;
  const char* host;
  const char* spoofed;
};
void PrintTo(const Addrs& a, std::ostream* os) {
  *os << a.postgres;
}

const Addrs kV4{"198.51.100.10", "198.51.100.53", Topology::kHostV4, "192.0.2.77"};
const Addrs kV6{"2001:db8:10::10", "2001:db8:10::53", Topology::kHostV6, "2001:db8:2::77"};

class EnforceFamilyTest : public EnforceTest, public ::testing::WithParamInterface<Addrs> {};

TEST_P(EnforceFamilyTest, AllowedTcpConnects) {
  auto p = tcpProbe(ns("vbill1"), GetParam().postgres, 5432);
  EXPECT_TRUE(p.ok) << p.out;
}

TEST_P(EnforceFamilyTest, DeniedTcpWithRejectFailsFast) {
  auto p = tcpProbe(ns("vbill1"), GetParam().postgres, 22, 3.0);
  EXPECT_FALSE(p.ok) << p.out;
  EXPECT_LT(p.seconds, 1.5) << "reject should fail at once: " << p.out;
}

TEST_P(EnforceFamilyTest, DeniedTcpWithDropTimesOut) {
  auto p = tcpProbe(ns("vdev1"), GetParam().postgres, 22, 1.5);
  EXPECT_FALSE(p.ok) << p.out;
  EXPECT_GE(p.seconds, 1.4) << "drop should leave the client waiting: " << p.out;
}

TEST_P(EnforceFamilyTest, UdpAllowedAndDenied) {
  auto allowed = udpProbe(ns("vbill1"), GetParam().dns, 53);
  EXPECT_TRUE(allowed.ok) << allowed.out;
  auto denied = udpProbe(ns("vbill1"), GetParam().dns, 5353);
  EXPECT_FALSE(denied.ok) << denied.out;
}

TEST_P(EnforceFamilyTest, GlobalDenyBeatsAppAllow) {
  // devtool's own egress names postgres-prod; the dev -> prod deny wins.
  auto p = tcpProbe(ns("vdev1"), GetParam().postgres, 5432, 1.5);
  EXPECT_FALSE(p.ok) << p.out;
  // ...while its other allows still work.
  auto dns = udpProbe(ns("vdev1"), GetParam().dns, 53);
  EXPECT_TRUE(dns.ok) << dns.out;
}

TEST_P(EnforceFamilyTest, AuditModePassesWhatEnforceWouldDeny) {
  ASSERT_TRUE(applier_->apply(compileYaml(replaced(kPolicy, "mode: enforce", "mode: audit"))).ok());
  auto p = tcpProbe(ns("vbill1"), GetParam().postgres, 22);
  EXPECT_TRUE(p.ok) << p.out;
  auto list = topo_->hv().exec("nft list chain inet bulkhead app_billing");
  EXPECT_NE(list.out.find("bh:audit:default"), std::string::npos) << list.out;
}

TEST_P(EnforceFamilyTest, SpoofedSourceIsDropped) {
  auto& billing = topo_->host("vbill1");
  topo_->addAddress(billing, GetParam().spoofed, true);
  struct Cleanup {
    Topology::Host& host;
    std::string addr;
    ~Cleanup() { topo_->removeAddress(host, addr); }
  } cleanup{billing, GetParam().spoofed};
  auto spoofed = tcpProbe(ns("vbill1"), GetParam().postgres, 5432, 1.5, GetParam().spoofed);
  EXPECT_FALSE(spoofed.ok) << spoofed.out;
  EXPECT_GE(spoofed.seconds, 1.4) << "spoofed packets are dropped, not rejected";
  auto list = topo_->hv().exec("nft list chain inet bulkhead workload_raw");
  const bool v6 = std::string(GetParam().spoofed).find(':') != std::string::npos;
  const std::string rule =
      v6 ? "ip6 saddr != @src6 counter packets " : "ip saddr != @src4 counter packets ";
  const auto pos = list.out.find(rule);
  ASSERT_NE(pos, std::string::npos) << list.out;
  EXPECT_NE(list.out[pos + rule.size()], '0') << "the spoof drop rule counted nothing:\n"
                                              << list.out;
  // The registered address still works.
  const std::string registered = v6 ? "2001:db8:2::10" : "192.0.2.10";
  EXPECT_TRUE(tcpProbe(ns("vbill1"), GetParam().postgres, 5432, 2.0, registered).ok);
}

TEST_P(EnforceFamilyTest, TrafficToTheHostItselfIsPoliced) {
  auto denied = tcpProbe(ns("vbill1"), GetParam().host, 22, 3.0);
  EXPECT_FALSE(denied.ok) << denied.out;
  EXPECT_LT(denied.seconds, 1.5);
  auto allowed = tcpProbe(ns("vbill1"), GetParam().host, 9100);
  EXPECT_TRUE(allowed.ok) << allowed.out;
}

TEST_P(EnforceFamilyTest, UnregisteredInterfaceAndHostTrafficAreUntouched) {
  auto stranger = tcpProbe(ns("vfree1"), GetParam().postgres, 22);
  EXPECT_TRUE(stranger.ok) << stranger.out;
  auto host = tcpProbe(topo_->hv(), GetParam().postgres, 22);
  EXPECT_TRUE(host.ok) << host.out;
}

INSTANTIATE_TEST_SUITE_P(Families, EnforceFamilyTest, ::testing::Values(kV4, kV6),
                         [](const auto& info) {
                           return std::string(info.param.postgres).find(':') == std::string::npos
                                      ? "IPv4"
                                      : "IPv6";
                         });

size_t fileSize(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : size_t(n);
}

TEST_F(EnforceTest, DiffChangesEnforcementWithoutDroppingEstablishedConnections) {
  std::filesystem::remove(*streamFile_);
  Process client(ns("vbill1"),
                 "exec socat -u SYSTEM:'while true; do echo tick; sleep 0.05; done' "
                 "TCP4:198.51.100.10:7000");
  for (int i = 0; i < 100 && fileSize(*streamFile_) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GT(fileSize(*streamFile_), 0u) << "the stream never started";

  // Remove `stream` from billing's egress: one element removal, no rewrite.
  const auto before = *applier_->applied();
  const auto next = compileYaml(replaced(kPolicy, "host-metrics, stream]", "host-metrics]"));
  const auto diff = compiler::diffRulesets(before, next);
  EXPECT_TRUE(diff.replaceChains.empty() && diff.addChains.empty() && diff.addSets.empty());
  EXPECT_EQ(diff.elementChangeCount(), 1u) << diff.summary();
  ASSERT_TRUE(applier_->apply(next).ok());

  const size_t sizeAfterApply = fileSize(*streamFile_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_GT(fileSize(*streamFile_), sizeAfterApply) << "the established stream stopped";
  EXPECT_TRUE(client.running());
  // A new connection to the same port is now denied at once.
  auto fresh = tcpProbe(ns("vbill1"), "198.51.100.10", 7000, 3.0);
  EXPECT_FALSE(fresh.ok);
  EXPECT_LT(fresh.seconds, 1.5);
}

// A workload registered after the policy is enforced through the staged sets
// from its first transaction (no goto element enters the dispatch map), and
// the same after its promotion into the dispatch map.
TEST_F(EnforceTest, StagedWorkloadIsEnforcedBeforeAndAfterPromotion) {
  auto loaded = policy::loadText(kPolicy, "test.yaml");
  ASSERT_TRUE(loaded.ok());
  policy::Bundle bundle = loaded.bundle;
  policy::Workload billing;
  for (const auto& w : bundle.workloads)
    if (w.name == "billing-1") billing = w;
  std::erase_if(bundle.workloads, [](const policy::Workload& w) { return w.name == "billing-1"; });
  compiler::IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(bundle, {}).ok());
  ASSERT_TRUE(applier_->replace(inc.ruleset()).ok());
  // Not registered yet: untouched.
  EXPECT_TRUE(tcpProbe(ns("vbill1"), "198.51.100.10", 22).ok);

  auto staged = inc.upsertWorkload(billing);
  ASSERT_TRUE(staged.ok()) << staged.error().describe();
  for (const auto& c : staged->elements)
    EXPECT_NE(c.set, compiler::kDispatchMap) << "a new interface went into the dispatch map";
  ASSERT_TRUE(applier_->apply(inc.ruleset()).ok());
  auto setText = [&](const std::string& what) {
    return topo_->hv()
        .exec("nft list " + what + " inet bulkhead " + (what == "map" ? "dispatch" : "staged"))
        .out;
  };
  EXPECT_NE(setText("set").find("\"vbill1\""), std::string::npos);
  EXPECT_EQ(setText("map").find("\"vbill1\""), std::string::npos);
  auto check = [&](const char* when) {
    auto allowed = tcpProbe(ns("vbill1"), "198.51.100.10", 5432);
    EXPECT_TRUE(allowed.ok) << when << ": " << allowed.out;
    auto allowed6 = tcpProbe(ns("vbill1"), "2001:db8:10::10", 5432);
    EXPECT_TRUE(allowed6.ok) << when << ": " << allowed6.out;
    auto denied = tcpProbe(ns("vbill1"), "198.51.100.10", 22, 3.0);
    EXPECT_FALSE(denied.ok) << when;
    EXPECT_LT(denied.seconds, 1.5) << when << ": billing rejects, it does not drop";
  };
  check("staged");

  const auto promoted = inc.promoteStaged();
  EXPECT_EQ(promoted.elementChangeCount(), 3u) << promoted.summary();
  ASSERT_TRUE(applier_->apply(inc.ruleset()).ok());
  EXPECT_EQ(setText("set").find("\"vbill1\""), std::string::npos);
  EXPECT_NE(setText("map").find("\"vbill1\" : goto app_billing"), std::string::npos);
  check("promoted");
}

std::string withoutCounters(std::string text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto pos = line.find("counter packets");
    out += (pos == std::string::npos ? line : line.substr(0, pos)) + "\n";
  }
  return out;
}

TEST_F(EnforceTest, AnotherTableOnTheSameHookIsLeftIntact) {
  ASSERT_TRUE(
      topo_->hv()
          .exec("nft add table inet other && nft add chain inet other filter_fwd "
                "'{ type filter hook forward priority 10; policy accept; }' && "
                "nft add rule inet other filter_fwd counter && "
                "nft add set inet other keep '{ type ipv4_addr; elements = { 192.0.2.1 } }'")
          .ok());
  const auto before = topo_->hv().exec("nft list table inet other").out;
  // A full replace and a diff of ours.
  ASSERT_TRUE(applier_->replace(compileYaml(kPolicy)).ok());
  ASSERT_TRUE(applier_->apply(compileYaml(replaced(kPolicy, "mode: enforce", "mode: audit"))).ok());
  auto p = tcpProbe(ns("vbill1"), "198.51.100.10", 5432);
  EXPECT_TRUE(p.ok) << p.out;
  const auto after = topo_->hv().exec("nft list table inet other").out;
  EXPECT_EQ(withoutCounters(before), withoutCounters(after));
  EXPECT_EQ(after.find("counter packets 0 "), std::string::npos) << "other table saw no traffic";
}

TEST_F(EnforceTest, KernelHoldsExactlyWhatPlanRenders) {
  // What the writer committed over netlink reads back as the text `plan`
  // prints: the same sets, elements, chains, rules and comments.
  const auto listed = topo_->hv().exec("nft list table inet bulkhead");
  ASSERT_TRUE(listed.ok()) << listed.out;
  EXPECT_EQ(normalizedNftLines(compiler::renderRuleset(compileYaml(kPolicy))),
            normalizedNftLines(listed.out));
}

}  // namespace
}  // namespace bulkhead::testing
