// The nft layer without root: batches are built, handed to a recording
// kernel (tests/support/fake_kernel.h), then decoded with libmnl/libnftnl's own parsers.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstring>
#include <string>
#include <vector>

#include "bulkhead/compiler/diff.h"
#include "bulkhead/nft/batch.h"
#include "bulkhead/nft/objects.h"
#include "bulkhead/nft/writer.h"
#include "support/fake_kernel.h"

namespace bulkhead::nft {
namespace {

using compiler::Chain;
using compiler::Element;
using compiler::KeyBuilder;
using compiler::KeyField;
using compiler::PacketField;
using compiler::Rule;
using compiler::Ruleset;
using compiler::RulesetDiff;
using compiler::Set;
using compiler::Verdict;
namespace ex = compiler::expr;

// The unit tests' kernel, recording each batch; "bh" exists from the start.
struct RecordingKernel : testing::FakeKernel {
  RecordingKernel() : FakeKernel("bh") {
    recordBatches = true;
    content.exists = true;
    seq = 5000;
  }
};

// One decoded message of a batch.
struct Msg {
  uint16_t type = 0;  // NFT_MSG_* or NFNL_MSG_BATCH_*
  bool batchControl = false;
  uint16_t flags = 0;
  uint32_t seq = 0;
  uint16_t resId = 0;
  std::string name;   // object name: table / chain / set
  std::string chain;  // rules: their chain
  const nlmsghdr* nlh = nullptr;
};

// libnftnl 1.2.4 numbers the element nests it builds 1, 2, 3... but its
// parser wants every nest typed NFTA_LIST_ELEM (the kernel ignores the nest
// type). Parse a copy with the nest types normalised.
int parseElems(const nlmsghdr* nlh, nftnl_set* s, std::vector<uint8_t>& copy) {
  copy.assign(reinterpret_cast<const uint8_t*>(nlh),
              reinterpret_cast<const uint8_t*>(nlh) + nlh->nlmsg_len);
  auto* msg = reinterpret_cast<nlmsghdr*>(copy.data());
  nlattr* attr;
  for (attr = static_cast<nlattr*>(mnl_nlmsg_get_payload_offset(msg, sizeof(nfgenmsg)));
       mnl_attr_ok(attr, static_cast<char*>(mnl_nlmsg_get_payload_tail(msg)) -
                             reinterpret_cast<char*>(attr));
       attr = mnl_attr_next(attr)) {
    if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS) continue;
    nlattr* elem;
    for (elem = static_cast<nlattr*>(mnl_attr_get_payload(attr));
         mnl_attr_ok(elem, static_cast<char*>(mnl_attr_get_payload(attr)) +
                               mnl_attr_get_payload_len(attr) - reinterpret_cast<char*>(elem));
         elem = mnl_attr_next(elem)) {
      elem->nla_type = static_cast<uint16_t>((elem->nla_type & ~NLA_TYPE_MASK) | NFTA_LIST_ELEM);
    }
  }
  return nftnl_set_elems_nlmsg_parse(msg, s);
}

// Msg::nlh points into `batch`: keep it alive while using the result.
std::vector<Msg> decode(const Batch& batch) {
  std::vector<Msg> out;
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data());
  int len = static_cast<int>(batch.bytes.size());
  for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
    Msg m;
    m.nlh = nlh;
    m.flags = nlh->nlmsg_flags;
    m.seq = nlh->nlmsg_seq;
    const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    m.resId = ntohs(nfg->res_id);
    if (nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN || nlh->nlmsg_type == NFNL_MSG_BATCH_END) {
      m.batchControl = true;
      m.type = nlh->nlmsg_type;
    } else {
      EXPECT_EQ(nlh->nlmsg_type >> 8, NFNL_SUBSYS_NFTABLES);
      EXPECT_EQ(nfg->nfgen_family, NFPROTO_INET);
      m.type = nlh->nlmsg_type & 0xff;
    }
    switch (m.type) {
      case NFT_MSG_NEWTABLE:
      case NFT_MSG_DELTABLE: {
        nftnl_table* t = nftnl_table_alloc();
        EXPECT_EQ(nftnl_table_nlmsg_parse(nlh, t), 0);
        m.name = nftnl_table_get_str(t, NFTNL_TABLE_NAME);
        nftnl_table_free(t);
        break;
      }
      case NFT_MSG_NEWCHAIN:
      case NFT_MSG_DELCHAIN: {
        nftnl_chain* c = nftnl_chain_alloc();
        EXPECT_EQ(nftnl_chain_nlmsg_parse(nlh, c), 0);
        m.name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);
        nftnl_chain_free(c);
        break;
      }
      case NFT_MSG_NEWSET:
      case NFT_MSG_DELSET:
      case NFT_MSG_NEWSETELEM:
      case NFT_MSG_DELSETELEM: {
        nftnl_set* s = nftnl_set_alloc();
        const bool elems = m.type == NFT_MSG_NEWSETELEM || m.type == NFT_MSG_DELSETELEM;
        std::vector<uint8_t> copy;
        const int rc = elems ? parseElems(nlh, s, copy) : nftnl_set_nlmsg_parse(nlh, s);
        EXPECT_EQ(rc, 0);
        m.name = nftnl_set_get_str(s, NFTNL_SET_NAME);
        nftnl_set_free(s);
        break;
      }
      case NFT_MSG_NEWRULE:
      case NFT_MSG_DELRULE: {
        nftnl_rule* r = nftnl_rule_alloc();
        EXPECT_EQ(nftnl_rule_nlmsg_parse(nlh, r), 0);
        m.chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
        nftnl_rule_free(r);
        break;
      }
      default:
        break;
    }
    out.push_back(m);
  }
  EXPECT_EQ(len, 0) << "trailing bytes in the batch";
  return out;
}

