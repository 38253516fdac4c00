// The flow feed's accounting of attempts (nft::AttemptCounter) against the
// unit tests' kernel: which rules count, and one monotonic total across
// rewritten chains, replaced tables and failed reads.
#include "bulkhead/nft/counters.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

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

// A reader whose first read is held until released, as a dump that takes
// long: the core samples before a rewrite while the feed's sample reads.
class HeldFirstRead : public CounterReader {
 public:
  explicit HeldFirstRead(CounterReader& kernel) : kernel_(kernel) {}
  Result<RuleCounters> readRuleCounters(const std::string& table) override {
    auto read = kernel_.readRuleCounters(table);
    std::unique_lock lock(mu_);
    if (reads_++ == 0) {
      held_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    return read;
  }
  void awaitHeld() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return held_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  CounterReader& kernel_;
  std::mutex mu_;
  std::condition_variable cv_;
  int reads_ = 0;
  bool held_ = false, released_ = false;
};

TEST(Counters, ConcurrentSamplesAreTakenInTurn) {
  testing::FakeKernel kernel("bh");
  ASSERT_TRUE(Writer(kernel).replace(ruleset()).ok());
  HeldFirstRead reader(kernel);
  AttemptCounter attempts(reader, "bh");
  kernel.count("app_a", 0, 10);
  std::thread first([&] { EXPECT_TRUE(attempts.sample().ok()); });  // reads 10, held
  reader.awaitHeld();
  kernel.count("app_a", 0, 10);
  std::thread second([&] { EXPECT_TRUE(attempts.sample().ok()); });  // 20, if it could read
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  reader.release();
  first.join();
  second.join();
  // 10 applied after 20 would look like a rewritten rule and count 10 again.
  EXPECT_EQ(attempts.total(), 20u);
}

}  // namespace
}  // namespace bulkhead::nft
