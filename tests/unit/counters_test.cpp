// The flow feed's accounting of attempts (nft::AttemptCounter) against the
// unit tests' kernel: which rules count, and one monotonic total across
// rewritten chains, replaced tables and failed reads.
#include "bulkhead/nft/counters.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "bulkhead/compiler/diff.h"
#include "bulkhead/nft/writer.h"
#include "support/fake_kernel.h"

namespace bulkhead::nft {
namespace {

using compiler::Chain;
using compiler::Rule;
using compiler::Ruleset;
using compiler::Verdict;
namespace ex = compiler::expr;

ex::VerdictStatement verdict(Verdict::Kind kind) {
  return ex::VerdictStatement{Verdict{kind, ""}};
}

// app_a: a counted deny (comment and counter), a counter without comment and
// a comment without counter: only the first is an attempt the feed reports.
Ruleset ruleset(const std::string& defaultComment = "bh:deny:default") {
  Ruleset rs;
  rs.table = "bh";
  rs.chains = {Chain{"app_a",
                     std::nullopt,
                     {Rule{{ex::Counter{}, verdict(Verdict::Kind::kDrop)}, defaultComment},
                      Rule{{ex::Counter{}, verdict(Verdict::Kind::kAccept)}, ""},
                      Rule{{verdict(Verdict::Kind::kAccept)}, "no counter"}}}};
  return rs;
}

TEST(Counters, OnlyRulesWithCommentAndCounterAreRead) {
  testing::FakeKernel kernel("bh");
  ASSERT_TRUE(Writer(kernel).replace(ruleset()).ok());
  kernel.count("app_a", 0, 5);
  kernel.count("app_a", 1, 100);  // counted by the kernel, not an attempt
  auto read = kernel.readRuleCounters("bh");
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ(read->begin()->first.first, "app_a");
  EXPECT_EQ(read->begin()->second, 5u);
}

TEST(Counters, TotalStaysMonotonicAcrossRewritesAndFailedReads) {
  testing::FakeKernel kernel("bh");
  Writer writer(kernel);
  const Ruleset first = ruleset();
  ASSERT_TRUE(writer.replace(first).ok());
  AttemptCounter attempts(kernel, "bh");
  ASSERT_TRUE(attempts.sample().ok());
  EXPECT_EQ(attempts.total(), 0u);

  kernel.count("app_a", 0, 5);
  ASSERT_TRUE(attempts.sample().ok());
  EXPECT_EQ(attempts.total(), 5u);
  kernel.count("app_a", 0, 2);
  ASSERT_TRUE(attempts.sample().ok());
  ASSERT_TRUE(attempts.sample().ok());  // nothing new: nothing added
  EXPECT_EQ(attempts.total(), 7u);

  // The chain is rewritten (a new comment): its rules are new, counting from 0.
  const Ruleset second = ruleset("bh:audit:default");
  ASSERT_TRUE(writer.apply(compiler::diffRulesets(first, second), second).ok());
  kernel.count("app_a", 0, 3);
  ASSERT_TRUE(attempts.sample().ok());
  EXPECT_EQ(attempts.total(), 10u);

  // A read interrupted by commits every time: the total stays, and the next
  // sample catches up.
  kernel.counterError = Error{ErrorCode::kKernel, EINTR, "rule dump interrupted"};
  kernel.count("app_a", 0, 1);
  const Status failed = attempts.sample();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().sysErrno, EINTR);
  EXPECT_EQ(attempts.total(), 10u);
  kernel.counterError.reset();
  ASSERT_TRUE(attempts.sample().ok());
  EXPECT_EQ(attempts.total(), 11u);

  // The whole table replaced: every counter restarts; nothing is lost or
  // counted twice.
  kernel.count("app_a", 0, 4);
  ASSERT_TRUE(attempts.sample().ok());
  ASSERT_TRUE(writer.replace(second).ok());
  kernel.count("app_a", 0, 2);
  ASSERT_TRUE(attempts.sample().ok());
  EXPECT_EQ(attempts.total(), 17u);
}

TEST(Counters, MissingTableHasNoCounters) {
  testing::FakeKernel kernel("bh");
  ASSERT_TRUE(Writer(kernel).replace(ruleset()).ok());
  kernel.count("app_a", 0, 9);
  kernel.dropTable();
  auto read = kernel.readRuleCounters("bh");
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->empty());
}

}  // namespace
}  // namespace bulkhead::nft
