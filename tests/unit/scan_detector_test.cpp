#include "bulkhead/agent/scan_detector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "bulkhead/agent/config.h"
#include "bulkhead/flows/format.h"

namespace bulkhead::agent {
namespace {

using namespace std::chrono_literals;
const flows::WallClock::time_point kT0 = flows::WallClock::time_point(1'800'000'000s);

flows::FlowEvent attempt(const std::string& dst, uint16_t port, flows::WallClock::time_point t,
                         flows::FlowAction action = flows::FlowAction::kDeny) {
  flows::FlowEvent e;
  e.time = t;
  e.action = action;
  e.app = "web";
  e.workload = "web-1";
  e.src = *policy::IpAddr::parse("192.0.2.10");
  e.dst = *policy::IpAddr::parse(dst);
  e.dport = port;
  e.proto = "tcp";
  e.reason = "default";
  return e;
}

std::string host(int i) {
  return "198.51.100." + std::to_string(i);
}

TEST(ScanDetectorTest, SweepOfPort22IsFoundAtTheThreshold) {
  ScanDetector d({});
  for (int i = 1; i < 20; ++i)
    ASSERT_FALSE(d.observe(attempt(host(i), 22, kT0 + i * 10ms))) << i;
  auto f = d.observe(attempt(host(20), 22, kT0 + 200ms));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, ScanKind::kHosts);
  EXPECT_EQ(f->workload, "web-1");
  EXPECT_EQ(f->distinct, 20u);
  EXPECT_EQ(f->port, "tcp/22");
  EXPECT_EQ(f->sample, (std::vector<std::string>{host(1), host(10), host(11), host(12), host(13)}));
  const auto e = anomalyEvent(*f, d.options());
  EXPECT_EQ(e.action, flows::FlowAction::kAnomaly);
  EXPECT_EQ(e.reason, "scan/hosts");
  const std::string json = flows::formatJson(e);
  EXPECT_NE(json.find("\"fields\":{\"distinct\":\"20\",\"threshold\":\"20\","
                      "\"window_seconds\":\"60\",\"port\":\"tcp/22\",\"sample_dst\":\"" +
                      host(1) + "," + host(10)),
            std::string::npos)
      << json;
  EXPECT_NE(flows::formatRfc5424(e).find("[evidence@32473 distinct=\"20\""), std::string::npos);
  EXPECT_NE(flows::formatCef(e).find("cs4Label=evidence cs4=distinct\\=20"), std::string::npos);
}

TEST(ScanDetectorTest, PortScanOfOneDestinationIsFound) {
  ScanDetector d({});
  std::optional<ScanFinding> f;
  int n = 0;
  for (uint16_t p = 1000; !f && p < 1100; ++p, ++n)
    f = d.observe(attempt(host(7), p, kT0 + n * 1ms));
  ASSERT_TRUE(f);
  EXPECT_EQ(n, 15);
  EXPECT_EQ(f->kind, ScanKind::kPorts);
  EXPECT_EQ(f->dst.toString(), host(7));
  EXPECT_EQ(anomalyEvent(*f, d.options()).reason, "scan/ports");
}

TEST(ScanDetectorTest, FewAttemptsRepeatsAndOtherActionsAreNotScans) {
  ScanDetector d({});
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(d.observe(attempt(host(1), 22, kT0 + i * 1s)));
  // The same destination a thousand times is one destination.
  for (int i = 0; i < 1000; ++i)
    EXPECT_FALSE(d.observe(attempt(host(2), 22, kT0 + i * 1ms)));
  // Spoofed, quarantined, logged attempts and unattributed ones do not count.
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(d.observe(attempt(host(i), 22, kT0, flows::FlowAction::kQuarantine)));
    EXPECT_FALSE(d.observe(attempt(host(i), 22, kT0, flows::FlowAction::kSpoof)));
    auto e = attempt(host(i), 23, kT0);
    e.workload.clear();
    EXPECT_FALSE(d.observe(e));
  }
}

TEST(ScanDetectorTest, TheWindowSlides) {
  ScanOptions o;
  o.window = 60s;
  ScanDetector d(o);
  for (int i = 1; i < 20; ++i)
    ASSERT_FALSE(d.observe(attempt(host(i), 22, kT0)));
  // Nineteen a minute ago and one now: not twenty within the window.
  EXPECT_FALSE(d.observe(attempt(host(20), 22, kT0 + 61s)));
  // Nineteen more within the window make twenty.
  std::optional<ScanFinding> f;
  for (int i = 21; i < 40 && !f; ++i)
    f = d.observe(attempt(host(i), 22, kT0 + 62s));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->distinct, 20u);
}

