// Remote workloads (another host's, sent by a controller) in the compiler:
// their addresses fill the destination sets of appSelector services,
// `to: <App>` and GlobalPolicy selectors as local ones do, they never reach
// the workload sets, and every remote change is element changes only; the
// incremental compiler always holds what a full compile of the same inputs
// gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/incremental.h"
#include "bulkhead/compiler/render.h"

namespace bulkhead::compiler {
namespace {

using namespace policy;

// frontend -> payments-api (appSelector app: payments, tcp/8443), payments
// documented; a GlobalPolicy denies everything towards app `cache`, which
// has no App document (only remote workloads use it).
Bundle fleetBundle() {
  Bundle b;
  Service api;
  api.name = "payments-api";
  api.appSelector = Selector{{{"app", "payments"}}};
  api.ports = {*PortSpec::parse("tcp/8443")};
  b.services.push_back(api);
  App payments;
  payments.name = "payments";
  b.apps.push_back(payments);
  App frontend;
  frontend.name = "frontend";
  EgressRule r;
  r.to = {NameRef{"payments-api", {}}};
  frontend.egress.push_back(r);
  b.apps.push_back(frontend);
  GlobalPolicy g;
  g.name = "no-cache";
  GlobalRule deny;
  deny.from = Selector{{{"app", "frontend"}}};
  deny.toSelector = Selector{{{"app", "cache"}}};
  g.rules = {deny};
  b.globalPolicies.push_back(g);
  return b;
}

Workload local(const std::string& name, const std::string& app, const std::string& addr) {
  Workload w;
  w.name = name;
  w.app = app;
  w.interfaces = {"v" + name};
  w.addresses = {*IpAddr::parse(addr)};
  return w;
}

Workload remote(const std::string& name, const std::string& app, const std::string& addr) {
  Workload w = local(name, app, addr);
  w.interfaces.clear();
  return w;
}

const Set& set(const Ruleset& rs, const std::string& name) {
  const Set* s = rs.findSet(name);
  EXPECT_NE(s, nullptr) << name;
  static const Set kNone;
  return s ? *s : kNone;
}

bool elementsOnly(const RulesetDiff& d) {
  return !d.createTable && d.addSets.empty() && d.deleteSets.empty() && d.addChains.empty() &&
         d.replaceChains.empty() && d.deleteChains.empty();
}

// `rs` after an element-only diff, as the kernel would apply it.
Ruleset withElements(Ruleset rs, const RulesetDiff& d) {
  for (const auto& c : d.elements) {
    Set* s = nullptr;
    for (auto& x : rs.sets)
      if (x.name == c.set) s = &x;
    EXPECT_NE(s, nullptr) << c.set;
    if (!s) continue;
    for (const auto& e : c.remove) {
      auto at = std::find(s->elements.begin(), s->elements.end(), e);
      EXPECT_NE(at, s->elements.end()) << "removing an absent element of " << c.set;
      if (at != s->elements.end()) s->elements.erase(at);
    }
    for (const auto& e : c.add) {
      EXPECT_EQ(std::find(s->elements.begin(), s->elements.end(), e), s->elements.end())
          << "adding an element twice to " << c.set;
      s->elements.push_back(e);
    }
    std::sort(s->elements.begin(), s->elements.end());
  }
  return rs;
}

Ruleset fullCompile(const IncrementalCompiler& inc) {
  auto rs = compile(inc.bundle(), inc.workloads(), inc.remotes());
  EXPECT_TRUE(rs.ok()) << (rs ? "" : rs.error().message);
  return rs ? *rs : Ruleset{};
}

TEST(CompilerRemote, RemoteAddressesFillSelectorSetsOnly) {
  RemoteWorkloads remotes;
  remotes[{"host-b", "payments-1"}] = remote("payments-1", "payments", "198.51.100.20");
  remotes[{"host-b", "cache-1"}] = remote("cache-1", "cache", "198.51.100.30");
  auto with = compile(fleetBundle(), {local("fe", "frontend", "192.0.2.10")}, remotes);
  auto without = compile(fleetBundle(), {local("fe", "frontend", "192.0.2.10")});
  ASSERT_TRUE(with.ok() && without.ok());
  // frontend's allow set gains payments' address on tcp/8443; the deny
  // towards cache gains cache's.
  EXPECT_EQ(set(*with, "a4_frontend").elements.size(), 1u);
  EXPECT_TRUE(set(*without, "a4_frontend").elements.empty());
  EXPECT_EQ(set(*with, "g4_no-cache_0").elements.size(), 1u);
  EXPECT_TRUE(set(*without, "g4_no-cache_0").elements.empty());
  const std::string text = renderRuleset(*with);
  EXPECT_NE(text.find("198.51.100.20 . tcp . 8443"), std::string::npos) << text;
  EXPECT_NE(text.find("198.51.100.30"), std::string::npos) << text;
  // Nothing else: no chain for cache, no workload-set element, same chains.
  std::vector<std::string> chainsWith, chainsWithout;
  for (const auto& c : with->chains)
    chainsWith.push_back(c.name);
  for (const auto& c : without->chains)
    chainsWithout.push_back(c.name);
  EXPECT_EQ(chainsWith, chainsWithout);
  for (const char* s : {kDispatchMap, kStagedSet, kSource4Set, kSource6Set, kRegisteredSet})
    EXPECT_EQ(set(*with, s).elements, set(*without, s).elements) << s;
}

TEST(CompilerRemote, RemoteWithInterfacesOrSameIdIsRefused) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(fleetBundle(), {}).ok());
  auto bad = inc.upsertRemote("host-b", local("p", "payments", "198.51.100.20"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(bad.error().message.find("interfaces"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(inc.upsertRemote("", remote("p", "payments", "198.51.100.20")).ok());
  EXPECT_TRUE(inc.remotes().empty());
  auto missing = inc.removeRemote("host-b", "p");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(CompilerRemote, SameNameOnTwoHostsAndLocallyCoexist) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(fleetBundle(), {local("web", "payments", "192.0.2.7")}).ok());
  ASSERT_TRUE(inc.upsertRemote("host-b", remote("web", "payments", "198.51.100.1")).ok());
  ASSERT_TRUE(inc.upsertRemote("host-c", remote("web", "payments", "198.51.100.3")).ok());
  EXPECT_EQ(inc.remotes().size(), 2u);
  EXPECT_EQ(inc.workloads().size(), 1u);
  // Three disjoint addresses, one element each.
  EXPECT_EQ(set(inc.ruleset(), "a4_frontend").elements.size(), 3u);
  ASSERT_TRUE(inc.removeRemote("host-b", "web").ok());
  EXPECT_EQ(inc.remotes().count({"host-c", "web"}), 1u);
  EXPECT_EQ(inc.workloads().size(), 1u);
  EXPECT_EQ(set(inc.ruleset(), "a4_frontend").elements.size(), 2u);
}

TEST(CompilerRemote, SameRemoteAgainIsAnEmptyDiff) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(fleetBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertRemote("host-b", remote("p", "payments", "198.51.100.20")).ok());
  auto again = inc.upsertRemote("host-b", remote("p", "payments", "198.51.100.20"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

// A policy push keeps the remote workloads (they come from the controller,
// not from the bundle).
TEST(CompilerRemote, ResetKeepsRemotes) {
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(fleetBundle(), {}).ok());
  ASSERT_TRUE(inc.upsertRemote("host-b", remote("p", "payments", "198.51.100.20")).ok());
  ASSERT_TRUE(inc.reset(fleetBundle(), {}).ok());
  EXPECT_EQ(inc.remotes().size(), 1u);
  EXPECT_EQ(set(inc.ruleset(), "a4_frontend").elements.size(), 1u);
}

// Random remote and local changes: every remote change is element changes
// only, and the result always equals a full compile of the same inputs.
TEST(CompilerRemote, RandomRemoteChangesMatchFullCompiles) {
  std::mt19937 rng(11);
  IncrementalCompiler inc;
  ASSERT_TRUE(inc.reset(fleetBundle(), {}).ok());
  const std::vector<std::string> apps = {"payments", "frontend", "cache", "batch"};
  const std::vector<std::string> hosts = {"host-b", "host-c"};
  size_t remoteSteps = 0;
  for (int step = 0; step < 400; ++step) {
    const int op = int(rng() % 4);
    const int id = int(rng() % 12) + 1;
    const std::string app = apps[rng() % apps.size()];
    if (op == 3) {
      // A local workload, sometimes of an app only remote workloads use.
      const std::string name = "l" + std::to_string(id);
      if (rng() % 2) {
        ASSERT_TRUE(inc.upsertWorkload(local(name, app, "192.0.2." + std::to_string(id))).ok());
      } else {
        (void)inc.removeWorkload(name);
      }
    } else {
      const std::string host = hosts[rng() % hosts.size()];
      const std::string name = "r" + std::to_string(id);
      // Addresses may repeat across hosts (two hosts, one address): allowed.
      const std::string addr = "198.51.100." + std::to_string(id + (rng() % 2) * 100);
      const Ruleset before = inc.ruleset();
      Result<RulesetDiff> diff =
          op == 2 ? inc.removeRemote(host, name) : inc.upsertRemote(host, remote(name, app, addr));
      if (!diff) {
        ASSERT_EQ(diff.error().code, ErrorCode::kNotFound) << diff.error().message;
        continue;
      }
      ++remoteSteps;
      ASSERT_TRUE(elementsOnly(*diff)) << "step " << step << ": " << diff->summary();
      EXPECT_EQ(renderRuleset(withElements(before, *diff)), renderRuleset(inc.ruleset()))
          << "step " << step;
    }
    (void)inc.promoteStaged();
    ASSERT_EQ(renderRuleset(inc.ruleset()), renderRuleset(fullCompile(inc))) << "step " << step;
  }
  EXPECT_GT(remoteSteps, 100u);
}

}  // namespace
}  // namespace bulkhead::compiler
