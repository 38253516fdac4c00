// The NFLOG reader against the real kernel: a hypervisor namespace logs
// forwarded packets of a workload namespace to group 1771 with nft `log
// group`, the reader bound in that namespace decodes them. All in throwaway
// namespaces (support/netns.h); the root namespace is never touched.
#include <gtest/gtest.h>
#include <linux/netfilter.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "bulkhead/flows/event.h"
#include "bulkhead/flows/nflog.h"
#include "support/netns.h"

namespace bulkhead::flows {
namespace {

using testing::Netns;
using testing::Topology;

constexpr uint16_t kGroup = 1771;
constexpr const char* kWorkV4 = "192.0.2.10";
constexpr const char* kWorkV6 = "2001:db8:2::10";
constexpr const char* kSrvV4 = "198.51.100.10";
constexpr const char* kSrvV6 = "2001:db8:10::10";

constexpr const char* kRuleset = R"(
table inet bhtest {
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "vw1" tcp dport 22 counter log prefix "bh:deny:default" group 1771
    iifname "vw1" tcp dport 22 drop
    iifname "vw1" udp dport 53 counter log prefix "bh:deny:globalpolicy/dns/0" group 1771
    iifname "vw1" udp dport 53 drop
    iifname "vw1" icmp type echo-request counter log prefix "bh:audit:default" group 1771
    iifname "vw1" icmp type echo-request drop
    iifname "vw1" icmpv6 type echo-request counter log prefix "bh:audit:default" group 1771
    iifname "vw1" icmpv6 type echo-request drop
    iifname "vw1" udp dport 9999 counter log prefix "bh:log:flood" group 1771
    iifname "vw1" udp dport 9999 drop
  }
}
)";

class NflogTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::havePrivileges()) return;
    testing::sweepStaleNamespaces();
    topo_ = new Topology();
    topo_->addHost("vw1", kWorkV4, kWorkV6);
    topo_->addHost("vsrv1", kSrvV4, kSrvV6);
    auto r = topo_->hv().exec("nft -f - <<'EOF'\n" + std::string(kRuleset) + "EOF");
    if (!r.ok()) {
      setupError_ = new std::string("nft -f: " + r.out);
      return;
    }
    // The workload's side of the hypervisor link, as the kernel numbers it
    // in the hv namespace: "5: vw1@if2: <...".
    r = topo_->hv().exec("ip -o link show vw1");
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex("^([0-9]+): vw1"))) {
      setupError_ = new std::string("ip -o link show vw1: " + r.out);
      return;
    }
    vw1Index_ = static_cast<uint32_t>(std::stoul(m[1]));
  }

  static void TearDownTestSuite() {
    delete topo_;  // removes the namespaces, ruleset and all
    topo_ = nullptr;
    delete setupError_;
    setupError_ = nullptr;
  }

  void SetUp() override {
    if (testing::skipUnlessCi(testing::havePrivileges(), "needs root and ip/nft")) GTEST_SKIP();
    ASSERT_NE(topo_, nullptr);
    ASSERT_EQ(setupError_, nullptr) << *setupError_;
  }

  void TearDown() override { reader_.reset(); }

  // Opens a reader in the hv namespace: the socket stays in the namespace
  // it was made in, so it can be read from this thread afterwards.
  static Result<std::unique_ptr<NflogReader>> openInHv(NflogReader::Options options = {}) {
    std::optional<Result<std::unique_ptr<NflogReader>>> out;
    topo_->hv().run([&] { out.emplace(NflogReader::open(options)); });
    return std::move(*out);
  }

  void openReader(NflogReader::Options options = {}) {
    auto r = openInHv(options);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    reader_ = std::move(r).value();
  }

  // Reads until `want` packets matching `pred` arrived or `ms` passed;
  // returns everything read.
  std::vector<LoggedPacket> collect(size_t want, int ms,
                                    const std::function<bool(const LoggedPacket&)>& pred) {
    std::vector<LoggedPacket> all;
    size_t matched = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (matched < want && std::chrono::steady_clock::now() < deadline) {
      auto r = reader_->read(100);
      EXPECT_TRUE(r.ok()) << r.error().describe();
      if (!r.ok()) break;
      for (auto& p : *r) {
        if (pred(p)) ++matched;
        all.push_back(std::move(p));
      }
    }
    return all;
  }

  static const Netns& work() { return *topo_->host("vw1").ns; }

  static Topology* topo_;
  static std::string* setupError_;
  static uint32_t vw1Index_;
  std::unique_ptr<NflogReader> reader_;
};

Topology* NflogTest::topo_ = nullptr;
std::string* NflogTest::setupError_ = nullptr;
uint32_t NflogTest::vw1Index_ = 0;

struct Expect {
  const char* prefix;
  bool v6;
  uint8_t proto;
  uint16_t sport, dport;
  uint8_t icmpType = 0;
};

