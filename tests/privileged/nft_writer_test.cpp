// The netlink writer against the real kernel, inside throwaway namespaces
// (support/netns.h); the root namespace's ruleset is never touched.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "bulkhead/compiler/diff.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/writer.h"
#include "support/netns.h"

namespace bulkhead::nft {
namespace {

using compiler::Chain;
using compiler::Element;
using compiler::KeyBuilder;
using compiler::KeyField;
using compiler::PacketField;
using compiler::Rule;
using compiler::Ruleset;
using compiler::Set;
using compiler::Verdict;
using testing::Netns;
namespace ex = compiler::expr;

constexpr const char* kTable = "bhtest";

policy::IpAddr ip(const char* text) {
  return *policy::IpAddr::parse(text);
}

Element range4(const char* lo, const char* hi, uint8_t proto, uint16_t plo, uint16_t phi) {
  Element e;
  e.key = KeyBuilder().addr(ip(lo)).proto(proto).port(plo).build();
  e.keyEnd = KeyBuilder().addr(ip(hi)).proto(proto).port(phi).build();
  return e;
}

Element range6(const char* lo, const char* hi, uint8_t proto, uint16_t plo, uint16_t phi) {
  return range4(lo, hi, proto, plo, phi);  // KeyBuilder takes either family
}

Element ifname(const char* name, Verdict v = {}) {
  Element e;
  e.key = KeyBuilder().ifname(name).build();
  e.keyEnd = e.key;
  e.verdict = std::move(v);
  return e;
}

Element ifnameAddr(const char* name, const char* lo, const char* hi) {
  Element e;
  e.key = KeyBuilder().ifname(name).addr(ip(lo)).build();
  e.keyEnd = KeyBuilder().ifname(name).addr(ip(hi)).build();
  return e;
}

Verdict jump(const std::string& chain) {
  return Verdict{Verdict::Kind::kJump, chain};
}
ex::VerdictStatement verdict(Verdict::Kind kind, std::string chain = "") {
  return ex::VerdictStatement{Verdict{kind, std::move(chain)}};
}

Rule rule(std::vector<compiler::Expr> exprs, std::string comment = "") {
  return Rule{std::move(exprs), std::move(comment)};
}

// A table with every expression kind, interval concat sets, a verdict map and
// two base chains.
Ruleset sample() {
  Ruleset rs;
  rs.table = kTable;
  Set a4{"a4",         {KeyField::kIpv4Addr, KeyField::kInetProto, KeyField::kInetService},
         true,         false,
         "app a ipv4", {}};
  a4.elements = {range4("192.0.2.0", "192.0.2.255", 6, 80, 90),
                 range4("198.51.100.7", "198.51.100.7", 17, 53, 53)};
  Set a6{"a6", {KeyField::kIpv6Addr, KeyField::kInetProto, KeyField::kInetService}, true, false, "",
         {}};
  a6.elements = {range6("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", 6, 443, 443)};
  Set dispatch{"dispatch", {KeyField::kIfname}, false, true, "", {}};
  dispatch.elements = {ifname("veth-a", jump("app_a"))};
  Set quarantine{"quarantine", {KeyField::kIfname}, false, false, "", {}};
  quarantine.elements = {ifname("veth-q")};
  Set src6{"src6", {KeyField::kIfname, KeyField::kIpv6Addr}, true, false, "", {}};
  src6.elements = {ifnameAddr("veth-a", "2001:db8:1::10", "2001:db8:1::10")};
  rs.sets = {a4, a6, dispatch, quarantine, src6};  // sorted by name

  Chain app{"app_a", std::nullopt, {}};
  app.rules = {
      rule({ex::CtState{ex::CtState::kEstablished | ex::CtState::kRelated},
            verdict(Verdict::Kind::kAccept)}),
      rule({ex::Lookup{
                {PacketField::kIpDaddr, PacketField::kL4proto, PacketField::kThDport}, "a4", false},
            ex::Counter{}, verdict(Verdict::Kind::kAccept)},
           "allow a4"),
      rule(
          {ex::Lookup{
               {PacketField::kIp6Daddr, PacketField::kL4proto, PacketField::kThDport}, "a6", false},
           verdict(Verdict::Kind::kAccept)}),
      rule({ex::MetaNfproto{policy::Family::kIpv6}, ex::IcmpV6TypeRange{133, 137},
            verdict(Verdict::Kind::kAccept)}),
      rule({ex::UdpPorts{68, 67}, verdict(Verdict::Kind::kAccept)}),
      rule({ex::UdpPorts{0, 547}, verdict(Verdict::Kind::kAccept)}),
      rule({ex::Limit{100, 200}, ex::Log{"bh:deny:default", 1771}}),
      rule({ex::MetaL4proto{6}, ex::Counter{}, ex::Reject{ex::Reject::Kind::kTcpReset}}),
      rule({ex::Counter{}, ex::Reject{ex::Reject::Kind::kIcmpxAdminProhibited}}),
  };
  Chain fwd{"forward", compiler::BaseHook{compiler::BaseHook::Hook::kForward, 0}, {}};
  fwd.rules = {
      rule({ex::Lookup{{PacketField::kIifname}, "quarantine", false},
            verdict(Verdict::Kind::kDrop)}),
      rule({ex::Lookup{{PacketField::kIifname, PacketField::kIp6Saddr}, "src6", true},
            verdict(Verdict::Kind::kDrop)},
           "spoof"),
      rule({ex::Vmap{{PacketField::kIifname}, "dispatch"}}),
  };
  Chain input{"input", compiler::BaseHook{compiler::BaseHook::Hook::kInput, 0}, {}};
  input.rules = {rule({ex::Lookup{{PacketField::kIifname}, "quarantine", false},
                       verdict(Verdict::Kind::kGoto, "app_a")}),
                 rule({ex::MetaNfproto{policy::Family::kIpv4}, verdict(Verdict::Kind::kReturn)})};
  rs.chains = {app, fwd, input};
  return rs;
}

class NftWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::skipUnlessCi(testing::havePrivileges(), "needs root and ip/nft")) GTEST_SKIP();
    testing::sweepStaleNamespaces();
    ns_ = std::make_unique<Netns>();
    // Someone else's table on the same hook, which must survive everything.
    auto r = ns_->exec(
        "nft -f - <<'EOF'\n"
        "table inet other {\n"
        "  set keep { type ipv4_addr; elements = { 203.0.113.9 } }\n"
        "  chain other_forward { type filter hook forward priority 10; policy accept;\n"
        "    ip saddr @keep counter accept\n"
        "  }\n"
        "}\n"
        "EOF");
    ASSERT_TRUE(r.ok()) << r.out;
    otherBefore_ = list("other");
  }

  void TearDown() override {
    if (ns_) {
      EXPECT_EQ(list("other"), otherBefore_) << "table inet other changed";
    }
  }

  std::string list(const std::string& table) const {
    return ns_->exec("nft list table inet " + table).out;
  }

  // Runs fn with a kernel opened inside the namespace (on a thread that has
  // entered it: setns only moves the calling thread).
  void withKernel(const std::function<void(MnlKernel&)>& fn) {
    ns_->run([&] {
      auto k = MnlKernel::open();
      ASSERT_TRUE(k.ok()) << k.error().describe();
      fn(**k);
    });
  }

  Status replace(const Ruleset& rs) {
    Status st;
    withKernel([&](MnlKernel& k) { st = Writer(k).replace(rs); });
    return st;
  }

  std::unique_ptr<Netns> ns_;
  std::string otherBefore_;
};

