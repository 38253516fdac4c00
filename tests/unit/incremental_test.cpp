// The incremental compiler must always hold what a full compile of the same
// inputs gives, once its staged interfaces are promoted (before, the same
// with those interfaces reaching their app chain through @staged), and its
// diffs must turn the previous ruleset into the one it holds.
#include "bulkhead/compiler/incremental.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// One or both of workload `id`'s own two interfaces: re-picking them moves
// interfaces in and out without ever claiming another workload's.
std::vector<std::string> randomInterfaces(std::mt19937& rng, int id) {
  const std::string v = "v" + std::to_string(id), u = "u" + std::to_string(id);
  switch (rng() % 3) {
    case 0:
      return {v};
    case 1:
      return {u};
    default:
      return {v, u};
  }
}

Workload randomWorkload(std::mt19937& rng, int id) {
  Workload w;
  w.name = "w" + std::to_string(id);
  // Apps 0-3 are documented; 4 and 5 are implicit (no App document).
  w.app = "app" + std::to_string(rng() % 6);
  w.interfaces = randomInterfaces(rng, id);
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

bool contains(const Set& s, const Element& e) {
  return std::binary_search(s.elements.begin(), s.elements.end(), e);
}

bool isStagedAppSet(const Set& s) {
  return s.name.starts_with("st_");
}

// Every interface of `workloads` reaches its app chain exactly one way:
// either `goto app_<app>` in @dispatch, or @staged plus @st_<app>; and
// neither holds anything else.
testing::AssertionResult dispatchedOrStaged(const Ruleset& rs,
                                            const std::vector<Workload>& workloads) {
  const Set* dispatch = rs.findSet(kDispatchMap);
  const Set* staged = rs.findSet(kStagedSet);
  if (!dispatch || !staged) return testing::AssertionFailure() << "no dispatch or staged set";
  size_t interfaces = 0;
  for (const auto& w : workloads) {
    for (const auto& i : w.interfaces) {
      ++interfaces;
      const Key key = KeyBuilder().ifname(i).build();
      const bool dispatched = contains(
          *dispatch, Element{key, key, Verdict{Verdict::Kind::kGoto, appChainName(w.app)}});
      const bool inStaged = contains(*staged, Element{key, key, {}});
      std::vector<std::string> in;  // the st_ sets holding it
      for (const auto& s : rs.sets)
        if (isStagedAppSet(s) && contains(s, Element{key, key, {}})) in.push_back(s.name);
      if (dispatched && !inStaged && in.empty()) continue;
      if (!dispatched && inStaged && in == std::vector<std::string>{stagedSetName(w.app)}) continue;
      std::string sets;
      for (const auto& n : in)
        sets += " " + n;
      return testing::AssertionFailure()
             << "interface " << i << " of app " << w.app << ": dispatched " << dispatched
             << ", staged " << inStaged << ", in st_ sets:" << sets;
    }
  }
  size_t inStagedAppSets = 0;
  for (const auto& s : rs.sets)
    if (isStagedAppSet(s)) inStagedAppSets += s.elements.size();
  if (dispatch->elements.size() + staged->elements.size() != interfaces ||
      inStagedAppSets != staged->elements.size())
    return testing::AssertionFailure()
           << interfaces << " interfaces but " << dispatch->elements.size() << " dispatched, "
           << staged->elements.size() << " staged, " << inStagedAppSets << " in st_ sets";
  return testing::AssertionSuccess();
}

// `rs` with its staged interfaces moved into @dispatch, as promoteStaged()
// would: what a full compile of the same inputs gives.
Ruleset stagedDispatched(Ruleset rs) {
  std::vector<Element> promoted;
  for (auto& s : rs.sets) {
    if (!isStagedAppSet(s)) continue;
    const std::string chain = appChainName(s.name.substr(std::string("st_").size()));
    for (const auto& e : s.elements)
      promoted.push_back(Element{e.key, e.key, Verdict{Verdict::Kind::kGoto, chain}});
    s.elements.clear();
  }
  for (auto& s : rs.sets) {
    if (s.name == kStagedSet) s.elements.clear();
    if (s.name != kDispatchMap) continue;
    s.elements.insert(s.elements.end(), promoted.begin(), promoted.end());
    std::sort(s.elements.begin(), s.elements.end());
  }
  return rs;
}

TEST(IncrementalCompiler, RandomChangesMatchFullCompiles) {
  std::mt19937 rng(7);
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  std::vector<Workload> live;
  int nextId = 1;
  size_t stagedSteps = 0, promotions = 0;
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
      if (rng() % 2) w.interfaces = randomInterfaces(rng, std::stoi(w.name.substr(1)));
      diff = inc.upsertWorkload(w);
      ASSERT_TRUE(diff.ok()) << diff.error().describe();
    } else {
      const size_t i = rng() % live.size();
      diff = inc.removeWorkload(live[i].name);
      ASSERT_TRUE(diff.ok()) << diff.error().describe();
      live.erase(live.begin() + i);
    }
    ASSERT_EQ(chainsText(applied(before, *diff)), chainsText(inc.ruleset())) << "step " << step;
    // Found by name, whatever removals did to the list's order.
    ASSERT_EQ(inc.workloads().size(), live.size()) << "step " << step;
    for (const auto& l : live) {
      const Workload* found = inc.findWorkload(l.name);
      ASSERT_TRUE(found != nullptr && found->name == l.name && found->app == l.app &&
                  found->interfaces == l.interfaces)
          << "step " << step << ", " << l.name;
    }
    auto full = compile(policyBundle(), live);
    ASSERT_TRUE(full.ok()) << full.error().describe();
    // Before promotion: enforced the same, some interfaces through @staged.
    ASSERT_TRUE(dispatchedOrStaged(inc.ruleset(), live)) << "step " << step;
    ASSERT_EQ(inc.stagedCount(), inc.ruleset().findSet(kStagedSet)->elements.size())
        << "step " << step;
    ASSERT_EQ(renderRuleset(stagedDispatched(inc.ruleset())), renderRuleset(*full))
        << "step " << step;
    if (inc.stagedCount() > 0) ++stagedSteps;
    // Promote now and then, so that staged interfaces also change app or go.
    if (rng() % 4 == 0 || step == 299) {
      const Ruleset staged = inc.ruleset();
      const RulesetDiff promotion = inc.promoteStaged();
      EXPECT_EQ(inc.stagedCount(), 0u) << "step " << step;
      ASSERT_EQ(chainsText(applied(staged, promotion)), chainsText(inc.ruleset()))
          << "step " << step;
      ASSERT_EQ(renderRuleset(inc.ruleset()), renderRuleset(*full)) << "step " << step;
      ++promotions;
    }
  }
  // The sequence did exercise both paths.
  EXPECT_GT(stagedSteps, 100u);
  EXPECT_GT(promotions, 50u);
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
  // app0 reaches api1 (app1's workloads); app3 names app1; dev->prod rule;
  // the interface is registered (policed before conntrack) and staged, not
  // dispatched.
  EXPECT_EQ(sets, (std::vector<std::string>{"a4_app0", "a4_app3", "g4_segment_0", "registered",
                                            "src4", "st_app1", "staged"}));
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

