// YAML alias expansion is bounded per bundle: many documents (or files),
// each expanding to less than the per-document limit, cannot add up to more
// than limits::kMaxAliasNodesPerBundle.
#include <gtest/gtest.h>

#include <string>

#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::policy {
namespace {

// One App whose egress rule is repeated by `aliases` aliases; each alias
// stands for a map, a key, a sequence and 4000 names (4003 nodes).
std::string aliasDocument(int index, int aliases) {
  std::string doc = "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: a" +
                    std::to_string(index) + "}\nspec:\n  egress:\n    - &r {to: [";
  for (int i = 0; i < 4000; ++i)
    doc += i ? ",db" : "db";
  doc += "]}\n";
  for (int i = 0; i < aliases; ++i)
    doc += "    - *r\n";
  return doc;
}

constexpr const char* kService =
    "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: db}\n"
    "spec: {endpoints: [{cidrs: [198.51.100.10/32], ports: [tcp/5432]}]}\n";

size_t countAliasErrors(const LoadResult& r, std::string* where) {
  size_t n = 0;
  for (const auto& e : r.errors)
    if (e.message.find("aliases expand to more than") != std::string::npos) {
      ++n;
      *where = e.loc.file + ":" + std::to_string(e.loc.line);
    }
  return n;
}

// 200 aliases x 4003 nodes: about 0.8 of the bundle's budget.
constexpr int kAliases = 200;
static_assert(kAliases * 4003 < limits::kMaxAliasNodesPerBundle);
static_assert(2 * kAliases * 4003 > limits::kMaxAliasNodesPerBundle);

TEST(PolicyAliasBudget, OneDocumentUnderTheBudgetLoads) {
  std::string where;
  auto r = loadFiles({{"a.yaml", std::string(kService) + "---\n" + aliasDocument(0, kAliases)}});
  EXPECT_EQ(countAliasErrors(r, &where), 0u) << where;
}

TEST(PolicyAliasBudget, DocumentsOfOneFileAddUp) {
  std::string where;
  const std::string text = std::string(kService) + "---\n" + aliasDocument(0, kAliases) + "---\n" +
                           aliasDocument(1, kAliases);
  auto r = loadFiles({{"a.yaml", text}});
  ASSERT_EQ(countAliasErrors(r, &where), 1u);
  // The second App document starts after the Service (4 lines) and the first
  // App (6 + kAliases lines); its aliases are the ones over the budget.
  const int secondStart = 4 + 1 + 6 + kAliases + 1;
  EXPECT_GT(std::stoi(where.substr(where.find(':') + 1)), secondStart) << where;
  EXPECT_EQ(where.substr(0, where.find(':')), "a.yaml");
}

TEST(PolicyAliasBudget, FilesOfOneBundleAddUp) {
  std::string where;
  auto r = loadFiles({{"svc.yaml", kService},
                      {"a.yaml", aliasDocument(0, kAliases)},
                      {"b.yaml", aliasDocument(1, kAliases)}});
  ASSERT_EQ(countAliasErrors(r, &where), 1u);
  EXPECT_EQ(where.substr(0, where.find(':')), "b.yaml");
  // Each file alone is fine: the budget belongs to one bundle, not the process.
  EXPECT_EQ(countAliasErrors(loadFiles({{"b.yaml", aliasDocument(1, kAliases)}}), &where), 0u);
}

}  // namespace
}  // namespace bulkhead::policy