void expectContains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "missing: " << part << "\nin:\n" << text;
}

TEST_F(NftWriterTest, ReplaceWritesEveryKind) {
  Status st = replace(sample());
  ASSERT_TRUE(st.ok()) << st.error().describe();
  const std::string out = list(kTable);
  for (const char* part : {
           "type ipv4_addr . inet_proto . inet_service",
           "flags interval",
           "comment \"app a ipv4\"",
           "192.0.2.0/24 . tcp . 80-90",
           "198.51.100.7 . udp . 53",
           "type ipv6_addr . inet_proto . inet_service",
           "2001:db8::/64 . tcp . 443",
           "type ifname : verdict",
           "\"veth-a\" : jump app_a",
           "type ifname . ipv6_addr",
           "\"veth-a\" . 2001:db8:1::10",
           "ct state established,related accept",
           "ip daddr . meta l4proto . th dport @a4 counter packets 0 bytes 0 accept comment "
           "\"allow a4\"",
           "ip6 daddr . meta l4proto . th dport @a6 accept",
           "icmpv6 type 133-137 accept",
           "udp sport 68 udp dport 67 accept",
           "udp dport 547 accept",
           "limit rate 100/second burst 200 packets log prefix \"bh:deny:default\" group 1771",
           "meta l4proto tcp counter packets 0 bytes 0 reject with tcp reset",
           "reject with icmpx admin-prohibited",
           "type filter hook forward priority filter; policy accept;",
           "type filter hook input priority filter; policy accept;",
           "iifname @quarantine drop",
           "iifname . ip6 saddr != @src6 drop comment \"spoof\"",
           "iifname vmap @dispatch",
           "iifname @quarantine goto app_a",
           "meta nfproto ipv4 return",
       }) {
    expectContains(out, part);
  }
  // What nft prints, nft accepts again (dry run: nothing is committed).
  auto check = ns_->exec("nft list table inet " + std::string(kTable) +
                         " > /tmp/bhcheck-$$.nft && nft -c -f /tmp/bhcheck-$$.nft; "
                         "rc=$?; rm -f /tmp/bhcheck-$$.nft; exit $rc");
  EXPECT_TRUE(check.ok()) << check.out;

  // A second replace swaps the table atomically, contents included.
  Ruleset smaller = sample();
  smaller.sets[0].elements.pop_back();
  st = replace(smaller);
  ASSERT_TRUE(st.ok()) << st.error().describe();
  EXPECT_EQ(list(kTable).find("198.51.100.7"), std::string::npos);
}

