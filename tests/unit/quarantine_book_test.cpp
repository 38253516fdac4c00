#include "bulkhead/agent/quarantine_book.h"

#include <gtest/gtest.h>

#include "bulkhead/v1/state.pb.h"

namespace bulkhead::agent {
namespace {

constexpr int64_t kNow = 1'800'000'000;

TEST(QuarantineBookTest, ManualLastsUntilReleasedAutomaticExpires) {
  QuarantineBook b;
  auto m = b.start("db-1", {}, kNow);
  EXPECT_EQ(m.reason(), "manual");
  EXPECT_EQ(m.until_unix(), 0);
  auto a = b.start("web-1", {"auto/scan/hosts", 1800}, kNow);
  EXPECT_EQ(a.until_unix(), kNow + 1800);
  EXPECT_TRUE(b.due(kNow + 1799).empty());
  EXPECT_EQ(b.due(kNow + 1800), (std::vector<std::string>{"web-1"}));
  ASSERT_EQ(b.active().size(), 2u);
  EXPECT_EQ(b.active()[0].workload(), "db-1");
}

TEST(QuarantineBookTest, CaughtAgainWithinADayDoubles) {
  QuarantineBook b;
  b.start("web-1", {"auto/scan/hosts", 1800}, kNow);
  b.end("web-1", kNow + 1800);
  EXPECT_TRUE(b.active().empty());
  auto again = b.start("web-1", {"auto/scan/ports", 1800}, kNow + 3600);
  EXPECT_EQ(again.seconds(), 3600u);
  EXPECT_EQ(again.until_unix(), kNow + 3600 + 3600);
  b.end("web-1", kNow + 7200);
  EXPECT_EQ(b.start("web-1", {"auto/scan/ports", 1800}, kNow + 8000).seconds(), 7200u);
  b.end("web-1", kNow + 16000);
  // More than a day after the last one: back to the base length.
  EXPECT_EQ(b.start("web-1", {"auto/scan/ports", 1800}, kNow + 8000 + 86400).seconds(), 1800u);
}

TEST(QuarantineBookTest, SavedAndLoadedWithExpiry) {
  QuarantineBook b;
  b.start("web-1", {"auto/scan/hosts", 1800}, kNow);
  b.start("db-1", {}, kNow);
  v1::AgentState state;
  b.saveTo(state.mutable_quarantines());
  QuarantineBook c;
  c.load(state.quarantines(), {"web-1", "db-1", "legacy"});
  const auto active = c.active();
  ASSERT_EQ(active.size(), 3u);
  EXPECT_EQ(active[1].workload(), "legacy");
  EXPECT_EQ(active[1].reason(), "manual");
  EXPECT_EQ(active[2].until_unix(), kNow + 1800);
  EXPECT_EQ(c.due(kNow + 1800), (std::vector<std::string>{"web-1"}));
  // A record whose workload is no longer quarantined is inactive.
  QuarantineBook d;
  d.load(state.quarantines(), {"db-1"});
  EXPECT_EQ(d.active().size(), 1u);
  EXPECT_TRUE(d.due(kNow + 99999).empty());
}

}  // namespace
}  // namespace bulkhead::agent
