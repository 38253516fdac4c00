// New Service names in `bulkhead suggest`: many Services can start at the
// same address (apps reaching it on different ports); each takes the first
// free suffix, skipping names the policy already has.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bulkhead/insight/suggest.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::insight {
namespace {

FlowRecord attempt(const std::string& app, const std::string& dst, uint16_t dport) {
  const std::string line =
      "{\"time\":\"2026-11-28T09:00:00.000001Z\",\"host\":\"h\",\"action\":\"audit\",\"app\":\"" +
      app + "\",\"workload\":\"" + app + "-1\",\"src\":\"192.0.2.30\",\"sport\":40000,\"dst\":\"" +
      dst + "\",\"dport\":" + std::to_string(dport) +
      ",\"proto\":\"tcp\",\"reason\":\"default\",\"count\":1}";
  FlowRecord r;
  std::string why;
  EXPECT_TRUE(parseFlowLine(line, &r, &why)) << why;
  return r;
}

TEST(SuggestNamesTest, ServicesStartingAtOneAddressTakeTheFirstFreeSuffixes) {
  auto loaded = policy::loadPaths({std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo"});
  ASSERT_TRUE(loaded.ok());
  policy::Bundle b = loaded.bundle;
  policy::Service taken;  // a name the suggestion must not reuse
  taken.name = "ext-203-0-113-9-3";
  b.services.push_back(taken);
  Suggester s(b, {});
  // Five apps, each on its own port: five port sets, five Services at
  // 203.0.113.9; a sixth app on app1's port shares app1's Service.
  for (int i = 1; i <= 5; ++i)
    s.add(attempt("app" + std::to_string(i), "203.0.113.9", uint16_t(1000 + i)));
  s.add(attempt("app6", "203.0.113.9", 1001));
  const Suggestion out = s.finish();
  EXPECT_EQ(out.summary.newServices,
            (std::vector<std::string>{"ext-203-0-113-9", "ext-203-0-113-9-2", "ext-203-0-113-9-4",
                                      "ext-203-0-113-9-5", "ext-203-0-113-9-6"}))
      << out.yaml;
  // app1 and app6 reach the same (address, port): the same Service.
  const auto app6 = out.yaml.find("name: app6");
  ASSERT_NE(app6, std::string::npos);
  EXPECT_NE(out.yaml.find("- to: [ext-203-0-113-9]", app6), std::string::npos) << out.yaml;
}

}  // namespace
}  // namespace bulkhead::insight
