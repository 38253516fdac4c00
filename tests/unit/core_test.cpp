// AgentCore: versions, no-op pushes, dry runs, workloads, quarantine, saved
// state, and errors — against a kernel that can refuse (tests/support/fake_kernel.h).
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <tuple>

#include "bulkhead/agent/service.h"
#include "bulkhead/common/grpc_status.h"
#include "bulkhead/compiler/render.h"
#include "support/fake_kernel.h"
#include "support/scratch.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: db, labels: {env: prod}}
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
    - to: [db]
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: web-static}
spec: {app: web, interfaces: [vstatic], addresses: [192.0.2.5]}
)";

v1::ApplyPolicyRequest push(const std::string& text, const std::string& version = "") {
  v1::ApplyPolicyRequest r;
  auto* f = r.add_files();
  f->set_name("policy.yaml");
  f->set_content(text);
  r.set_version(version);
  return r;
}

v1::Workload apiWorkload(const std::string& name, const std::string& addr) {
  v1::Workload w;
  w.set_name(name);
  w.set_app("web");
  w.add_interfaces("v" + name);
  w.add_addresses(addr);
  return w;
}

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratchPath("bh-core"); }
  void TearDown() override { fs::remove_all(dir_); }
  CoreOptions options() const {
    CoreOptions o;
    o.stateDir = dir_.string();
    o.maxBundleBytes = 4096;
    o.host = "hv01";
    return o;
  }
  fs::path dir_;
  testing::FakeKernel kernel_;
};

TEST_F(CoreTest, PushVersionsAndSamePushIsANoOp) {
  AgentCore core(kernel_, {}, options());
  auto r = api::applyPolicy(core, push(kPolicy));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->changed());
  EXPECT_EQ(r->version().rfind("sha256:", 0), 0u);
  EXPECT_EQ(kernel_.commits, 1);
  auto again = api::applyPolicy(core, push(kPolicy));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed());
  EXPECT_EQ(again->version(), r->version());
  EXPECT_EQ(kernel_.commits, 1) << "the same bundle again must not touch the kernel";
  auto named = api::applyPolicy(core, push(kPolicy, "v42"));
  ASSERT_TRUE(named.ok());
  EXPECT_FALSE(named->changed());
  EXPECT_EQ(api::status(core).version(), "v42");
}