std::vector<Element> parseElements(const Msg& m) {
  std::vector<Element> out;
  SetPtr s(nftnl_set_alloc());
  std::vector<uint8_t> copy;
  EXPECT_EQ(parseElems(m.nlh, s.get(), copy), 0);
  nftnl_set_elems_iter* it = nftnl_set_elems_iter_create(s.get());
  for (nftnl_set_elem* e = nftnl_set_elems_iter_next(it); e; e = nftnl_set_elems_iter_next(it)) {
    Element el;
    uint32_t len = 0;
    const void* key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
    std::memcpy(el.key.bytes.data(), key, len);
    el.key.len = static_cast<uint8_t>(len);
    el.keyEnd = el.key;
    if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_KEY_END)) {
      const void* end = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY_END, &len);
      std::memcpy(el.keyEnd.bytes.data(), end, len);
      el.keyEnd.len = static_cast<uint8_t>(len);
    }
    if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT)) {
      const int32_t v = static_cast<int32_t>(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT));
      el.verdict.kind = v == NFT_JUMP     ? Verdict::Kind::kJump
                        : v == NFT_GOTO   ? Verdict::Kind::kGoto
                        : v == NF_DROP    ? Verdict::Kind::kDrop
                        : v == NFT_RETURN ? Verdict::Kind::kReturn
                                          : Verdict::Kind::kAccept;
      if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)) {
        el.verdict.chain = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN);
      }
    }
    out.push_back(el);
  }
  nftnl_set_elems_iter_destroy(it);
  return out;
}

// A rule's expressions as text: "name key=value ...", one per expression,
// from the parsed attributes (not libnftnl's printer).
std::vector<std::string> exprsOf(const nlmsghdr* nlh, std::string* comment = nullptr) {
  RulePtr r(nftnl_rule_alloc());
  EXPECT_EQ(nftnl_rule_nlmsg_parse(nlh, r.get()), 0);
  if (comment && nftnl_rule_is_set(r.get(), NFTNL_RULE_USERDATA)) {
    uint32_t len = 0;
    const void* ud = nftnl_rule_get_data(r.get(), NFTNL_RULE_USERDATA, &len);
    const auto* attr = static_cast<const nftnl_udata*>(ud);
    EXPECT_EQ(nftnl_udata_type(attr), NFTNL_UDATA_RULE_COMMENT);
    *comment = static_cast<const char*>(nftnl_udata_get(attr));
  }
  std::vector<std::string> out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r.get());
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) {
    const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    auto u32 = [&](uint16_t a) { return std::to_string(nftnl_expr_get_u32(e, a)); };
    auto bytes = [&](uint16_t a) {
      uint32_t len = 0;
      const auto* d = static_cast<const uint8_t*>(nftnl_expr_get(e, a, &len));
      std::string s;
      char b[4];
      for (uint32_t i = 0; i < len; ++i)
        snprintf(b, sizeof b, "%02x", d[i]), s += b;
      return s;
    };
    std::string s = name;
    if (name == "meta") {
      s += " key=" + u32(NFTNL_EXPR_META_KEY) + " dreg=" + u32(NFTNL_EXPR_META_DREG);
    } else if (name == "payload") {
      s += " base=" + u32(NFTNL_EXPR_PAYLOAD_BASE) + " off=" + u32(NFTNL_EXPR_PAYLOAD_OFFSET) +
           " len=" + u32(NFTNL_EXPR_PAYLOAD_LEN) + " dreg=" + u32(NFTNL_EXPR_PAYLOAD_DREG);
    } else if (name == "cmp") {
      s += " sreg=" + u32(NFTNL_EXPR_CMP_SREG) + " op=" + u32(NFTNL_EXPR_CMP_OP) +
           " data=" + bytes(NFTNL_EXPR_CMP_DATA);
    } else if (name == "lookup") {
      s += " sreg=" + u32(NFTNL_EXPR_LOOKUP_SREG) +
           " set=" + nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
      if (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET_ID))
        s += " id=" + u32(NFTNL_EXPR_LOOKUP_SET_ID);
      if (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG)) s += " dreg=" + u32(NFTNL_EXPR_LOOKUP_DREG);
      if (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS))
        s += " flags=" + u32(NFTNL_EXPR_LOOKUP_FLAGS);
    } else if (name == "ct") {
      s += " key=" + u32(NFTNL_EXPR_CT_KEY) + " dreg=" + u32(NFTNL_EXPR_CT_DREG);
    } else if (name == "bitwise") {
      s += " sreg=" + u32(NFTNL_EXPR_BITWISE_SREG) + " dreg=" + u32(NFTNL_EXPR_BITWISE_DREG) +
           " len=" + u32(NFTNL_EXPR_BITWISE_LEN) + " mask=" + bytes(NFTNL_EXPR_BITWISE_MASK) +
           " xor=" + bytes(NFTNL_EXPR_BITWISE_XOR);
    } else if (name == "limit") {
      s += " rate=" + std::to_string(nftnl_expr_get_u64(e, NFTNL_EXPR_LIMIT_RATE)) +
           " unit=" + std::to_string(nftnl_expr_get_u64(e, NFTNL_EXPR_LIMIT_UNIT)) +
           " burst=" + u32(NFTNL_EXPR_LIMIT_BURST) + " type=" + u32(NFTNL_EXPR_LIMIT_TYPE);
    } else if (name == "log") {
      s += " group=" + std::to_string(nftnl_expr_get_u16(e, NFTNL_EXPR_LOG_GROUP)) +
           " prefix=" + nftnl_expr_get_str(e, NFTNL_EXPR_LOG_PREFIX);
    } else if (name == "reject") {
      s += " type=" + u32(NFTNL_EXPR_REJECT_TYPE) +
           " code=" + std::to_string(nftnl_expr_get_u8(e, NFTNL_EXPR_REJECT_CODE));
    } else if (name == "immediate") {
      s += " dreg=" + u32(NFTNL_EXPR_IMM_DREG) + " verdict=" +
           std::to_string(static_cast<int32_t>(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT)));
      if (nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN)) {
        s += std::string(" chain=") + nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN);
      }
    }
    out.push_back(s);
  }
  nftnl_expr_iter_destroy(it);
  return out;
}

