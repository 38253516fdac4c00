// Notifier: what the agent tells the service manager, and when; the
// keep-alive cadence on a clock the test drives.
#include "bulkhead/agent/notifier.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "bulkhead/agent/config.h"

namespace bulkhead::agent {
namespace {

using namespace std::chrono_literals;

struct Sent {
  std::vector<std::string> messages;
  Notifier::Send send() {
    return [this](const std::string& m) {
      messages.push_back(m);
      return true;
    };
  }
};

AgentStatusView status(const std::string& version, uint32_t workloads) {
  AgentStatusView s;
  s.version = version;
  s.table = "bulkhead";
  s.workloads = workloads;
  s.apps = 2;
  s.setElements = 40;
  s.chains = 7;
  return s;
}

TEST(NotifierTest, ReadyCarriesTheVersionAndCounts) {
  Sent sent;
  Notifier n(sent.send(), 0us);
  n.ready(status("sha256:ab", 3));
  ASSERT_EQ(sent.messages.size(), 1u);
  EXPECT_EQ(sent.messages[0],
            "READY=1\nSTATUS=version sha256:ab in force: 3 workloads, 2 apps, 40 elements, 7 "
            "chains in table inet bulkhead");
  EXPECT_EQ(Notifier::summary(status("", 0)).rfind("no policy yet: 0 workloads", 0), 0u);
}

TEST(NotifierTest, KeepAlivesAtHalfThePeriodAndStatusOnlyOnChange) {
  Sent sent;
  Notifier n(sent.send(), 2s);  // a keep-alive every second
  n.ready(status("v1", 1));
  const auto t0 = common::SteadyClock::now();
  n.housekeeping(status("v1", 1), t0);
  n.housekeeping(status("v1", 1), t0 + 500ms);  // not due
  n.housekeeping(status("v1", 2), t0 + 1000ms);
  n.housekeeping(status("v1", 2), t0 + 2000ms);
  ASSERT_EQ(sent.messages.size(), 4u);
  EXPECT_EQ(sent.messages[1], "WATCHDOG=1");
  EXPECT_EQ(sent.messages[2].rfind("WATCHDOG=1\nSTATUS=version v1 in force: 2 workloads", 0), 0u)
      << sent.messages[2];
  EXPECT_EQ(sent.messages[3], "WATCHDOG=1");
}

TEST(NotifierTest, WithoutWatchdogOnlyStatusChangesGoOutAtMostOnceASecond) {
  Sent sent;
  Notifier n(sent.send(), 0us);
  n.ready(status("v1", 1));
  const auto t0 = common::SteadyClock::now();
  n.housekeeping(status("v1", 1), t0);
  n.housekeeping(status("v2", 1), t0 + 300ms);  // not checked yet
  n.housekeeping(status("v2", 1), t0 + 1000ms);
  ASSERT_EQ(sent.messages.size(), 2u);
  EXPECT_EQ(sent.messages[1].rfind("STATUS=version v2", 0), 0u);
}

TEST(NotifierTest, ReloadThenReadyAndNothingAfterStopping) {
  Sent sent;
  Notifier n(sent.send(), 1s);
  n.reloading("config and policies");
  n.ready(status("v2", 1));
  n.stopping();
  n.housekeeping(status("v2", 1), common::SteadyClock::now() + 10s);
  ASSERT_EQ(sent.messages.size(), 3u);
  EXPECT_EQ(sent.messages[0].rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u);
  EXPECT_NE(sent.messages[0].find("\nSTATUS=reloading config and policies"), std::string::npos);
  EXPECT_EQ(sent.messages[1].rfind("READY=1\n", 0), 0u);
  EXPECT_EQ(sent.messages[2].rfind("STOPPING=1\n", 0), 0u);
}

TEST(NotifierTest, StatusTextCannotInjectFields) {
  Sent sent;
  Notifier n(sent.send(), 0us);
  n.ready(status("v1\nWATCHDOG=trigger", 1));
  ASSERT_EQ(sent.messages.size(), 1u);
  EXPECT_EQ(sent.messages[0].find("\nWATCHDOG="), std::string::npos) << sent.messages[0];
}

TEST(NotifierTest, WithoutNotifySocketEverythingIsANoOp) {
  const char* saved = std::getenv("NOTIFY_SOCKET");
  const std::string keep = saved ? saved : "";
  ::unsetenv("NOTIFY_SOCKET");
  ::setenv("WATCHDOG_USEC", "1000000", 1);
  Notifier n = Notifier::fromEnvironment();
  EXPECT_FALSE(n.active());
  n.ready(status("v1", 1));  // must not crash or send
  n.housekeeping(status("v1", 1), common::SteadyClock::now());
  ::unsetenv("WATCHDOG_USEC");
  ::setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
  ::setenv("WATCHDOG_USEC", "4000000", 1);
  Notifier m = Notifier::fromEnvironment();
  EXPECT_TRUE(m.active());
  EXPECT_EQ(m.watchdogPeriod(), std::chrono::microseconds(4000000));
  ::unsetenv("WATCHDOG_USEC");
  if (saved) {
    ::setenv("NOTIFY_SOCKET", keep.c_str(), 1);
  } else {
    ::unsetenv("NOTIFY_SOCKET");
  }
}

TEST(SocketGroupConfigTest, KnownGroupAcceptedUnknownRefused) {
  auto ok = parseAgentArgs({"--socket-group", "root"});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->socketGroup, "root");
  EXPECT_TRUE(checkHostNames(*ok));
  // Any well-formed name parses (a shipped config names the package's
  // group); whether this host knows it is checked before the kernel is.
  auto unknown = parseAgentArgs({"--socket-group", "bht-no-such-group"});
  ASSERT_TRUE(unknown) << unknown.error().message;
  auto st = checkHostNames(*unknown);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message,
            "--socket-group: no group named \"bht-no-such-group\" on this host");
  EXPECT_FALSE(parseAgentArgs({"--socket-group", "a:b"}));
}

}  // namespace
}  // namespace bulkhead::agent
