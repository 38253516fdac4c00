#include "bulkhead/nft/counters.h"

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "bulkhead/nft/netlink_socket.h"

namespace bulkhead::nft {

namespace {

constexpr int kTimeoutMs = 5000;

struct RuleFree {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};

bool hasComment(const nftnl_rule* r) {
  if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)) return false;
  uint32_t len = 0;
  const void* data = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
  bool found = false;
  // The comment is a TLV in the rule's userdata, as nft writes it.
  auto* buf = nftnl_udata_buf_alloc(len);
  if (!buf) return false;
  nftnl_udata_buf_put(buf, data, len);
  nftnl_udata* attr;
  nftnl_udata_for_each(buf, attr) {
    if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT) found = true;
  }
  nftnl_udata_buf_free(buf);
  return found;
}

int countExpr(nftnl_expr* e, void* data) {
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  if (name && std::strcmp(name, "counter") == 0)
    *static_cast<uint64_t*>(data) += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
  return MNL_CB_OK;
}

struct DumpState {
  std::map<std::pair<std::string, uint64_t>, uint64_t>* out;
};

int onRule(const nlmsghdr* nlh, void* data) {
  auto* st = static_cast<DumpState*>(data);
  std::unique_ptr<nftnl_rule, RuleFree> r(nftnl_rule_alloc());
  if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return MNL_CB_OK;
  if (!hasComment(r.get())) return MNL_CB_OK;
  uint64_t packets = 0;
  bool counted = false;
  nftnl_expr_foreach(
      r.get(),
      [](nftnl_expr* e, void* d) -> int {
        const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        if (name && std::strcmp(name, "counter") == 0) *static_cast<bool*>(d) = true;
        return MNL_CB_OK;
      },
      &counted);
  if (!counted) return MNL_CB_OK;
  nftnl_expr_foreach(r.get(), countExpr, &packets);
  const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
  const uint64_t handle = nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE);
  (*st->out)[{chain ? chain : "", handle}] = packets;
  return MNL_CB_OK;
}

Result<std::map<std::pair<std::string, uint64_t>, uint64_t>> dumpOnce(const std::string& table) {
  auto nl = NetlinkSocket::open(NETLINK_NETFILTER);
  if (!nl) return nl.takeError();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, 1);
  std::unique_ptr<nftnl_rule, RuleFree> filter(nftnl_rule_alloc());
  nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_nlmsg_build_payload(nlh, filter.get());

  std::map<std::pair<std::string, uint64_t>, uint64_t> out;
  DumpState state{&out};
  auto err =
      nl->exchange(nlh, "the rules of table inet " + table, kTimeoutMs, [&](const nlmsghdr* reply) {
        onRule(reply, &state);
        return Status{};
      });
  if (!err) return err.takeError();
  // A table that does not exist (yet, or deleted by someone) has no counters.
  if (*err == 0 || *err == ENOENT) return out;
  return makeError(ErrorCode::kKernel, "rule dump of table inet " + table, *err);
}

}  // namespace

Result<std::map<std::pair<std::string, uint64_t>, uint64_t>> readRuleCounters(
    const std::string& table) {
  // A commit during the dump (ours or anyone's) makes the kernel flag it
  // NLM_F_DUMP_INTR (EINTR): the rules read so far may mix two
  // generations. Dump again; commits are short.
  constexpr int kAttempts = 4;
  for (int attempt = 1;; ++attempt) {
    auto out = dumpOnce(table);
    if (out || out.error().sysErrno != EINTR || attempt == kAttempts) return out;
  }
}

void SeenCounter::sample(const std::map<std::pair<std::string, uint64_t>, uint64_t>& counters) {
  for (const auto& [rule, packets] : counters) {
    auto it = last_.find(rule);
    const uint64_t before = it == last_.end() ? 0 : it->second;
    total_ += packets >= before ? packets - before : packets;
  }
  last_ = counters;
}

}  // namespace bulkhead::nft