policy::IpAddr ip(const char* text) {
  return *policy::IpAddr::parse(text);
}

Element range4(const char* lo, const char* hi, uint8_t proto, uint16_t plo, uint16_t phi) {
  Element e;
  e.key = KeyBuilder().addr(ip(lo)).proto(proto).port(plo).build();
  e.keyEnd = KeyBuilder().addr(ip(hi)).proto(proto).port(phi).build();
  return e;
}

Element ifname(const char* name, Verdict v = {}) {
  Element e;
  e.key = KeyBuilder().ifname(name).build();
  e.keyEnd = e.key;
  e.verdict = std::move(v);
  return e;
}

Set set4(const std::string& name, std::vector<Element> els = {}) {
  return Set{name, {KeyField::kIpv4Addr, KeyField::kInetProto, KeyField::kInetService},
             true, false,
             "",   std::move(els)};
}

ex::VerdictStatement accept() {
  return ex::VerdictStatement{Verdict{Verdict::Kind::kAccept, ""}};
}

Batch mustBuild(const RulesetDiff& diff, uint32_t seq = 100, bool replace = false) {
  Result<Batch> b = buildBatch(diff, seq, replace);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().describe());
  return b.ok() ? std::move(b).value() : Batch{};
}

const std::string r32(int n) {
  return std::to_string(NFT_REG32_00 + n);
}

// --- tests ---------------------------------------------------------------------

