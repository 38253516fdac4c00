// --listen and --syslog go through the shared endpoint parser
// (common/endpoint.h) when the flags or the config file are read: one set
// of rules and messages, and a bad endpoint stops the agent before it
// touches the kernel.
#include <gtest/gtest.h>

#include "bulkhead/agent/config.h"

namespace bulkhead::agent {
namespace {

std::string error(const std::vector<std::string>& argv) {
  auto r = parseAgentArgs(argv);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
  return r.error().message;
}

TEST(AgentConfigEndpoints, ListenTakesUnixAndTcp) {
  auto r = parseAgentArgs({"--listen", "unix:///run/b/a.sock", "--listen", "tcp://[::1]:7443"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->listen, (std::vector<std::string>{"unix:///run/b/a.sock", "tcp://[::1]:7443"}));
  EXPECT_EQ(parseAgentArgs({})->listen, std::vector<std::string>{common::kDefaultAgent});
  EXPECT_EQ(error({"--listen", "unix://relative.sock"}),
            "--listen \"unix://relative.sock\": a unix socket needs an absolute path; expected "
            "unix:///path or tcp://HOST:PORT");
  EXPECT_NE(error({"--listen", "udp://127.0.0.1:514"}).find("udp is not accepted here"),
            std::string::npos);
  EXPECT_NE(error({"--listen", "tcp://127.0.0.1:70000"}).find("from 1 to 65535"),
            std::string::npos);
  EXPECT_NE(error({"--listen", "tcp://:7443"}).find("the host is empty"), std::string::npos);
}

TEST(AgentConfigEndpoints, SyslogTakesEveryFlowTarget) {
  auto r = parseAgentArgs({"--syslog", "unix:///dev/log", "--syslog", "udp://192.0.2.1:514",
                           "--syslog", "tcp://h:514", "--syslog", "tls://[2001:db8::1]:6514",
                           "--syslog", "journald"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->syslog.size(), 5u);
  EXPECT_NE(error({"--syslog", "udp://192.0.2.1:99999999999"}).find("from 1 to 65535"),
            std::string::npos);
  EXPECT_NE(error({"--syslog", "ftp://h:1"}).find("unknown scheme \"ftp\""), std::string::npos);
  const std::string nl = error({"--syslog", std::string("udp://h:514\nforged", 18)});
  EXPECT_EQ(nl.find('\n'), std::string::npos);
  EXPECT_NE(nl.find("control characters"), std::string::npos);
}

}  // namespace
}  // namespace bulkhead::agent
