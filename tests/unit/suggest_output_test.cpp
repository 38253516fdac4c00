// `bulkhead suggest`'s bytes for a generated input that reaches every path
// (Services, Apps, new Services with aggregated prefixes, IPv6, several
// sources, times in and out of the agent's form, protocols a policy cannot
// name, ignored and unattributed events, rules over --max-rules): the YAML
// and the summary must stay the same as the reader and the aggregation get
// faster. Regenerate after an intended change with BULKHEAD_UPDATE_GOLDEN=1
// and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "bulkhead/insight/suggest.h"
#include "bulkhead/policy/loader.h"
#include "support/source_tree.h"

namespace bulkhead::insight {
namespace {

namespace fs = std::filesystem;

std::string pick(std::mt19937& rng, const std::vector<std::string>& from) {
  return from[rng() % from.size()];
}

std::string destination(std::mt19937& rng) {
  switch (rng() % 6) {
    case 0:
      return pick(rng, {"198.51.100.10", "198.51.100.53", "2001:db8:10::10", "192.0.2.10",
                        "192.0.2.20", "192.0.2.31", "2001:db8:2::10"});
    case 1:
      return "203.0.113." + std::to_string(rng() % 64);  // whole prefixes get seen
    case 2:
      return "2001:db8:77::" + std::to_string(rng() % 8);
    default: {
      const unsigned net = 101 + rng() % 2;  // (one draw per statement: a fixed order)
      return "198.51." + std::to_string(net) + "." + std::to_string(rng() % 150);
    }
  }
}

std::string time(std::mt19937& rng, int i) {
  char buf[64];
  switch (rng() % 10) {
    case 0:
      return "";
    case 1:
      std::snprintf(buf, sizeof buf, "2026-11-28T10:%02d:%02dZ", i / 60 % 60, i % 60);
      return buf;
    default:
      std::snprintf(buf, sizeof buf, "2026-11-28T09:%02d:%02d.%06dZ", i / 60 % 60, i % 60,
                    int(rng() % 1000000));
      return buf;
  }
}

std::string eventLine(std::mt19937& rng, int i) {
  const std::string app = pick(rng, {"billing", "payments", "devtool", "app0", "app1", "app2",
                                     "app3", "app4", "", "Bad_Name"});
  const std::string action = pick(rng, {"audit", "audit", "audit", "deny", "allow"});
  const std::string proto = pick(rng, {"tcp", "tcp", "tcp", "udp", "icmp", "sctp"});
  const int ports[] = {22, 53, 443, 5432, 8443, 9000};
  std::string line = "{";
  if (const std::string t = time(rng, i); !t.empty()) line += "\"time\":\"" + t + "\",";
  line += "\"action\":\"" + action + "\",\"app\":\"" + app + "\",";
  if (rng() % 8) {
    const bool v4 = rng() % 10;
    const std::string src = v4 ? "192.0.2." + std::to_string(30 + rng() % 12) : "2001:db8:2::10";
    line += "\"src\":\"" + src + "\",";
  }
  const std::string dst = destination(rng);
  const int port = ports[rng() % 6];
  const unsigned count = 1 + rng() % 4;
  line += "\"dst\":\"" + dst + "\",\"dport\":" + std::to_string(port) + ",\"proto\":\"" + proto +
          "\",\"count\":" + std::to_string(count);
  if (i % 7 == 0) line += ",\"future\":{\"k\":[1,\"x\",{\"y\":null}]}";
  return line + "}\n";
}

std::string suggestText(const policy::Bundle& bundle, const std::string& lines, size_t maxRules) {
  Suggester s(bundle, {.app = "", .maxRules = maxRules});
  ReadStats stats;
  std::istringstream in(lines);
  readFlowLines(
      in, "generated", [&](const FlowRecord& r) { s.add(r); }, stats);
  const Suggestion out = s.finish();
  EXPECT_TRUE(checkSuggestion(bundle, out.yaml).empty());
  return "# maxRules " + std::to_string(maxRules) + ", " + std::to_string(stats.events) +
         " events\n" + out.summary.text() + out.yaml;
}

TEST(SuggestOutputTest, GeneratedInputGivesTheGoldenBytes) {
  auto loaded = policy::loadPaths({std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo"});
  ASSERT_TRUE(loaded.ok());
  std::mt19937 rng(15);
  std::string lines;
  for (int i = 0; i < 4000; ++i)
    lines += eventLine(rng, i);
  // Every address of a /29 and of a /126 on one port: aggregated prefixes.
  for (int i = 0; i < 8; ++i) {
    for (const std::string& dst :
         {"203.0.113." + std::to_string(128 + i), "2001:db8:99::" + std::to_string(i % 4)})
      lines += "{\"time\":\"2026-11-28T09:00:0" + std::to_string(i) +
               ".000000Z\",\"action\":\"deny\",\"app\":\"app9\",\"dst\":\"" + dst +
               "\",\"dport\":443,\"proto\":\"tcp\"}\n";
  }
  const std::string text =
      suggestText(loaded.bundle, lines, 20) + suggestText(loaded.bundle, lines, 3);
  const fs::path golden = fs::path(BULKHEAD_GOLDEN_DIR) / "suggest" / "generated.txt";
  if (std::getenv("BULKHEAD_UPDATE_GOLDEN")) {
    fs::create_directories(golden.parent_path());
    std::ofstream(golden) << text;
    GTEST_SKIP() << "updated " << golden;
  }
  ASSERT_TRUE(fs::exists(golden)) << "missing " << golden << " (BULKHEAD_UPDATE_GOLDEN=1)";
  EXPECT_EQ(text, testing::readText(golden));
}

}  // namespace
}  // namespace bulkhead::insight