TEST_F(CoreTest, InvalidPushNamesFileLineColumnAndChangesNothing) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
  auto r = api::applyPolicy(core, push("apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: x}\n"
                                       "spec:\n  egress:\n    - to: [nowhere]\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(r.error().message.find("policy.yaml:6:12: unknown service or app \"nowhere\""),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(common::grpcStatus(r.error()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(kernel_.commits, 1);
  EXPECT_EQ(api::status(core).apps(), 1u);
}

TEST_F(CoreTest, OversizedPushIsResourceExhausted) {
  AgentCore core(kernel_, {}, options());
  auto r = api::applyPolicy(core, push(std::string(5000, '#')));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::grpcStatus(r.error()).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(kernel_.commits, 0);
}

TEST_F(CoreTest, DryRunReturnsPlanAndAppliesNothing) {
  AgentCore core(kernel_, {}, options());
  auto req = push(kPolicy);
  req.set_dry_run(true);
  auto r = api::applyPolicy(core, req);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->changed());
  EXPECT_NE(r->plan().find("table inet bulkhead"), std::string::npos);
  EXPECT_GT(r->change().element_adds(), 0u);
  EXPECT_EQ(kernel_.commits, 0);
  EXPECT_EQ(api::status(core).version(), "");
}

TEST_F(CoreTest, WorkloadsAreElementChangesAndValidated) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
  auto r = api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10"));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->change().chains_added() + r->change().chains_rewritten(), 0u);
  EXPECT_EQ(r->change().element_adds(), 4u);  // staged, st_web, registered, src4
  EXPECT_EQ(api::status(core).staged_interfaces(), 1u);

  auto bad = api::upsertWorkload(core, apiWorkload("web-2", "192.0.2.300"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(common::grpcStatus(bad.error()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error().message.find("workload.addresses[0]"), std::string::npos);
  auto clash = api::upsertWorkload(core, apiWorkload("web-3", "192.0.2.10"));
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(common::grpcStatus(clash.error()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto ls = api::listWorkloads(core);
  ASSERT_EQ(ls.workloads_size(), 2);
  EXPECT_EQ(ls.workloads(0).name(), "web-1");
  EXPECT_EQ(ls.workloads(0).source(), v1::Workload::SOURCE_API);
  EXPECT_EQ(ls.workloads(1).source(), v1::Workload::SOURCE_BUNDLE);

  EXPECT_EQ(api::deleteWorkload(core, "nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(api::deleteWorkload(core, "web-static").error().code, ErrorCode::kInvalidInput);
  ASSERT_TRUE(api::deleteWorkload(core, "web-1").ok());
  EXPECT_EQ(api::status(core).workloads(), 1u);
}

TEST_F(CoreTest, WorkloadsSurvivePushes) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
  ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10")).ok());
  ASSERT_TRUE(api::applyPolicy(core, push(std::string(kPolicy) + "\n# v2\n")).ok());
  EXPECT_EQ(api::listWorkloads(core).workloads_size(), 2);
}

// The flow feed names each interface's workload and app, and exempts a
// scanner app's from scan detection: bundle workloads (published all at
// once by a push) and API ones alike.
TEST_F(CoreTest, InterfacesAreAttributedAndScannerAppsExempt) {
  AgentCore core(kernel_, {}, options());
  const std::string policy = std::string(kPolicy) + R"(---
apiVersion: bulkhead/v1
kind: App
metadata: {name: vulnscan, labels: {bulkhead.io/scanner: "true"}}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: scan-static}
spec: {app: vulnscan, interfaces: [vscan], addresses: [192.0.2.6]}
)";
  ASSERT_TRUE(api::applyPolicy(core, push(policy)).ok());
  v1::Workload scanner = apiWorkload("scan-1", "192.0.2.11");
  scanner.set_app("vulnscan");
  ASSERT_TRUE(api::upsertWorkload(core, scanner).ok());
  ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10")).ok());

  const auto web = core.interfaces().find("vstatic");
  EXPECT_EQ(web.workload, "web-static");
  EXPECT_EQ(web.app, "web");
  EXPECT_FALSE(web.scanExempt);
  EXPECT_TRUE(core.interfaces().find("vscan").scanExempt);
  EXPECT_TRUE(core.interfaces().find("vscan-1").scanExempt);
  EXPECT_FALSE(core.interfaces().find("vweb-1").scanExempt);
  EXPECT_EQ(core.interfaces().find("vweb-1").app, "web");
}

TEST_F(CoreTest, QuarantineApiAndBundleWorkloads) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
  ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10")).ok());
  ASSERT_TRUE(api::quarantine(core, "web-1", false).ok());
  ASSERT_TRUE(api::quarantine(core, "web-static", false).ok());
  EXPECT_EQ(api::quarantine(core, "nope", false).error().code, ErrorCode::kNotFound);
  const auto quarantined = api::listWorkloads(core);
  for (const auto& w : quarantined.workloads())
    EXPECT_TRUE(w.quarantined()) << w.name();
  // Quarantine holds across a push and a re-registration.
  ASSERT_TRUE(api::applyPolicy(core, push(std::string(kPolicy) + "\n# v2\n")).ok());
  ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10")).ok());
  const auto still = api::listWorkloads(core);
  for (const auto& w : still.workloads())
    EXPECT_TRUE(w.quarantined()) << w.name();
  ASSERT_TRUE(api::quarantine(core, "web-1", true).ok());
  const auto released = api::listWorkloads(core);
  for (const auto& w : released.workloads())
    EXPECT_EQ(w.quarantined(), w.name() == "web-static") << w.name();
}

TEST_F(CoreTest, StateIsSavedAndRestored) {
  std::string version, plan;
  {
    AgentCore core(kernel_, {}, options());
    ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
    ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10")).ok());
    ASSERT_TRUE(api::quarantine(core, "web-1", false).ok());
    version = api::status(core).version();
  }
  testing::FakeKernel fresh;
  AgentCore restored(fresh, {}, options());
  ASSERT_TRUE(restored.restore().ok());
  EXPECT_EQ(fresh.commits, 1) << "one transaction puts the saved table back";
  EXPECT_EQ(api::status(restored).version(), version);
  auto ls = api::listWorkloads(restored);
  ASSERT_EQ(ls.workloads_size(), 2);
  EXPECT_TRUE(ls.workloads(0).quarantined());
  // The same bundle pushed again is a no-op after a restart too.
  auto again = api::applyPolicy(restored, push(kPolicy));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed());
}

TEST_F(CoreTest, WorkloadChangesAreJournalledAndATornRecordIsIgnored) {
  {
    AgentCore core(kernel_, {}, options());
    ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
    const auto snapshot = fs::file_size(dir_ / "state.pb");
    ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10")).ok());
    ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-2", "192.0.2.11")).ok());
    ASSERT_TRUE(api::deleteWorkload(core, "web-1").ok());
    EXPECT_EQ(fs::file_size(dir_ / "state.pb"), snapshot)
        << "a workload change is a journal record";
    EXPECT_GT(fs::file_size(dir_ / "journal.pb"), 0u);
  }
  // A crash mid-write leaves a partial record after the last whole one: it
  // is ignored.
  {
    StateStore store(dir_.string());
    ASSERT_TRUE(store.load().ok());
    std::fstream f(dir_ / "journal.pb", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(store.journal().bytes()));
    f << std::string(
        "\x40\x00\x00\x00\x01\x02\x03\x04"
        "abc",
        11);
  }
  testing::FakeKernel fresh;
  AgentCore restored(fresh, {}, options());
  ASSERT_TRUE(restored.restore().ok());
  auto ls = api::listWorkloads(restored);
  ASSERT_EQ(ls.workloads_size(), 2);
  EXPECT_EQ(ls.workloads(0).name(), "web-2");
  // A push writes a new snapshot and empties the journal.
  std::string changed = kPolicy;
  changed.replace(changed.find("tcp/5432"), 8, "tcp/5433");
  ASSERT_TRUE(api::applyPolicy(restored, push(changed)).ok());
  StateStore after(dir_.string());
  ASSERT_TRUE(after.load().ok());
  EXPECT_EQ(after.journalEntries(), 0u);
}

TEST_F(CoreTest, CorruptStateIsAnErrorAndTouchesNothing) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "state.pb") << "this is not a protobuf";
  AgentCore core(kernel_, {}, options());
  auto st = core.restore();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("corrupt"), std::string::npos) << st.error().message;
  EXPECT_EQ(kernel_.commits, 0);
}

