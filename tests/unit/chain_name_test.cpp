// ChainName: interned chain names, so that a Verdict and an Element are
// plain bytes.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "bulkhead/compiler/ruleset.h"

namespace bulkhead::compiler {
namespace {

TEST(ChainName, EqualNamesAreOneAndOrderIsByName) {
  const std::string built = std::string("app_") + "billing";
  const ChainName a("app_billing"), b(built), c("app_api");
  EXPECT_EQ(a, b);
  EXPECT_EQ(&a.str(), &b.str());  // one string for both
  EXPECT_NE(a, c);
  // By name, not by where the pool put them.
  EXPECT_LT(c, a);
  EXPECT_GT(a, c);
  EXPECT_EQ(a.str(), "app_billing");
  EXPECT_STREQ(a.c_str(), "app_billing");
  EXPECT_EQ(a.size(), 11u);
}

TEST(ChainName, EmptyIsNoChain) {
  const ChainName none, empty(""), some("x");
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none, empty);
  EXPECT_EQ(none.str(), "");
  EXPECT_LT(none, some);
  EXPECT_EQ(Verdict{}, (Verdict{Verdict::Kind::kAccept, ""}));
}

TEST(ChainName, ElementsCompareByVerdictName) {
  const Key k = KeyBuilder().ifname("vw1").build();
  const Element toB{k, k, {Verdict::Kind::kGoto, "app_b"}};
  const Element toA{k, k, {Verdict::Kind::kGoto, "app_a"}};
  EXPECT_LT(toA, toB);
  EXPECT_EQ(toA, (Element{k, k, {Verdict::Kind::kGoto, std::string("app_a")}}));
}

// Agents compile on one thread while others read; names made on several
// threads at once still come out one per name.
TEST(ChainName, ConcurrentInterningAgrees) {
  std::vector<std::vector<const std::string*>> seen(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < seen.size(); ++t)
    threads.emplace_back([&seen, t] {
      for (int i = 0; i < 2000; ++i)
        seen[t].push_back(&ChainName("app_concurrent_" + std::to_string(i)).str());
    });
  for (auto& th : threads)
    th.join();
  for (size_t t = 1; t < seen.size(); ++t)
    EXPECT_EQ(seen[t], seen[0]);
}

}  // namespace
}  // namespace bulkhead::compiler
