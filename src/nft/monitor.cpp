#include "bulkhead/nft/monitor.h"

// glibc's <netinet/in.h> before the uapi headers, which then skip their copy.
#include <arpa/inet.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/flowtable.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "bulkhead/common/deadline.h"
#include "bulkhead/common/owned.h"
#include "bulkhead/common/time_format.h"

namespace bulkhead::nft {

namespace {

// Message types newer than the uapi headers of Debian 12 (kernel 6.1): the
// DESTROY* commands of kernel 6.3 (delete without ENOENT). Their values are
// fixed by the kernel ABI.
constexpr int kMsgGetRuleReset = 25;
constexpr int kMsgDestroyTable = 26;
constexpr int kMsgDestroyChain = 27;
constexpr int kMsgDestroyRule = 28;
constexpr int kMsgDestroySet = 29;
constexpr int kMsgDestroySetElem = 30;
constexpr int kMsgDestroyObj = 31;
constexpr int kMsgDestroyFlowtable = 32;

// Every nf_tables object message carries its table's name as attribute 1
// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
// NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE).
constexpr uint16_t kAttrTable = 1;

// One recv() returns one skb. Since kernel 5.x a commit's notifications are
// coalesced into skbs of up to NLMSG_GOODSIZE (a page or 8 KiB); one rule
// notification can be larger, but not beyond this.
constexpr size_t kRecvBufferBytes = 256 * 1024;

// A commit's notifications are queued together at the end of the commit,
// NEWGEN last: once the first is here, NEWGEN follows at once. Do not hold
// a change back longer than this waiting for it.
constexpr int kGenerationGraceMs = 100;

// How many changes of one commit an event names.
constexpr size_t kNamedChanges = 3;

enum class Object { kTable, kChain, kRule, kSet, kElement, kObj, kFlowtable };

struct MsgInfo {
  bool known = false;
  bool isDelete = false;
  Object object = Object::kTable;
};

MsgInfo classify(int type) {
  switch (type) {
    case NFT_MSG_NEWTABLE:
      return {true, false, Object::kTable};
    case NFT_MSG_DELTABLE:
    case kMsgDestroyTable:
      return {true, true, Object::kTable};
    case NFT_MSG_NEWCHAIN:
      return {true, false, Object::kChain};
    case NFT_MSG_DELCHAIN:
    case kMsgDestroyChain:
      return {true, true, Object::kChain};
    case NFT_MSG_NEWRULE:
      return {true, false, Object::kRule};
    case NFT_MSG_DELRULE:
    case kMsgDestroyRule:
      return {true, true, Object::kRule};
    case NFT_MSG_NEWSET:
      return {true, false, Object::kSet};
    case NFT_MSG_DELSET:
    case kMsgDestroySet:
      return {true, true, Object::kSet};
    case NFT_MSG_NEWSETELEM:
      return {true, false, Object::kElement};
    case NFT_MSG_DELSETELEM:
    case kMsgDestroySetElem:
      return {true, true, Object::kElement};
    case NFT_MSG_NEWOBJ:
      return {true, false, Object::kObj};
    case NFT_MSG_DELOBJ:
    case kMsgDestroyObj:
      return {true, true, Object::kObj};
    case NFT_MSG_NEWFLOWTABLE:
      return {true, false, Object::kFlowtable};
    case NFT_MSG_DELFLOWTABLE:
    case kMsgDestroyFlowtable:
      return {true, true, Object::kFlowtable};
    default:
      // GETRULE_RESET / GETOBJ_RESET (counter resets) and TRACE: not
      // ruleset changes.
      (void)kMsgGetRuleReset;
      return {};
  }
}

int rankOf(Object o) {
  switch (o) {
    case Object::kTable:
      return 3;
    case Object::kChain:
    case Object::kSet:
    case Object::kObj:
    case Object::kFlowtable:
      return 2;
    case Object::kRule:
      return 1;
    case Object::kElement:
      return 0;
  }
  return 0;
}

const char* nounOf(Object o) {
  switch (o) {
    case Object::kTable:
      return "table";
    case Object::kChain:
      return "chain";
    case Object::kRule:
      return "rule";
    case Object::kSet:
      return "set";
    case Object::kElement:
      return "element";
    case Object::kObj:
      return "object";
    case Object::kFlowtable:
      return "flowtable";
  }
  return "?";
}

std::string str(const char* s) {
  return s == nullptr ? std::string() : std::string(s);
}

// One libnftnl object type's parse of a message: the table it names and,
// with nameAttr, the object's own name. The object is freed on every path.
template <class T, auto Alloc, auto Free, auto Parse, auto Get>
bool readNames(const nlmsghdr* nlh, uint16_t tableAttr, std::optional<uint16_t> nameAttr,
               std::string& table, std::string& name) {
  const Owned<T, Free> obj(Alloc());
  if (!obj || Parse(nlh, obj.get()) < 0) return false;
  table = str(Get(obj.get(), tableAttr));
  if (nameAttr) name = str(Get(obj.get(), *nameAttr));
  return true;
}

// A rule has no name: its chain and handle stand for one.
bool readRuleNames(const nlmsghdr* nlh, std::string& table, std::string& name) {
  const Owned<nftnl_rule, nftnl_rule_free> r(nftnl_rule_alloc());
  if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return false;
  table = str(nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE));
  name = str(nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN));
  if (nftnl_rule_is_set(r.get(), NFTNL_RULE_HANDLE))
    name += " handle " + std::to_string(nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE));
  return true;
}

