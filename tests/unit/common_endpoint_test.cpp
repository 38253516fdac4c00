// common::parseEndpoint: every accepted form and the rejected ones,
// including what an attacker would try (huge ports, NUL and newline,
// empty hosts, relative and oversized paths).
#include "bulkhead/common/endpoint.h"

#include <gtest/gtest.h>

#include "bulkhead/common/agent_address.h"

namespace bulkhead::common {
namespace {

constexpr Schemes kAll{Scheme::kUnix, Scheme::kTcp, Scheme::kTls, Scheme::kUdp, Scheme::kJournald};

Endpoint ok(std::string_view text, Schemes allowed = kAll) {
  auto r = parseEndpoint(text, allowed, "--test");
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Endpoint{};
}

std::string bad(std::string_view text, Schemes allowed = kAll) {
  auto r = parseEndpoint(text, allowed, "--test");
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
  return r.error().message;
}

TEST(EndpointTest, AcceptsUnixPaths) {
  const Endpoint a = ok("unix:///run/bulkhead/agent.sock");
  EXPECT_EQ(a.scheme, Scheme::kUnix);
  EXPECT_EQ(a.path, "/run/bulkhead/agent.sock");
  EXPECT_EQ(a.grpcTarget(), "unix:/run/bulkhead/agent.sock");
  EXPECT_EQ(a.toString(), "unix:///run/bulkhead/agent.sock");
  EXPECT_EQ(ok("unix:/tmp/a.sock").path, "/tmp/a.sock");
  EXPECT_EQ(ok("unix:///dev/log").path, "/dev/log");
  EXPECT_EQ(ok("unix://" + std::string(107, '/')).path.size(), 107u);
}

TEST(EndpointTest, AcceptsHostAndPort) {
  for (const auto& [text, scheme] : {std::pair{"tcp://hv01.example:7443", Scheme::kTcp},
                                     std::pair{"tls://hv01.example:7443", Scheme::kTls},
                                     std::pair{"udp://hv01.example:7443", Scheme::kUdp}}) {
    const Endpoint e = ok(text);
    EXPECT_EQ(e.scheme, scheme);
    EXPECT_EQ(e.host, "hv01.example");
    EXPECT_EQ(e.port, 7443);
    EXPECT_EQ(e.toString(), text);
  }
  const Endpoint v4 = ok("udp://192.0.2.1:514");
  EXPECT_EQ(v4.host, "192.0.2.1");
  EXPECT_EQ(v4.hostPort(), "192.0.2.1:514");
  const Endpoint v6 = ok("tcp://[2001:db8::1]:65535");
  EXPECT_EQ(v6.host, "2001:db8::1");
  EXPECT_EQ(v6.port, 65535);
  EXPECT_EQ(v6.grpcTarget(), "[2001:db8::1]:65535");
  EXPECT_EQ(ok("tcp://[::]:1").host, "::");
  EXPECT_EQ(ok("tcp://0.0.0.0:7443").host, "0.0.0.0");
  EXPECT_EQ(ok("tcp://local_host-1:7").host, "local_host-1");
}

TEST(EndpointTest, AcceptsJournald) {
  EXPECT_EQ(ok("journald").scheme, Scheme::kJournald);
  EXPECT_EQ(ok("journald://").scheme, Scheme::kJournald);
  EXPECT_EQ(ok("journald").toString(), "journald");
}

TEST(EndpointTest, RejectsBadPorts) {
  for (const char* text :
       {"tcp://h:0", "tcp://h:65536", "tcp://h:99999", "tcp://h:18446744073709551617",
        "tcp://h:4294967808", "tcp://h:", "tcp://h:-1", "tcp://h:+80", "tcp://h: 80", "tcp://h:80 ",
        "tcp://h:0x50", "tcp://h:8o", "tcp://h", "udp://127.0.0.1", "tcp://[::1]:", "tcp://[::1]",
        "tcp://h:80/path"})
    EXPECT_NE(bad(text).find("expected"), std::string::npos) << text;
  EXPECT_NE(bad("tcp://h:65536").find("the port must be a number from 1 to 65535"),
            std::string::npos);
}

TEST(EndpointTest, RejectsBadHosts) {
  EXPECT_NE(bad("tcp://:514").find("the host is empty"), std::string::npos);
  EXPECT_NE(bad("udp://::1:514").find("IPv6 address in brackets"), std::string::npos);
  for (const char* text :
       {"tcp://[]:1", "udp://[127.0.0.1]:514", "tcp://[::1:514", "tcp://[::1]x:1",
        "tcp://[fe80::1%eth0]:1", "tcp://a/b:1", "tcp://a b:1", "tcp://.a:1", "tcp://a..b:1",
        "tcp://-a:1", "tcp://user@host:1", "tcp://h%00:1", "tcp://h;rm:1"})
    bad(text);
  bad("tcp://" + std::string(254, 'a') + ":1");
  ok("tcp://" + std::string(253, 'a') + ":1");
}

TEST(EndpointTest, RejectsControlCharactersAndEchoesThemEscaped) {
  const std::string nul = std::string("unix:///run/a") + '\0' + ".sock";
  const std::string msg = bad(nul);
  EXPECT_NE(msg.find("control characters"), std::string::npos);
  EXPECT_EQ(msg.find('\0'), std::string::npos);
  EXPECT_NE(msg.find("\\x00"), std::string::npos);
  const std::string nl = bad("tcp://h:1\nfake log line");
  EXPECT_EQ(nl.find('\n'), std::string::npos);
  bad("journald\r");
  bad("tcp://h\t:1");
}

TEST(EndpointTest, RejectsBadUnixPaths) {
  for (const char* text : {"unix://relative", "unix:relative.sock", "unix://",
                           "unix:", "unix://./a.sock", "unix://~/a.sock", "unix://host/run/a.sock"})
    EXPECT_NE(bad(text).find("absolute path"), std::string::npos) << text;
  EXPECT_NE(bad("unix://" + std::string(108, '/')).find("longer than 107"), std::string::npos);
}

TEST(EndpointTest, RejectsOtherSchemesAndSizes) {
  EXPECT_NE(bad("ftp://x:1").find("unknown scheme \"ftp\""), std::string::npos);
  EXPECT_NE(bad("syslog").find("no scheme"), std::string::npos);
  EXPECT_NE(bad("").find("empty"), std::string::npos);
  bad("TCP://h:1");
  bad("http://x:1");
  bad(std::string(kMaxEndpointBytes + 1, 'a'));
  bad("journald:///x");
}

TEST(EndpointTest, EachFlagAcceptsItsSchemesOnly) {
  constexpr Schemes kListen{Scheme::kUnix, Scheme::kTcp};
  ok("tcp://h:1", kListen);
  const std::string msg = bad("udp://h:1", kListen);
  EXPECT_EQ(msg,
            "--test \"udp://h:1\": udp is not accepted here; expected unix:///path or "
            "tcp://HOST:PORT");
  bad("journald", kListen);
  bad("tls://h:1", kListen);
  EXPECT_EQ(describeSchemes(kAll),
            "unix:///path, tcp://HOST:PORT, tls://HOST:PORT, udp://HOST:PORT or journald");
}

TEST(EndpointTest, AgentAddressesUseTheSameRules) {
  AgentAddress a;
  std::string error;
  ASSERT_TRUE(parseAgentAddress("tcp://[2001:db8::1]:7443", &a, &error));
  EXPECT_EQ(a.target, "[2001:db8::1]:7443");
  EXPECT_TRUE(a.tcp);
  EXPECT_EQ(a.host, "2001:db8::1");
  EXPECT_FALSE(parseAgentAddress("udp://h:1", &a, &error));
  EXPECT_EQ(error.rfind("--agent \"udp://h:1\": ", 0), 0u) << error;
  EXPECT_FALSE(parseAgentAddress("unix:///a\n", &a, &error));
  EXPECT_EQ(error.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace bulkhead::common
