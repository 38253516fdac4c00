// The enforcer pauses the table monitor around large transactions and tells
// it when someone else may have committed meanwhile (the generation moved
// by more than its own commit).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bulkhead/agent/enforcer.h"
#include "bulkhead/nft/monitor.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

using namespace policy;

class RecordingGate : public nft::NotificationGate {
 public:
  void pause() override {
    ++pauses;
    ++depth;
  }
  void resume() override {
    ++resumes;
    --depth;
  }
  void reportUnheard(std::string what) override { unheard.push_back(std::move(what)); }

  int pauses = 0, resumes = 0, depth = 0;
  std::vector<std::string> unheard;
};

// A kernel where someone else commits while ours is in flight.
class BusyKernel : public testing::FakeKernel {
 public:
  Status commit(const nft::Batch& batch) override {
    if (foreignCommits > 0) {
      --foreignCommits;
      ++gen;
    }
    pausedDuringCommit = gate != nullptr && gate->depth > 0;
    return FakeKernel::commit(batch);
  }
  int foreignCommits = 0;
  RecordingGate* gate = nullptr;
  bool pausedDuringCommit = false;
};

Workload workload(int i) {
  Workload w;
  w.name = "w" + std::to_string(i);
  w.app = "web";
  w.interfaces = {"v" + std::to_string(i)};
  IpAddr a;
  a.bytes[0] = 10;
  a.bytes[1] = uint8_t(i >> 16);
  a.bytes[2] = uint8_t(i >> 8);
  a.bytes[3] = uint8_t(i);
  w.addresses = {a};
  return w;
}

// `workloads` workloads of one app: a few elements each.
Bundle bundle(int workloads) {
  Bundle b;
  App a;
  a.name = "web";
  b.apps.push_back(a);
  for (int i = 0; i < workloads; ++i)
    b.workloads.push_back(workload(i));
  return b;
}

class EnforcerGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_.gate = &gate_;
    enforcer_.setNotificationGate(&gate_);
  }
  BusyKernel kernel_;
  RecordingGate gate_;
  Enforcer enforcer_{kernel_, {}};
};

TEST_F(EnforcerGateTest, LargeCommitIsWrittenWithTheMonitorPaused) {
  ASSERT_TRUE(enforcer_.setPolicy(bundle(600)).ok());
  ASSERT_GE(enforcer_.ruleset().elementCount(), Enforcer::kQuietElements);
  EXPECT_TRUE(kernel_.pausedDuringCommit);
  EXPECT_EQ(gate_.pauses, 1);
  EXPECT_EQ(gate_.resumes, 1);
  EXPECT_TRUE(gate_.unheard.empty());
  // Only our commit moved the generation: the kernel holds exactly ours.
  auto untouched = enforcer_.untouchedSinceLastCommit();
  ASSERT_TRUE(untouched.ok());
  EXPECT_TRUE(*untouched);
}

TEST_F(EnforcerGateTest, SmallCommitKeepsListening) {
  ASSERT_TRUE(enforcer_.setPolicy(bundle(2)).ok());
  ASSERT_LT(enforcer_.ruleset().elementCount(), Enforcer::kQuietElements);
  EXPECT_FALSE(kernel_.pausedDuringCommit);
  EXPECT_EQ(gate_.pauses, 0);
  ASSERT_TRUE(enforcer_.upsertWorkload(workload(100)).ok());
  EXPECT_EQ(gate_.pauses, 0);
}

// A full promotion batch keeps the monitor listening, so that another
// tool's commit during one is heard, not answered with a read-back of the
// whole table.
TEST_F(EnforcerGateTest, PromotionBatchKeepsListening) {
  ASSERT_TRUE(enforcer_.setPolicy(bundle(0)).ok());
  for (size_t i = 0; i < Enforcer::kPromoteBatch + 10; ++i)
    ASSERT_TRUE(enforcer_.upsertWorkload(workload(int(i))).ok());
  ASSERT_EQ(enforcer_.stagedCount(), Enforcer::kPromoteBatch + 10);
  kernel_.foreignCommits = 1;
  auto diff = enforcer_.promoteStaged(Enforcer::kPromoteBatch);
  ASSERT_TRUE(diff.ok()) << diff.error().describe();
  EXPECT_EQ(enforcer_.stagedCount(), 10u);
  EXPECT_GT(diff->elementChangeCount(), 2 * Enforcer::kPromoteBatch);
  EXPECT_LT(diff->elementChangeCount(), Enforcer::kQuietElements);
  EXPECT_EQ(gate_.pauses, 0);
  EXPECT_TRUE(gate_.unheard.empty());
}

TEST_F(EnforcerGateTest, ForeignCommitWhilePausedIsReportedAndForcesAComparison) {
  kernel_.foreignCommits = 1;
  ASSERT_TRUE(enforcer_.setPolicy(bundle(600)).ok());
  EXPECT_EQ(gate_.resumes, 1);
  ASSERT_EQ(gate_.unheard.size(), 1u);
  EXPECT_NE(gate_.unheard[0].find("while the agent wrote"), std::string::npos) << gate_.unheard[0];
  // The generation no longer proves the table is ours: the next check must
  // read it back.
  auto untouched = enforcer_.untouchedSinceLastCommit();
  ASSERT_TRUE(untouched.ok());
  EXPECT_FALSE(*untouched);
}

TEST_F(EnforcerGateTest, RefusedLargeCommitAloneReportsNothing) {
  kernel_.refuse = 1;
  EXPECT_FALSE(enforcer_.setPolicy(bundle(600)).ok());
  EXPECT_EQ(gate_.pauses, 1);
  EXPECT_EQ(gate_.resumes, 1);
  EXPECT_TRUE(gate_.unheard.empty());
  // With someone else committing around the refusal, it is reported.
  kernel_.refuse = 1;
  kernel_.foreignCommits = 1;
  EXPECT_FALSE(enforcer_.setPolicy(bundle(601)).ok());
  EXPECT_EQ(gate_.unheard.size(), 1u);
  EXPECT_EQ(gate_.depth, 0);
}

TEST_F(EnforcerGateTest, DriftRepairOfALargeTableIsPausedToo) {
  ASSERT_TRUE(enforcer_.setPolicy(bundle(600)).ok());
  ASSERT_TRUE(enforcer_.replaceAll().ok());
  EXPECT_EQ(gate_.pauses, 2);
  EXPECT_EQ(gate_.depth, 0);
  auto untouched = enforcer_.untouchedSinceLastCommit();
  ASSERT_TRUE(untouched.ok());
  EXPECT_TRUE(*untouched);
}

}  // namespace
}  // namespace bulkhead::agent
