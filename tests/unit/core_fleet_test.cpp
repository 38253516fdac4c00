// AgentCore as a fleet member (fleet.h): remote workloads in selectors
// through element changes only, snapshots (one transaction; nothing at all
// when equal to what is in force), revisions applied as pushes and kept
// across restarts with the remote workloads, the local change listener
// and the source it reports (never UNSPECIFIED),
// ListWorkloads/status, and the refusal of local pushes under a controller.
// Against the fake kernel, which decodes every batch the core commits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "../../src/agent/controller_messages.h"
#include "bulkhead/agent/api_convert.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "bulkhead/agent/service.h"
#include "bulkhead/common/grpc_status.h"
#include "support/fake_kernel.h"
#include "support/scratch.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFleetPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: payments-api}
spec:
  appSelector: {app: payments}
  ports: [tcp/8443]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: payments}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: frontend}
spec:
  egress:
    - to: [payments-api]
---
apiVersion: bulkhead/v1
kind: GlobalPolicy
metadata: {name: no-cache}
spec:
  rules:
    - action: deny
      from: {app: frontend}
      toSelector: {app: cache}
)";

PolicyRevision revision(uint64_t n, const std::string& text = kFleetPolicy) {
  return PolicyRevision{n, "rev-" + std::to_string(n), {{"fleet.yaml", text}}};
}

policy::Workload workload(const std::string& name, const std::string& app, const std::string& addr,
                          bool withInterface) {
  policy::Workload w;
  w.name = name;
  w.app = app;
  if (withInterface) w.interfaces = {"v" + name};
  w.addresses = {*policy::IpAddr::parse(addr)};
  return w;
}

RemoteWorkload remote(const std::string& host, const std::string& name, const std::string& app,
                      const std::string& addr) {
  return RemoteWorkload{host, workload(name, app, addr, false)};
}

v1::Workload localApi(const std::string& name, const std::string& app, const std::string& addr) {
  return toApi(workload(name, app, addr, true), v1::Workload::SOURCE_API);
}

v1::Workload registration(const std::string& name, const std::string& address,
                          v1::Workload::Source source, const std::string& owner = "") {
  v1::Workload w;
  w.set_name(name);
  w.set_app("frontend");
  w.add_interfaces("v" + name);
  w.add_addresses(address);
  w.set_source(source);
  w.set_owner(owner);
  return w;
}

class CoreFleetTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratchPath("bh-fleet"); }
  void TearDown() override { fs::remove_all(dir_); }
  CoreOptions options() const {
    CoreOptions o;
    o.stateDir = dir_.string();
    o.host = "host-a";
    return o;
  }
  const std::vector<std::string>& elements(const std::string& set) {
    return kernel_.content.sets[set].elements;
  }
  fs::path dir_;
  testing::FakeKernel kernel_;
};

TEST_F(CoreFleetTest, RemoteWorkloadJoinsSelectorsThroughElementChangesOnly) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(core.applySnapshot(revision(1), {}).ok());
  ASSERT_TRUE(api::upsertWorkload(core, localApi("fe", "frontend", "192.0.2.10")).ok());
  ASSERT_TRUE(core.promoteStaged(true).ok());
  const nft::TableContent before = kernel_.content;
  EXPECT_TRUE(elements("a4_frontend").empty());
  const int commits = kernel_.commits;

  ASSERT_TRUE(
      core.upsertRemoteWorkload(remote("host-b", "pay-1", "payments", "198.51.100.20")).ok());
  EXPECT_EQ(kernel_.commits, commits + 1);
  EXPECT_EQ(kernel_.content.chains, before.chains);  // no chain touched
  for (const auto& [name, set] : kernel_.content.sets) {
    ASSERT_TRUE(before.sets.count(name)) << name;
    EXPECT_EQ(set.declaration, before.sets.at(name).declaration) << name;
    if (name != "a4_frontend") {
      EXPECT_EQ(set.elements, before.sets.at(name).elements) << name;
    }
  }
  EXPECT_EQ(elements("a4_frontend").size(), 1u);
  auto drift = core.checkDrift("test");
  ASSERT_TRUE(drift.ok());
  EXPECT_FALSE(drift->has_value()) << **drift;  // the kernel holds what was compiled

  // A GlobalPolicy selector on an app only remote workloads use.
  ASSERT_TRUE(
      core.upsertRemoteWorkload(remote("host-c", "cache-1", "cache", "198.51.100.30")).ok());
  EXPECT_EQ(kernel_.content.chains, before.chains);
  EXPECT_EQ(elements("g4_no-cache_0").size(), 1u);

  ASSERT_TRUE(core.deleteRemoteWorkload("host-b", "pay-1").ok());
  ASSERT_TRUE(core.deleteRemoteWorkload("host-c", "cache-1").ok());
  kernel_.content.normalize();
  nft::TableContent expected = before;
  expected.normalize();
  EXPECT_EQ(kernel_.content.sets, expected.sets);
  EXPECT_EQ(kernel_.content.chains, expected.chains);
  auto gone = core.deleteRemoteWorkload("host-b", "pay-1");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
}

