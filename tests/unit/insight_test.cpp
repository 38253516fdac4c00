// suggest and graph: the insight library and the CLI commands, on the demo
// policy and generated flow events.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "bulkhead/cli/commands.h"
#include "bulkhead/insight/graph.h"
#include "bulkhead/insight/suggest.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::insight {
namespace {

namespace fs = std::filesystem;
const std::string kDemo = std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo";

std::string event(const std::string& app, const std::string& src, const std::string& dst, int dport,
                  const std::string& proto = "tcp", int count = 1,
                  const std::string& time = "2026-11-28T09:00:00.000001Z",
                  const std::string& action = "audit") {
  return "{\"time\":\"" + time + "\",\"host\":\"h\",\"action\":\"" + action + "\",\"app\":\"" +
         app + "\",\"workload\":\"" + app + "-1\",\"src\":\"" + src +
         "\",\"sport\":40000,\"dst\":\"" + dst + "\",\"dport\":" + std::to_string(dport) +
         ",\"proto\":\"" + proto + "\",\"reason\":\"default\",\"count\":" + std::to_string(count) +
         "}";
}

policy::Bundle demo() {
  auto r = policy::loadPaths({kDemo});
  EXPECT_TRUE(r.ok());
  return r.bundle;
}

Suggestion suggestFrom(const policy::Bundle& b, const std::vector<std::string>& lines,
                       SuggestOptions o = {}) {
  Suggester s(b, o);
  for (const auto& l : lines) {
    FlowRecord r;
    std::string why;
    EXPECT_TRUE(parseFlowLine(l, &r, &why)) << why << ": " << l;
    s.add(r);
  }
  return s.finish();
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("bh-insight-" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void writeFile(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// The demo's payments app reaching a known Service, another app's workload
// and an unknown address.
const std::vector<std::string> kPayments = {
    event("payments", "192.0.2.30", "198.51.100.10", 5432, "tcp", 3),
    event("payments", "192.0.2.30", "192.0.2.10", 9000, "tcp", 1, "2026-11-28T09:00:01.000001Z"),
    event("payments", "192.0.2.30", "203.0.113.7", 443, "tcp", 2, "2026-11-28T09:00:02.000001Z"),
};

TEST(SuggestTest, PrefersServiceThenAppThenANewHostService) {
  const auto b = demo();
  const auto s = suggestFrom(b, kPayments);
  EXPECT_NE(s.yaml.find("- to: [postgres-prod]\n      ports: [tcp/5432]"), std::string::npos)
      << s.yaml;
  EXPECT_NE(s.yaml.find("- to: [billing]\n      ports: [tcp/9000]"), std::string::npos);
  EXPECT_NE(s.yaml.find("- to: [ext-203-0-113-7]"), std::string::npos);
  EXPECT_NE(s.yaml.find("cidrs: [\"203.0.113.7/32\"]\n      ports: [tcp/443]"), std::string::npos);
  EXPECT_NE(s.yaml.find("# suggested: 3 attempts from 1 source, first "
                        "2026-11-28T09:00:00.000001Z, last 2026-11-28T09:00:00.000001Z"),
            std::string::npos);
  EXPECT_NE(s.yaml.find("    - to: [dns]\n"), std::string::npos) << "existing egress kept";
  EXPECT_EQ(s.yaml.find("0.0.0.0/0"), std::string::npos);
  EXPECT_EQ(s.summary.covered, 3u);
  EXPECT_EQ(s.summary.left, 0u);
  EXPECT_TRUE(checkSuggestion(b, s.yaml).empty());
}

TEST(SuggestTest, ReplacingTheAppDocumentValidatesWithTheRealLoader) {
  const auto b = demo();
  const auto s = suggestFrom(b, kPayments);
  TempDir dir;
  fs::copy(kDemo, dir.path(), fs::copy_options::recursive);
  // apps.yaml without the payments document, plus the suggestion.
  std::ifstream in(dir.path() / "apps.yaml");
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str(), kept;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t next = text.find("\n---\n", pos);
    std::string doc = text.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    if (doc.find("name: payments\n") == std::string::npos) kept += doc + "\n---\n";
    if (next == std::string::npos) break;
    pos = next + 5;
  }
  writeFile(dir.path() / "apps.yaml", kept);
  writeFile(dir.path() / "suggested.yaml", s.yaml);
  auto r = policy::loadPaths({dir.path().string()});
  for (const auto& e : r.errors)
    ADD_FAILURE() << e.toString();
  ASSERT_TRUE(r.ok());
  const auto* app = r.bundle.findApp("payments");
  ASSERT_TRUE(app);
  EXPECT_EQ(app->egress.size(), 4u);
  ASSERT_TRUE(r.bundle.findService("ext-203-0-113-7"));
}

TEST(SuggestTest, SameInputSameBytesWhateverTheOrder) {
  const auto b = demo();
  std::vector<std::string> lines;
  for (int i = 0; i < 200; ++i)
    lines.push_back(event("payments", "192.0.2." + std::to_string(30 + i % 3),
                          "203.0.113." + std::to_string(i % 50), 443 + i % 4, "tcp", 1,
                          "2026-11-28T09:00:" + std::to_string(10 + i % 40) + ".000000Z"));
  const auto a = suggestFrom(b, lines);
  std::mt19937 rng(7);
  std::shuffle(lines.begin(), lines.end(), rng);
  const auto c = suggestFrom(b, lines);
  EXPECT_EQ(a.yaml, c.yaml);
  EXPECT_EQ(a.summary.text(), c.summary.text());
}

TEST(SuggestTest, AggregatesOnlyWhatWasSeenWhole) {
  std::set<policy::IpAddr> hosts;
  for (const char* a : {"203.0.113.6", "203.0.113.7", "203.0.113.8", "203.0.113.10"})
    hosts.insert(*policy::IpAddr::parse(a));
  std::vector<std::string> got;
  for (const auto& c : aggregateHosts(hosts))
    got.push_back(c.toString());
  EXPECT_EQ(got, (std::vector<std::string>{"203.0.113.6/31", "203.0.113.8/32", "203.0.113.10/32"}));
  for (int i = 0; i < 4; ++i)
    hosts.insert(*policy::IpAddr::parse("203.0.113." + std::to_string(i)));
  hosts.insert(*policy::IpAddr::parse("203.0.113.4"));
  hosts.insert(*policy::IpAddr::parse("203.0.113.5"));
  got.clear();
  for (const auto& c : aggregateHosts(hosts))
    got.push_back(c.toString());
  EXPECT_EQ(got, (std::vector<std::string>{"203.0.113.0/29", "203.0.113.8/32", "203.0.113.10/32"}));
}

TEST(SuggestTest, OverMaxRulesTheRestIsCommentedOut) {
  const auto b = demo();
  std::vector<std::string> lines;
  for (int i = 0; i < 25; ++i)  // one port per address: no two share a Service
    lines.push_back(event("payments", "192.0.2.30", "203.0.113." + std::to_string(2 * i), 1000 + i,
                          "tcp", 100 - i));
  SuggestOptions o;
  o.maxRules = 20;
  const auto s = suggestFrom(b, lines, o);
  EXPECT_EQ(s.summary.rulesPerApp.at("payments"), std::make_pair(size_t(20), size_t(5)));
  EXPECT_EQ(s.summary.covered, 20u);
  EXPECT_EQ(s.summary.left, 5u);
  size_t commented = 0;
  for (size_t p = 0; (p = s.yaml.find("# - toCIDRs: [\"203.0.113.", p)) != std::string::npos; ++p)
    ++commented;
  EXPECT_EQ(commented, 5u);
  // The five with the fewest attempts are the ones left out.
  EXPECT_NE(s.yaml.find("# - toCIDRs: [\"203.0.113.48/32\"]"), std::string::npos);
  EXPECT_TRUE(checkSuggestion(b, s.yaml).empty());
}

TEST(SuggestTest, UnknownAppAndNoPolicyGiveANewAppDocument) {
  const auto s = suggestFrom({}, {event("batch", "192.0.2.40", "198.51.100.9", 53, "udp"),
                                  event("batch", "192.0.2.40", "2001:db8::9", 0, "icmpv6"),
                                  event("batch", "192.0.2.40", "198.51.100.9", 7, "sctp")});
  EXPECT_NE(s.yaml.find("# App batch has no document yet"), std::string::npos);
  EXPECT_NE(s.yaml.find("ports: [udp/53]"), std::string::npos);
  EXPECT_NE(s.yaml.find("\"2001:db8::9/128\"]\n      ports: [icmpv6]"), std::string::npos)
      << s.yaml;
  EXPECT_NE(s.yaml.find("# not expressible in a policy (protocol): 198.51.100.9/sctp"),
            std::string::npos);
  EXPECT_EQ(s.summary.unexpressibleFlows, 1u);
  EXPECT_TRUE(checkSuggestion({}, s.yaml).empty());
}

TEST(FlowLogTest, MalformedLinesAreSkippedAndCounted) {
  std::stringstream in;
  in << kPayments[0] << "\n"
     << "not json\n"
     << "[1,2]\n"
     << "{\"action\":\"deny\"}\n"
     << "{\"action\":\"deny\",\"dst\":\"999.1.1.1\"}\n"
     << "{\"action\":\"deny\",\"dst\":\"192.0.2.1\",\"dport\":70000}\n"
     << "{\"action\":\"deny\",\"dst\":\"192.0.2.1\",\"dport\":\"22\"}\n"
     << "\n"
     << "{\"action\":\"deny\",\"dst\":\"192.0.2.1\",\"future\":{\"a\":[1]},\"dport\":22}\n"
     << std::string(100000, 'x') << "\n"
     << kPayments[1];  // no final newline
  ReadStats st;
  std::vector<FlowRecord> got;
  readFlowLines(
      in, "f", [&](const FlowRecord& r) { got.push_back(r); }, st);
  EXPECT_EQ(st.lines, 10u);
  EXPECT_EQ(st.events, 3u);
  EXPECT_EQ(st.skipped, 7u);
  ASSERT_EQ(st.firstErrors.size(), 5u);
  EXPECT_EQ(st.firstErrors[0], "f:2: not JSON");
  EXPECT_EQ(st.firstErrors[1], "f:3: not a JSON object");
  EXPECT_EQ(st.firstErrors[2], "f:4: no \"dst\" string");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].dport, 22);  // unknown keys are ignored
}

long peakRssKiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

TEST(FlowLogTest, AHundredMegabyteFileStreamsInBoundedMemory) {
  TempDir dir;
  const fs::path p = dir.path() / "big.jsonl";
  {
    std::ofstream f(p, std::ios::binary);
    // A 60 MB line with no newline in it, then 40 MB of events.
    const std::string junk(1 << 20, 'z');
    for (int i = 0; i < 60; ++i)
      f << junk;
    f << "\n";
    size_t written = 60u << 20;
    for (int i = 0; written < (100u << 20); ++i) {
      const std::string l =
          event("payments", "192.0.2.30", "203.0.113." + std::to_string(i % 200), 443 + i % 3) +
          "\n";
      f << l;
      written += l.size();
    }
  }
  ASSERT_GE(fs::file_size(p), 100u << 20);
  const long before = peakRssKiB();
  std::ostringstream out, err;
  const int rc = cli::run({"suggest", p.string(), "--policies", kDemo}, out, err);
  EXPECT_EQ(rc, cli::kExitOk) << err.str();
  EXPECT_NE(err.str().find("skipped 1 of"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("big.jsonl:1: line longer than 65536 bytes"), std::string::npos);
  EXPECT_NE(out.str().find("kind: Service"), std::string::npos);
  // Peak memory grew by far less than the file (or its long line).
  EXPECT_LT(peakRssKiB() - before, 48 * 1024);
}

TEST(SuggestCliTest, ClearErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(cli::run({"suggest"}, out, err), cli::kExitBadInput);
  EXPECT_NE(err.str().find("name flow files"), std::string::npos);
  err.str("");
  EXPECT_EQ(cli::run({"suggest", "/nonexistent/flows.jsonl"}, out, err), cli::kExitBadInput);
  EXPECT_NE(err.str().find("cannot read /nonexistent/flows.jsonl"), std::string::npos);
  TempDir dir;
  writeFile(dir.path() / "junk.jsonl", "hello\n{}\n");
  err.str("");
  EXPECT_EQ(cli::run({"suggest", (dir.path() / "junk.jsonl").string()}, out, err),
            cli::kExitBadInput);
  EXPECT_NE(err.str().find("no flow events in the input"), std::string::npos) << err.str();
  err.str("");
  EXPECT_EQ(cli::run({"suggest", "x", "--max-rules", "lots"}, out, err), cli::kExitBadInput);
}

TEST(SuggestCliTest, WritesTheFileAndTheSummary) {
  TempDir dir;
  std::string text;
  for (const auto& l : kPayments)
    text += l + "\n";
  writeFile(dir.path() / "f.jsonl", text);
  const std::string outFile = (dir.path() / "s.yaml").string();
  std::ostringstream out, err;
  ASSERT_EQ(cli::run({"suggest", (dir.path() / "f.jsonl").string(), "--policies", kDemo, "-o",
                      outFile, "--app", "payments"},
                     out, err),
            cli::kExitOk)
      << err.str();
  EXPECT_TRUE(out.str().empty());
  EXPECT_NE(err.str().find("bulkhead suggest: 3 flows, 3 covered, 0 left"), std::string::npos)
      << err.str();
  EXPECT_NE(err.str().find("app payments: 3 rules"), std::string::npos);
  std::ifstream f(outFile);
  std::stringstream s;
  s << f.rdbuf();
  EXPECT_EQ(s.str(), suggestFrom(demo(), kPayments).yaml);
}

TEST(GraphTest, DemoPolicyEdges) {
  const auto b = demo();
  GraphBuilder g(b);
  FlowRecord r;
  std::string why;
  ASSERT_TRUE(parseFlowLine(
      event("devtool", "192.0.2.20", "198.51.100.10", 5432, "tcp", 3, "t", "deny"), &r, &why));
  g.addFlow(r);
  ASSERT_TRUE(parseFlowLine(
      event("billing", "192.0.2.10", "198.51.100.10", 22, "tcp", 2, "t", "deny"), &r, &why));
  g.addFlow(r);
  const std::string dot = toDot(g.build());
  EXPECT_NE(dot.find("\"app:billing\" -> \"svc:postgres-prod\" [color=\"#2e7d32\"]"),
            std::string::npos)
      << dot;
  EXPECT_NE(dot.find("\"app:devtool\" -> \"svc:postgres-prod\" [style=dashed"), std::string::npos);
  EXPECT_NE(dot.find("\"app:devtool\" -> \"svc:postgres-prod\" [color=red, fontcolor=red, "
                     "penwidth=2, label=\"3 denied\"]"),
            std::string::npos);
  EXPECT_NE(dot.find("\"net:198.51.100.10\" [label=\"198.51.100.10\", shape=note"),
            std::string::npos);
  const std::string mermaid = toMermaid(g.build());
  EXPECT_EQ(mermaid.rfind("flowchart LR\n", 0), 0u);
  EXPECT_NE(mermaid.find("app_devtool -.-x|\"baseline\"| svc_postgres_prod"), std::string::npos)
      << mermaid;
  EXPECT_NE(mermaid.find("app_billing -->|\"2 denied\"| net1"), std::string::npos);
  EXPECT_NE(mermaid.find("stroke:red"), std::string::npos);
}

TEST(GraphTest, EveryFormatRendersAndTheSvgIsXml) {
  TempDir dir;
  for (const std::string format : {"dot", "mermaid", "svg"}) {
    const std::string file = (dir.path() / ("demo." + format)).string();
    std::ostringstream out, err;
    ASSERT_EQ(cli::run({"graph", kDemo, "--format", format, "-o", file}, out, err), cli::kExitOk)
        << format << ": " << err.str();
    ASSERT_GT(fs::file_size(file), 100u) << format;
  }
  const std::string svg = (dir.path() / "demo.svg").string();
  // libxml2's parser (xmllint) must accept it, and it must be an SVG document.
  EXPECT_EQ(std::system(("xmllint --noout " + svg).c_str()), 0);
  std::ifstream f(svg);
  std::stringstream s;
  s << f.rdbuf();
  EXPECT_NE(s.str().find("<svg"), std::string::npos);
  EXPECT_NE(s.str().find("postgres&#45;prod"), std::string::npos);
  std::ostringstream out, err;
  EXPECT_EQ(cli::run({"graph", kDemo, "--format", "png"}, out, err), cli::kExitBadInput);
  EXPECT_EQ(cli::run({"graph"}, out, err), cli::kExitBadInput);
  writeFile(dir.path() / "bad.jsonl", "garbage\n");
  err.str("");
  EXPECT_EQ(cli::run({"graph", kDemo, "--flows", (dir.path() / "bad.jsonl").string()}, out, err),
            cli::kExitOk);
  EXPECT_NE(err.str().find("skipped 1 of 1 lines"), std::string::npos);
}

}  // namespace
}  // namespace bulkhead::insight
