// The pre-conntrack chain's fast path: a packet from a workload's own
// address ends the pre-check with its first lookup (src4/src6), so a
// quarantined workload's sources must leave those sets, in the same
// transaction that puts its interface in @quarantine, and come back on release.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bulkhead/agent/enforcer.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/incremental.h"
#include "bulkhead/compiler/render.h"
#include "support/fake_kernel.h"

namespace bulkhead::compiler {
namespace {

using namespace policy;
using Strings = std::vector<std::string>;

Workload workload(const std::string& name, const std::string& iface, Strings addrs) {
  Workload w;
  w.name = name;
  w.app = "web";
  w.interfaces = {iface};
  for (const auto& a : addrs)
    w.addresses.push_back(*IpAddr::parse(a));
  return w;
}

Bundle bundle() {
  Bundle b;
  App web;
  web.name = "web";
  b.apps.push_back(web);
  b.workloads.push_back(workload("a-1", "vwa", {"192.0.2.5", "2001:db8:5::5"}));
  b.workloads.push_back(workload("b-1", "vwb", {"192.0.2.6"}));
  return b;
}

Strings elements(const Ruleset& rs, const char* set) {
  Strings out;
  const Set* s = rs.findSet(set);
  if (!s) return {"<no set>"};
  for (const auto& e : s->elements)
    out.push_back(renderElement(*s, e));
  return out;
}

Strings ruleTexts(const Ruleset& rs, const char* chain) {
  Strings out;
  for (const auto& r : rs.findChain(chain)->rules)
    out.push_back(renderRule(r));
  return out;
}

// set -> "+element" / "-element", sorted: what a diff does to the sets.
Strings changes(const Ruleset& rs, const RulesetDiff& d) {
  Strings out;
  for (const auto& c : d.elements) {
    const Set* s = rs.findSet(c.set);
    for (const auto& e : c.remove)
      out.push_back(c.set + " -" + renderElement(*s, e));
    for (const auto& e : c.add)
      out.push_back(c.set + " +" + renderElement(*s, e));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(PrecheckFastPath, OwnSourceIsThePreroutingChainsFirstLookup) {
  auto rs = compile(bundle(), {});
  ASSERT_TRUE(rs.ok()) << rs.error().describe();
  const Strings pre = ruleTexts(*rs, kPreroutingChain);
  ASSERT_GE(pre.size(), 3u);
  EXPECT_EQ(pre[0], "iifname . ip saddr @src4 accept comment \"own source\"");
  EXPECT_EQ(pre[1], "iifname . ip6 saddr @src6 accept comment \"own source\"");
  EXPECT_EQ(pre[2], "iifname @registered goto workload_raw");
  // The raw chain no longer accepts own sources: what reaches it is
  // quarantined, exempt (ND, DHCP) or spoofed.
  for (const auto& r : ruleTexts(*rs, kRawChain))
    EXPECT_EQ(r.find(" accept comment \"own source\""), std::string::npos) << r;
  EXPECT_EQ(ruleTexts(*rs, kRawChain).front().find("iifname @quarantine"), 0u);
}

TEST(PrecheckFastPath, QuarantinedWorkloadHasNoSourceElements) {
  Bundle b = bundle();
  b.workloads[0].quarantined = true;
  auto rs = compile(b, {workload("c-1", "vwc", {"192.0.2.7", "2001:db8:7::7"})});
  ASSERT_TRUE(rs.ok()) << rs.error().describe();
  EXPECT_EQ(elements(*rs, kQuarantineSet), (Strings{"\"vwa\""}));
  EXPECT_EQ(elements(*rs, kSource4Set), (Strings{"\"vwb\" . 192.0.2.6", "\"vwc\" . 192.0.2.7"}));
  EXPECT_EQ(elements(*rs, kSource6Set), (Strings{"\"vwc\" . 2001:db8:7::7"}));
  // Still registered: its packets go on to the quarantine drop.
  EXPECT_EQ(elements(*rs, kRegisteredSet), (Strings{"\"vwa\"", "\"vwb\"", "\"vwc\""}));
}

TEST(PrecheckFastPath, QuarantineAndReleaseMoveSourcesInOneDiff) {
  IncrementalCompiler inc{CompileOptions{}};
  ASSERT_TRUE(inc.reset(bundle(), {workload("c-1", "vwc", {"192.0.2.7", "2001:db8:7::7"})}).ok());
  Workload c = workload("c-1", "vwc", {"192.0.2.7", "2001:db8:7::7"});
  c.quarantined = true;
  const Ruleset before = inc.ruleset();
  auto q = inc.upsertWorkload(c);
  ASSERT_TRUE(q.ok()) << q.error().describe();
  EXPECT_EQ(changes(before, *q), (Strings{"quarantine +\"vwc\"", "src4 -\"vwc\" . 192.0.2.7",
                                          "src6 -\"vwc\" . 2001:db8:7::7"}));
  EXPECT_TRUE(q->addChains.empty() && q->replaceChains.empty() && q->deleteChains.empty());
  auto full = compile(bundle(), {c});
  ASSERT_TRUE(full.ok());
  for (const char* set : {kQuarantineSet, kSource4Set, kSource6Set, kRegisteredSet})
    EXPECT_EQ(elements(inc.ruleset(), set), elements(*full, set)) << set;

  c.quarantined = false;
  auto r = inc.upsertWorkload(c);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(changes(before, *r), (Strings{"quarantine -\"vwc\"", "src4 +\"vwc\" . 192.0.2.7",
                                          "src6 +\"vwc\" . 2001:db8:7::7"}));
  for (const char* set : {kQuarantineSet, kSource4Set, kSource6Set, kRegisteredSet})
    EXPECT_EQ(elements(inc.ruleset(), set), elements(before, set)) << set;
}

// Records each transaction's messages, as the writer describes them.
class RecordingKernel : public testing::FakeKernel {
 public:
  Status commit(const nft::Batch& batch) override {
    described.push_back(batch.descriptions);
    return FakeKernel::commit(batch);
  }
  std::vector<Strings> described;
};

TEST(PrecheckFastPath, QuarantineIsOneTransaction) {
  RecordingKernel k;
  agent::Enforcer e(k, {});
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  Workload a = bundle().workloads[0];
  a.quarantined = true;
  Bundle q = bundle();
  q.workloads[0] = a;
  ASSERT_TRUE(e.setPolicy(q).ok());
  ASSERT_EQ(k.described.size(), 2u);
  bool addsQuarantine = false, dropsSrc4 = false, dropsSrc6 = false;
  for (const auto& d : k.described.back()) {
    addsQuarantine |= d.find("add elements") == 0 && d.ends_with(" quarantine");
    dropsSrc4 |= d.find("delete elements") == 0 && d.ends_with(" src4");
    dropsSrc6 |= d.find("delete elements") == 0 && d.ends_with(" src6");
  }
  EXPECT_TRUE(addsQuarantine && dropsSrc4 && dropsSrc6) << ::testing::PrintToString(k.described);
}

}  // namespace
}  // namespace bulkhead::compiler