// A name is one workload's, whether the bundle or the API gave it; the
// index by name finds API workloads afterwards.
TEST(IncrementalCompiler, AWorkloadNameTwiceIsRefusedAndAppsAreFoundByName) {
  Bundle b = policyBundle();
  Workload w;
  w.name = "a";
  w.app = "app1";
  w.interfaces = {"va"};
  w.addresses = {*IpAddr::parse("192.0.2.50")};
  Workload other = w;
  other.interfaces = {"vb"};
  other.addresses = {*IpAddr::parse("192.0.2.51")};
  for (const auto& [bundled, api] :
       std::vector<std::pair<std::vector<Workload>, std::vector<Workload>>>{
           {{w}, {other}}, {{}, {w, other}}, {{w, other}, {}}}) {
    Bundle withWorkloads = b;
    withWorkloads.workloads = bundled;
    auto r = compile(withWorkloads, api);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message.find("\"a\" is defined twice"), std::string::npos)
        << r.error().message;
  }
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(b, {w}).ok());
  ASSERT_NE(inc.findWorkload("a"), nullptr);
  EXPECT_EQ(inc.findWorkload("a")->interfaces, w.interfaces);
  EXPECT_EQ(inc.findWorkload("b"), nullptr);
  ASSERT_NE(inc.findApp("app1"), nullptr);
  EXPECT_EQ(inc.findApp("app1")->name, "app1");
  EXPECT_EQ(inc.findApp("app9"), nullptr);  // no such app
  Workload implicitApp = w;
  implicitApp.name = "c";
  implicitApp.app = "app5";  // no App document: an implicit app
  implicitApp.interfaces = {"vc"};
  implicitApp.addresses = {*IpAddr::parse("192.0.2.52")};
  ASSERT_TRUE(inc.upsertWorkload(implicitApp).ok());
  EXPECT_EQ(inc.findApp("app5"), nullptr);
}

