// parseNflogMessage() and SeqTracker on nfnetlink_log messages built with
// libmnl the way the kernel lays them out (nfulnl_log_packet()).
#include <arpa/inet.h>
#include <endian.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../../src/flows/nflog_parse.h"

namespace bulkhead::flows {
namespace {

constexpr uint16_t kPacketType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;

class Msg {
 public:
  explicit Msg(uint8_t family = NFPROTO_IPV4, uint16_t type = kPacketType) : buf_(8192, 0) {
    nlh_ = mnl_nlmsg_put_header(buf_.data());
    nlh_->nlmsg_type = type;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(nfgenmsg)));
    nfg->nfgen_family = family;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = htons(1771);
  }
  Msg& hdr(uint16_t ethertype, uint8_t hook = NF_INET_FORWARD) {
    nfulnl_msg_packet_hdr h{htons(ethertype), hook, 0};
    mnl_attr_put(nlh_, NFULA_PACKET_HDR, sizeof h, &h);
    return *this;
  }
  Msg& prefix(const std::string& p) {
    mnl_attr_put_strz(nlh_, NFULA_PREFIX, p.c_str());
    return *this;
  }
  Msg& u32(uint16_t type, uint32_t hostValue) {
    mnl_attr_put_u32(nlh_, type, htonl(hostValue));
    return *this;
  }
  Msg& timestamp(uint64_t sec, uint64_t usec) {
    nfulnl_msg_packet_timestamp ts{htobe64(sec), htobe64(usec)};
    mnl_attr_put(nlh_, NFULA_TIMESTAMP, sizeof ts, &ts);
    return *this;
  }
  Msg& raw(uint16_t type, const std::string& bytes) {
    mnl_attr_put(nlh_, type, bytes.size(), bytes.data());
    return *this;
  }
  Msg(const Msg&) = delete;
  Msg(Msg&&) = default;
  const nlmsghdr* nlh() const { return nlh_; }
  nlmsghdr* mutableNlh() { return nlh_; }

 private:
  std::vector<char> buf_;
  nlmsghdr* nlh_;
};

const std::string kPayload(
    "\x45\x00\x00\x3c\x12\x34\x40\x00\x40\x06\x00\x00\xc0\x00\x02\x0a"
    "\xc6\x33\x64\x0a\x9c\x40\x00\x16",
    24);

// What the kernel sends for a forwarded packet, attributes in its order.
Msg fullMessage() {
  Msg m;
  m.hdr(0x0800)
      .prefix("bh:deny:default")
      .u32(NFULA_IFINDEX_INDEV, 7)
      .u32(NFULA_IFINDEX_OUTDEV, 9)
      .raw(NFULA_HWADDR, std::string(12, '\x02'))
      .u32(NFULA_MARK, 0x42)
      .u32(NFULA_SEQ, 12345)
      .u32(NFULA_SEQ_GLOBAL, 999)
      .timestamp(1'700'000'000, 123'456)
      .raw(NFULA_PAYLOAD, kPayload);
  return m;
}

TEST(NflogParseTest, EveryAttribute) {
  const Msg m = fullMessage();
  const auto p = parseNflogMessage(m.nlh());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->prefix, "bh:deny:default");  // without the kernel's NUL
  EXPECT_EQ(p->inIfindex, 7u);
  EXPECT_EQ(p->hwProtocol, 0x0800);
  EXPECT_EQ(p->family, NFPROTO_IPV4);
  ASSERT_TRUE(p->seq);
  EXPECT_EQ(*p->seq, 12345u);
  ASSERT_TRUE(p->timestamp);
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(p->timestamp->time_since_epoch())
          .count();
  EXPECT_EQ(us, 1'700'000'000'123'456);
  EXPECT_EQ(p->payload, kPayload);
}

TEST(NflogParseTest, MinimalMessage) {
  Msg m(NFPROTO_IPV6);
  m.hdr(0x86dd);
  const auto p = parseNflogMessage(m.nlh());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->family, NFPROTO_IPV6);
  EXPECT_EQ(p->hwProtocol, 0x86dd);
  EXPECT_EQ(p->prefix, "");
  EXPECT_EQ(p->inIfindex, 0u);
  EXPECT_FALSE(p->seq);
  EXPECT_FALSE(p->timestamp);  // output/postrouting hooks carry none
  EXPECT_TRUE(p->payload.empty());
}

TEST(NflogParseTest, UnknownAttributesAreSkipped) {
  Msg m;
  m.hdr(0x0800).raw(NFULA_MAX + 5, "future").prefix("bh:audit:x").raw(0, "");
  const auto p = parseNflogMessage(m.nlh());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->prefix, "bh:audit:x");
}

TEST(NflogParseTest, PrefixWithoutNul) {
  Msg m;
  m.hdr(0x0800).raw(NFULA_PREFIX, "bh:deny:x");
  const auto p = parseNflogMessage(m.nlh());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->prefix, "bh:deny:x");
}