TEST(NftBatch, MessageOrderFollowsDiff) {
  RulesetDiff d;
  d.table = "bh";
  d.createTable = true;
  d.elements.push_back({"s1",
                        {range4("192.0.2.1", "192.0.2.1", 6, 22, 22)},
                        {range4("192.0.2.2", "192.0.2.2", 6, 22, 22)}});
  d.addSets = {set4("s2", {range4("198.51.100.0", "198.51.100.255", 17, 53, 53)})};
  d.deleteSets = {"s0"};
  d.addChains = {Chain{"c3", std::nullopt, {Rule{{accept()}, ""}}}};
  d.replaceChains = {Chain{"c1", std::nullopt, {Rule{{accept()}, ""}, Rule{{accept()}, ""}}}};
  d.deleteChains = {"c2"};
  const Batch b = mustBuild(d, 100);
  const std::vector<Msg> msgs = decode(b);

  std::vector<std::string> got;
  for (const Msg& m : msgs)
    got.push_back(std::to_string(m.type) + ":" + m.name + m.chain);
  auto t = [](int type, const std::string& what) { return std::to_string(type) + ":" + what; };
  const std::vector<std::string> want = {
      t(NFNL_MSG_BATCH_BEGIN, ""), t(NFT_MSG_NEWTABLE, "bh"),   t(NFT_MSG_DELSETELEM, "s1"),
      t(NFT_MSG_DELRULE, "c1"),    t(NFT_MSG_DELRULE, "c2"),    t(NFT_MSG_DELCHAIN, "c2"),
      t(NFT_MSG_DELSET, "s0"),     t(NFT_MSG_NEWSET, "s2"),     t(NFT_MSG_NEWCHAIN, "c3"),
      t(NFT_MSG_NEWSETELEM, "s2"), t(NFT_MSG_NEWSETELEM, "s1"), t(NFT_MSG_NEWRULE, "c3"),
      t(NFT_MSG_NEWRULE, "c1"),    t(NFT_MSG_NEWRULE, "c1"),    t(NFNL_MSG_BATCH_END, ""),
  };
  EXPECT_EQ(got, want);
  ASSERT_EQ(b.messageCount(), msgs.size());
  EXPECT_EQ(b.firstSeq, 100u);
  for (size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_EQ(msgs[i].seq, 100 + i);
    // Only the last nf_tables message asks for an ACK.
    EXPECT_EQ((msgs[i].flags & NLM_F_ACK) != 0, i == msgs.size() - 2) << i;
  }
  EXPECT_EQ(msgs.front().resId, NFNL_SUBSYS_NFTABLES);
  EXPECT_EQ(msgs.back().resId, NFNL_SUBSYS_NFTABLES);
  // Flush = DELRULE with table and chain only; element adds are exclusive.
  EXPECT_EQ(msgs[3].flags & (NLM_F_CREATE | NLM_F_EXCL), 0);
  EXPECT_EQ(msgs[9].flags & (NLM_F_CREATE | NLM_F_EXCL), NLM_F_CREATE | NLM_F_EXCL);
  EXPECT_EQ(msgs[11].flags & (NLM_F_CREATE | NLM_F_APPEND), NLM_F_CREATE | NLM_F_APPEND);

  EXPECT_EQ(b.describe(100), "begin transaction");
  EXPECT_EQ(b.describe(101), "add table inet bh");
  EXPECT_EQ(b.describe(102), "delete elements 1-1 of 1 from set inet bh s1");
  EXPECT_EQ(b.describe(103), "flush chain inet bh c1");
  EXPECT_EQ(b.describe(105), "delete chain inet bh c2");
  EXPECT_EQ(b.describe(106), "delete set inet bh s0");
  EXPECT_EQ(b.describe(107), "add set inet bh s2");
  EXPECT_EQ(b.describe(108), "add chain inet bh c3");
  EXPECT_EQ(b.describe(109), "add elements 1-1 of 1 to set inet bh s2");
  EXPECT_EQ(b.describe(113), "add rule 2 in chain inet bh c1");
  EXPECT_EQ(b.describe(114), "commit transaction");
  EXPECT_EQ(b.describe(115), "");
  EXPECT_EQ(b.describe(99), "");
}

// The kernel finds a set by name walking the table's list from the head, so
// the sets most element changes touch are created first, then those most
// rules name (a meter's set counts); the rest keep the diff's order.
TEST(NftBatch, SetsLookedUpMostAreCreatedFirst) {
  RulesetDiff d;
  d.table = "bh";
  d.createTable = true;
  for (const char* name : {"a_once", "b_never", "c_thrice", "d_once", "e_meter_twice"})
    d.addSets.push_back(set4(name, {}));
  Set often{"z_often", {KeyField::kIfname}, false, false, "", {}};
  often.lookedUpOften = true;
  d.addSets.push_back(often);
  auto uses = [](const char* set) {
    return Rule{
        {ex::Lookup{
             {PacketField::kIpDaddr, PacketField::kL4proto, PacketField::kThDport}, set, false},
         accept()},
        ""};
  };
  const Rule meter{{ex::Meter{PacketField::kIifname, "e_meter_twice", 5, 10}, accept()}, ""};
  d.addChains = {
      Chain{"c1", std::nullopt, {uses("c_thrice"), uses("a_once"), meter}},
      Chain{"c2", std::nullopt, {uses("c_thrice"), uses("d_once"), uses("c_thrice"), meter}}};
  std::vector<std::string> created;
  for (const Msg& m : decode(mustBuild(d, 1)))
    if (m.type == NFT_MSG_NEWSET) created.push_back(m.name);
  EXPECT_EQ(created, (std::vector<std::string>{"z_often", "c_thrice", "e_meter_twice", "a_once",
                                               "d_once", "b_never"}));
}