// --- staging -------------------------------------------------------------------

Workload workload(const std::string& name, const std::string& app,
                  std::vector<std::string> interfaces, const std::string& address) {
  Workload w;
  w.name = name;
  w.app = app;
  w.interfaces = std::move(interfaces);
  w.addresses = {*IpAddr::parse(address)};
  return w;
}

// The changes `d` makes to the sets an interface reaches its app chain
// through (@dispatch, @staged, @st_<app>), e.g. `staged + "va"`.
std::vector<std::string> dispatchChanges(const Ruleset& rs, const RulesetDiff& d) {
  std::vector<std::string> out;
  for (const auto& c : d.elements) {
    if (c.set != kDispatchMap && c.set != kStagedSet && !c.set.starts_with("st_")) continue;
    const Set* s = rs.findSet(c.set);
    if (!s) {
      out.push_back("<no set " + c.set + ">");
      continue;
    }
    for (const auto& e : c.remove)
      out.push_back(c.set + " - " + renderElement(*s, e));
    for (const auto& e : c.add)
      out.push_back(c.set + " + " + renderElement(*s, e));
  }
  return out;
}

std::vector<std::string> renderedElements(const Ruleset& rs, const std::string& set) {
  std::vector<std::string> out;
  const Set* s = rs.findSet(set);
  if (!s) return {"<no set " + set + ">"};
  for (const auto& e : s->elements)
    out.push_back(renderElement(*s, e));
  return out;
}

// The ruleset held, with the staged interfaces promoted, is the full compile's.
void expectMatchesFullCompileOncePromoted(const IncrementalCompiler& inc) {
  auto full = compile(inc.bundle(), inc.workloads());
  ASSERT_TRUE(full.ok()) << full.error().describe();
  EXPECT_TRUE(dispatchedOrStaged(inc.ruleset(), inc.workloads()));
  EXPECT_EQ(renderRuleset(stagedDispatched(inc.ruleset())), renderRuleset(*full));
}

using Strings = std::vector<std::string>;

// The ruleset held is the full compile of the workloads held: nothing staged.
void expectFullCompile(const IncrementalCompiler& inc) {
  auto full = compile(policyBundle(), inc.workloads());
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(renderRuleset(inc.ruleset()), renderRuleset(*full));
}

// Applies `change` (a call on `inc` returning its diff); the diff makes
// `changes` to the dispatch sets, leaves `staged` interfaces staged, and
// applied to the ruleset before it gives the one held.
template <typename Change>
void expectChange(IncrementalCompiler& inc, Change change, const Strings& changes, size_t staged) {
  const Ruleset before = inc.ruleset();
  auto d = change();
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(dispatchChanges(inc.ruleset(), *d), changes);
  EXPECT_EQ(inc.stagedCount(), staged);
  EXPECT_EQ(chainsText(applied(before, *d)), chainsText(inc.ruleset()));
}

// expectChange for an upsert of `w`, and the ruleset once promoted is the
// full compile's.
void expectUpsert(IncrementalCompiler& inc, const Workload& w, const Strings& changes,
                  size_t staged) {
  expectChange(
      inc, [&] { return inc.upsertWorkload(w); }, changes, staged);
  expectMatchesFullCompileOncePromoted(inc);
}

TEST(IncrementalCompiler, NewInterfaceIsStagedNotDispatched) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  const Ruleset before = inc.ruleset();
  auto d = inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50"));
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(dispatchChanges(inc.ruleset(), *d), (Strings{"st_app1 + \"va\"", "staged + \"va\""}));
  for (const auto& c : d->elements)
    EXPECT_NE(c.set, kDispatchMap);
  EXPECT_EQ(inc.stagedCount(), 1u);
  EXPECT_TRUE(inc.ruleset().findSet(kDispatchMap)->elements.empty());
  EXPECT_EQ(renderedElements(inc.ruleset(), kStagedSet), (Strings{"\"va\""}));
  EXPECT_EQ(renderedElements(inc.ruleset(), "st_app1"), (Strings{"\"va\""}));
  EXPECT_EQ(chainsText(applied(before, *d)), chainsText(inc.ruleset()));
  expectMatchesFullCompileOncePromoted(inc);
}

