// Compiler tests on bundles built in code (YAML golden tests are separate).
#include "bulkhead/compiler/compiler.h"

#include <gtest/gtest.h>

#include "bulkhead/compiler/render.h"

namespace bulkhead::compiler {
namespace {

using namespace policy;

Service cidrService(const std::string& name, std::vector<std::string> cidrs,
                    std::vector<std::string> ports, Labels labels = {}) {
  Service s;
  s.name = name;
  s.labels = std::move(labels);
  Endpoint ep;
  for (const auto& c : cidrs)
    ep.cidrs.push_back(*Cidr::parse(c));
  for (const auto& p : ports)
    ep.ports.push_back(*PortSpec::parse(p));
  s.endpoints.push_back(ep);
  return s;
}

App app(const std::string& name, std::vector<std::string> to, Labels labels = {}) {
  App a;
  a.name = name;
  a.labels = std::move(labels);
  EgressRule r;
  for (const auto& t : to)
    r.to.push_back(NameRef{t, {}});
  if (!to.empty()) a.egress.push_back(r);
  return a;
}

Workload workload(const std::string& name, const std::string& app, std::string iface,
                  std::vector<std::string> addrs) {
  Workload w;
  w.name = name;
  w.app = app;
  w.interfaces = {std::move(iface)};
  for (const auto& a : addrs)
    w.addresses.push_back(*IpAddr::parse(a));
  return w;
}

Bundle sample() {
  Bundle b;
  b.services.push_back(cidrService("postgres-prod", {"198.51.100.10/32", "2001:db8:10::/64"},
                                   {"tcp/5432"}, {{"env", "prod"}}));
  b.services.push_back(cidrService("dns", {"198.51.100.53/32"}, {"udp/53", "tcp/53"}));
  Service api;
  api.name = "payments-api";
  api.appSelector = policy::Selector{{{"app", "payments"}}};
  api.ports = {*PortSpec::parse("tcp/8443")};
  b.services.push_back(api);
  b.apps.push_back(app("billing", {"postgres-prod", "payments-api"}, {{"env", "prod"}}));
  b.apps.push_back(app("payments", {}, {{"env", "prod"}}));
  b.apps.push_back(app("devtool", {"postgres-prod"}, {{"env", "dev"}}));
  GlobalPolicy g;
  g.name = "baseline";
  g.order = 100;
  GlobalRule deny;
  deny.action = RuleAction::kDeny;
  deny.from = policy::Selector{{{"env", "dev"}}};
  deny.toSelector = policy::Selector{{{"env", "prod"}}};
  GlobalRule allow;
  allow.action = RuleAction::kAllow;
  allow.to = {NameRef{"dns", {}}};
  g.rules = {deny, allow};
  b.globalPolicies.push_back(g);
  b.workloads.push_back(workload("billing-1", "billing", "vb1", {"192.0.2.10", "2001:db8:2::10"}));
  b.workloads.push_back(workload("pay-1", "payments", "vp1", {"192.0.2.20"}));
  b.workloads.push_back(workload("dev-1", "devtool", "vd1", {"192.0.2.30"}));
  return b;
}

std::vector<std::string> renderedElements(const Ruleset& rs, const std::string& set) {
  std::vector<std::string> out;
  const Set* s = rs.findSet(set);
  if (!s) return {"<no set " + set + ">"};
  for (const auto& e : s->elements)
    out.push_back(renderElement(*s, e));
  return out;
}

std::vector<std::string> renderedRules(const Ruleset& rs, const std::string& chain) {
  std::vector<std::string> out;
  for (const auto& r : rs.findChain(chain)->rules)
    out.push_back(renderRule(r));
  return out;
}

TEST(Compiler, AllowSetsHoldServicesAndAppBackedServices) {
  auto rs = compile(sample(), {});
  ASSERT_TRUE(rs.ok()) << rs.error().describe();
  EXPECT_EQ(renderedElements(*rs, "a4_billing"),
            (std::vector<std::string>{"192.0.2.20 . tcp . 8443", "198.51.100.10 . tcp . 5432"}));
  EXPECT_EQ(renderedElements(*rs, "a6_billing"),
            (std::vector<std::string>{"2001:db8:10::/64 . tcp . 5432"}));
  EXPECT_TRUE(rs->findSet("a4_payments")->elements.empty());
}

TEST(Compiler, WorkloadSetsDispatchAndSourceAddresses) {
  auto rs = compile(sample(), {});
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(renderedElements(*rs, "dispatch"),
            (std::vector<std::string>{"\"vb1\" : goto app_billing", "\"vd1\" : goto app_devtool",
                                      "\"vp1\" : goto app_payments"}));
  EXPECT_EQ(renderedElements(*rs, "src4"),
            (std::vector<std::string>{"\"vb1\" . 192.0.2.10", "\"vd1\" . 192.0.2.30",
                                      "\"vp1\" . 192.0.2.20"}));
  EXPECT_EQ(renderedElements(*rs, "src6"), (std::vector<std::string>{"\"vb1\" . 2001:db8:2::10"}));
  EXPECT_TRUE(rs->findSet("quarantine")->elements.empty());
}

TEST(Compiler, EvaluationOrderInAppChain) {
  auto rs = compile(sample(), {});
  ASSERT_TRUE(rs.ok());
  const auto rules = renderedRules(*rs, "app_devtool");
  const std::vector<std::string> expected = {
      "jump workload_pre",
      "ip daddr . meta l4proto . th dport @g4_baseline_0 update @log_budget { iifname limit rate "
      "100/second burst 200 packets } "
      "log prefix \"bh:deny:globalpolicy/baseline/0\" group 1771 comment "
      "\"globalpolicy/baseline/0\"",
      "ip daddr . meta l4proto . th dport @g4_baseline_0 counter goto deny_reject comment "
      "\"globalpolicy/baseline/0\"",
      "ip6 daddr . meta l4proto . th dport @g6_baseline_0 update @log_budget { iifname limit rate "
      "100/second burst 200 "
      "packets } log prefix \"bh:deny:globalpolicy/baseline/0\" group 1771 comment "
      "\"globalpolicy/baseline/0\"",
      "ip6 daddr . meta l4proto . th dport @g6_baseline_0 counter goto deny_reject comment "
      "\"globalpolicy/baseline/0\"",
      "ip daddr . meta l4proto . th dport @a4_devtool accept",
      "ip6 daddr . meta l4proto . th dport @a6_devtool accept",
      "ip daddr . meta l4proto . th dport @g4_baseline_1 accept comment "
      "\"globalpolicy/baseline/1\"",
      "ip6 daddr . meta l4proto . th dport @g6_baseline_1 accept comment "
      "\"globalpolicy/baseline/1\"",
      "update @log_budget { iifname limit rate 100/second burst 200 packets } log prefix "
      "\"bh:deny:default\" group 1771 comment \"default\"",
      "counter goto deny_reject comment \"default\"",
  };
  EXPECT_EQ(rules, expected);
  // The deny rule does not select prod apps.
  for (const auto& r : renderedRules(*rs, "app_billing"))
    EXPECT_EQ(r.find("g4_baseline_0"), std::string::npos) << r;
}

TEST(Compiler, GlobalDenySetCoversProdServicesAndApps) {
  auto rs = compile(sample(), {});
  ASSERT_TRUE(rs.ok());
  // postgres-prod (service, env=prod) and the workloads of billing and
  // payments (apps, env=prod), every protocol.
  EXPECT_EQ(
      renderedElements(*rs, "g4_baseline_0"),
      (std::vector<std::string>{"192.0.2.10 . 0-255 . 0-65535", "192.0.2.20 . 0-255 . 0-65535",
                                "198.51.100.10 . tcp . 5432"}));
}

TEST(Compiler, AuditModeAcceptsAndDropActionDrops) {
  auto b = sample();
  b.apps[0].mode = Mode::kAudit;
  b.apps[1].denyAction = DenyAction::kDrop;
  auto rs = compile(b, {});
  ASSERT_TRUE(rs.ok());
  auto billing = renderedRules(*rs, "app_billing");
  EXPECT_NE(billing[billing.size() - 2].find("bh:audit:default"), std::string::npos);
  EXPECT_EQ(billing.back(), "counter accept comment \"default\"");
  EXPECT_EQ(renderedRules(*rs, "app_payments").back(), "counter drop comment \"default\"");
}

TEST(Compiler, WorkloadWithoutAppDocumentGetsDefaultDeny) {
  auto b = sample();
  b.workloads.push_back(workload("ghost-1", "ghost", "vg1", {"192.0.2.99"}));
  auto rs = compile(b, {});
  ASSERT_TRUE(rs.ok());
  auto rules = renderedRules(*rs, "app_ghost");
  EXPECT_EQ(rules.back(), "counter goto deny_reject comment \"default\"");
  EXPECT_TRUE(rs->findSet("a4_ghost")->elements.empty());
}

TEST(Compiler, QuarantinedWorkloadIsInQuarantineSet) {
  auto w = workload("extra-1", "billing", "vx1", {"192.0.2.11"});
  w.quarantined = true;
  auto rs = compile(sample(), {w});
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(renderedElements(*rs, "quarantine"), (std::vector<std::string>{"\"vx1\""}));
  // An API workload is a destination like any other: billing is prod, so
  // its new address joins (and merges into) the dev->prod deny set.
  auto g = renderedElements(*rs, "g4_baseline_0");
  EXPECT_NE(std::find(g.begin(), g.end(), "192.0.2.10/31 . 0-255 . 0-65535"), g.end());
}

TEST(Compiler, IcmpGoesOnlyToItsFamily) {
  Bundle b;
  b.services.push_back(
      cidrService("mixed", {"198.51.100.0/24", "2001:db8::/48"}, {"icmp", "icmpv6", "udp/123"}));
  b.apps.push_back(app("a", {"mixed"}));
  auto rs = compile(b, {});
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(renderedElements(*rs, "a4_a"),
            (std::vector<std::string>{"198.51.100.0/24 . icmp . 0-65535",
                                      "198.51.100.0/24 . udp . 123"}));
  EXPECT_EQ(renderedElements(*rs, "a6_a"),
            (std::vector<std::string>{"2001:db8::/48 . udp . 123",
                                      "2001:db8::/48 . ipv6-icmp . 0-65535"}));
}

TEST(Compiler, EgressPortsNarrowNamedServices) {
  Bundle b;
  b.services.push_back(cidrService("web", {"198.51.100.80/32"}, {"tcp/80-90"}));
  App a = app("a", {"web"});
  a.egress[0].ports = {*PortSpec::parse("tcp/85-100")};
  EgressRule cidrs;
  cidrs.toCIDRs = {*Cidr::parse("203.0.113.0/25"), *Cidr::parse("203.0.113.128/25")};
  cidrs.ports = {*PortSpec::parse("tcp/443")};
  a.egress.push_back(cidrs);
  b.apps.push_back(a);
  auto rs = compile(b, {});
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(
      renderedElements(*rs, "a4_a"),
      (std::vector<std::string>{"198.51.100.80 . tcp . 85-90", "203.0.113.0/24 . tcp . 443"}));
}

// Narrowing a service to ports it does not serve leaves nothing to allow:
// not every port (an empty intersection once read as "no ports given").
TEST(Compiler, EgressPortsDisjointFromTheServiceAllowNothing) {
  Bundle b = sample();
  for (auto& a : b.apps)
    if (a.name == "billing") a.egress[0].ports = {*PortSpec::parse("udp/53")};
  GlobalRule toDb;
  toDb.action = RuleAction::kAllow;
  toDb.to = {NameRef{"postgres-prod", {}}, NameRef{"payments-api", {}}, NameRef{"payments", {}}};
  toDb.ports = {*PortSpec::parse("udp/9")};
  b.globalPolicies[0].rules.push_back(toDb);
  auto rs = compile(b, {});
  ASSERT_TRUE(rs.ok()) << rs.error().describe();
  // billing's egress names postgres-prod (tcp/5432) and payments-api
  // (tcp/8443), both narrowed to udp/53: nothing of either.
  EXPECT_TRUE(renderedElements(*rs, "a4_billing").empty());
  EXPECT_TRUE(renderedElements(*rs, "a6_billing").empty());
  // The App by name has no ports of its own: narrowing gives udp/9 to it.
  EXPECT_EQ(renderedElements(*rs, "g4_baseline_2"),
            (std::vector<std::string>{"192.0.2.20 . udp . 9"}));
  EXPECT_TRUE(renderedElements(*rs, "g6_baseline_2").empty());
}

// One address, one protocol and at most 16 ports: a hash set (no pipapo
// lookup per new connection); anything wider keeps the interval set. An
// app-backed service's shape does not wait for the app's workloads.
TEST(Compiler, DestinationsOfSingleAddressesAndFewPortsAreAHashSet) {
  Bundle b;
  b.services.push_back(
      cidrService("db", {"198.51.100.10/32", "2001:db8:10::10/128"}, {"tcp/5432"}));
  b.services.push_back(cidrService("sixteen", {"198.51.100.20/32"}, {"tcp/8000-8015"}));
  b.services.push_back(cidrService("seventeen", {"198.51.100.21/32"}, {"tcp/8000-8016"}));
  b.services.push_back(cidrService("net", {"198.51.100.0/24"}, {"tcp/443"}));
  Service api;
  api.name = "pay-api";
  api.appSelector = policy::Selector{{{"app", "pay"}}};
  api.ports = {*PortSpec::parse("tcp/8443")};
  b.services.push_back(api);
  b.apps.push_back(app("hosts", {"db", "sixteen", "pay-api"}));
  b.apps.push_back(app("wide", {"seventeen"}));
  b.apps.push_back(app("cidr", {"net"}));
  b.apps.push_back(app("pay", {}));
  auto rs = compile(b, {});
  ASSERT_TRUE(rs.ok()) << rs.error().describe();
  EXPECT_FALSE(rs->findSet("a4_hosts")->interval);
  EXPECT_FALSE(rs->findSet("a6_hosts")->interval);
  EXPECT_TRUE(rs->findSet("a4_wide")->interval);
  EXPECT_TRUE(rs->findSet("a4_cidr")->interval);
  const auto hosts = renderedElements(*rs, "a4_hosts");
  ASSERT_EQ(hosts.size(), 17u);  // db's one port, sixteen's 16; pay has no workload yet
  EXPECT_EQ(hosts.front(), "198.51.100.10 . tcp . 5432");
  EXPECT_EQ(hosts.back(), "198.51.100.20 . tcp . 8015");
  EXPECT_EQ(renderedElements(*rs, "a6_hosts"),
            (std::vector<std::string>{"2001:db8:10::10 . tcp . 5432"}));

  auto withPay = compile(b, {workload("pay-1", "pay", "vp1", {"192.0.2.20"})});
  ASSERT_TRUE(withPay.ok());
  EXPECT_FALSE(withPay->findSet("a4_hosts")->interval);
  EXPECT_EQ(renderedElements(*withPay, "a4_hosts").front(), "192.0.2.20 . tcp . 8443");
}

TEST(Compiler, RejectsInterfaceClaimedTwice) {
  auto rs = compile(sample(), {workload("other", "billing", "vb1", {"192.0.2.77"})});
  ASSERT_FALSE(rs.ok());
  EXPECT_EQ(rs.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(rs.error().message.find("vb1"), std::string::npos);
}

TEST(Compiler, InputChainAcceptsNeighbourDiscoveryFirst) {
  auto rs = compile(sample(), {});
  ASSERT_TRUE(rs.ok());
  auto rules = renderedRules(*rs, "input");
  ASSERT_GE(rules.size(), 4u);
  // Established flows first (the evaluation order), then ND before any policy.
  EXPECT_EQ(rules[0], "ct state established,related accept");
  EXPECT_EQ(rules[1], "icmpv6 type 133-137 accept comment \"ipv6 neighbour discovery\"");
  EXPECT_EQ(rules[rules.size() - 2], "iifname vmap @dispatch");
  EXPECT_EQ(rules.back(), "iifname @staged goto staged_dispatch");
  EXPECT_EQ(
      renderedRules(*rs, "forward"),
      (std::vector<std::string>{"ct state established,related accept", "iifname vmap @dispatch",
                                "iifname @staged goto staged_dispatch"}));
  // The pre-checks under each app chain no longer repeat it.
  for (const auto& r : renderedRules(*rs, "workload_pre"))
    EXPECT_EQ(r.find("established"), std::string::npos) << r;
}

TEST(Compiler, StagedDispatchHasOneRulePerAppThenDrop) {
  auto b = sample();
  b.workloads.push_back(workload("ghost-1", "ghost", "vg1", {"192.0.2.99"}));  // implicit app
  auto rs = compile(b, {});
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(renderedRules(*rs, "staged_dispatch"),
            (std::vector<std::string>{
                "iifname @st_billing goto app_billing", "iifname @st_devtool goto app_devtool",
                "iifname @st_ghost goto app_ghost", "iifname @st_payments goto app_payments",
                "drop comment \"staged interface without app\""}));
  // Both base chains end with the dispatch map, then the staged path.
  for (const char* base : {"forward", "input"}) {
    const auto rules = renderedRules(*rs, base);
    ASSERT_GE(rules.size(), 2u) << base;
    EXPECT_EQ(rules[rules.size() - 2], "iifname vmap @dispatch") << base;
    EXPECT_EQ(rules.back(), "iifname @staged goto staged_dispatch") << base;
  }
  // A full compile stages nothing: every interface is in @dispatch.
  EXPECT_EQ(renderedElements(*rs, "dispatch"),
            (std::vector<std::string>{"\"vb1\" : goto app_billing", "\"vd1\" : goto app_devtool",
                                      "\"vg1\" : goto app_ghost", "\"vp1\" : goto app_payments"}));
  for (const char* set : {"staged", "st_billing", "st_devtool", "st_ghost", "st_payments"}) {
    ASSERT_NE(rs->findSet(set), nullptr) << set;
    EXPECT_TRUE(rs->findSet(set)->elements.empty()) << set;
  }
}

TEST(Compiler, OutputIsStable) {
  auto a = compile(sample(), {});
  auto b = compile(sample(), {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(renderRuleset(*a), renderRuleset(*b));
}

}  // namespace
}  // namespace bulkhead::compiler