TEST(NftBatch, ReplaceAddsThenDeletesTheTable) {
  RecordingKernel k;
  Ruleset rs;
  rs.table = "bh";
  rs.sets = {set4("a4", {range4("192.0.2.0", "192.0.2.127", 6, 80, 80)})};
  rs.chains = {Chain{"fwd_app", std::nullopt, {Rule{{accept()}, "x"}}},
               Chain{"forward", compiler::BaseHook{compiler::BaseHook::Hook::kForward, -5}, {}}};
  ASSERT_TRUE(Writer(k).replace(rs).ok());
  ASSERT_EQ(k.batches.size(), 1u);
  const Batch& b = k.batches[0];
  EXPECT_EQ(b.firstSeq, 5000u);  // from the kernel object
  const auto msgs = decode(b);
  ASSERT_GE(msgs.size(), 5u);
  EXPECT_EQ(msgs[1].type, NFT_MSG_NEWTABLE);
  EXPECT_EQ(msgs[2].type, NFT_MSG_DELTABLE);
  EXPECT_EQ(msgs[3].type, NFT_MSG_NEWTABLE);
  EXPECT_EQ(msgs[4].type, NFT_MSG_NEWSET);
  EXPECT_EQ(b.describe(5002), "delete table inet bh");

  // The base chain: hook, priority, type, policy.
  bool sawBase = false;
  for (const Msg& m : msgs) {
    if (m.type != NFT_MSG_NEWCHAIN || m.name != "forward") continue;
    ChainPtr c(nftnl_chain_alloc());
    ASSERT_EQ(nftnl_chain_nlmsg_parse(m.nlh, c.get()), 0);
    EXPECT_EQ(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM), NF_INET_FORWARD);
    EXPECT_EQ(nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO), -5);
    EXPECT_STREQ(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE), "filter");
    EXPECT_EQ(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY), NF_ACCEPT);
    sawBase = true;
  }
  EXPECT_TRUE(sawBase);

  // A replace needs a full diff.
  RulesetDiff partial;
  partial.table = "bh";
  EXPECT_FALSE(buildBatch(partial, 1, true).ok());
}

TEST(NftBatch, SetDeclarations) {
  RulesetDiff d;
  d.table = "bh";
  Set a4 = set4("a4");
  a4.comment = "app a";
  Set vmap{"dispatch", {KeyField::kIfname}, false, true, "", {}};
  Set src6{"src6", {KeyField::kIfname, KeyField::kIpv6Addr}, false, false, "", {}};
  d.addSets = {a4, vmap, src6};
  const Batch batch = mustBuild(d);
  const auto msgs = decode(batch);
  std::vector<SetPtr> sets;
  for (const Msg& m : msgs) {
    if (m.type != NFT_MSG_NEWSET) continue;
    sets.emplace_back(nftnl_set_alloc());
    ASSERT_EQ(nftnl_set_nlmsg_parse(m.nlh, sets.back().get()), 0);
  }
  ASSERT_EQ(sets.size(), 3u);
  nftnl_set* s = sets[0].get();
  // nft's encoding: ipv4_addr(7) . inet_proto(12) . inet_service(13).
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE), (7u << 12) | (12u << 6) | 13u);
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN), 12u);
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_FLAGS), uint32_t(NFT_SET_CONCAT | NFT_SET_INTERVAL));
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_ID), 1u);
  uint32_t len = 0;
  const auto* concat =
      static_cast<const uint8_t*>(nftnl_set_get_data(s, NFTNL_SET_DESC_CONCAT, &len));
  ASSERT_EQ(len, 3u);
  EXPECT_EQ(std::vector<uint8_t>(concat, concat + len), (std::vector<uint8_t>{4, 1, 2}));
  const auto* ud = static_cast<const char*>(nftnl_set_get_data(s, NFTNL_SET_USERDATA, &len));
  EXPECT_NE(std::string(ud, len).find("app a"), std::string::npos);

  s = sets[1].get();
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE), 41u);
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN), 16u);
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_FLAGS), uint32_t(NFT_SET_MAP));
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE), uint32_t(NFT_DATA_VERDICT));
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_ID), 2u);

  s = sets[2].get();
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE), (41u << 6) | 8u);
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN), 32u);
  EXPECT_EQ(nftnl_set_get_u32(s, NFTNL_SET_FLAGS), uint32_t(NFT_SET_CONCAT));

  // The kernel's interval backend for concatenations needs two fields.
  RulesetDiff bad;
  bad.table = "bh";
  bad.addSets = {Set{"one", {KeyField::kIpv4Addr}, true, false, "", {}}};
  Result<Batch> r = buildBatch(bad, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
}