TEST_F(CoreFleetTest, RemoteAndLocalOfOneNameCoexistInListAndStatus) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(core.applySnapshot(revision(1), {}).ok());
  ASSERT_TRUE(api::upsertWorkload(core, localApi("web", "frontend", "192.0.2.10")).ok());
  ASSERT_TRUE(core.upsertRemoteWorkload(remote("host-b", "web", "payments", "198.51.100.20")).ok());
  const auto list = api::listWorkloads(core);
  ASSERT_EQ(list.workloads_size(), 2);
  EXPECT_EQ(list.workloads(0).host(), "");
  EXPECT_EQ(list.workloads(0).source(), v1::Workload::SOURCE_API);
  EXPECT_EQ(list.workloads(1).host(), "host-b");
  EXPECT_EQ(list.workloads(1).source(), v1::Workload::SOURCE_REMOTE);
  EXPECT_EQ(list.workloads(1).interfaces_size(), 0);
  EXPECT_EQ(list.workloads(1).addresses(0), "198.51.100.20");
  EXPECT_EQ(api::listWorkloads(core, "web").workloads_size(), 2);
  const auto s = api::status(core);
  EXPECT_EQ(s.remote_workloads(), 1u);
  EXPECT_EQ(s.applied_revision(), 1u);
  // Only local registrations go to the controller.
  ASSERT_EQ(core.localWorkloads().size(), 1u);
  EXPECT_EQ(core.localWorkloads()[0].workload.app, "frontend");
  // Deleting the local one leaves the remote one.
  ASSERT_TRUE(api::deleteWorkload(core, "web").ok());
  ASSERT_EQ(api::listWorkloads(core).workloads_size(), 1);
  EXPECT_EQ(api::listWorkloads(core).workloads(0).host(), "host-b");
}

TEST_F(CoreFleetTest, RemoteWithInterfacesOrBadHostIsRefused) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(core.applySnapshot(revision(1), {}).ok());
  const int commits = kernel_.commits;
  RemoteWorkload withIface{"host-b", workload("p", "payments", "198.51.100.20", true)};
  auto st = core.upsertRemoteWorkload(withIface);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidInput);
  for (const std::string& host :
       std::vector<std::string>{"", "host b", "a\nb", std::string(300, 'h')})
    EXPECT_FALSE(core.upsertRemoteWorkload(remote(host, "p", "payments", "198.51.100.20")).ok())
        << host;
  EXPECT_FALSE(core.applySnapshot(std::nullopt, {withIface}).ok());
  EXPECT_FALSE(
      core.applySnapshot(std::nullopt, {remote("host-b", "p", "payments", "198.51.100.20"),
                                        remote("host-b", "p", "payments", "198.51.100.21")})
          .ok());
  EXPECT_EQ(kernel_.commits, commits);
  EXPECT_EQ(api::status(core).remote_workloads(), 0u);
}

