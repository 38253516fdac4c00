// parseNotification without root: notifications built with libnftnl (and by
// hand with libmnl where libnftnl cannot), decoded as the monitor would.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bulkhead/nft/monitor.h"

namespace bulkhead::nft {
namespace {

constexpr const char* kTable = "bulkhead";
constexpr uint32_t kPort = 4242;

class Msg {
 public:
  Msg(int type, uint16_t family) : buf_(MNL_SOCKET_BUFFER_SIZE) {
    nlh_ = nftnl_nlmsg_build_hdr(buf_.data(), type, family, 0, 1);
    nlh_->nlmsg_pid = kPort;
  }
  nlmsghdr* nlh() { return nlh_; }
  Notification parse(const std::string& table = kTable) {
    return parseNotification(nlh_, nlh_->nlmsg_len, table);
  }

 private:
  std::vector<char> buf_;
  nlmsghdr* nlh_;
};

Notification tableMsg(int type, uint16_t family, const char* name) {
  Msg m(type, family);
  nftnl_table* t = nftnl_table_alloc();
  nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
  nftnl_table_nlmsg_build_payload(m.nlh(), t);
  nftnl_table_free(t);
  return m.parse();
}

TEST(MonitorParse, TableOfOursInInet) {
  Notification n = tableMsg(NFT_MSG_DELTABLE, NFPROTO_INET, kTable);
  EXPECT_EQ(n.kind, Notification::Kind::kTableChange);
  EXPECT_EQ(n.what, "delete table inet bulkhead");
  EXPECT_EQ(n.portId, kPort);
  EXPECT_EQ(n.rank, 3);
  EXPECT_EQ(tableMsg(NFT_MSG_NEWTABLE, NFPROTO_INET, kTable).what, "add table inet bulkhead");
  // DESTROYTABLE (kernel 6.3+, value 26) counts as a delete.
  EXPECT_EQ(tableMsg(26, NFPROTO_INET, kTable).what, "delete table inet bulkhead");
}

TEST(MonitorParse, OtherTablesAndFamiliesAreIgnored) {
  EXPECT_EQ(tableMsg(NFT_MSG_DELTABLE, NFPROTO_INET, "other").kind, Notification::Kind::kIgnored);
  EXPECT_EQ(tableMsg(NFT_MSG_DELTABLE, NFPROTO_IPV4, kTable).kind, Notification::Kind::kIgnored);
  EXPECT_EQ(tableMsg(NFT_MSG_DELTABLE, NFPROTO_IPV6, kTable).kind, Notification::Kind::kIgnored);
  // A prefix is not the table.
  EXPECT_EQ(tableMsg(NFT_MSG_DELTABLE, NFPROTO_INET, "bulkhead2").kind,
            Notification::Kind::kIgnored);
  // Requests that change nothing.
  EXPECT_EQ(tableMsg(NFT_MSG_GETTABLE, NFPROTO_INET, kTable).kind, Notification::Kind::kIgnored);
}

TEST(MonitorParse, ChainRuleSetAndElements) {
  {
    Msg m(NFT_MSG_DELCHAIN, NFPROTO_INET);
    nftnl_chain* c = nftnl_chain_alloc();
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, kTable);
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, "app_x");
    nftnl_chain_nlmsg_build_payload(m.nlh(), c);
    nftnl_chain_free(c);
    EXPECT_EQ(m.parse().what, "delete chain inet bulkhead app_x");
    EXPECT_EQ(m.parse().rank, 2);
  }
  {
    Msg m(NFT_MSG_NEWRULE, NFPROTO_INET);
    nftnl_rule* r = nftnl_rule_alloc();
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, kTable);
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "forward");
    nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, 7);
    nftnl_rule_nlmsg_build_payload(m.nlh(), r);
    nftnl_rule_free(r);
    EXPECT_EQ(m.parse().what, "add rule inet bulkhead forward handle 7");
    EXPECT_EQ(m.parse().rank, 1);
  }
  {
    Msg m(NFT_MSG_NEWSET, NFPROTO_INET);
    nftnl_set* s = nftnl_set_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, kTable);
    nftnl_set_set_str(s, NFTNL_SET_NAME, "a4");
    nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 4);
    nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
    nftnl_set_nlmsg_build_payload(m.nlh(), s);
    nftnl_set_free(s);
    EXPECT_EQ(m.parse().what, "add set inet bulkhead a4");
  }
  {
    Msg m(NFT_MSG_DELSETELEM, NFPROTO_INET);
    nftnl_set* s = nftnl_set_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, kTable);
    nftnl_set_set_str(s, NFTNL_SET_NAME, "a4");
    nftnl_set_elem* e = nftnl_set_elem_alloc();
    const uint32_t key = htonl(0xc0000201);
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &key, sizeof key);
    nftnl_set_elem_add(s, e);
    nftnl_set_elems_nlmsg_build_payload(m.nlh(), s);
    nftnl_set_free(s);
    const Notification n = m.parse();
    EXPECT_EQ(n.kind, Notification::Kind::kTableChange);
    EXPECT_EQ(n.what, "delete element inet bulkhead a4");
    EXPECT_EQ(n.rank, 0);
  }
}

// A rule with an expression libnftnl does not know (a newer kernel's): its
// parser refuses the message, yet the change to our table is still seen.
TEST(MonitorParse, UndecodableRuleStillCounts) {
  Msg m(NFT_MSG_NEWRULE, NFPROTO_INET);
  mnl_attr_put_strz(m.nlh(), NFTA_RULE_TABLE, kTable);
  mnl_attr_put_strz(m.nlh(), NFTA_RULE_CHAIN, "forward");
  nlattr* list = mnl_attr_nest_start(m.nlh(), NFTA_RULE_EXPRESSIONS);
  nlattr* elem = mnl_attr_nest_start(m.nlh(), NFTA_LIST_ELEM);
  mnl_attr_put_strz(m.nlh(), NFTA_EXPR_NAME, "fromthefuture");
  mnl_attr_nest_end(m.nlh(), elem);
  mnl_attr_nest_end(m.nlh(), list);
  const Notification n = m.parse();
  EXPECT_EQ(n.kind, Notification::Kind::kTableChange);
  EXPECT_EQ(n.what, "add rule inet bulkhead (undecoded)");
  EXPECT_EQ(m.parse("other").kind, Notification::Kind::kIgnored);
}

TEST(MonitorParse, GenerationNamesTheCommitter) {
  Msg m(NFT_MSG_NEWGEN, NFPROTO_UNSPEC);
  mnl_attr_put_u32(m.nlh(), NFTA_GEN_ID, htonl(99));
  mnl_attr_put_u32(m.nlh(), NFTA_GEN_PROC_PID, htonl(1234));
  mnl_attr_put_strz(m.nlh(), NFTA_GEN_PROC_NAME, "nft");
  const Notification n = m.parse();
  EXPECT_EQ(n.kind, Notification::Kind::kGeneration);
  EXPECT_EQ(n.portId, kPort);
  EXPECT_EQ(n.procPid, 1234u);
  EXPECT_EQ(n.procName, "nft");
}

TEST(MonitorParse, ForeignSubsystemsAndShortMessagesAreIgnored) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | NFT_MSG_DELTABLE;
  mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg));
  mnl_attr_put_strz(nlh, 1, kTable);
  EXPECT_EQ(parseNotification(nlh, nlh->nlmsg_len, kTable).kind, Notification::Kind::kIgnored);
  EXPECT_EQ(parseNotification(nlh, 8, kTable).kind, Notification::Kind::kIgnored);
}

}  // namespace
}  // namespace bulkhead::nft