TEST_F(CoreTest, KernelRefusalIsUnavailableAndNotSaved) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
  const auto saved = fs::last_write_time(dir_ / "state.pb");
  kernel_.refuse = 2;
  std::string changed = kPolicy;
  changed.replace(changed.find("tcp/5432"), 8, "tcp/5433");
  auto r = api::applyPolicy(core, push(changed));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::grpcStatus(r.error()).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(fs::last_write_time(dir_ / "state.pb"), saved);
  EXPECT_NE(api::status(core).last_error().find("kernel refused"), std::string::npos);
}

// Promotion is due once no workload changed for promoteIdle, or the oldest
// staged interface waited promoteMaxAge; the clocks are set so that the
// outcome never depends on how fast this machine is.
TEST_F(CoreTest, StagedInterfacesArePromotedWhenQuietOrOld) {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  for (auto [idle, age, due] : {std::tuple{milliseconds(hours(1)), milliseconds(hours(1)), false},
                                std::tuple{milliseconds(0), milliseconds(hours(1)), true},
                                std::tuple{milliseconds(hours(1)), milliseconds(0), true}}) {
    CoreOptions o = options();
    o.stateDir.clear();
    o.promoteIdle = idle;
    o.promoteMaxAge = age;
    AgentCore core(kernel_, {}, o);
    ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
    auto none = core.promoteStaged(true);
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, 0u);  // nothing staged: nothing to do, even forced
    ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-1", "192.0.2.10")).ok());
    const int commits = kernel_.commits;
    auto p = core.promoteStaged();
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, due ? 1u : 0u);
    EXPECT_EQ(kernel_.commits, commits + (due ? 1 : 0));
    if (!due) {
      auto forced = core.promoteStaged(true);
      ASSERT_TRUE(forced.ok());
      EXPECT_EQ(*forced, 1u);
    }
    const auto st = api::status(core);
    EXPECT_EQ(st.staged_interfaces(), 0u);
    EXPECT_EQ(st.promotions(), 1u);
    EXPECT_EQ(st.promotion_latency().count(), 1u);
  }
}

TEST_F(CoreTest, PromotionGoesInBatchesAndTheRestStaysDue) {
  CoreOptions o = options();
  o.stateDir.clear();
  o.promoteIdle = std::chrono::hours(1);
  o.promoteMaxAge = std::chrono::milliseconds(0);
  o.promoteBatch = 2;
  AgentCore core(kernel_, {}, o);
  ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(api::upsertWorkload(core, apiWorkload("web-" + std::to_string(i),
                                                      "192.0.2." + std::to_string(10 + i)))
                    .ok());
  EXPECT_EQ(api::status(core).staged_interfaces(), 5u);
  for (size_t expected : {2u, 2u, 1u, 0u}) {
    auto p = core.promoteStaged();
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, expected);
  }
  EXPECT_EQ(api::status(core).staged_interfaces(), 0u);
  EXPECT_EQ(api::status(core).promotions(), 3u);
}

// Lost notifications repair the table only when someone else committed since
// our last commit: our own big transactions overflow the socket as well.
TEST_F(CoreTest, LostEventsRepairOnlyAfterAForeignCommit) {
  // A kernel that cannot read the table back: a foreign commit is reason
  // enough (drift_test.cpp decides by content).
  kernel_.readable = false;
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push(kPolicy)).ok());
  const int commits = kernel_.commits;
  auto r = core.repairAfterLostEvents("notifications lost");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(kernel_.commits, commits);
  EXPECT_EQ(api::status(core).drift_repairs(), 0u);

  ++kernel_.gen;  // another program committed (to any table)
  r = core.repairAfterLostEvents("notifications lost");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  EXPECT_EQ(kernel_.commits, commits + 1);
  EXPECT_EQ(api::status(core).drift_repairs(), 1u);
  // The repair was ours: lost notifications now need no second one.
  r = core.repairAfterLostEvents("notifications lost");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

}  // namespace
}  // namespace bulkhead::agent