TEST_F(CoreFleetTest, SnapshotIsOneTransactionAndAnEqualOneChangesNothing) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::upsertWorkload(core, localApi("fe", "frontend", "192.0.2.10")).ok());
  const int commits = kernel_.commits;
  const std::vector<RemoteWorkload> remotes = {
      remote("host-b", "pay-1", "payments", "198.51.100.20"),
      remote("host-b", "pay-2", "payments", "198.51.100.21"),
      remote("host-c", "cache-1", "cache", "198.51.100.30")};
  ASSERT_TRUE(core.applySnapshot(revision(4), remotes).ok());
  EXPECT_EQ(kernel_.commits, commits + 1);  // bundle and remotes together
  EXPECT_EQ(core.appliedRevision(), 4u);
  EXPECT_EQ(api::status(core).remote_workloads(), 3u);
  EXPECT_FALSE(elements("a4_frontend").empty());

  // The reconnection case: the same again, and the same without a bundle.
  kernel_.recordBatches = true;
  const uint32_t gen = kernel_.gen;
  ASSERT_TRUE(core.applySnapshot(revision(4), remotes).ok());
  ASSERT_TRUE(core.applySnapshot(std::nullopt, remotes).ok());
  EXPECT_EQ(kernel_.commits, commits + 1);
  EXPECT_TRUE(kernel_.batches.empty());
  EXPECT_EQ(kernel_.gen, gen);
  EXPECT_EQ(core.appliedRevision(), 4u);

  // One remote fewer, one changed: still one transaction, elements only.
  const auto chains = kernel_.content.chains;
  ASSERT_TRUE(
      core.applySnapshot(std::nullopt, {remote("host-b", "pay-1", "payments", "198.51.100.25")})
          .ok());
  EXPECT_EQ(kernel_.commits, commits + 2);
  EXPECT_EQ(kernel_.content.chains, chains);
  EXPECT_EQ(api::status(core).remote_workloads(), 1u);
  EXPECT_TRUE(elements("g4_no-cache_0").empty());

  // A snapshot whose bundle does not validate: nothing applied.
  auto bad = core.applySnapshot(revision(5, "kind: Nonsense\n"), {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidInput);
  EXPECT_EQ(kernel_.commits, commits + 2);
  EXPECT_EQ(core.appliedRevision(), 4u);
  EXPECT_EQ(api::status(core).remote_workloads(), 1u);
}

TEST_F(CoreFleetTest, RemoteBatchIsOneTransactionOfElementChangesAndSurvivesRestart) {
  {
    AgentCore core(kernel_, {}, options());
    ASSERT_TRUE(api::upsertWorkload(core, localApi("fe", "frontend", "192.0.2.10")).ok());
    ASSERT_TRUE(
        core.applySnapshot(revision(4), {remote("host-b", "pay-1", "payments", "198.51.100.20")})
            .ok());
    ASSERT_TRUE(core.promoteStaged(true).ok());
    const int commits = kernel_.commits;
    const auto chains = kernel_.content.chains;
    ASSERT_EQ(elements("a4_frontend").size(), 1u);
    // Three new, one gone, one unknown delete, one refused (a bad host name).
    ASSERT_TRUE(core.applyRemoteChanges({remote("host-b", "pay-2", "payments", "198.51.100.21"),
                                         remote("host-b", "pay-3", "payments", "198.51.100.23"),
                                         remote("host-c", "cache-1", "cache", "198.51.100.30"),
                                         remote("host b", "bad", "payments", "198.51.100.40")},
                                        {{"host-b", "pay-1"}, {"host-z", "unknown"}})
                    .ok());
    EXPECT_EQ(kernel_.commits, commits + 1);  // one transaction for all of it
    EXPECT_EQ(kernel_.content.chains, chains);
    EXPECT_EQ(elements("a4_frontend").size(), 2u);
    EXPECT_EQ(elements("g4_no-cache_0").size(), 1u);
    EXPECT_EQ(api::status(core).remote_workloads(), 3u);
    auto drift = core.checkDrift("test");
    ASSERT_TRUE(drift.ok());
    EXPECT_FALSE(drift->has_value()) << **drift;
    // Nothing to change: no transaction.
    ASSERT_TRUE(core.applyRemoteChanges({}, {{"host-b", "pay-1"}}).ok());
    EXPECT_EQ(kernel_.commits, commits + 1);
  }
  // Journaled: a restart has the batch's result.
  testing::FakeKernel fresh;
  AgentCore restarted(fresh, {}, options());
  ASSERT_TRUE(restarted.restore().ok());
  std::set<std::string> remotes;
  const auto list = api::listWorkloads(restarted);
  for (const auto& w : list.workloads())
    if (w.source() == v1::Workload::SOURCE_REMOTE) remotes.insert(w.host() + "/" + w.name());
  EXPECT_EQ(remotes, (std::set<std::string>{"host-b/pay-2", "host-b/pay-3", "host-c/cache-1"}));
}

