// The pre-conntrack chain, unregistered-interface patterns and per-interface
// log budgets, as the compiler builds them and the nft layer encodes them.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <sstream>
#include <vector>

#include "bulkhead/agent/config.h"
#include "bulkhead/cli/commands.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/incremental.h"
#include "bulkhead/compiler/render.h"
#include "bulkhead/flows/event.h"
#include "bulkhead/nft/batch.h"
#include "bulkhead/nft/exprs.h"
#include "bulkhead/nft/objects.h"
#include "bulkhead/nft/writer.h"

namespace bulkhead::compiler {
namespace {

using namespace policy;

Workload workload(const std::string& name, const std::string& app, std::string iface,
                  std::vector<std::string> addrs) {
  Workload w;
  w.name = name;
  w.app = app;
  w.interfaces = {std::move(iface)};
  for (const auto& a : addrs)
    w.addresses.push_back(*IpAddr::parse(a));
  return w;
}

Bundle bundle() {
  Bundle b;
  App web;
  web.name = "web";
  b.apps.push_back(web);
  b.workloads.push_back(workload("a-1", "web", "vwa", {"192.0.2.5", "2001:db8:5::5"}));
  b.workloads.push_back(workload("b-1", "web", "vwb", {"192.0.2.6"}));
  return b;
}

std::vector<std::string> rules(const Ruleset& rs, const std::string& chain) {
  std::vector<std::string> out;
  const Chain* c = rs.findChain(chain);
  if (!c) return {"<no chain " + chain + ">"};
  for (const auto& r : c->rules)
    out.push_back(renderRule(r));
  return out;
}

const std::string kBudget =
    "update @log_budget { iifname limit rate 100/second burst 200 packets }";

TEST(IsolationCompile, PreroutingRunsBeforeConntrackAndFailsClosedOnPatterns) {
  CompileOptions o;
  o.workloadInterfacePatterns = {"vw*", "tap0"};
  auto rs = compile(bundle(), {}, o);
  ASSERT_TRUE(rs.ok()) << rs.error().describe();
  const Chain* pre = rs->findChain(kPreroutingChain);
  ASSERT_TRUE(pre && pre->base);
  EXPECT_EQ(pre->base->hook, BaseHook::Hook::kPrerouting);
  EXPECT_EQ(pre->base->priority, -300);  // raw: conntrack is -200
  EXPECT_EQ(rules(*rs, kPreroutingChain),
            (std::vector<std::string>{
                "iifname . ip saddr @src4 accept comment \"own source\"",
                "iifname . ip6 saddr @src6 accept comment \"own source\"",
                "iifname @registered goto workload_raw",
                "iifname \"vw*\" " + kBudget +
                    " log prefix \"bh:unregistered:unregistered\" group 1771 comment "
                    "\"unregistered\"",
                "iifname \"vw*\" counter drop comment \"unregistered\"",
                "iifname \"tap0\" " + kBudget +
                    " log prefix \"bh:unregistered:unregistered\" group 1771 comment "
                    "\"unregistered\"",
                "iifname \"tap0\" counter drop comment \"unregistered\""}));
  // Without patterns, nothing but the registered interfaces is touched.
  auto plain = compile(bundle(), {});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(rules(*plain, kPreroutingChain),
            (std::vector<std::string>{"iifname . ip saddr @src4 accept comment \"own source\"",
                                      "iifname . ip6 saddr @src6 accept comment \"own source\"",
                                      "iifname @registered goto workload_raw"}));
}

TEST(IsolationCompile, RawChainQuarantinesThenExemptsThenDropsSpoofs) {
  auto rs = compile(bundle(), {});
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(rules(*rs, kRawChain),
            (std::vector<std::string>{
                "iifname @quarantine " + kBudget +
                    " log prefix \"bh:quarantine\" group 1771 comment \"quarantine\"",
                "iifname @quarantine counter drop comment \"quarantine\"",
                "ip6 saddr fe80::/10 icmpv6 type 130-143 accept comment \"ipv6 neighbour "
                "discovery and mld\"",
                "ip6 saddr :: icmpv6 type 130-143 accept comment \"ipv6 neighbour discovery and "
                "mld\"",
                "ip6 saddr fe80::/10 udp sport 546 udp dport 547 accept comment \"dhcpv6\"",
                "ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept comment \"dhcp\"",
                "iifname . ip saddr != @src4 " + kBudget +
                    " log prefix \"bh:spoof\" group 1771 comment \"spoof\"",
                "iifname . ip saddr != @src4 counter drop comment \"spoof\"",
                "iifname . ip6 saddr != @src6 " + kBudget +
                    " log prefix \"bh:spoof\" group 1771 comment \"spoof\"",
                "iifname . ip6 saddr != @src6 counter drop comment \"spoof\""}));
  // DHCP exemptions only when the host serves DHCP.
  CompileOptions noDhcp;
  noDhcp.allowDhcpToHost = false;
  auto rs2 = compile(bundle(), {}, noDhcp);
  ASSERT_TRUE(rs2.ok());
  for (const auto& r : rules(*rs2, kRawChain))
    EXPECT_EQ(r.find("udp"), std::string::npos) << r;
  // After conntrack, the workload path keeps only the invalid drop.
  EXPECT_EQ(rules(*rs, kPreChain), (std::vector<std::string>{"ct state invalid counter drop"}));
  // Established first in both filter chains, then dispatch.
  for (const char* base : {kForwardChain, kInputChain})
    EXPECT_EQ(rules(*rs, base).front(), "ct state established,related accept") << base;
}

TEST(IsolationCompile, RegisteredSetAndLogBudgetSet) {
  auto rs = compile(bundle(), {workload("c-1", "web", "vwc", {"192.0.2.7"})});
  ASSERT_TRUE(rs.ok());
  const Set* reg = rs->findSet(kRegisteredSet);
  ASSERT_TRUE(reg);
  std::vector<std::string> names;
  for (const auto& e : reg->elements)
    names.push_back(renderElement(*reg, e));
  EXPECT_EQ(names, (std::vector<std::string>{"\"vwa\"", "\"vwb\"", "\"vwc\""}));
  const Set* budget = rs->findSet(kLogBudgetSet);
  ASSERT_TRUE(budget);
  EXPECT_TRUE(budget->dynamic);
  EXPECT_EQ(budget->timeoutSeconds, kLogBudgetTimeoutSeconds);
  EXPECT_EQ(budget->size, kLogBudgetSize);
  EXPECT_TRUE(budget->elements.empty());
  EXPECT_NE(renderRuleset(*rs).find("\tset log_budget {\n\t\ttype ifname\n\t\tsize 65536\n\t\t"
                                    "flags dynamic,timeout\n\t\ttimeout 1m\n"),
            std::string::npos)
      << renderRuleset(*rs);
  // Every log rule of the table spends the per-interface budget; none keeps
  // a plain (shared) limit.
  for (const auto& c : rs->chains)
    for (const auto& r : c.rules) {
      const std::string text = renderRule(r);
      const bool logs =
          text.find(" log ") != std::string::npos || text.find("limit rate") != std::string::npos;
      if (logs) {
        EXPECT_NE(text.find(kBudget), std::string::npos) << text;
      }
    }
}

// The writer creates these first: every workload change touches some of
// them, and the kernel finds a set by walking the table's list of sets.
TEST(IsolationCompile, TheWorkloadSetsAreTheOnesLookedUpOften) {
  auto rs = compile(bundle(), {workload("c-1", "web", "vwc", {"192.0.2.7"})});
  ASSERT_TRUE(rs.ok());
  std::vector<std::string> often;
  for (const auto& s : rs->sets)
    if (s.lookedUpOften) often.push_back(s.name);
  EXPECT_EQ(often, (std::vector<std::string>{kDispatchMap, kQuarantineSet, kRegisteredSet,
                                             kSource4Set, kSource6Set, kStagedSet}));
}

TEST(IsolationCompile, IncrementalKeepsTheRegisteredSetLikeAFullCompile) {
  CompileOptions o;
  o.workloadInterfacePatterns = {"vw*"};
  IncrementalCompiler inc(o);
  ASSERT_TRUE(inc.reset(bundle(), {}).ok());
  auto d = inc.upsertWorkload(workload("c-1", "web", "vwc", {"192.0.2.7"}));
  ASSERT_TRUE(d.ok()) << d.error().describe();
  bool added = false;
  for (const auto& c : d->elements)
    if (c.set == kRegisteredSet) added = c.add.size() == 1 && c.remove.empty();
  EXPECT_TRUE(added) << "a staged interface is registered at once";
  // Staged or not, the interface is in @registered as a full compile has it.
  const Set* reg = inc.ruleset().findSet(kRegisteredSet);
  auto full = compile(bundle(), {workload("c-1", "web", "vwc", {"192.0.2.7"})}, o);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(reg->elements, full->findSet(kRegisteredSet)->elements);
  inc.promoteStaged(100);
  EXPECT_EQ(renderRuleset(inc.ruleset()), renderRuleset(*full));
  ASSERT_TRUE(inc.removeWorkload("c-1").ok());
  auto less = compile(bundle(), {}, o);
  EXPECT_EQ(renderRuleset(inc.ruleset()), renderRuleset(*less));
}

TEST(IsolationCompile, InterfacePatternsAreValidated) {
  for (const char* good : {"veth*", "vnet*", "tap*", "eth0", "a", "x-y_z.1*", "abcdefghijklmn*"})
    EXPECT_TRUE(validateInterfacePattern(good).ok()) << good;
  for (const char* bad : {"", "*", "ve*th", "veth**", "v eth*", "veth\"*", "abcdefghijklmno*",
                          "abcdefghijklmnop", "v/eth", "vé*"})
    EXPECT_FALSE(validateInterfacePattern(bad).ok()) << bad;
}

TEST(IsolationCompile, AgentFlagAndConfigKey) {
  auto c =
      agent::parseAgentArgs({"--workload-interfaces", "veth*,tap*", "--workload-interfaces=vnet0"});
  ASSERT_TRUE(c.ok()) << c.error().describe();
  EXPECT_EQ(c->workloadInterfaces, (std::vector<std::string>{"veth*", "tap*", "vnet0"}));
  EXPECT_TRUE(agent::parseAgentArgs({}).value().workloadInterfaces.empty());
  for (const char* bad : {"veth*,", "ve*th", ",tap*", "v;rm*", "averyveryverylongname*"}) {
    auto r = agent::parseAgentArgs({"--workload-interfaces", bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("--workload-interfaces"), std::string::npos)
        << r.error().message;
  }
}

TEST(IsolationCompile, PlanTakesTheAgentsPatterns) {
  const std::string demo = std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo";
  std::ostringstream out, err;
  ASSERT_EQ(cli::run({"plan", demo, "--workload-interfaces", "veth*,tap*"}, out, err), 0)
      << err.str();
  EXPECT_NE(out.str().find("iifname \"veth*\" counter drop comment \"unregistered\""),
            std::string::npos);
  EXPECT_NE(out.str().find("iifname \"tap*\" counter drop comment \"unregistered\""),
            std::string::npos);
  std::ostringstream out2, err2;
  EXPECT_EQ(cli::run({"plan", demo, "--workload-interfaces", "ve*th"}, out2, err2), 2);
  EXPECT_NE(err2.str().find("--workload-interfaces"), std::string::npos) << err2.str();
}

TEST(IsolationCompile, UnregisteredIsAFlowAction) {
  auto p = flows::parsePrefix("bh:unregistered:unregistered");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->action, flows::FlowAction::kUnregistered);
  EXPECT_EQ(p->reason, "unregistered");
  EXPECT_EQ(logPrefix("unregistered", "unregistered"), "bh:unregistered:unregistered");
}

// --- the nft encoding ------------------------------------------------------------

std::string hex(const void* data, uint32_t len) {
  std::string s;
  char b[3];
  for (uint32_t i = 0; i < len; ++i)
    snprintf(b, sizeof b, "%02x", static_cast<const uint8_t*>(data)[i]), s += b;
  return s;
}

// name and the attributes that matter, per expression, after a round trip
// through a netlink message.
std::vector<std::string> encoded(const Expr& e, const nft::SetIds& ids = {}) {
  auto r = nft::makeRule("bh", "c", Rule{{e}, ""}, ids);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
  if (!r.ok()) return {};
  std::vector<char> buf(8192);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, NFPROTO_INET, 0, 1);
  nftnl_rule_nlmsg_build_payload(nlh, r->get());
  nft::RulePtr parsed(nftnl_rule_alloc());
  EXPECT_EQ(nftnl_rule_nlmsg_parse(nlh, parsed.get()), 0);
  std::vector<std::string> out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(parsed.get());
  for (nftnl_expr* x = nftnl_expr_iter_next(it); x; x = nftnl_expr_iter_next(it)) {
    const std::string name = nftnl_expr_get_str(x, NFTNL_EXPR_NAME);
    std::string s = name;
    uint32_t len = 0;
    if (name == "cmp") {
      const void* d = nftnl_expr_get(x, NFTNL_EXPR_CMP_DATA, &len);
      s += " " + hex(d, len);
    } else if (name == "bitwise") {
      const void* d = nftnl_expr_get(x, NFTNL_EXPR_BITWISE_MASK, &len);
      s += " mask=" + hex(d, len);
    } else if (name == "payload") {
      s += " off=" + std::to_string(nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_OFFSET)) +
           " len=" + std::to_string(nftnl_expr_get_u32(x, NFTNL_EXPR_PAYLOAD_LEN));
    } else if (name == "dynset") {
      s += " op=" + std::to_string(nftnl_expr_get_u32(x, NFTNL_EXPR_DYNSET_OP)) +
           " set=" + nftnl_expr_get_str(x, NFTNL_EXPR_DYNSET_SET_NAME) +
           " id=" + std::to_string(nftnl_expr_get_u32(x, NFTNL_EXPR_DYNSET_SET_ID));
      // The nested expression: one limit, per element.
      auto* inner = static_cast<nftnl_expr*>(
          const_cast<void*>(nftnl_expr_get(x, NFTNL_EXPR_DYNSET_EXPR, &len)));
      if (inner) {
        s += std::string(" [") + nftnl_expr_get_str(inner, NFTNL_EXPR_NAME) +
             " rate=" + std::to_string(nftnl_expr_get_u64(inner, NFTNL_EXPR_LIMIT_RATE)) +
             " burst=" + std::to_string(nftnl_expr_get_u32(inner, NFTNL_EXPR_LIMIT_BURST)) + "]";
      }
    }
    out.push_back(s);
  }
  nftnl_expr_iter_destroy(it);
  return out;
}

