// Enforcer against a kernel that can refuse: what the compiler holds must
// always be what the kernel holds.
#include "bulkhead/agent/enforcer.h"

#include <gtest/gtest.h>

#include "bulkhead/compiler/render.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

using namespace policy;

Bundle bundle() {
  Bundle b;
  App a;
  a.name = "web";
  b.apps.push_back(a);
  return b;
}

Workload workload(const std::string& name, const std::string& addr) {
  Workload w;
  w.name = name;
  w.app = "web";
  w.interfaces = {"v" + name};
  w.addresses = {*IpAddr::parse(addr)};
  return w;
}

TEST(Enforcer, FirstCommitReplacesThenDiffs) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  EXPECT_EQ(k.commits, 1);
  EXPECT_TRUE(e.committed());
  auto d = e.upsertWorkload(workload("a", "192.0.2.1"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(k.commits, 2);
  EXPECT_TRUE(d->addChains.empty());
  // Pushing the same thing again is no transaction at all.
  ASSERT_TRUE(e.upsertWorkload(workload("a", "192.0.2.1")).ok());
  EXPECT_EQ(k.commits, 2);
}

TEST(Enforcer, RefusedCommitRollsTheCompilerBack) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  ASSERT_TRUE(e.upsertWorkload(workload("a", "192.0.2.1")).ok());
  ASSERT_TRUE(e.promoteStaged().ok());
  const std::string before = compiler::renderRuleset(e.ruleset());
  // A rollback restores the inputs; an interface it brings back may come back
  // staged rather than dispatched, which the next commit (a whole replace,
  // since the kernel's state is unknown after a failure) makes up for.
  auto settled = [&] {
    EXPECT_FALSE(e.committed());
    EXPECT_TRUE(e.promoteStaged().ok());
    return compiler::renderRuleset(e.ruleset());
  };

  k.refuse = 2;  // the diff, and the full replace it falls back to
  auto r = e.upsertWorkload(workload("b", "192.0.2.2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().sysErrno, ENOENT);
  EXPECT_TRUE(e.compiler().workloads().size() == 1);
  EXPECT_EQ(e.compiler().stagedCount(), 0u);
  EXPECT_EQ(settled(), before);
  ASSERT_TRUE(e.replaceAll().ok());

  k.refuse = 2;
  ASSERT_FALSE(e.removeWorkload("a").ok());
  EXPECT_EQ(e.compiler().workloads().size(), 1u);
  EXPECT_EQ(e.compiler().stagedCount(), 1u);  // "va" came back staged
  const int commits = k.commits;
  EXPECT_EQ(settled(), before);
  EXPECT_EQ(k.commits, commits + 1);  // one whole replace, no diff
  EXPECT_TRUE(e.committed());

  k.refuse = 2;
  Bundle other = bundle();
  other.apps[0].mode = Mode::kAudit;
  ASSERT_FALSE(e.setPolicy(other).ok());
  EXPECT_EQ(compiler::renderRuleset(e.ruleset()), before);
}

TEST(Enforcer, PromotionIsOneTransactionAndIdempotent) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  ASSERT_TRUE(e.upsertWorkload(workload("a", "192.0.2.1")).ok());
  ASSERT_TRUE(e.upsertWorkload(workload("b", "192.0.2.2")).ok());
  EXPECT_EQ(e.stagedCount(), 2u);
  const int commits = k.commits;
  auto d = e.promoteStaged();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(k.commits, commits + 1);
  EXPECT_EQ(e.stagedCount(), 0u);
  EXPECT_EQ(d->elementChangeCount(), 6u);  // 2 dispatch adds, 2 staged and 2 st_web removes
  auto again = e.promoteStaged();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  EXPECT_EQ(k.commits, commits + 1);

  // A refused promotion leaves the interfaces enforced (the compiler keeps
  // them dispatched) and makes the next commit a whole replace.
  ASSERT_TRUE(e.upsertWorkload(workload("c", "192.0.2.3")).ok());
  k.refuse = 2;
  ASSERT_FALSE(e.promoteStaged().ok());
  EXPECT_FALSE(e.committed());
  EXPECT_EQ(e.stagedCount(), 0u);
  ASSERT_TRUE(e.upsertWorkload(workload("d", "192.0.2.4")).ok());
  EXPECT_TRUE(e.committed());
}

TEST(Enforcer, RefusedDiffFallsBackToAWholeReplace) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  k.refuse = 1;  // the diff only: e.g. someone flushed a set under us
  ASSERT_TRUE(e.upsertWorkload(workload("a", "192.0.2.1")).ok());
  EXPECT_EQ(k.commits, 3);
}

