// The agent's config file against input of every YAML shape: refused with
// file:line:col, never thrown; camelCase keys; --tls-allowed-names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bulkhead/agent/config.h"
#include "bulkhead/common/escape.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

class AgentConfigInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = fs::temp_directory_path() / ("bh-agent-input-" + std::to_string(getpid()) + ".yaml");
  }
  void TearDown() override { fs::remove(file_); }
  Result<AgentConfig> load(const std::string& text) {
    std::ofstream(file_) << text;
    return parseAgentArgs({"--config", file_.string()});
  }
  fs::path file_;
};

struct Shape {
  const char* text;
  const char* where;  // "line:col" expected in the message
};

TEST_F(AgentConfigInputTest, AnyShapeIsRefusedWithItsPosition) {
  const Shape shapes[] = {
      {"? [a, b]\n: 1\n", ":1:3:"},                 // a sequence as key
      {"? {a: 1}\n: 1\n", ":1:3:"},                 // a map as key
      {"table: x\n? [a]\n: [b]\n", ":2:3:"},        // later key
      {"listen:\n  - {a: 1}\n  - [b]\n", ":2:5:"},  // maps in a list
      {"listen: [[unix:///a]]\n", ":1:10:"},        // nested list
      {"syslog: {a: b}\n", ":1:9:"},                // a map as value
      {"table:\n", ":1:1:"},                        // null
      {"table: ~\n", ":1:1:"},                      // explicit null
      {"a: &x [1, 2]\nlisten: *x\n", ":1:1:"},      // unknown key first
      {"listen: &x [x]\ntable: *x\n", ":1:13:"},    // alias to a list: bad value
      {"- table\n- x\n", ":1:1:"},                  // not a map
      {"table: [unclosed\n", ":2:1:"},              // malformed YAML
      {"? !!binary aGVsbG8=\n: 1\n", ":1:3:"},      // tagged key, unknown setting
      {"table: \"x\\ny\"\n", ":1:8:"},              // a control character in a value
  };
  for (const auto& s : shapes) {
    auto c = load(s.text);
    ASSERT_FALSE(c.ok()) << s.text;
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidInput) << s.text;
    const std::string& m = c.error().message;
    EXPECT_EQ(m.rfind(file_.string() + s.where, 0), 0u) << s.text << " -> " << m;
    EXPECT_FALSE(hasControlChars(m)) << s.text << " -> " << m;
  }
}

TEST_F(AgentConfigInputTest, CamelCaseAndDashedKeysAreTheSame) {
  auto camel = load(
      "logGroup: 7\nstateDir: /tmp/s\nlogRate: 9\ntlsClientCA: /tmp/ca.pem\n"
      "maxBundleBytes: 1024\nflowWorkloadRate: 3\ntlsAllowedNames: [a.example]\n");
  ASSERT_TRUE(camel.ok()) << camel.error().message;
  EXPECT_EQ(camel->logGroup, 7);
  EXPECT_EQ(camel->stateDir, "/tmp/s");
  EXPECT_EQ(camel->logRate, 9u);
  EXPECT_EQ(camel->tlsClientCa, "/tmp/ca.pem");
  EXPECT_EQ(camel->maxBundleBytes, 1024u);
  EXPECT_EQ(camel->flowWorkloadRate, 3u);
  EXPECT_EQ(camel->tlsAllowedNames, (std::vector<std::string>{"a.example"}));
  auto dashed = load("log-group: 7\nstate-dir: /tmp/s\ntls-client-ca: /tmp/ca.pem\n");
  ASSERT_TRUE(dashed.ok()) << dashed.error().message;
  EXPECT_EQ(dashed->logGroup, 7);
  EXPECT_EQ(dashed->tlsClientCa, "/tmp/ca.pem");
  auto unknown = load("logGroupp: 7\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find(":1:1: unknown setting \"logGroupp\""), std::string::npos)
      << unknown.error().message;
  EXPECT_FALSE(load("log-Group: 7\n").ok()) << "one spelling or the other, not a mix";
}

TEST_F(AgentConfigInputTest, TlsAllowedNamesFromListCommaStringAndFlags) {
  auto list = load("tls-allowed-names:\n  - ctl.example\n  - spiffe://example/ctl\n");
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(list->tlsAllowedNames,
            (std::vector<std::string>{"ctl.example", "spiffe://example/ctl"}));
  auto comma = load("tls-allowed-names: \"a.example, b.example\"\n");
  ASSERT_TRUE(comma.ok()) << comma.error().message;
  EXPECT_EQ(comma->tlsAllowedNames, (std::vector<std::string>{"a.example", "b.example"}));
  auto flags = parseAgentArgs({"--config", file_.string(), "--tls-allowed-names", "c.example"});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->tlsAllowedNames, (std::vector<std::string>{"c.example"}))
      << "flags replace the file's list";
  EXPECT_TRUE(parseAgentArgs({})->tlsAllowedNames.empty()) << "default: any certificate of the CA";
  EXPECT_FALSE(parseAgentArgs({"--tls-allowed-names", "a,,b"}).ok());
  EXPECT_FALSE(parseAgentArgs({"--tls-allowed-names", "a\nb"}).ok());
}

TEST(EscapeForLog, ControlCharactersCannotBreakALine) {
  EXPECT_EQ(escapeForLog("v1\n2026-01-01T00:00:00Z info forged"),
            "v1\\n2026-01-01T00:00:00Z info forged");
  EXPECT_EQ(escapeForLog(std::string("a\r\t\x1b\x7f\\b", 7)), "a\\r\\t\\x1b\\x7f\\\\b");
  EXPECT_EQ(escapeForLog(std::string(300, 'x'), 4), "xxxx...(300 bytes)");
  EXPECT_TRUE(hasControlChars("a\nb"));
  EXPECT_FALSE(hasControlChars("plain value, UTF-8 \xc3\xa9 too"));
}

}  // namespace
}  // namespace bulkhead::agent
