// parseFlowLine reads the agent's flat lines directly and hands anything
// else to a general JSON parser. Both paths must agree with what a plain
// JSON document says, for the agent's own lines and for lines an attacker
// or a broken pipe could write: checked against a reference built on
// nlohmann's DOM, over hand-picked lines and many mutations of a real one.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "bulkhead/insight/flow_log.h"

namespace bulkhead::insight {
namespace {

// The contract, from a parsed document: ok, and the fields the reader fills.
std::string reference(std::string_view line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::exception&) {
    return "error";
  }
  if (!j.is_object()) return "error";
  auto str = [&](const char* k) -> std::optional<std::string> {
    if (!j.contains(k)) return std::string();
    if (!j[k].is_string()) return std::nullopt;
    return j[k].get<std::string>();
  };
  auto num = [&](const char* k, uint64_t dflt) -> std::optional<uint64_t> {
    if (!j.contains(k)) return dflt;
    if (!j[k].is_number_unsigned() && !(j[k].is_number_integer() && j[k].get<int64_t>() >= 0))
      return std::nullopt;
    return j[k].get<uint64_t>();
  };
  auto action = str("action"), dst = str("dst");
  if (!action || !j.contains("action")) return "error";
  if (!dst || !j.contains("dst")) return "error";
  auto ip = policy::IpAddr::parse(*dst);
  if (!ip) return "error";
  auto dport = num("dport", 0), count = num("count", 1);
  if (!dport || *dport > 65535 || !count) return "error";
  std::string out =
      *action + "|" + ip->toString() + "|" + std::to_string(*dport) + "|" + std::to_string(*count);
  for (const char* k : {"app", "workload", "proto", "reason", "time"})
    out += "|" + str(k).value_or("");
  auto src = str("src");
  auto s = src ? policy::IpAddr::parse(*src) : std::nullopt;
  return out + "|" + (s ? s->toString() : "-");
}

std::string parsed(std::string_view line) {
  FlowRecord r;
  std::string why;
  if (!parseFlowLine(line, &r, &why)) return "error";
  return r.action + "|" + r.dst.toString() + "|" + std::to_string(r.dport) + "|" +
         std::to_string(r.count) + "|" + r.app + "|" + r.workload + "|" + r.proto + "|" + r.reason +
         "|" + r.time + "|" + (r.hasSrc ? r.src.toString() : "-");
}

const std::string kLine =
    R"({"time":"2026-11-28T09:00:01.000123Z","host":"h","action":"audit","app":"web",)"
    R"("workload":"web-1","src":"192.0.2.5","sport":40000,"dst":"198.51.100.7",)"
    R"("dport":443,"proto":"tcp","reason":"default","count":3})";

TEST(FlowLineReaderTest, AgreesWithAJsonDocumentOnChosenLines) {
  const std::vector<std::string> lines = {
      kLine,
      R"({"action":"deny","dst":"2001:db8::1"})",
      R"(  {"action" : "deny" , "dst" : "192.0.2.1" , "dport" : 0 }  )",
      R"({"action":"deny","dst":"192.0.2.1","future":{"k":[1,2,{"x":null}],"y":true}})",
      R"({"action":"deny","dst":"192.0.2.1","dport":{"a":1}})",
      R"({"action":"deny","dst":"192.0.2.1","dport":-1})",
      R"({"action":"deny","dst":"192.0.2.1","dport":1.5})",
      R"({"action":"deny","dst":"192.0.2.1","dport":1e2})",
      R"({"action":"deny","dst":"192.0.2.1","dport":65536})",
      R"({"action":"deny","dst":"192.0.2.1","dport":0443})",
      R"({"action":"deny","dst":"192.0.2.1","count":18446744073709551615})",
      R"({"action":"deny","dst":"192.0.2.1","count":18446744073709551616})",
      R"({"action":"deny","dst":"192.0.2.1","count":99999999999999999999})",
      R"({"action":"deny","dst":"192.0.2.1","app":"w\u0065b"})",
      R"({"action":"deny","dst":"192.0.2.1","app":"w\"eb"})",
      "{\"action\":\"deny\",\"dst\":\"192.0.2.1\",\"app\":\"caf\xc3\xa9\"}",
      "{\"action\":\"deny\",\"dst\":\"192.0.2.1\",\"app\":\"bad\xff\"}",
      "{\"action\":\"deny\",\"dst\":\"192.0.2.1\",\"app\":\"tab\there\"}",
      R"({"action":"deny","dst":"192.0.2.1","app":null})",
      R"({"action":"deny","dst":"192.0.2.1","app":true})",
      R"({"action":"deny","dst":"192.0.2.1","src":"not an address"})",
      R"({"action":"deny","dst":"192.0.2.1","action":"audit"})",
      R"({"action":"deny","dst":"192.0.2.1","dport":80,"dport":"80"})",
      R"({"action":"deny","dst":"192.0.2.1",})",
      R"({"action":"deny","dst":"192.0.2.1"} x)",
      R"({"action":"deny","dst":"192.0.2.1"}{})",
      R"({"action":"deny" "dst":"192.0.2.1"})",
      R"({"action":"deny","dst":"192.0.2.1")",
      R"({"action":"deny","dst":"192.0.2.1","x":[1,2,])",
      R"({"action":"deny","dst":"192.0.2.1","x":tru})",
      R"({"action":"deny","dst":"192.0.2.1","x":[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]})",
      R"(["action","deny"])",
      R"("just a string")",
      R"({})",
      R"({"dst":"192.0.2.1"})",
      R"({"action":5,"dst":"192.0.2.1"})",
      R"({"action":"deny","dst":"300.0.0.1"})",
      "{\"action\":\"deny\",\"dst\":\"192.0.2.1\"}\r",
  };
  for (const auto& line : lines)
    EXPECT_EQ(parsed(line), reference(line)) << line;
}

TEST(FlowLineReaderTest, AgreesWithAJsonDocumentOnMutatedLines) {
  // Every byte position replaced, dropped or doubled, with characters that
  // matter to JSON: the two paths must never disagree with the document.
  const std::string alphabet = "{}[]\":,0123456789-.eE \\ntfu\x01\x80";
  std::mt19937 rng(15);
  for (int i = 0; i < 20000; ++i) {
    std::string line = kLine;
    const int edits = 1 + int(rng() % 3);
    for (int k = 0; k < edits && !line.empty(); ++k) {
      const size_t at = rng() % line.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          line[at] = c;
          break;
        case 1:
          line.erase(at, 1);
          break;
        default:
          line.insert(at, 1, c);
      }
    }
    ASSERT_EQ(parsed(line), reference(line)) << line;
  }
}

}  // namespace
}  // namespace bulkhead::insight