TEST(NftBatch, ElementKeysAndVerdicts) {
  RulesetDiff d;
  d.table = "bh";
  const Element e = range4("192.0.2.0", "192.0.2.255", 6, 80, 90);
  d.addSets = {set4("a4", {e}), Set{"dispatch",
                                    {KeyField::kIfname},
                                    false,
                                    true,
                                    "",
                                    {ifname("veth-a", Verdict{Verdict::Kind::kJump, "app_a"}),
                                     ifname("veth-b", Verdict{Verdict::Kind::kDrop, ""})}}};
  const Batch batch = mustBuild(d);
  const auto msgs = decode(batch);
  std::vector<std::vector<Element>> lists;
  for (const Msg& m : msgs) {
    if (m.type == NFT_MSG_NEWSETELEM) lists.push_back(parseElements(m));
  }
  ASSERT_EQ(lists.size(), 2u);
  ASSERT_EQ(lists[0].size(), 1u);
  // addr | proto + 3 zero | port BE + 2 zero, as nft lays it out.
  const std::vector<uint8_t> key(lists[0][0].key.bytes.begin(),
                                 lists[0][0].key.bytes.begin() + lists[0][0].key.len);
  EXPECT_EQ(key, (std::vector<uint8_t>{192, 0, 2, 0, 6, 0, 0, 0, 0, 80, 0, 0}));
  EXPECT_EQ(lists[0][0].key, e.key);
  EXPECT_EQ(lists[0][0].keyEnd, e.keyEnd);
  ASSERT_EQ(lists[1].size(), 2u);
  EXPECT_EQ(lists[1][0].verdict, (Verdict{Verdict::Kind::kJump, "app_a"}));
  EXPECT_EQ(lists[1][1].verdict, (Verdict{Verdict::Kind::kDrop, ""}));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(lists[1][0].key.bytes.data())), "veth-a");
}

TEST(NftBatch, ElementChangesUseTargetOrInferredLayout) {
  RulesetDiff d;
  d.table = "bh";
  d.elements.push_back(
      {"dispatch", {ifname("old")}, {ifname("new", Verdict{Verdict::Kind::kGoto, "c"})}});
  d.elements.push_back({"a4", {}, {range4("192.0.2.0", "192.0.2.3", 6, 1, 2)}});
  for (int withTarget = 0; withTarget < 2; ++withTarget) {
    Ruleset target;
    target.sets = {set4("a4"), Set{"dispatch", {KeyField::kIfname}, false, true, "", {}}};
    Result<Batch> b = buildBatch(d, 1, false, withTarget ? &target : nullptr);
    ASSERT_TRUE(b.ok()) << b.error().describe();
    const auto msgs = decode(*b);
    ASSERT_EQ(msgs.size(), 5u);
    EXPECT_EQ(msgs[1].type, NFT_MSG_DELSETELEM);
    // A removal carries only the key.
    const auto removed = parseElements(msgs[1]);
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(removed[0].verdict, Verdict{});
    const auto added = parseElements(msgs[2]);
    ASSERT_EQ(added.size(), 1u);
    EXPECT_EQ(added[0].verdict, (Verdict{Verdict::Kind::kGoto, "c"}));
    const auto ranges = parseElements(msgs[3]);
    ASSERT_EQ(ranges.size(), 1u);
    EXPECT_EQ(ranges[0].keyEnd, d.elements[1].add[0].keyEnd);
  }
}

TEST(NftBatch, LargeElementListsAreSplit) {
  RulesetDiff d;
  d.table = "bh";
  Set a6{"a6", {KeyField::kIpv6Addr, KeyField::kInetProto, KeyField::kInetService}, true, false, "",
         {}};
  for (uint32_t i = 0; i < 5000; ++i) {
    policy::IpAddr a = ip("2001:db8::");
    a.bytes[12] = uint8_t(i >> 24), a.bytes[13] = uint8_t(i >> 16);
    a.bytes[14] = uint8_t(i >> 8), a.bytes[15] = uint8_t(i);
    Element e;
    e.key = KeyBuilder().addr(a).proto(6).port(443).build();
    e.keyEnd = KeyBuilder().addr(a).proto(6).port(444).build();
    a6.elements.push_back(e);
  }
  d.addSets = {a6};
  const Batch b = mustBuild(d, 1);
  const auto msgs = decode(b);
  std::vector<Element> all;
  size_t parts = 0;
  for (const Msg& m : msgs) {
    if (m.type != NFT_MSG_NEWSETELEM) continue;
    ++parts;
    EXPECT_LT(m.nlh->nlmsg_len, 48u * 1024) << "message too large";
    const auto els = parseElements(m);
    EXPECT_GE(els.size(), 100u);  // still efficient
    all.insert(all.end(), els.begin(), els.end());
    EXPECT_NE(b.describe(m.seq).find("of 5000 to set inet bh a6"), std::string::npos);
  }
  EXPECT_GT(parts, 1u);
  EXPECT_EQ(all, a6.elements);  // every element once, in order
}

struct ExprCase {
  std::vector<compiler::Expr> exprs;
  std::vector<std::string> want;
};