TEST(IncrementalCompiler, PromoteStagedMovesEveryStagedInterfaceIntoDispatch) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("b", "app2", {"vb", "vc"}, "192.0.2.60")).ok());
  EXPECT_EQ(inc.stagedCount(), 3u);
  const Ruleset before = inc.ruleset();
  const RulesetDiff d = inc.promoteStaged();
  EXPECT_EQ(dispatchChanges(inc.ruleset(), d),
            (Strings{"dispatch + \"va\" : goto app_app1", "dispatch + \"vb\" : goto app_app2",
                     "dispatch + \"vc\" : goto app_app2", "st_app1 - \"va\"", "st_app2 - \"vb\"",
                     "st_app2 - \"vc\"", "staged - \"va\"", "staged - \"vb\"", "staged - \"vc\""}));
  // Elements only, and only of those sets.
  EXPECT_EQ(d.elements.size(), 4u);
  EXPECT_TRUE(d.addSets.empty() && d.deleteSets.empty() && d.addChains.empty() &&
              d.replaceChains.empty() && d.deleteChains.empty() && !d.createTable);
  EXPECT_EQ(inc.stagedCount(), 0u);
  EXPECT_EQ(chainsText(applied(before, d)), chainsText(inc.ruleset()));
  expectFullCompile(inc);

  const RulesetDiff again = inc.promoteStaged();
  EXPECT_TRUE(again.empty());
  EXPECT_TRUE(again.elements.empty());
  expectFullCompile(inc);
}

TEST(IncrementalCompiler, PromoteStagedTakesAtMostTheLimitInNameOrder) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("b", "app2", {"vb", "vc"}, "192.0.2.60")).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  Ruleset before = inc.ruleset();
  RulesetDiff d = inc.promoteStaged(2);
  EXPECT_EQ(
      dispatchChanges(inc.ruleset(), d),
      (Strings{"dispatch + \"va\" : goto app_app1", "dispatch + \"vb\" : goto app_app2",
               "st_app1 - \"va\"", "st_app2 - \"vb\"", "staged - \"va\"", "staged - \"vb\""}));
  EXPECT_EQ(inc.stagedCount(), 1u);
  EXPECT_EQ(chainsText(applied(before, d)), chainsText(inc.ruleset()));
  EXPECT_TRUE(inc.promoteStaged(0).empty());
  before = inc.ruleset();
  d = inc.promoteStaged(2);
  EXPECT_EQ(dispatchChanges(inc.ruleset(), d),
            (Strings{"dispatch + \"vc\" : goto app_app2", "st_app2 - \"vc\"", "staged - \"vc\""}));
  EXPECT_EQ(inc.stagedCount(), 0u);
  EXPECT_EQ(chainsText(applied(before, d)), chainsText(inc.ruleset()));
  expectFullCompile(inc);
}

TEST(IncrementalCompiler, RemovingAStagedWorkloadLeavesDispatchAlone) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  expectChange(
      inc, [&] { return inc.removeWorkload("a"); }, {"st_app1 - \"va\"", "staged - \"va\""}, 0);
  expectFullCompile(inc);
  EXPECT_TRUE(inc.promoteStaged().empty());
}

TEST(IncrementalCompiler, RemovingAPromotedWorkloadRemovesItsDispatchElement) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  inc.promoteStaged();
  expectChange(
      inc, [&] { return inc.removeWorkload("a"); }, {"dispatch - \"va\" : goto app_app1"}, 0);
  expectFullCompile(inc);
}

TEST(IncrementalCompiler, ChangingTheAppOfAStagedInterfaceMovesItBetweenStagedSets) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  // @staged keeps it: no remove and add of the same element in one diff.
  expectUpsert(inc, workload("a", "app2", {"va"}, "192.0.2.50"),
               {"st_app1 - \"va\"", "st_app2 + \"va\""}, 1);
  EXPECT_EQ(renderedElements(inc.ruleset(), kStagedSet), (Strings{"\"va\""}));
  EXPECT_EQ(dispatchChanges(inc.ruleset(), inc.promoteStaged()),
            (Strings{"dispatch + \"va\" : goto app_app2", "st_app2 - \"va\"", "staged - \"va\""}));
}