TEST_F(CoreFleetTest, RevisionsApplyAsPushesAndSurviveRestartWithRemotes) {
  {
    AgentCore core(kernel_, {}, options());
    ASSERT_TRUE(core.applyRevision(revision(3)).ok());
    EXPECT_EQ(core.appliedRevision(), 3u);
    EXPECT_EQ(api::status(core).version(), "rev-3");
    ASSERT_TRUE(api::upsertWorkload(core, localApi("fe", "frontend", "192.0.2.10")).ok());
    ASSERT_TRUE(
        core.upsertRemoteWorkload(remote("host-b", "pay-1", "payments", "198.51.100.20")).ok());
    ASSERT_TRUE(
        core.upsertRemoteWorkload(remote("host-b", "pay-2", "payments", "198.51.100.22")).ok());
    ASSERT_TRUE(core.deleteRemoteWorkload("host-b", "pay-2").ok());
    // A revision that does not validate: an error, the last one stays.
    auto bad = core.applyRevision(revision(4, "kind: Nonsense\n"));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::kInvalidInput);
    EXPECT_EQ(core.appliedRevision(), 3u);
    EXPECT_FALSE(core.applyRevision(PolicyRevision{0, "", {}}).ok());
    ASSERT_TRUE(core.promoteStaged(true).ok());  // as a restore compiles it
  }
  // A restart without the controller: the same revision, the same remote
  // workloads in force (journal replayed over the snapshot).
  testing::FakeKernel fresh;
  AgentCore restarted(fresh, {}, options());
  ASSERT_TRUE(restarted.restore().ok());
  EXPECT_EQ(restarted.appliedRevision(), 3u);
  const auto list = api::listWorkloads(restarted);
  ASSERT_EQ(list.workloads_size(), 2);
  EXPECT_EQ(list.workloads(1).name(), "pay-1");
  EXPECT_EQ(list.workloads(1).host(), "host-b");
  EXPECT_EQ(list.workloads(1).source(), v1::Workload::SOURCE_REMOTE);
  fresh.content.normalize();
  kernel_.content.normalize();
  EXPECT_EQ(fresh.content.sets, kernel_.content.sets);
  EXPECT_EQ(fresh.content.chains, kernel_.content.chains);
  // The same revision again changes nothing.
  const int commits = fresh.commits;
  ASSERT_TRUE(restarted.applyRevision(revision(3)).ok());
  EXPECT_EQ(fresh.commits, commits);

  // And once more from a snapshot (a revision saves the whole state).
  ASSERT_TRUE(restarted.applyRevision(revision(6)).ok());
  testing::FakeKernel third;
  AgentCore again(third, {}, options());
  ASSERT_TRUE(again.restore().ok());
  EXPECT_EQ(again.appliedRevision(), 6u);
  EXPECT_EQ(api::status(again).remote_workloads(), 1u);
}

TEST_F(CoreFleetTest, LocalChangesReachTheListenerInOrderOutsideTheLock) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(core.applySnapshot(revision(1), {}).ok());
  std::vector<std::pair<std::string, bool>> seen;
  std::vector<size_t> listedThen;
  core.setLocalChangeListener([&](const LocalWorkloadChange& c) {
    seen.emplace_back(c.workload.name, c.removed);
    // Calls back into the core: would deadlock under its lock.
    listedThen.push_back(core.localWorkloads().size());
  });
  ASSERT_TRUE(api::upsertWorkload(core, localApi("w1", "frontend", "192.0.2.11")).ok());
  ASSERT_TRUE(api::upsertWorkload(core, localApi("w2", "frontend", "192.0.2.12")).ok());
  ASSERT_TRUE(api::deleteWorkload(core, "w1").ok());
  // Not local changes: remote workloads, refused registrations.
  ASSERT_TRUE(core.upsertRemoteWorkload(remote("host-b", "p", "payments", "198.51.100.20")).ok());
  EXPECT_FALSE(api::upsertWorkload(core, localApi("w3", "frontend", "192.0.2.12")).ok());
  const std::vector<std::pair<std::string, bool>> want = {
      {"w1", false}, {"w2", false}, {"w1", true}};
  EXPECT_EQ(seen, want);
  EXPECT_EQ(listedThen, (std::vector<size_t>{1, 2, 1}));

  // Concurrent registrations: every one reported once, each after its own
  // change is in force.
  seen.clear();
  listedThen.clear();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const int id = 20 + t * 10 + i;
        ASSERT_TRUE(api::upsertWorkload(core, localApi("c" + std::to_string(id), "frontend",
                                                       "192.0.2." + std::to_string(id)))
                        .ok());
      }
    });
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(seen.size(), 40u);
  std::set<std::string> names;
  for (const auto& [n, removed] : seen)
    names.insert(n);
  EXPECT_EQ(names.size(), 40u);
  core.setLocalChangeListener(nullptr);
  ASSERT_TRUE(api::deleteWorkload(core, "w2").ok());
  EXPECT_EQ(seen.size(), 40u);
}