TEST(NftExprs, EveryKind) {
  const std::string eq = std::to_string(NFT_CMP_EQ), v0 = "dreg=0";
  const std::string nh = std::to_string(NFT_PAYLOAD_NETWORK_HEADER);
  const std::string th = std::to_string(NFT_PAYLOAD_TRANSPORT_HEADER);
  const std::string nfproto = "meta key=" + std::to_string(NFT_META_NFPROTO) + " dreg=" + r32(0);
  const std::string l4proto = "meta key=" + std::to_string(NFT_META_L4PROTO) + " dreg=" + r32(0);
  const std::vector<ExprCase> cases = {
      {{ex::MetaNfproto{policy::Family::kIpv6}},
       {nfproto, "cmp sreg=" + r32(0) + " op=" + eq + " data=0a"}},
      {{ex::MetaL4proto{6}}, {l4proto, "cmp sreg=" + r32(0) + " op=" + eq + " data=06"}},
      {{ex::CtState{ex::CtState::kEstablished | ex::CtState::kRelated}},
       {"ct key=" + std::to_string(NFT_CT_STATE) + " dreg=" + r32(0),
        "bitwise sreg=" + r32(0) + " dreg=" + r32(0) + " len=4 mask=06000000 xor=00000000",
        "cmp sreg=" + r32(0) + " op=" + std::to_string(NFT_CMP_NEQ) + " data=00000000"}},
      {{ex::IcmpV6TypeRange{133, 137}},
       {l4proto, "cmp sreg=" + r32(0) + " op=" + eq + " data=3a",
        "payload base=" + th + " off=0 len=1 dreg=" + r32(0),
        "cmp sreg=" + r32(0) + " op=" + std::to_string(NFT_CMP_GTE) + " data=85",
        "cmp sreg=" + r32(0) + " op=" + std::to_string(NFT_CMP_LTE) + " data=89"}},
      {{ex::UdpPorts{68, 67}},
       {l4proto, "cmp sreg=" + r32(0) + " op=" + eq + " data=11",
        "payload base=" + th + " off=0 len=2 dreg=" + r32(0),
        "cmp sreg=" + r32(0) + " op=" + eq + " data=0044",
        "payload base=" + th + " off=2 len=2 dreg=" + r32(0),
        "cmp sreg=" + r32(0) + " op=" + eq + " data=0043"}},
      {{ex::UdpPorts{0, 547}},
       {l4proto, "cmp sreg=" + r32(0) + " op=" + eq + " data=11",
        "payload base=" + th + " off=2 len=2 dreg=" + r32(0),
        "cmp sreg=" + r32(0) + " op=" + eq + " data=0223"}},
      {{ex::Lookup{
           {PacketField::kIpDaddr, PacketField::kL4proto, PacketField::kThDport}, "a4", false}},
       {nfproto, "cmp sreg=" + r32(0) + " op=" + eq + " data=02",
        "payload base=" + nh + " off=16 len=4 dreg=" + r32(0),
        "meta key=" + std::to_string(NFT_META_L4PROTO) + " dreg=" + r32(1),
        "payload base=" + th + " off=2 len=2 dreg=" + r32(2),
        "lookup sreg=" + r32(0) + " set=a4 id=7"}},
      {{ex::Lookup{{PacketField::kIifname, PacketField::kIp6Saddr}, "src6", true}},
       {nfproto, "cmp sreg=" + r32(0) + " op=" + eq + " data=0a",
        "meta key=" + std::to_string(NFT_META_IIFNAME) + " dreg=" + r32(0),
        "payload base=" + nh + " off=8 len=16 dreg=" + r32(4),
        "lookup sreg=" + r32(0) + " set=src6 flags=" + std::to_string(NFT_LOOKUP_F_INV)}},
      {{ex::Lookup{{PacketField::kIpSaddr}, "s", false}},
       {nfproto, "cmp sreg=" + r32(0) + " op=" + eq + " data=02",
        "payload base=" + nh + " off=12 len=4 dreg=" + r32(0), "lookup sreg=" + r32(0) + " set=s"}},
      {{ex::Vmap{{PacketField::kIp6Daddr}, "m"}},
       {nfproto, "cmp sreg=" + r32(0) + " op=" + eq + " data=0a",
        "payload base=" + nh + " off=24 len=16 dreg=" + r32(0),
        "lookup sreg=" + r32(0) + " set=m dreg=0"}},
      {{ex::Limit{100, 200}},
       {"limit rate=100 unit=1 burst=200 type=" + std::to_string(NFT_LIMIT_PKTS)}},
      {{ex::Log{"bh:deny:default", 1771}}, {"log group=1771 prefix=bh:deny:default"}},
      {{ex::Counter{}}, {"counter"}},
      {{ex::Reject{ex::Reject::Kind::kTcpReset}},
       {"reject type=" + std::to_string(NFT_REJECT_TCP_RST) + " code=0"}},
      {{ex::Reject{ex::Reject::Kind::kIcmpxAdminProhibited}},
       {"reject type=" + std::to_string(NFT_REJECT_ICMPX_UNREACH) +
        " code=" + std::to_string(NFT_REJECT_ICMPX_ADMIN_PROHIBITED)}},
      {{accept()}, {"immediate dreg=0 verdict=" + std::to_string(NF_ACCEPT)}},
      {{ex::VerdictStatement{Verdict{Verdict::Kind::kDrop, ""}}},
       {"immediate dreg=0 verdict=" + std::to_string(NF_DROP)}},
      {{ex::VerdictStatement{Verdict{Verdict::Kind::kReturn, ""}}},
       {"immediate dreg=0 verdict=" + std::to_string(NFT_RETURN)}},
      {{ex::VerdictStatement{Verdict{Verdict::Kind::kJump, "app"}}},
       {"immediate dreg=0 verdict=" + std::to_string(NFT_JUMP) + " chain=app"}},
      {{ex::VerdictStatement{Verdict{Verdict::Kind::kGoto, "app"}}},
       {"immediate dreg=0 verdict=" + std::to_string(NFT_GOTO) + " chain=app"}},
  };
  (void)v0;
  const SetIds ids = {{"a4", 7}};
  for (const ExprCase& c : cases) {
    Result<RulePtr> r = makeRule("bh", "c", Rule{c.exprs, "why"}, ids);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    // Round-trip through a message, as the kernel would get it.
    std::vector<char> buf(8192);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, NFPROTO_INET, 0, 1);
    nftnl_rule_nlmsg_build_payload(nlh, r->get());
    std::string comment;
    EXPECT_EQ(exprsOf(nlh, &comment), c.want) << c.want.front();
    EXPECT_EQ(comment, "why");
  }
}

