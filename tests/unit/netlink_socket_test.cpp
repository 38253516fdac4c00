// The shared netlink socket type. Message splitting is pure; the socket
// itself is exercised with read-only rtnetlink requests, which need no
// privileges (the nf_tables and NFLOG users are covered by the privileged
// tests).
#include "bulkhead/nft/netlink_socket.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace bulkhead::nft {
namespace {

// A GETLINK request: a dump of every link, or (dump false, with ACK) the
// link with index `ifindex`.
nlmsghdr* getLink(std::vector<uint8_t>& buf, uint32_t seq, bool dump, int ifindex = 0) {
  buf.assign(MNL_SOCKET_BUFFER_SIZE, 0);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
  nlh->nlmsg_seq = seq;
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  return nlh;
}

std::vector<uint8_t> message(uint16_t type, uint32_t seq, size_t payload) {
  std::vector<uint8_t> m(NLMSG_ALIGN(NLMSG_HDRLEN + payload), 0);
  auto* nlh = reinterpret_cast<nlmsghdr*>(m.data());
  nlh->nlmsg_len = uint32_t(NLMSG_HDRLEN + payload);
  nlh->nlmsg_type = type;
  nlh->nlmsg_seq = seq;
  return m;
}

TEST(NetlinkSocketTest, ForEachMessageSplitsADatagramAndFlagsATornTail) {
  std::vector<uint8_t> bytes;
  for (uint32_t seq : {1u, 2u, 3u}) {
    auto m = message(NLMSG_NOOP, seq, seq * 3);  // unaligned payloads: padded
    bytes.insert(bytes.end(), m.begin(), m.end());
  }
  std::vector<uint32_t> seen;
  EXPECT_TRUE(NetlinkSocket::forEachMessage(
      bytes, [&](const nlmsghdr* n) { seen.push_back(n->nlmsg_seq); }));
  EXPECT_EQ(seen, (std::vector<uint32_t>{1, 2, 3}));

  // A header that claims more than is there ends the walk, reported.
  auto torn = message(NLMSG_NOOP, 4, 16);
  reinterpret_cast<nlmsghdr*>(torn.data())->nlmsg_len = 4096;
  bytes.insert(bytes.end(), torn.begin(), torn.end());
  seen.clear();
  EXPECT_FALSE(NetlinkSocket::forEachMessage(
      bytes, [&](const nlmsghdr* n) { seen.push_back(n->nlmsg_seq); }));
  EXPECT_EQ(seen.size(), 3u);
}

TEST(NetlinkSocketTest, OpensCloseOnExecWithAPortId) {
  auto s = NetlinkSocket::open(NETLINK_ROUTE);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_NE(fcntl(s->fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(s->portId(), 0u);
  // Moving keeps one owner; the moved-to socket still works.
  NetlinkSocket moved = std::move(*s);
  auto idle = moved.receive(0);
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->kind, NetlinkSocket::Received::Kind::kTimeout);
}

TEST(NetlinkSocketTest, DumpRunsToDoneAndHandsOverOnlyItsOwnReplies) {
  auto s = NetlinkSocket::open(NETLINK_ROUTE);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  std::vector<uint8_t> buf;
  // Replies to an earlier request nobody read must not count for the next.
  nlmsghdr* stale = getLink(buf, 7, true);
  ASSERT_TRUE(s->send(stale, stale->nlmsg_len).ok());
  std::vector<uint8_t> req;
  nlmsghdr* dump = getLink(req, 8, true);
  int links = 0;
  auto r = s->exchange(dump, "the links", 2000, [&](const nlmsghdr* reply) {
    EXPECT_EQ(reply->nlmsg_seq, 8u);
    links += reply->nlmsg_type == RTM_NEWLINK;
    return Status{};
  });
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(*r, 0);
  EXPECT_GE(links, 1);  // loopback at least
}

TEST(NetlinkSocketTest, RefusalComesBackAsItsErrno) {
  auto s = NetlinkSocket::open(NETLINK_ROUTE);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  std::vector<uint8_t> req;
  nlmsghdr* nlh = getLink(req, 9, false, 0x7ffffff0);  // no such link
  int replies = 0;
  auto r = s->exchange(nlh, "a missing link", 2000, [&](const nlmsghdr*) {
    ++replies;
    return Status{};
  });
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(*r, ENODEV);
  EXPECT_EQ(replies, 0);
}

TEST(NetlinkSocketTest, CallbackErrorEndsTheExchange) {
  auto s = NetlinkSocket::open(NETLINK_ROUTE);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  std::vector<uint8_t> req;
  nlmsghdr* dump = getLink(req, 10, true);
  auto r = s->exchange(dump, "the links", 2000, [&](const nlmsghdr*) -> Status {
    return makeError(ErrorCode::kInternal, "stop here");
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "stop here");
}

TEST(NetlinkSocketTest, DatagramLargerThanTheBufferIsReportedTruncated) {
  // Room for less than one link message.
  auto s = NetlinkSocket::open(NETLINK_ROUTE, 0, 32);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  std::vector<uint8_t> req;
  nlmsghdr* dump = getLink(req, 11, true);
  ASSERT_TRUE(s->send(dump, dump->nlmsg_len).ok());
  auto r = s->receive(2000);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->kind, NetlinkSocket::Received::Kind::kTruncated);
  // And an exchange on such a socket fails instead of misreading.
  auto x = s->exchange(getLink(req, 12, true), "the links", 2000,
                       [](const nlmsghdr*) { return Status{}; });
  ASSERT_FALSE(x.ok());
  EXPECT_EQ(x.error().sysErrno, ENOBUFS);
}

TEST(NetlinkSocketTest, NothingQueuedTimesOut) {
  auto s = NetlinkSocket::open(NETLINK_ROUTE);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  auto ready = s->waitReadable(20);
  ASSERT_TRUE(ready.ok());
  EXPECT_FALSE(*ready);
  auto r = s->receive(20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, NetlinkSocket::Received::Kind::kTimeout);
}

// A dump a commit interrupted (EINTR) is made again; any other outcome is
// final, and so is the last attempt's.
TEST(NetlinkSocketTest, AnInterruptedDumpIsMadeAgainAndOnlyThat) {
  int calls = 0;
  auto interruptedTwice = dumpUninterrupted([&]() -> Result<int> {
    if (++calls <= 2) return makeError(ErrorCode::kKernel, "interrupted", EINTR);
    return calls;
  });
  ASSERT_TRUE(interruptedTwice);
  EXPECT_EQ(*interruptedTwice, 3);

  calls = 0;
  auto refused = dumpUninterrupted([&]() -> Result<int> {
    ++calls;
    return makeError(ErrorCode::kKernel, "refused", ENOENT);
  });
  EXPECT_FALSE(refused);
  EXPECT_EQ(calls, 1);

  calls = 0;
  auto alwaysInterrupted = dumpUninterrupted([&]() -> Result<int> {
    ++calls;
    return makeError(ErrorCode::kKernel, "interrupted", EINTR);
  });
  ASSERT_FALSE(alwaysInterrupted);
  EXPECT_EQ(alwaysInterrupted.error().sysErrno, EINTR);
  EXPECT_EQ(calls, kDumpAttempts);
}

}  // namespace
}  // namespace bulkhead::nft
