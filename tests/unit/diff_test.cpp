#include "bulkhead/compiler/diff.h"

#include <gtest/gtest.h>

#include "bulkhead/compiler/compiler.h"

namespace bulkhead::compiler {
namespace {

using namespace policy;

IpAddr v4(uint32_t n) {
  IpAddr a;
  a.bytes[0] = uint8_t(n >> 24);
  a.bytes[1] = uint8_t(n >> 16);
  a.bytes[2] = uint8_t(n >> 8);
  a.bytes[3] = uint8_t(n);
  return a;
}

// N workloads over N/10 apps, each app allowed to reach a service and the
// app-backed service of the next app.
Bundle scaled(int workloads) {
  Bundle b;
  const int apps = std::max(1, workloads / 10);
  for (int i = 0; i < apps; ++i) {
    const std::string name = "app" + std::to_string(i);
    Service s;
    s.name = "svc" + std::to_string(i);
    Endpoint ep;
    ep.cidrs.push_back(Cidr{v4(0xC6336400u + (i % 200)), 32});  // 198.51.100.x
    ep.ports.push_back(PortSpec{6, 6, uint16_t(1000 + i), uint16_t(1000 + i)});
    s.endpoints.push_back(ep);
    b.services.push_back(s);
    Service backed;
    backed.name = "api" + std::to_string(i);
    backed.appSelector = policy::Selector{{{"app", name}}};
    backed.ports = {PortSpec{6, 6, 8443, 8443}};
    b.services.push_back(backed);
    App a;
    a.name = name;
    EgressRule r;
    r.to = {NameRef{s.name, {}}, NameRef{"api" + std::to_string((i + 1) % apps), {}}};
    a.egress.push_back(r);
    b.apps.push_back(a);
  }
  for (int i = 0; i < workloads; ++i) {
    Workload w;
    w.name = "w" + std::to_string(i);
    w.app = "app" + std::to_string(i % apps);
    w.interfaces = {"v" + std::to_string(i)};
    w.addresses = {v4(0x0A000000u + uint32_t(i) * 4)};  // spaced: no merging
    b.workloads.push_back(w);
  }
  return b;
}

TEST(Diff, IdenticalRulesetsHaveNoChanges) {
  auto b = scaled(100);
  auto a = compile(b, {});
  auto c = compile(b, {});
  ASSERT_TRUE(a.ok() && c.ok());
  EXPECT_TRUE(diffRulesets(*a, *c).empty());
}

TEST(Diff, AddingOneWorkloadToTenThousandChangesOnlyElements) {
  auto b = scaled(10000);
  auto before = compile(b, {});
  ASSERT_TRUE(before.ok());
  Workload w;
  w.name = "new";
  w.app = "app7";
  w.interfaces = {"vnew"};
  w.addresses = {*IpAddr::parse("192.0.2.200")};
  auto after = compile(b, {w});
  ASSERT_TRUE(after.ok());
  auto d = diffRulesets(*before, *after);
  EXPECT_FALSE(d.createTable);
  EXPECT_TRUE(d.addSets.empty());
  EXPECT_TRUE(d.deleteSets.empty());
  EXPECT_TRUE(d.addChains.empty());
  EXPECT_TRUE(d.replaceChains.empty());
  EXPECT_TRUE(d.deleteChains.empty());
  // dispatch + registered + src4 + the allow set of app6 (which reaches api7).
  ASSERT_EQ(d.elements.size(), 4u);
  EXPECT_EQ(d.elementChangeCount(), 4u);
  std::vector<std::string> sets;
  for (const auto& c : d.elements)
    sets.push_back(c.set);
  EXPECT_EQ(sets, (std::vector<std::string>{"a4_app6", "dispatch", "registered", "src4"}));
}

TEST(Diff, RemovingAWorkloadRemovesItsElements) {
  auto b = scaled(100);
  auto before = compile(b, {});
  b.workloads.pop_back();
  auto after = compile(b, {});
  ASSERT_TRUE(before.ok() && after.ok());
  auto d = diffRulesets(*before, *after);
  EXPECT_TRUE(d.replaceChains.empty());
  for (const auto& c : d.elements) {
    EXPECT_TRUE(c.add.empty()) << c.set;
    EXPECT_EQ(c.remove.size(), 1u) << c.set;
  }
}

TEST(Diff, AdjacentAddressMergeReplacesTheElement) {
  auto b = scaled(10);
  b.workloads[0].addresses = {*IpAddr::parse("192.0.2.10")};
  // More ports than a hash set spells out: the app-backed services stay
  // interval sets, where adjacent addresses merge.
  for (auto& s : b.services)
    if (s.appSelector) s.ports = {PortSpec{6, 6, 8400, 8499}};
  auto before = compile(b, {});
  Workload w;
  w.name = "n";
  w.app = b.workloads[0].app;
  w.interfaces = {"vn"};
  w.addresses = {*IpAddr::parse("192.0.2.11")};
  auto after = compile(b, {w});
  ASSERT_TRUE(before.ok() && after.ok());
  auto d = diffRulesets(*before, *after);
  bool sawMerge = false;
  for (const auto& c : d.elements)
    if (c.remove.size() == 1 && c.add.size() == 1) sawMerge = true;  // .10 -> .10-.11
  EXPECT_TRUE(sawMerge);
}

TEST(Diff, ChangedRulesRewriteOnlyThatChain) {
  auto b = scaled(100);
  auto before = compile(b, {});
  b.apps[3].mode = Mode::kAudit;
  auto after = compile(b, {});
  ASSERT_TRUE(before.ok() && after.ok());
  auto d = diffRulesets(*before, *after);
  ASSERT_EQ(d.replaceChains.size(), 1u);
  EXPECT_EQ(d.replaceChains[0].name, "app_app3");
  EXPECT_TRUE(d.elements.empty());
}

TEST(Diff, RemovedAppDeletesChainAndSets) {
  auto b = scaled(20);
  auto before = compile(b, {});
  // app1 has workloads w1, w3...; drop the app and its workloads.
  std::erase_if(b.workloads, [](const Workload& w) { return w.app == "app1"; });
  b.apps.erase(b.apps.begin() + 1);
  auto after = compile(b, {});
  ASSERT_TRUE(before.ok() && after.ok());
  auto d = diffRulesets(*before, *after);
  EXPECT_EQ(d.deleteChains, (std::vector<std::string>{"app_app1"}));
  EXPECT_EQ(d.deleteSets, (std::vector<std::string>{"a4_app1", "a6_app1", "st_app1"}));
  // staged_dispatch loses its rule for app1.
  ASSERT_EQ(d.replaceChains.size(), 1u);
  EXPECT_EQ(d.replaceChains[0].name, "staged_dispatch");
}

TEST(Diff, FullRulesetCreatesEverything) {
  auto rs = compile(scaled(10), {});
  ASSERT_TRUE(rs.ok());
  auto d = fullRuleset(*rs);
  EXPECT_TRUE(d.createTable);
  EXPECT_EQ(d.addSets.size(), rs->sets.size());
  EXPECT_EQ(d.addChains.size(), rs->chains.size());
  EXPECT_EQ(d.elementChangeCount(), rs->elementCount());
}

}  // namespace
}  // namespace bulkhead::compiler