void checkPacket(const LoggedPacket& p, const Expect& e, uint32_t ifindex,
                 WallClock::time_point from, WallClock::time_point to) {
  SCOPED_TRACE(std::string(e.prefix) + (e.v6 ? " v6" : " v4"));
  EXPECT_EQ(p.prefix, e.prefix);
  EXPECT_EQ(p.inIfindex, ifindex);
  EXPECT_EQ(p.family, e.v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
  EXPECT_EQ(p.hwProtocol, e.v6 ? 0x86dd : 0x0800);
  // The forward hook always carries a timestamp (kernel 6.x takes the
  // current time when the skb has none).
  ASSERT_TRUE(p.timestamp.has_value());
  EXPECT_GE(*p.timestamp, from - std::chrono::seconds(1));
  EXPECT_LE(*p.timestamp, to + std::chrono::seconds(1));
  EXPECT_TRUE(p.seq.has_value());
  EXPECT_LE(p.payload.size(), 256u);  // the copy range
  const auto d =
      decodePacket({reinterpret_cast<const uint8_t*>(p.payload.data()), p.payload.size()});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->src.toString(), e.v6 ? kWorkV6 : kWorkV4);
  EXPECT_EQ(d->dst.toString(), e.v6 ? kSrvV6 : kSrvV4);
  EXPECT_EQ(d->proto, e.proto);
  EXPECT_FALSE(d->truncated);
  if (e.proto == 6 || e.proto == 17) {
    EXPECT_TRUE(d->hasPorts);
    EXPECT_EQ(d->sport, e.sport);
    EXPECT_EQ(d->dport, e.dport);
  } else {
    EXPECT_FALSE(d->hasPorts);
    EXPECT_EQ(d->icmpType, e.icmpType);
    EXPECT_EQ(d->icmpCode, 0);
  }
}

TEST_F(NflogTest, LogsDeniedTrafficOfBothFamilies) {
  openReader();
  const auto from = WallClock::now();
  // Fixed source ports so the decoded ports can be checked.
  work().exec(
      "timeout 3 socat -T0.3 - TCP4:198.51.100.10:22,sourceport=41022,"
      "connect-timeout=0.3 </dev/null");
  work().exec(
      "timeout 3 socat -T0.3 - TCP6:[2001:db8:10::10]:22,sourceport=41023,"
      "connect-timeout=0.3 </dev/null");
  work().exec("echo hi | timeout 3 socat -T0.2 - UDP4:198.51.100.10:53,sourceport=41053");
  work().exec("echo hi | timeout 3 socat -T0.2 - UDP6:[2001:db8:10::10]:53,sourceport=41054");
  // A large echo: the payload handed over is cut at the copy range.
  work().exec("ping -q -c 2 -i 0.2 -W 0.3 -s 1000 198.51.100.10");
  work().exec("ping -6 -q -c 2 -i 0.2 -W 0.3 2001:db8:10::10");
  const auto to = WallClock::now();

  // Each kind at least once (a TCP SYN may be retransmitted).
  const auto all = collect(8, 3000, [](const LoggedPacket&) { return true; });
  const std::vector<std::pair<Expect, int>> kinds = {
      {{"bh:deny:default", false, 6, 41022, 22}, 1},
      {{"bh:deny:default", true, 6, 41023, 22}, 1},
      {{"bh:deny:globalpolicy/dns/0", false, 17, 41053, 53}, 1},
      {{"bh:deny:globalpolicy/dns/0", true, 17, 41054, 53}, 1},
      {{"bh:audit:default", false, 1, 0, 0, 8}, 2},
      {{"bh:audit:default", true, 58, 0, 0, 128}, 2},
  };
  for (const auto& [e, min] : kinds) {
    int seen = 0;
    for (const LoggedPacket& p : all) {
      const auto d =
          decodePacket({reinterpret_cast<const uint8_t*>(p.payload.data()), p.payload.size()});
      if (!d || d->proto != e.proto || (p.family == NFPROTO_IPV6) != e.v6) continue;
      if (e.proto == 6 && d->sport != e.sport) continue;
      ++seen;
      checkPacket(p, e, vw1Index_, from, to);
      if (e.proto == 1) {
        EXPECT_EQ(p.payload.size(), 256u) << "ping -s 1000 cut at copy range";
      }
    }
    EXPECT_GE(seen, min) << e.prefix << (e.v6 ? " v6 " : " v4 ") << int(e.proto);
  }

  // NFULA_SEQ: per group, from 0 at BIND, no gaps when nothing was lost.
  ASSERT_FALSE(all.empty());
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_TRUE(all[i].seq.has_value());
    EXPECT_EQ(*all[i].seq, i) << "sequence numbers count from 0 without gaps";
  }
  const NflogStats s = reader_->stats();
  EXPECT_EQ(s.packets, all.size());
  EXPECT_EQ(s.lostKernel, 0u);
  EXPECT_EQ(s.lostOverrun, 0u);
  EXPECT_EQ(s.malformed, 0u);
}