TEST(IsolationEncoding, IfnamePatternComparesThePrefixBytesOnly) {
  EXPECT_EQ(encoded(expr::IfnameMatch{"veth*"}),
            (std::vector<std::string>{"meta", "cmp 76657468"}));
  EXPECT_EQ(encoded(expr::IfnameMatch{"tap0"}),
            (std::vector<std::string>{"meta", "cmp 74617030000000000000000000000000"}));
  EXPECT_FALSE(nft::makeRule("bh", "c", Rule{{expr::IfnameMatch{"*"}}, ""}, {}).ok());
}

TEST(IsolationEncoding, SourcePrefixMasksLikeNft) {
  EXPECT_EQ(encoded(expr::SaddrPrefix{*IpAddr::parse("fe80::"), 10}),
            (std::vector<std::string>{"meta", "cmp 0a", "payload off=8 len=16",
                                      "bitwise mask=ffc00000000000000000000000000000",
                                      "cmp fe800000000000000000000000000000"}));
  EXPECT_EQ(encoded(expr::SaddrPrefix{*IpAddr::parse("0.0.0.0"), 32}),
            (std::vector<std::string>{"meta", "cmp 02", "payload off=12 len=4", "cmp 00000000"}));
}

TEST(IsolationEncoding, MeterIsADynsetUpdateWithANestedLimit) {
  EXPECT_EQ(
      encoded(expr::Meter{PacketField::kIifname, "log_budget", 100, 200}, {{"log_budget", 9}}),
      (std::vector<std::string>{"meta", "dynset op=" + std::to_string(NFT_DYNSET_OP_UPDATE) +
                                            " set=log_budget id=9 [limit rate=100 burst=200]"}));
}