// Kernels before 6.2: deleting a chain in the transaction that drops its last
// reference fails with EBUSY; the enforcer empties it, then deletes it alone.
TEST(Enforcer, ChainDeletionRefusedAsBusyIsRetriedInASecondTransaction) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  Bundle b = bundle();
  App gone;
  gone.name = "gone";
  b.apps.push_back(gone);
  Workload w = workload("g", "192.0.2.9");
  w.app = "gone";
  b.workloads.push_back(w);
  ASSERT_TRUE(e.setPolicy(b).ok());
  k.busyOnChainDelete = true;
  const int before = k.commits;
  auto d = e.setPolicy(bundle());
  ASSERT_TRUE(d.ok()) << d.error().describe();
  EXPECT_EQ(d->deleteChains, (std::vector<std::string>{"app_gone"}));
  // Refused, then the flush (and set deletions), then the chain alone.
  EXPECT_EQ(k.commits - before, 3);
  EXPECT_EQ(k.chainDeletes, 1);
}

TEST(Enforcer, RepairsAMissingTable) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  auto none = e.repairIfMissing();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);  // nothing committed yet: nothing to repair
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  k.dropTable();
  auto repaired = e.repairIfMissing();
  ASSERT_TRUE(repaired.ok());
  EXPECT_TRUE(*repaired);
  EXPECT_EQ(k.commits, 2);
}

// After a failed commit the kernel's state is unknown: the periodic check
// puts the whole table back without waiting for the next change.
TEST(Enforcer, PeriodicCheckReplacesAfterAFailedCommit) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  k.refuse = 2;
  ASSERT_FALSE(e.upsertWorkload(workload("a", "192.0.2.1")).ok());
  EXPECT_FALSE(e.committed());
  const int commits = k.commits;
  auto repaired = e.repairIfMissing();
  ASSERT_TRUE(repaired.ok());
  EXPECT_TRUE(*repaired);
  EXPECT_TRUE(e.committed());
  EXPECT_EQ(k.commits, commits + 1);
  auto again = e.repairIfMissing();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

// What a reader of one piece of the table at a time asks
// (PiecewiseCheck): which pieces a commit of ours changed.
TEST(Enforcer, ChangedSinceNamesThePiecesACommitChanged) {
  testing::FakeKernel k;
  Enforcer e(k, {});
  ASSERT_TRUE(e.setPolicy(bundle()).ok());
  uint64_t before = e.commits();
  auto registered = e.upsertWorkload(workload("a", "192.0.2.1"));
  ASSERT_TRUE(registered.ok());
  ASSERT_TRUE(registered->addChains.empty() && registered->replaceChains.empty() &&
              registered->addSets.empty());
  ASSERT_FALSE(registered->elements.empty());
  EXPECT_FALSE(e.changedSince(before, nullptr)) << "a registration changed the declarations";
  for (const auto& changes : registered->elements)
    EXPECT_TRUE(e.changedSince(before, &changes.set)) << changes.set;
  const std::string untouched = "no_such_set";
  EXPECT_FALSE(e.changedSince(before, &untouched));

  // A new app adds chains and sets: the declarations changed.
  before = e.commits();
  Bundle more = bundle();
  App other;
  other.name = "db";
  more.apps.push_back(other);
  ASSERT_TRUE(e.setPolicy(more).ok());
  EXPECT_TRUE(e.changedSince(before, nullptr));

  // A whole replace changes every piece.
  before = e.commits();
  ASSERT_TRUE(e.replaceAll().ok());
  EXPECT_TRUE(e.changedSince(before, nullptr));
  EXPECT_TRUE(e.changedSince(before, &untouched));
  EXPECT_FALSE(e.changedSince(e.commits(), &untouched));
}

}  // namespace
}  // namespace bulkhead::agent