// The table a message is about and the object's own name ("" for a table),
// through libnftnl's parsers. False when the parser refused the message (for
// instance a rule with an expression this libnftnl does not know).
bool parseNames(const nlmsghdr* nlh, Object object, std::string& table, std::string& name) {
  switch (object) {
    case Object::kTable:
      return readNames<nftnl_table, nftnl_table_alloc, nftnl_table_free, nftnl_table_nlmsg_parse,
                       nftnl_table_get_str>(nlh, NFTNL_TABLE_NAME, std::nullopt, table, name);
    case Object::kChain:
      return readNames<nftnl_chain, nftnl_chain_alloc, nftnl_chain_free, nftnl_chain_nlmsg_parse,
                       nftnl_chain_get_str>(nlh, NFTNL_CHAIN_TABLE, NFTNL_CHAIN_NAME, table, name);
    case Object::kRule:
      return readRuleNames(nlh, table, name);
    case Object::kSet:
      return readNames<nftnl_set, nftnl_set_alloc, nftnl_set_free, nftnl_set_nlmsg_parse,
                       nftnl_set_get_str>(nlh, NFTNL_SET_TABLE, NFTNL_SET_NAME, table, name);
    case Object::kElement:
      return readNames<nftnl_set, nftnl_set_alloc, nftnl_set_free, nftnl_set_elems_nlmsg_parse,
                       nftnl_set_get_str>(nlh, NFTNL_SET_TABLE, NFTNL_SET_NAME, table, name);
    case Object::kObj:
      return readNames<nftnl_obj, nftnl_obj_alloc, nftnl_obj_free, nftnl_obj_nlmsg_parse,
                       nftnl_obj_get_str>(nlh, NFTNL_OBJ_TABLE, NFTNL_OBJ_NAME, table, name);
    case Object::kFlowtable:
      return readNames<nftnl_flowtable, nftnl_flowtable_alloc, nftnl_flowtable_free,
                       nftnl_flowtable_nlmsg_parse, nftnl_flowtable_get_str>(
          nlh, NFTNL_FLOWTABLE_TABLE, NFTNL_FLOWTABLE_NAME, table, name);
  }
  return false;
}

// The table name straight from attribute 1, for messages libnftnl refuses: a
// change to our table must not slip through because a newer kernel put
// something in it that this libnftnl cannot decode.
std::string rawTableName(const nlmsghdr* nlh) {
  std::string table;
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) -> int {
        if (mnl_attr_get_type(attr) == kAttrTable &&
            mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
          *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
        }
        return MNL_CB_OK;
      },
      &table);
  return table;
}

void parseGeneration(const nlmsghdr* nlh, Notification& n) {
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* attr, void* data) -> int {
        auto* out = static_cast<Notification*>(data);
        switch (mnl_attr_get_type(attr)) {
          case NFTA_GEN_PROC_PID:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
              out->procPid = ntohl(mnl_attr_get_u32(attr));
            }
            break;
          case NFTA_GEN_PROC_NAME:
            if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
              out->procName = mnl_attr_get_str(attr);
            }
            break;
          default:
            break;
        }
        return MNL_CB_OK;
      },
      &n);
}

Error unavailable(const std::string& what, int err) {
  return makeError(ErrorCode::kUnavailable, what + ": " + std::strerror(err), err);
}

}  // namespace

