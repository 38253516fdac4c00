#include "bulkhead/nft/counters.h"

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "netlink_socket.h"

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
  auto opened = openNetfilterSocket();
  if (!opened) return opened.takeError();
  const MnlSocketPtr nl = std::move(*opened);
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  const uint32_t seq = 1;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, seq);
  std::unique_ptr<nftnl_rule, RuleFree> filter(nftnl_rule_alloc());
  nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_nlmsg_build_payload(nlh, filter.get());
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0)
    return makeError(ErrorCode::kKernel, "cannot dump the rules of table inet " + table, errno);

  std::map<std::pair<std::string, uint64_t>, uint64_t> out;
  DumpState state{&out};
  const uint32_t portId = mnl_socket_get_portid(nl.get());
  const int fd = mnl_socket_get_fd(nl.get());
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, kTimeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return makeError(ErrorCode::kKernel, "rule dump timed out", ETIMEDOUT);
    const ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return makeError(ErrorCode::kKernel, "reading the rule dump", errno);
    }
    const int rc = mnl_cb_run(buf.data(), size_t(n), seq, portId, onRule, &state);
    if (rc == MNL_CB_STOP) break;
    if (rc < 0) {
      // A table that does not exist (yet, or deleted by someone) has no counters.
      if (errno == ENOENT) return out;
      return makeError(ErrorCode::kKernel, "rule dump of table inet " + table, errno);
    }
  }
  return out;
}

}  // namespace

Result<std::map<std::pair<std::string, uint64_t>, uint64_t>> readRuleCounters(
    const std::string& table) {
  // A commit during the dump (ours or anyone's) makes the kernel flag it
  // NLM_F_DUMP_INTR, which libmnl reports as EINTR: the rules read so far
  // may mix two generations. Dump again; commits are short.
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
