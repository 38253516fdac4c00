// The etcd client and the test launcher across an etcd restart: a call made
// while etcd is down waits for it within its deadline, and a restart finds
// its port even when another process holds it for a moment.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "bulkhead/etcd/client.h"
#include "support/etcd_connect.h"
#include "support/etcd_server.h"

namespace bulkhead::etcd {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::connectTo;
using testing::EtcdServer;

TEST(EtcdRestart, PutMadeWhileEtcdIsDownSucceedsOnceItIsBack) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto options = etcd.clientOptions();
  options.requestTimeout = 15s;
  auto client = connectTo(options);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->put("/r/before", "1").ok());

  etcd.kill();
  // The channel sees the refused connection and backs off.
  std::this_thread::sleep_for(300ms);
  auto put = std::async(std::launch::async, [&] { return client->put("/r/during", "2"); });
  // Still waiting for etcd, not failed at once.
  ASSERT_EQ(put.wait_for(500ms), std::future_status::timeout);
  ASSERT_TRUE(etcd.restart()) << etcd.log();
  ASSERT_EQ(put.wait_for(10s), std::future_status::ready);
  auto r = put.get();
  ASSERT_TRUE(r.ok()) << r.error().describe();
  // And right after the restart, with the channel just reconnected.
  ASSERT_TRUE(client->put("/r/after", "3").ok());
  auto during = client->get("/r/during");
  ASSERT_TRUE(during.ok());
  ASSERT_EQ(during->kvs.size(), 1u);
  EXPECT_EQ(during->kvs[0].value, "2");
  EXPECT_EQ(during->kvs[0].modRevision, *r);
}

TEST(EtcdRestart, PutRightAfterARestartSucceeds) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->put("/r/a", "1").ok());
  // Down long enough for the channel to fail reconnecting and back off.
  etcd.kill();
  std::this_thread::sleep_for(700ms);
  ASSERT_TRUE(etcd.restart()) << etcd.log();
  auto r = client->put("/r/b", "2");
  EXPECT_TRUE(r.ok()) << r.error().describe();
}

TEST(EtcdRestart, CallFailsWithinItsDeadlineWhenEtcdStaysDown) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto options = etcd.clientOptions();
  options.requestTimeout = 1s;
  auto client = connectTo(options);
  ASSERT_TRUE(client);
  etcd.kill();
  const auto start = Clock::now();
  auto r = client->put("/r/x", "1");
  const auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find(etcd.endpoint()), std::string::npos) << r.error().message;
  EXPECT_GE(took, 800ms);   // waited for etcd...
  EXPECT_LT(took, 2500ms);  // ...but no longer than the deadline
}

// Another process holds etcd's port for a moment while etcd is down: the
// restart waits it out. (A listening socket: etcd's own connections left
// the port in TIME_WAIT, which only SO_REUSEADDR binds over, and a
// non-listening socket with it would not stop etcd.)
TEST(EtcdRestart, RestartSucceedsWhenThePortIsBrieflyTaken) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  etcd.kill();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(etcd.clientPort());
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  ASSERT_EQ(::listen(fd, 1), 0);
  std::thread release([fd] {
    std::this_thread::sleep_for(1500ms);
    ::close(fd);
  });
  const bool restarted = etcd.restart();
  release.join();
  ASSERT_TRUE(restarted) << etcd.log();
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->put("/r/k", "v").ok());
}

}  // namespace
}  // namespace bulkhead::etcd