Notification parseNotification(const void* msg, size_t len, const std::string& table) {
  Notification n;
  const auto* nlh = static_cast<const nlmsghdr*>(msg);
  if (len < sizeof(nlmsghdr) || !mnl_nlmsg_ok(nlh, static_cast<int>(len))) return n;
  if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES) return n;
  if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(nfgenmsg)) return n;
  n.portId = nlh->nlmsg_pid;
  const int type = NFNL_MSG_TYPE(nlh->nlmsg_type);
  if (type == NFT_MSG_NEWGEN) {
    n.kind = Notification::Kind::kGeneration;
    parseGeneration(nlh, n);
    return n;
  }
  const MsgInfo info = classify(type);
  if (!info.known) return n;
  const auto* gen = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  if (gen->nfgen_family != NFPROTO_INET) return n;

  std::string msgTable, name;
  if (!parseNames(nlh, info.object, msgTable, name)) {
    msgTable = rawTableName(nlh);
    name = "(undecoded)";
  }
  if (msgTable != table) return n;

  n.kind = Notification::Kind::kTableChange;
  n.rank = rankOf(info.object);
  n.what = std::string(info.isDelete ? "delete " : "add ") + nounOf(info.object) + " inet " + table;
  if (!name.empty()) n.what += " " + name;
  return n;
}

Result<std::unique_ptr<TableMonitor>> TableMonitor::open(std::string table, int rcvBufBytes) {
  // Sized before joining, so no notification meets the default buffer.
  auto nl = NetlinkSocket::open(NETLINK_NETFILTER, rcvBufBytes, kRecvBufferBytes);
  if (!nl) return nl.takeError();
  // Quirk: the kernel builds nf_tables notifications only while the group
  // has a listener (nfnetlink_has_listeners), so changes made before this
  // point are never reported: callers check the table once after open().
  if (!nl->membership(NFNLGRP_NFTABLES, true))
    return unavailable("cannot join the nf_tables notification group", errno);
  return std::unique_ptr<TableMonitor>(new TableMonitor(std::move(*nl), std::move(table)));
}

TableMonitor::TableMonitor(NetlinkSocket socket, std::string table)
    : socket_(std::move(socket)), table_(std::move(table)) {}

int TableMonitor::fd() const {
  return socket_.fd();
}

uint32_t TableMonitor::portId() const {
  return socket_.portId();
}

void TableMonitor::ignorePortId(uint32_t portId) {
  std::lock_guard<std::mutex> lock(ignoredMutex_);
  if (std::find(ignoredPortIds_.begin(), ignoredPortIds_.end(), portId) == ignoredPortIds_.end()) {
    ignoredPortIds_.push_back(portId);
  }
}

bool TableMonitor::ignored(uint32_t portId) {
  std::lock_guard<std::mutex> lock(ignoredMutex_);
  return std::find(ignoredPortIds_.begin(), ignoredPortIds_.end(), portId) != ignoredPortIds_.end();
}

void TableMonitor::pause() {
  std::lock_guard<std::mutex> lock(gateMutex_);
  // Quirk: the kernel asks "does the group have a listener?"
  // (nfnetlink_has_listeners) before it builds each notification of a
  // commit; with none it builds nothing, which is the point. Leaving fails
  // only on a closed socket.
  if (paused_++ == 0) (void)socket_.membership(NFNLGRP_NFTABLES, false);
}

void TableMonitor::resume() {
  std::lock_guard<std::mutex> lock(gateMutex_);
  if (paused_ == 0 || --paused_ > 0) return;
  // Notifications queued before pause() stay in the socket and are read.
  if (!socket_.membership(NFNLGRP_NFTABLES, true)) rejoin_ = true;
}

void TableMonitor::reportUnheard(std::string what) {
  std::lock_guard<std::mutex> lock(gateMutex_);
  if (!unheard_.empty()) unheard_ += "; ";
  unheard_ += what;
}

Status TableMonitor::takeGateEvents(std::vector<TableEvent>& out) {
  std::lock_guard<std::mutex> lock(gateMutex_);
  if (rejoin_ && paused_ == 0) {
    if (!socket_.membership(NFNLGRP_NFTABLES, true))
      return unavailable("cannot join the nf_tables notification group again", errno);
    rejoin_ = false;
    if (!unheard_.empty()) unheard_ += "; ";
    unheard_ += "nf_tables notifications were off (the group could not be joined again)";
  }
  if (unheard_.empty()) return {};
  TableEvent e;
  e.kind = TableEvent::Kind::kLostEvents;
  e.what = std::exchange(unheard_, {});
  out.push_back(std::move(e));
  return {};
}

