// Golden tests: the nft text `plan` prints in tests/golden/NAME.nft, for the
// policy in tests/golden/NAME.yaml or, when there is none, policies/NAME/. Regenerate after an
// intended change with BULKHEAD_UPDATE_GOLDEN=1 and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/render.h"
#include "bulkhead/policy/loader.h"
#include "support/source_tree.h"

namespace bulkhead::compiler {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> goldenCases() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(BULKHEAD_GOLDEN_DIR))
    if (e.path().extension() == ".nft") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, PlanMatchesGolden) {
  const fs::path dir = BULKHEAD_GOLDEN_DIR;
  auto yaml = dir / (GetParam() + ".yaml");
  if (!fs::exists(yaml)) yaml = fs::path(BULKHEAD_SOURCE_DIR) / "policies" / GetParam();
  const auto golden = dir / (GetParam() + ".nft");
  auto loaded = policy::loadPaths({yaml.string()});
  for (const auto& e : loaded.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(loaded.ok());
  auto rs = compile(loaded.bundle, {});
  ASSERT_TRUE(rs.ok()) << rs.error().describe();
  const std::string text = renderRuleset(*rs);
  if (std::getenv("BULKHEAD_UPDATE_GOLDEN")) {
    std::ofstream(golden) << text;
    GTEST_SKIP() << "updated " << golden;
  }
  ASSERT_TRUE(fs::exists(golden)) << "missing " << golden << " (BULKHEAD_UPDATE_GOLDEN=1)";
  EXPECT_EQ(text, testing::readText(golden));
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenTest, ::testing::ValuesIn(goldenCases()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace bulkhead::compiler
