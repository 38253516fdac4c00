// The incremental compiler must always hold what a full compile of the same
// inputs gives, and its diffs must turn the previous ruleset into that.
#include "bulkhead/compiler/incremental.h"

#include <gtest/gtest.h>

#include <random>

#include "bulkhead/compiler/render.h"

namespace bulkhead::compiler {
namespace {

using namespace policy;

Bundle policyBundle() {
  Bundle b;
  for (int i = 0; i < 4; ++i) {
    const std::string app = "app" + std::to_string(i);
    Service backed;
    backed.name = "api" + std::to_string(i);
    backed.appSelector = policy::Selector{{{"app", app}}};
    backed.ports = {*PortSpec::parse("tcp/8443")};
    b.services.push_back(backed);
    App a;
    a.name = app;
    a.labels = {{"env", i % 2 ? "prod" : "dev"}};
    EgressRule r;
    r.to = {NameRef{"api" + std::to_string((i + 1) % 4), {}},
            NameRef{"app" + std::to_string((i + 2) % 4), {}}};
    a.egress.push_back(r);
    b.apps.push_back(a);
  }
  GlobalPolicy g;
  g.name = "segment";
  GlobalRule deny;
  deny.from = policy::Selector{{{"env", "dev"}}};
  deny.toSelector = policy::Selector{{{"env", "prod"}}};
  g.rules = {deny};
  b.globalPolicies.push_back(g);
  return b;
}

Workload randomWorkload(std::mt19937& rng, int id) {
  Workload w;
  w.name = "w" + std::to_string(id);
  // Apps 0-3 are documented; 4 and 5 are implicit (no App document).
  w.app = "app" + std::to_string(rng() % 6);
  w.interfaces = {"v" + std::to_string(id)};
  IpAddr a;
  a.bytes[0] = 192;
  a.bytes[1] = 0;
  a.bytes[2] = 2;
  a.bytes[3] = uint8_t(id);  // ids are distinct and small: adjacent addresses merge
  w.addresses = {a};
  if (rng() % 3 == 0) w.addresses.push_back(*IpAddr::parse("2001:db8::" + std::to_string(id)));
  w.quarantined = rng() % 5 == 0;
  return w;
}

// Applies an element-level or structural diff to a ruleset, as the kernel would.
Ruleset applied(Ruleset rs, const RulesetDiff& d) {
  for (const auto& c : d.elements) {
    auto it =
        std::find_if(rs.sets.begin(), rs.sets.end(), [&](const Set& s) { return s.name == c.set; });
    EXPECT_NE(it, rs.sets.end()) << c.set;
    if (it == rs.sets.end()) continue;
    for (const auto& e : c.remove) {
      auto pos = std::find(it->elements.begin(), it->elements.end(), e);
      EXPECT_NE(pos, it->elements.end()) << "removing an element that is not there, set " << c.set;
      if (pos != it->elements.end()) it->elements.erase(pos);
    }
    for (const auto& e : c.add) {
      EXPECT_EQ(std::find(it->elements.begin(), it->elements.end(), e), it->elements.end())
          << "adding an element twice, set " << c.set;
      it->elements.push_back(e);
    }
    std::sort(it->elements.begin(), it->elements.end());
  }
  for (const auto& name : d.deleteSets)
    std::erase_if(rs.sets, [&](const Set& s) { return s.name == name; });
  for (const auto& s : d.addSets)
    rs.sets.push_back(s);
  std::sort(rs.sets.begin(), rs.sets.end(),
            [](const Set& a, const Set& b) { return a.name < b.name; });
  for (const auto& name : d.deleteChains)
    std::erase_if(rs.chains, [&](const Chain& c) { return c.name == name; });
  for (const auto& c : d.replaceChains)
    for (auto& mine : rs.chains)
      if (mine.name == c.name) mine = c;
  for (const auto& c : d.addChains)
    rs.chains.push_back(c);
  return rs;
}

std::string chainsText(Ruleset rs) {
  // Chain order differs after structural diffs; compare them sorted.
  std::sort(rs.chains.begin(), rs.chains.end(),
            [](const Chain& a, const Chain& b) { return a.name < b.name; });
  return renderRuleset(rs);
}

TEST(IncrementalCompiler, RandomChangesMatchFullCompiles) {
  std::mt19937 rng(7);
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  std::vector<Workload> live;
  int nextId = 1;
  for (int step = 0; step < 300; ++step) {
    const Ruleset before = inc.ruleset();
    Result<RulesetDiff> diff = RulesetDiff{};
    const int op = rng() % 3;
    if (op == 0 || live.empty()) {
      auto w = randomWorkload(rng, nextId++ % 250 + 1);
      std::erase_if(live, [&](const Workload& l) { return l.name == w.name; });
      // Its interface / address may collide with none: ids are unique names.
      diff = inc.upsertWorkload(w);
      ASSERT_TRUE(diff.ok()) << diff.error().describe();
      live.push_back(w);
    } else if (op == 1) {
      auto& w = live[rng() % live.size()];
      w.app = "app" + std::to_string(rng() % 6);
      w.quarantined = !w.quarantined;
      diff = inc.upsertWorkload(w);
      ASSERT_TRUE(diff.ok()) << diff.error().describe();
    } else {
      const size_t i = rng() % live.size();
      diff = inc.removeWorkload(live[i].name);
      ASSERT_TRUE(diff.ok()) << diff.error().describe();
      live.erase(live.begin() + i);
    }
    auto full = compile(policyBundle(), live);
    ASSERT_TRUE(full.ok()) << full.error().describe();
    ASSERT_EQ(renderRuleset(inc.ruleset()), renderRuleset(*full)) << "step " << step;
    ASSERT_EQ(chainsText(applied(before, *diff)), chainsText(*full)) << "step " << step;
  }
}

TEST(IncrementalCompiler, AddingAWorkloadOfAKnownAppChangesOnlyElements) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  Workload w;
  w.name = "a";
  w.app = "app1";
  w.interfaces = {"va"};
  w.addresses = {*IpAddr::parse("192.0.2.50")};
  auto d = inc.upsertWorkload(w);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->addChains.empty() && d->replaceChains.empty() && d->addSets.empty());
  std::vector<std::string> sets;
  for (const auto& c : d->elements)
    sets.push_back(c.set);
  // app0 reaches api1 (app1's workloads); app3 names app1; dev->prod rule.
  EXPECT_EQ(sets,
            (std::vector<std::string>{"a4_app0", "a4_app3", "dispatch", "g4_segment_0", "src4"}));
}

TEST(IncrementalCompiler, ConflictsAndBadInputChangeNothing) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  Workload w;
  w.name = "a";
  w.app = "app1";
  w.interfaces = {"va"};
  w.addresses = {*IpAddr::parse("192.0.2.50")};
  ASSERT_TRUE(inc.upsertWorkload(w).ok());
  const std::string before = renderRuleset(inc.ruleset());
  Workload clash = w;
  clash.name = "b";
  auto r = inc.upsertWorkload(clash);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
  Workload bad = w;
  bad.name = "Not_A_Name";
  EXPECT_FALSE(inc.upsertWorkload(bad).ok());
  EXPECT_EQ(inc.removeWorkload("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(renderRuleset(inc.ruleset()), before);
}

}  // namespace
}  // namespace bulkhead::compiler