TEST(ScanDetectorTest, ReportedOncePerWindowThenAgain) {
  ScanDetector d({});
  int found = 0;
  for (int i = 0; i < 250; ++i)
    found += d.observe(attempt("198.51.100." + std::to_string(i), 22, kT0 + i * 1ms)) ? 1 : 0;
  EXPECT_EQ(found, 1);
  for (int i = 0; i < 30; ++i)
    found += d.observe(attempt("203.0.113." + std::to_string(i), 22, kT0 + 61s)) ? 1 : 0;
  EXPECT_EQ(found, 2);
}

TEST(ScanDetectorTest, MemoryIsBoundedUnderAFloodOfDistinctKeys) {
  ScanOptions o;
  o.maxEntries = 10000;
  ScanDetector d(o);
  // Diagonal pairs (each destination one port, each port one destination)
  // stay below both thresholds: only the bound can hold them.
  for (uint32_t i = 0; i < 300000; ++i) {
    policy::IpAddr a = *policy::IpAddr::parse("2001:db8::");
    a.bytes[12] = uint8_t(i >> 24);
    a.bytes[13] = uint8_t(i >> 16);
    a.bytes[14] = uint8_t(i >> 8);
    a.bytes[15] = uint8_t(i);
    auto e = attempt("198.51.100.1", uint16_t(i % 65536), kT0 + std::chrono::microseconds(i));
    e.dst = a;
    e.workload = "w" + std::to_string(i % 7);
    d.observe(e);
    ASSERT_LE(d.entries(), o.maxEntries + 2) << i;
  }
}

TEST(ScanDetectorTest, AgentFlagsAndConfigKeys) {
  auto c = parseAgentArgs({"--auto-quarantine", "--scan-hosts", "30", "--scan-ports", "10",
                           "--scan-window", "120", "--quarantine-seconds", "60"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->autoQuarantine);
  EXPECT_TRUE(c->scanDetection);
  EXPECT_EQ(c->scanHosts, 30u);
  EXPECT_EQ(c->scanPorts, 10u);
  EXPECT_EQ(c->scanWindowSeconds, 120u);
  EXPECT_EQ(c->quarantineSeconds, 60u);
  auto d = parseAgentArgs({"--scan-detection=false", "--auto-quarantine", "false"});
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_FALSE(d->scanDetection);
  EXPECT_FALSE(d->autoQuarantine);
  auto defaults = parseAgentArgs({});
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->autoQuarantine);
  EXPECT_EQ(defaults->scanHosts, 20u);
  EXPECT_EQ(defaults->scanPorts, 15u);
  EXPECT_EQ(defaults->scanWindowSeconds, 60u);
  EXPECT_EQ(defaults->quarantineSeconds, 1800u);
  EXPECT_FALSE(parseAgentArgs({"--scan-hosts", "0"}).ok());
  // Config file keys: the camelCase autoQuarantine, and the flags'.
  const std::string file = "/tmp/bh-scan-config-" + std::to_string(getpid()) + ".yaml";
  std::ofstream(file) << "autoQuarantine: true\nscan-hosts: 25\nquarantine-seconds: 600\n";
  auto f = parseAgentArgs({"--config", file});
  std::remove(file.c_str());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_TRUE(f->autoQuarantine);
  EXPECT_EQ(f->scanHosts, 25u);
  EXPECT_EQ(f->quarantineSeconds, 600u);
  EXPECT_FALSE(parseAgentArgs({"--auto-quarantine=maybe"}).ok());
}

}  // namespace
}  // namespace bulkhead::agent