TEST(NftExprs, RejectsBadInput) {
  const SetIds none;
  EXPECT_FALSE(makeRule("bh", "c", Rule{{ex::Log{std::string(128, 'x'), 1}}, ""}, none).ok());
  EXPECT_FALSE(
      makeRule("bh", "c",
               Rule{{ex::Lookup{{PacketField::kIpSaddr, PacketField::kIp6Daddr}, "s"}}, ""}, none)
          .ok());
  EXPECT_FALSE(
      makeRule("bh", "c", Rule{{ex::VerdictStatement{Verdict{Verdict::Kind::kJump, ""}}}, ""}, none)
          .ok());
  EXPECT_FALSE(makeRule("bh", "c", Rule{{accept()}, std::string(200, 'c')}, none).ok());
}

TEST(NftWriter, SyncChoosesDiffOrReplace) {
  Ruleset a;
  a.table = "bh";
  a.sets = {Set{"q", {KeyField::kIfname}, false, false, "", {ifname("v1")}}};
  Ruleset b = a;
  b.sets[0].elements.push_back(ifname("v2"));

  RecordingKernel k;
  Writer w(k);
  ASSERT_TRUE(w.sync(&a, b).ok());  // table there: a diff
  ASSERT_EQ(k.batches.size(), 1u);
  auto msgs = decode(k.batches[0]);
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[1].type, NFT_MSG_NEWSETELEM);
  EXPECT_EQ(parseElements(msgs[1]), std::vector<Element>{ifname("v2")});

  ASSERT_TRUE(w.sync(&b, b).ok());  // nothing to do: nothing sent
  EXPECT_EQ(k.batches.size(), 1u);

  k.dropTable();  // deleted behind our back: a full replace
  ASSERT_TRUE(w.sync(&a, b).ok());
  ASSERT_EQ(k.batches.size(), 2u);
  msgs = decode(k.batches[1]);
  EXPECT_EQ(msgs[2].type, NFT_MSG_DELTABLE);

  ASSERT_TRUE(w.sync(nullptr, b).ok());  // nothing known: a full replace
  EXPECT_EQ(decode(k.batches[2])[2].type, NFT_MSG_DELTABLE);
  // Sequence numbers keep growing across batches.
  EXPECT_GT(k.batches[2].firstSeq, k.batches[1].firstSeq);

  k.refuse = 1;
  k.refusalError =
      Error{ErrorCode::kKernel, EEXIST, "kernel refused add set inet bh q: File exists"};
  Status st = w.replace(b);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().sysErrno, EEXIST);
}

TEST(NftBatch, RenumberRewritesEverySeq) {
  RulesetDiff d;
  d.table = "bh";
  d.createTable = true;
  Batch b = mustBuild(d, 0);
  renumberBatch(b, 77);
  const auto msgs = decode(b);
  ASSERT_EQ(msgs.size(), 3u);
  for (size_t i = 0; i < msgs.size(); ++i)
    EXPECT_EQ(msgs[i].seq, 77 + i);
  EXPECT_EQ(b.describe(78), "add table inet bh");
}

}  // namespace
}  // namespace bulkhead::nft