TEST(IncrementalCompiler, ChangingTheAppOfADispatchedInterfaceStagesIt) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  inc.promoteStaged();
  expectUpsert(inc, workload("a", "app2", {"va"}, "192.0.2.50"),
               {"dispatch - \"va\" : goto app_app1", "st_app2 + \"va\"", "staged + \"va\""}, 1);
}

TEST(IncrementalCompiler, OnlyInterfacesThatArriveAreStaged) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va", "vb"}, "192.0.2.50")).ok());
  inc.promoteStaged();
  expectUpsert(inc, workload("a", "app1", {"vb", "vc"}, "192.0.2.50"),
               {"dispatch - \"va\" : goto app_app1", "st_app1 + \"vc\"", "staged + \"vc\""}, 1);
}

TEST(IncrementalCompiler, UpsertingTheSameInterfacesAgainLeavesDispatchAndStagedAlone) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("b", "app2", {"vb"}, "192.0.2.60")).ok());
  inc.promoteStaged();
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());  // unchanged
  ASSERT_TRUE(inc.upsertWorkload(workload("c", "app1", {"vc"}, "192.0.2.70")).ok());  // staged
  ASSERT_EQ(inc.stagedCount(), 1u);
  // A new address for a dispatched interface and for a staged one.
  for (const auto& w :
       {workload("b", "app2", {"vb"}, "192.0.2.61"), workload("c", "app1", {"vc"}, "192.0.2.71")}) {
    const Ruleset before = inc.ruleset();
    auto d = inc.upsertWorkload(w);
    ASSERT_TRUE(d.ok()) << d.error().describe();
    EXPECT_EQ(dispatchChanges(inc.ruleset(), *d), Strings{}) << w.name;
    bool src4 = false;
    for (const auto& c : d->elements)
      src4 = src4 || c.set == kSource4Set;
    EXPECT_TRUE(src4) << w.name;
    EXPECT_EQ(chainsText(applied(before, *d)), chainsText(inc.ruleset())) << w.name;
  }
  EXPECT_EQ(inc.stagedCount(), 1u);
  EXPECT_EQ(renderedElements(inc.ruleset(), kStagedSet), (Strings{"\"vc\""}));
  EXPECT_EQ(renderedElements(inc.ruleset(), kDispatchMap),
            (Strings{"\"va\" : goto app_app1", "\"vb\" : goto app_app2"}));
  expectMatchesFullCompileOncePromoted(inc);
}

TEST(IncrementalCompiler, ResetDispatchesStagedInterfaces) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("b", "app2", {"vb"}, "192.0.2.60")).ok());
  ASSERT_EQ(inc.stagedCount(), 2u);
  expectChange(
      inc, [&] { return inc.reset(policyBundle(), inc.workloads()); },
      {"dispatch + \"va\" : goto app_app1", "dispatch + \"vb\" : goto app_app2", "st_app1 - \"va\"",
       "st_app2 - \"vb\"", "staged - \"va\"", "staged - \"vb\""},
      0);
  expectFullCompile(inc);
  EXPECT_TRUE(inc.promoteStaged().empty());
}

// A workload of an app without an App document adds a chain: that is a full
// compile, which stages nothing, including interfaces staged before it.
TEST(IncrementalCompiler, NewImplicitAppCompilesFullyAndStagesNothing) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(policyBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertWorkload(workload("a", "app1", {"va"}, "192.0.2.50")).ok());
  ASSERT_EQ(inc.stagedCount(), 1u);
  const Ruleset before = inc.ruleset();
  auto d = inc.upsertWorkload(workload("g", "ghost", {"vg"}, "192.0.2.90"));
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(inc.stagedCount(), 0u);
  EXPECT_EQ(chainsText(applied(before, *d)), chainsText(inc.ruleset()));
  expectFullCompile(inc);
  EXPECT_EQ(renderedElements(inc.ruleset(), kDispatchMap),
            (Strings{"\"va\" : goto app_app1", "\"vg\" : goto app_ghost"}));
}

}  // namespace
}  // namespace bulkhead::compiler