void TableMonitor::flushPending(std::vector<TableEvent>& out, uint32_t pid,
                                const std::string& process) {
  if (!pending_.active) return;
  TableEvent e;
  e.kind = TableEvent::Kind::kForeignChange;
  e.portId = pending_.portId;
  e.pid = pid;
  e.process = process;
  e.changes = pending_.changes;
  for (const auto& [rank, what] : pending_.top) {
    if (!e.what.empty()) e.what += ", ";
    e.what += what;
  }
  if (pending_.changes > pending_.top.size()) {
    e.what += " (+" + std::to_string(pending_.changes - pending_.top.size()) + " more)";
  }
  if (pid != 0) {
    e.what += " by pid " + std::to_string(pid);
    if (!process.empty()) e.what += " (" + process + ")";
  } else {
    e.what += pending_.portId == 0 ? " by the kernel"
                                   : " by netlink port " + std::to_string(pending_.portId);
  }
  out.push_back(std::move(e));
  pending_ = Pending{};
}

void TableMonitor::handle(const Notification& n, std::vector<TableEvent>& out) {
  switch (n.kind) {
    case Notification::Kind::kIgnored:
      return;
    case Notification::Kind::kGeneration:
      // Commits are serialised (commit_mutex) and each ends with its NEWGEN,
      // stamped with the same port id as its object notifications.
      if (pending_.active && pending_.portId != n.portId) flushPending(out, 0, "");
      flushPending(out, n.procPid, n.procName);
      return;
    case Notification::Kind::kTableChange:
      if (ignored(n.portId)) return;
      if (pending_.active && pending_.portId != n.portId) flushPending(out, 0, "");
      pending_.active = true;
      pending_.portId = n.portId;
      ++pending_.changes;
      // Name the widest changes of the commit first: a `delete table` starts
      // with the deletion of every rule in it. Quirk: the kernel also sends
      // NEWCHAIN for a chain that already exists (nft -f of a table block
      // "updates" every chain it names), so "add chain" may be a no-op.
      {
        auto& top = pending_.top;
        const bool named =
            std::any_of(top.begin(), top.end(), [&](const auto& t) { return t.second == n.what; });
        if (named) return;
        const auto at =
            std::find_if(top.begin(), top.end(), [&](const auto& t) { return t.first < n.rank; });
        if (at != top.end() || top.size() < kNamedChanges) top.insert(at, {n.rank, n.what});
        if (top.size() > kNamedChanges) top.pop_back();
      }
      return;
  }
}

Status TableMonitor::drain(std::vector<TableEvent>& out) {
  bool lost = false;
  for (;;) {
    auto r = socket_.receive(0);
    if (!r)
      return makeError(ErrorCode::kKernel, "cannot read nf_tables notifications",
                       r.error().sysErrno);
    using Kind = NetlinkSocket::Received::Kind;
    if (r->kind == Kind::kTimeout) break;
    if (r->kind != Kind::kData) {
      // An overflow dropped notifications (the kernel also reports ENOBUFS
      // when it could not allocate one, nfnetlink_set_err), or a datagram's
      // tail is gone: either way the socket stays usable.
      lost = true;
      continue;
    }
    NetlinkSocket::forEachMessage(r->bytes, [&](const nlmsghdr* nlh) {
      handle(parseNotification(nlh, nlh->nlmsg_len, table_), out);
    });
  }
  if (lost) {
    // What is pending may belong to a commit whose other messages are gone;
    // the full check the caller now owes covers it.
    pending_ = Pending{};
    TableEvent e;
    e.kind = TableEvent::Kind::kLostEvents;
    e.what = "nf_tables notifications lost (receive buffer overflow)";
    out.push_back(std::move(e));
  }
  return {};
}

Result<std::vector<TableEvent>> TableMonitor::wait(int timeoutMs) {
  const auto deadline =
      common::SteadyClock::now() + std::chrono::milliseconds(std::max(timeoutMs, 0));
  std::vector<TableEvent> out;
  for (;;) {
    if (Status s = takeGateEvents(out); !s) return s.takeError();
    if (Status s = drain(out); !s) return s.takeError();
    if (!out.empty() && !pending_.active) return out;
    int pollMs = common::msUntil(deadline);
    // A commit's NEWGEN is due: wait only briefly for it.
    if (pending_.active) pollMs = std::min(pollMs, kGenerationGraceMs);
    auto ready = socket_.waitReadable(pollMs);
    if (!ready) return ready.takeError();
    if (!*ready) {
      flushPending(out, 0, "");
      // Timed out (or the NEWGEN never came: a change by the kernel itself).
      if (!out.empty() || common::SteadyClock::now() >= deadline) return out;
    }
  }
}

}  // namespace bulkhead::nft