TEST(IsolationEncoding, DynamicSetFlagsTimeoutAndSize) {
  Set s{kLogBudgetSet, {KeyField::kIfname}, false, false, "", {}};
  s.dynamic = true;
  s.timeoutSeconds = 60;
  s.size = 65536;
  auto built = nft::makeSet("bh", s, 3);
  ASSERT_TRUE(built.ok());
  std::vector<char> buf(8192);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWSET, NFPROTO_INET, 0, 1);
  nftnl_set_nlmsg_build_payload(nlh, built->get());
  nft::SetPtr parsed(nftnl_set_alloc());
  ASSERT_EQ(nftnl_set_nlmsg_parse(nlh, parsed.get()), 0);
  EXPECT_EQ(nftnl_set_get_u32(parsed.get(), NFTNL_SET_FLAGS),
            uint32_t(NFT_SET_EVAL | NFT_SET_TIMEOUT));
  EXPECT_EQ(nftnl_set_get_u64(parsed.get(), NFTNL_SET_TIMEOUT), 60000u);
  EXPECT_EQ(nftnl_set_get_u32(parsed.get(), NFTNL_SET_DESC_SIZE), 65536u);
  // A changed budget declaration is a different set: the diff re-creates it.
  Set other = s;
  other.timeoutSeconds = 30;
  EXPECT_FALSE(s.sameDeclaration(other));
}

TEST(IsolationEncoding, PreroutingBaseChainHooksAtRawPriority) {
  Chain c{kPreroutingChain, BaseHook{BaseHook::Hook::kPrerouting, -300}, {}};
  nft::ChainPtr built = nft::makeChain("bh", c);
  ASSERT_TRUE(built);
  EXPECT_EQ(nftnl_chain_get_u32(built.get(), NFTNL_CHAIN_HOOKNUM), uint32_t(NF_INET_PRE_ROUTING));
  EXPECT_EQ(nftnl_chain_get_s32(built.get(), NFTNL_CHAIN_PRIO), -300);
  Ruleset rs;
  rs.chains = {c};
  EXPECT_NE(renderRuleset(rs).find("type filter hook prerouting priority raw; policy accept;"),
            std::string::npos);
}

}  // namespace
}  // namespace bulkhead::compiler