TEST_F(CoreFleetTest, LocalPushIsRefusedUnderAController) {
  CoreOptions o = options();
  o.controller = "tcp://controller.example:7444";
  AgentCore core(kernel_, {}, o);
  v1::ApplyPolicyRequest push;
  auto* f = push.add_files();
  f->set_name("p.yaml");
  f->set_content(kFleetPolicy);
  auto refused = api::applyPolicy(core, push);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kFailedPrecondition);
  const grpc::Status st = common::grpcStatus(refused.error());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("tcp://controller.example:7444"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(kernel_.commits, 0);
  // A dry run applies nothing: still answered.
  push.set_dry_run(true);
  EXPECT_TRUE(api::applyPolicy(core, push).ok());
  EXPECT_EQ(kernel_.commits, 0);
  // The controller's own revisions go through.
  EXPECT_TRUE(core.applyRevision(revision(1)).ok());
  EXPECT_EQ(kernel_.commits, 1);
}

// The hello and every change carry the registration's real source (API,
// CNI, libvirt), as the core recorded it, never UNSPECIFIED.
TEST_F(CoreFleetTest, HelloAndChangesCarryTheRegistrationsSource) {
  AgentCore core(kernel_, {}, options());
  std::map<std::string, v1::Workload::Source> changed;
  core.setLocalChangeListener([&](const LocalWorkloadChange& c) {
    const v1::AgentMessage m = changeMessage(c, "host-a");
    ASSERT_TRUE(m.workload().has_upsert());
    EXPECT_EQ(m.workload().upsert().host(), "host-a");
    EXPECT_EQ(m.workload().upsert().interfaces_size(), 0);
    changed[c.workload.name] = m.workload().upsert().source();
  });
  ASSERT_TRUE(api::upsertWorkload(
                  core, registration("c1", "192.0.2.11", v1::Workload::SOURCE_CNI, "0123abcd/eth0"))
                  .ok());
  ASSERT_TRUE(
      api::upsertWorkload(core, registration("vm1", "192.0.2.12", v1::Workload::SOURCE_LIBVIRT,
                                             "6f1c1f8e-9c64-4f7e-8d0c-2f4a5b6c7d8e"))
          .ok());
  ASSERT_TRUE(
      api::upsertWorkload(core, registration("api1", "192.0.2.13", v1::Workload::SOURCE_API)).ok());
  // UNSPECIFIED is recorded (and reported) as API.
  ASSERT_TRUE(api::upsertWorkload(
                  core, registration("any1", "192.0.2.14", v1::Workload::SOURCE_UNSPECIFIED))
                  .ok());
  const std::map<std::string, v1::Workload::Source> want = {{"c1", v1::Workload::SOURCE_CNI},
                                                            {"vm1", v1::Workload::SOURCE_LIBVIRT},
                                                            {"api1", v1::Workload::SOURCE_API},
                                                            {"any1", v1::Workload::SOURCE_API}};
  EXPECT_EQ(changed, want);

  const v1::AgentMessage hello = helloMessage("host-a", "test", 0, core.localWorkloads());
  std::map<std::string, v1::Workload::Source> reported;
  for (const auto& w : hello.hello().workloads()) {
    EXPECT_EQ(w.host(), "host-a");
    EXPECT_TRUE(w.owner().empty()) << w.name();
    reported[w.name()] = w.source();
  }
  EXPECT_EQ(reported, want);

  // A re-registration from another source is reported with the new one.
  ASSERT_TRUE(api::upsertWorkload(core, registration("api1", "192.0.2.13", v1::Workload::SOURCE_CNI,
                                                     "4567ef01/eth0"))
                  .ok());
  EXPECT_EQ(changed["api1"], v1::Workload::SOURCE_CNI);
  core.setLocalChangeListener(nullptr);
}

TEST(CoreFleetSource, SourcesMapBothWays) {
  for (auto s : {v1::Workload::SOURCE_API, v1::Workload::SOURCE_CNI, v1::Workload::SOURCE_LIBVIRT})
    EXPECT_EQ(toApi(localSource(s)), s);
  // Nothing else is a local registration's: reported as API.
  EXPECT_EQ(toApi(localSource(v1::Workload::SOURCE_UNSPECIFIED)), v1::Workload::SOURCE_API);
  EXPECT_EQ(toApi(localSource(v1::Workload::SOURCE_REMOTE)), v1::Workload::SOURCE_API);
  policy::Workload w;
  w.name = "x";
  w.app = "a";
  EXPECT_EQ(reportedWorkload(w, LocalSource::kLibvirt, "h").source(), v1::Workload::SOURCE_LIBVIRT);
}

}  // namespace
}  // namespace bulkhead::agent
