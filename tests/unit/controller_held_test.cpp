// What a connected host holds: record ids and the generation each was sent.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "bulkhead/controller/held.h"

namespace bulkhead::controller {
namespace {

std::vector<std::pair<uint64_t, uint64_t>> entries(const HeldWorkloads& h) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& e : h)
    out.emplace_back(e.id, e.gen);
  return out;
}

TEST(HeldWorkloads, SetSaysWhetherTheHostNeedsTheWorkload) {
  HeldWorkloads h;
  EXPECT_TRUE(h.set(7, 1));   // new: send it
  EXPECT_FALSE(h.set(7, 1));  // the same generation: nothing to send
  EXPECT_TRUE(h.set(7, 4));   // changed since
  EXPECT_TRUE(h.holds(7, 4));
  EXPECT_FALSE(h.holds(7, 1));
  EXPECT_FALSE(h.holds(8, 4));
  EXPECT_EQ(h.size(), 1u);
}

TEST(HeldWorkloads, EraseSaysWhetherADeleteIsDue) {
  HeldWorkloads h;
  h.set(3, 1);
  EXPECT_FALSE(h.erase(4));
  EXPECT_TRUE(h.erase(3));
  EXPECT_FALSE(h.erase(3));
  EXPECT_FALSE(h.contains(3));
  EXPECT_EQ(h.size(), 0u);
}

TEST(HeldWorkloads, BuiltWholeInAnyOrderTheLaterOfTwoEntriesWins) {
  HeldWorkloads h({{9, 1}, {2, 5}, {9, 3}, {4, 2}});
  EXPECT_EQ(entries(h), (std::vector<std::pair<uint64_t, uint64_t>>{{2, 5}, {4, 2}, {9, 3}}));
  EXPECT_TRUE(h.holds(9, 3));
  h.clear();
  EXPECT_EQ(h.size(), 0u);
  EXPECT_FALSE(h.contains(2));
}

// Against std::map under random sets and erases: iteration stays in id
// order with each id once, and every answer agrees.
TEST(HeldWorkloads, AgreesWithAMapUnderRandomChanges) {
  std::mt19937_64 rng(11);
  HeldWorkloads h;
  std::map<uint64_t, uint64_t> model;
  for (int i = 0; i < 20000; ++i) {
    const uint64_t id = rng() % 500, gen = 1 + rng() % 3;
    if (rng() % 3 == 0) {
      ASSERT_EQ(h.erase(id), model.erase(id) == 1);
    } else {
      auto it = model.find(id);
      const bool changes = it == model.end() || it->second != gen;
      ASSERT_EQ(h.set(id, gen), changes);
      model[id] = gen;
    }
    ASSERT_EQ(h.holds(id, gen), model.count(id) && model[id] == gen);
  }
  EXPECT_EQ(entries(h), (std::vector<std::pair<uint64_t, uint64_t>>(model.begin(), model.end())));
}

}  // namespace
}  // namespace bulkhead::controller