TEST_F(NftWriterTest, ApplyChangesElementsAndOneChain) {
  const Ruleset before = sample();
  ASSERT_TRUE(replace(before).ok());
  Ruleset after = before;
  after.sets[0].elements = {range4("192.0.2.0", "192.0.2.255", 6, 80, 90),
                            range4("203.0.113.0", "203.0.113.127", 6, 5432, 5432)};
  after.sets[2].elements.push_back(ifname("veth-b", jump("app_a")));  // dispatch
  after.chains[0].rules.pop_back();  // app_a loses its icmpx reject
  const compiler::RulesetDiff diff = compiler::diffRulesets(before, after);
  ASSERT_EQ(diff.elements.size(), 2u);
  ASSERT_EQ(diff.replaceChains.size(), 1u);
  ASSERT_TRUE(diff.addSets.empty());

  Status st;
  // Without the target ruleset: element layouts are inferred.
  withKernel([&](MnlKernel& k) { st = Writer(k).apply(diff); });
  ASSERT_TRUE(st.ok()) << st.error().describe();
  const std::string out = list(kTable);
  expectContains(out, "203.0.113.0/25 . tcp . 5432");
  expectContains(out, "\"veth-b\" : jump app_a");
  EXPECT_EQ(out.find("198.51.100.7"), std::string::npos) << out;
  EXPECT_EQ(out.find("icmpx"), std::string::npos) << out;
  expectContains(out, "reject with tcp reset");

  // And back, through sync() (table present: a diff), with the target.
  withKernel([&](MnlKernel& k) { st = Writer(k).sync(&after, before); });
  ASSERT_TRUE(st.ok()) << st.error().describe();
  const std::string back = list(kTable);
  expectContains(back, "198.51.100.7 . udp . 53");
  expectContains(back, "reject with icmpx admin-prohibited");
  EXPECT_EQ(back.find("veth-b"), std::string::npos) << back;
}

