// A state directory an earlier agent wrote (tests/golden/state-v1, encoded
// with the definitions from before the state records had their own proto
// file) still loads, and the core puts its table back.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "bulkhead/agent/state_store.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

class StateCompatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bh-state-v1-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const char* f : {"state.pb", "journal.pb"})
      fs::copy_file(fs::path(BULKHEAD_GOLDEN_DIR) / "state-v1" / f, dir_ / f);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(StateCompatTest, EarlierStateDirectoryLoadsFieldForField) {
  StateStore store(dir_.string());
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  ASSERT_TRUE(loaded->has_value());
  const v1::AgentState& s = **loaded;
  EXPECT_EQ(s.format(), 1u);
  EXPECT_EQ(s.version(), "v7");
  ASSERT_EQ(s.files_size(), 1);
  EXPECT_EQ(s.files(0).name(), "web.yaml");
  EXPECT_EQ(s.written_time(), "2026-11-28T11:00:00Z");
  // The older journal's two records are replayed (the workloads below) and
  // folded into the next snapshot; the new journal starts empty.
  EXPECT_EQ(store.journalEntries(), 0u);
  // The snapshot's web-1 and web-2, then the journal: web-3 added, web-1 gone.
  ASSERT_EQ(s.workloads_size(), 2);
  const v1::Workload& cni = s.workloads(0);
  EXPECT_EQ(cni.name(), "web-2");
  EXPECT_EQ(cni.addresses(0), "2001:db8::2");
  EXPECT_EQ(cni.source(), v1::Workload::SOURCE_CNI);
  EXPECT_EQ(cni.owner(), "c0ffee/eth0");
  const v1::Workload& vm = s.workloads(1);
  EXPECT_EQ(vm.name(), "web-3");
  EXPECT_EQ(vm.source(), v1::Workload::SOURCE_LIBVIRT);
  ASSERT_EQ(s.quarantined_size(), 1);
  EXPECT_EQ(s.quarantined(0), "web-2");
  ASSERT_EQ(s.quarantines_size(), 1);
  EXPECT_EQ(s.quarantines(0).reason(), "manual");
  EXPECT_EQ(s.quarantines(0).since_unix(), 1795000000);
  EXPECT_TRUE(s.quarantines(0).active());
}

TEST_F(StateCompatTest, CoreRestoresTheEarlierStateIntoTheKernel) {
  testing::FakeKernel kernel;
  CoreOptions o;
  o.stateDir = dir_.string();
  AgentCore core(kernel, {}, o);
  ASSERT_TRUE(core.restore().ok());
  EXPECT_EQ(kernel.commits, 1);
  EXPECT_EQ(api::status(core).version(), "v7");
  const auto listed = api::listWorkloads(core);
  ASSERT_EQ(listed.workloads_size(), 2);
  EXPECT_EQ(listed.workloads(0).name(), "web-2");
  EXPECT_TRUE(listed.workloads(0).quarantined());
  EXPECT_EQ(listed.workloads(0).owner(), "c0ffee/eth0");
  EXPECT_EQ(listed.workloads(1).name(), "web-3");
  EXPECT_FALSE(listed.workloads(1).quarantined());
  // What the kernel got: the app's chain, and web-2's interface quarantined.
  EXPECT_TRUE(kernel.content.chains.count("app_web"));
  ASSERT_TRUE(kernel.content.sets.count("quarantine"));
  EXPECT_EQ(kernel.content.sets.at("quarantine").elements.size(), 1u);
  ASSERT_EQ(api::listQuarantines(core).quarantines_size(), 1);
  EXPECT_EQ(api::listQuarantines(core).quarantines(0).workload(), "web-2");
}

}  // namespace
}  // namespace bulkhead::agent