TEST_F(NflogTest, SecondReaderOnTheSameGroupIsRefused) {
  openReader();
  auto second = openInHv();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(second.error().message.find("NFLOG group 1771 is owned by another program"),
            std::string::npos)
      << second.error().describe();
  std::cout << "second BIND refused: " << second.error().describe() << "\n";

  // Another group is free.
  NflogReader::Options other;
  other.group = 1772;
  auto third = openInHv(other);
  EXPECT_TRUE(third.ok()) << third.error().describe();

  // Once the owner is gone (UNBIND on destruction) the group can be bound
  // again, and its numbering restarts.
  reader_.reset();
  openReader();
  work().exec("ping -q -c 1 -W 0.3 198.51.100.10");
  const auto got = collect(1, 2000, [](const LoggedPacket&) { return true; });
  ASSERT_FALSE(got.empty());
  ASSERT_TRUE(got[0].seq.has_value());
  EXPECT_EQ(*got[0].seq, 0u);
}

TEST_F(NflogTest, GroupsArePerNamespace) {
  // The same group bound in another namespace does not see hv's events.
  std::optional<Result<std::unique_ptr<NflogReader>>> elsewhere;
  work().run([&] { elsewhere.emplace(NflogReader::open({})); });
  ASSERT_TRUE(elsewhere->ok()) << elsewhere->error().describe();
  openReader();  // not EBUSY: a different namespace's group
  work().exec("ping -q -c 1 -W 0.3 198.51.100.10");
  const auto got = collect(1, 2000, [](const LoggedPacket&) { return true; });
  EXPECT_EQ(got.size(), 1u);
  auto r = elsewhere->value()->read(200);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

uint64_t counterPackets(const Netns& ns, const std::string& prefix) {
  const auto r = ns.exec("nft list chain inet bhtest forward");
  std::smatch m;
  const std::regex re("counter packets ([0-9]+) bytes [0-9]+ log prefix \"" + prefix + "\"");
  if (!std::regex_search(r.out, m, re)) return ~uint64_t{0};
  return std::stoull(m[1]);
}

TEST_F(NflogTest, OverrunIsCountedAndSequenceGapsAccountForEveryLostEvent) {
  NflogReader::Options o;
  o.rcvBufBytes = 4096;  // tiny: a burst that is not read overflows it
  openReader(o);
  const uint64_t before = counterPackets(topo_->hv(), "bh:audit:default");
  ASSERT_NE(before, ~uint64_t{0});
  // 2000 echo requests in a few milliseconds (preload) while nobody reads.
  work().exec("ping -q -l 2000 -c 2000 -W 0.1 -s 16 198.51.100.10");
  const uint64_t logged = counterPackets(topo_->hv(), "bh:audit:default") - before;
  std::vector<LoggedPacket> all;
  for (int i = 0; i < 20; ++i) {
    auto got = reader_->read(100);
    ASSERT_TRUE(got.ok()) << got.error().describe();
    if (got->empty()) break;
    for (auto& p : *got)
      all.push_back(std::move(p));
  }
  const NflogStats mid = reader_->stats();
  // A gap after the last event received shows only with the next event.
  work().exec("echo x | socat -u - UDP4:198.51.100.10:9999");
  const auto after =
      collect(1, 2000, [](const LoggedPacket& p) { return p.prefix == "bh:log:flood"; });
  ASSERT_EQ(after.size(), 1u) << "the reader keeps working after an overrun";
  ASSERT_TRUE(after.back().seq.has_value());
  const NflogStats s = reader_->stats();
  std::cout << "burst: logged " << logged << "; received " << mid.packets << " (lostKernel "
            << mid.lostKernel << " before the next event), lostOverrun " << s.lostOverrun
            << "; next event seq " << *after.back().seq << ", lostKernel then " << s.lostKernel
            << "\n";
  EXPECT_EQ(logged, 2000u);
  EXPECT_GE(s.lostOverrun, 1u) << "a 4 KiB buffer should have overflowed";
  EXPECT_GT(s.lostKernel, 0u);
  EXPECT_EQ(s.malformed, 0u);
  // Every event logged since BIND was received or counted lost.
  EXPECT_EQ(*after.back().seq, logged);
  EXPECT_EQ(s.packets + s.lostKernel, logged + 1);
}

TEST_F(NflogTest, DefaultBufferAbsorbsABurstOfFiveThousand) {
  openReader();  // 8 MiB receive buffer, queue threshold 1
  const uint64_t before = counterPackets(topo_->hv(), "bh:audit:default");
  work().exec("ping -q -l 5000 -c 5000 -W 0.1 -s 16 198.51.100.10");
  const uint64_t logged = counterPackets(topo_->hv(), "bh:audit:default") - before;
  const auto start = std::chrono::steady_clock::now();
  const auto all = collect(logged, 5000, [](const LoggedPacket&) { return true; });
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const NflogStats s = reader_->stats();
  std::cout << "burst of " << logged << ": received " << all.size() << " in " << ms
            << " ms, lostKernel " << s.lostKernel << ", lostOverrun " << s.lostOverrun << "\n";
  EXPECT_EQ(all.size(), logged);
  EXPECT_EQ(s.lostKernel, 0u);
  EXPECT_EQ(s.lostOverrun, 0u);
}

}  // namespace
}  // namespace bulkhead::flows