TEST_F(NftWriterTest, RefusalNamesObjectAndKeepsOldRuleset) {
  const Ruleset base = sample();
  ASSERT_TRUE(replace(base).ok());
  const std::string before = list(kTable);

  // A valid element change first, then a rule jumping to a missing chain.
  Ruleset bad = base;
  bad.sets[0].elements.push_back(range4("203.0.113.0", "203.0.113.255", 6, 22, 22));
  bad.chains[0].rules.push_back(rule({verdict(Verdict::Kind::kJump, "no_such_chain")}));
  Status st;
  withKernel([&](MnlKernel& k) { st = Writer(k).apply(compiler::diffRulesets(base, bad), bad); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kKernel);
  EXPECT_EQ(st.error().sysErrno, ENOENT) << st.error().describe();
  expectContains(st.error().message, "kernel refused add rule 10 in chain inet bhtest app_a");
  EXPECT_EQ(list(kTable), before);

  // A duplicate element: EXCL makes the kernel say so.
  compiler::RulesetDiff dup;
  dup.table = kTable;
  dup.elements.push_back({"a4", {}, {base.sets[0].elements[0]}});
  withKernel([&](MnlKernel& k) { st = Writer(k).apply(dup, base); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().sysErrno, EEXIST) << st.error().describe();
  expectContains(st.error().message, "to set inet bhtest a4");
  EXPECT_EQ(list(kTable), before);

  // A failed replace leaves the old table whole too.
  Ruleset badReplace = base;
  badReplace.chains[1].rules.push_back(rule({verdict(Verdict::Kind::kGoto, "nowhere")}));
  st = replace(badReplace);
  ASSERT_FALSE(st.ok());
  expectContains(st.error().message, "chain inet bhtest forward");
  EXPECT_EQ(list(kTable), before);
}

TEST_F(NftWriterTest, SyncRecreatesDeletedTable) {
  const Ruleset rs = sample();
  ASSERT_TRUE(replace(rs).ok());
  const std::string before = list(kTable);
  ASSERT_TRUE(ns_->exec("nft delete table inet " + std::string(kTable)).ok());

  Status st;
  bool existed = true;
  withKernel([&](MnlKernel& k) {
    auto e = k.tableExists(kTable);
    ASSERT_TRUE(e.ok()) << e.error().describe();
    existed = *e;
    st = Writer(k).sync(&rs, rs);
    auto again = k.tableExists(kTable);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(*again);
  });
  EXPECT_FALSE(existed);
  ASSERT_TRUE(st.ok()) << st.error().describe();
  EXPECT_EQ(list(kTable), before);

  // Unknown previous state: a full replace, idempotent.
  withKernel([&](MnlKernel& k) { st = Writer(k).sync(nullptr, rs); });
  ASSERT_TRUE(st.ok()) << st.error().describe();
  EXPECT_EQ(list(kTable), before);
}

// The ruleset generation: bumped by every commit in the namespace, ours or
// anyone's, to any table; reading it (or listing) does not bump it.
TEST_F(NftWriterTest, GenerationCountsEveryCommitInTheNamespace) {
  const Ruleset rs = sample();
  uint32_t afterOurs = 0;
  withKernel([&](MnlKernel& k) {
    auto g0 = k.generation();
    ASSERT_TRUE(g0.ok()) << g0.error().describe();
    ASSERT_TRUE(Writer(k).replace(rs).ok());
    auto g1 = k.generation();
    ASSERT_TRUE(g1.ok());
    EXPECT_NE(*g1, *g0);
    auto again = k.generation();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *g1);
    afterOurs = *g1;
  });
  (void)list(kTable);
  ASSERT_TRUE(
      ns_->exec("nft add table inet bh_gen_other && nft delete table inet bh_gen_other").ok());
  withKernel([&](MnlKernel& k) {
    auto g = k.generation();
    ASSERT_TRUE(g.ok());
    EXPECT_NE(*g, afterOurs) << "another table's commits bump it too";
  });
}

TEST_F(NftWriterTest, LargeSetsAreSplitAndLoaded) {
  Ruleset rs = sample();
  auto& a6 = rs.sets[1].elements;  // ipv6_addr . inet_proto . inet_service
  a6.clear();
  for (uint32_t i = 0; i < 40000; ++i) {
    policy::IpAddr a = ip("2001:db8:40::");
    a.bytes[14] = uint8_t(i >> 8), a.bytes[15] = uint8_t(i);
    a.bytes[13] = uint8_t(i >> 16);
    Element e;
    e.key = KeyBuilder().addr(a).proto(6).port(443).build();
    e.keyEnd = e.key;
    a6.push_back(e);
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status st = replace(rs);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(st.ok()) << st.error().describe();
  std::cout << "replace with 40k elements: " << secs << " s\n";
  EXPECT_LT(secs, 5.0);
  auto count = ns_->exec("nft list set inet " + std::string(kTable) +
                         " a6 | grep -o '\\. tcp \\. 443' | wc -l");
  EXPECT_EQ(std::stoi(count.out), 40000) << count.out;
}

}  // namespace
}  // namespace bulkhead::nft