TEST(NflogParseTest, OutOfRangeTimestampIsDropped) {
  Msg m;
  m.hdr(0x0800).timestamp(1, 1'000'000);
  auto p = parseNflogMessage(m.nlh());
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->timestamp);
  Msg m2;
  m2.hdr(0x0800).timestamp(~uint64_t{0}, 0);
  p = parseNflogMessage(m2.nlh());
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->timestamp);
}

TEST(NflogParseTest, Malformed) {
  struct C {
    const char* name;
    std::function<Msg()> build;
  };
  const std::vector<C> cases = {
      {"no packet header", [] { return std::move(Msg().prefix("bh:deny:x")); }},
      {"config message", [] { return std::move(Msg(2, (NFNL_SUBSYS_ULOG << 8) | 1).hdr(0x800)); }},
      {"other subsystem", [] { return std::move(Msg(2, NFNL_SUBSYS_QUEUE << 8).hdr(0x800)); }},
      {"short packet header", [] { return std::move(Msg().raw(NFULA_PACKET_HDR, "ab")); }},
      {"short ifindex", [] { return std::move(Msg().hdr(0x800).raw(NFULA_IFINDEX_INDEV, "ab")); }},
      {"long seq", [] { return std::move(Msg().hdr(0x800).raw(NFULA_SEQ, "abcdefgh")); }},
      {"short timestamp",
       [] { return std::move(Msg().hdr(0x800).raw(NFULA_TIMESTAMP, "abcdefgh")); }},
  };
  for (const C& c : cases) {
    const Msg m = c.build();
    EXPECT_FALSE(parseNflogMessage(m.nlh())) << c.name;
  }
}

TEST(NflogParseTest, AttributeOverrunningTheMessage) {
  Msg m;
  m.hdr(0x0800).raw(NFULA_PAYLOAD, std::string(40, 'x'));
  // Shrink the message so the payload attribute claims more than is left.
  m.mutableNlh()->nlmsg_len -= 16;
  EXPECT_FALSE(parseNflogMessage(m.nlh()));
}

TEST(NflogParseTest, MessageShorterThanNfgenmsg) {
  Msg m;
  m.mutableNlh()->nlmsg_len = MNL_NLMSG_HDRLEN + 2;
  EXPECT_FALSE(parseNflogMessage(m.nlh()));
}

TEST(NflogParseTest, EveryShorterLengthIsSafe) {
  const Msg full = fullMessage();
  const uint32_t len = full.nlh()->nlmsg_len;
  for (uint32_t n = MNL_NLMSG_HDRLEN; n < len; ++n) {
    // A copy of exactly n bytes, so a read past it is a heap overflow (ASan).
    std::vector<char> copy(reinterpret_cast<const char*>(full.nlh()),
                           reinterpret_cast<const char*>(full.nlh()) + n);
    auto* nlh = reinterpret_cast<nlmsghdr*>(copy.data());
    nlh->nlmsg_len = n;
    const auto p = parseNflogMessage(nlh);
    if (p) {
      // Only cuts at an attribute boundary parse, with the attributes before it.
      EXPECT_EQ(p->hwProtocol, 0x0800) << n;
    }
  }
}

TEST(SeqTrackerTest, CountsGaps) {
  SeqTracker t;
  EXPECT_EQ(t.observe(0), 0u);
  EXPECT_EQ(t.observe(1), 0u);
  EXPECT_EQ(t.observe(2), 0u);
  EXPECT_EQ(t.observe(7), 4u);  // 3..6 lost
  EXPECT_EQ(t.observe(8), 0u);
  EXPECT_EQ(t.expected(), 9u);
}

TEST(SeqTrackerTest, FirstEventIsZero) {
  SeqTracker t;
  EXPECT_EQ(t.observe(3), 3u);  // 0..2 lost before the first read
}

TEST(SeqTrackerTest, Wraps) {
  SeqTracker t;
  t.observe(0xfffffffd);
  EXPECT_EQ(t.observe(0xfffffffe), 0u);
  EXPECT_EQ(t.observe(0xffffffff), 0u);
  EXPECT_EQ(t.observe(0), 0u);
  EXPECT_EQ(t.observe(1), 0u);
  SeqTracker u;
  u.observe(0xfffffff0);
  EXPECT_EQ(u.observe(5), 20u);  // 0xfffffff1..0xffffffff (15) and 0..4 (5)
}

TEST(SeqTrackerTest, BackwardsCountsNothing) {
  SeqTracker t;
  t.observe(100);
  EXPECT_EQ(t.observe(100), 0u);  // duplicate
  EXPECT_EQ(t.observe(50), 0u);   // from the past: resync
  EXPECT_EQ(t.observe(51), 0u);
}

}  // namespace
}  // namespace bulkhead::flows
