#include "bulkhead/nft/mnl_kernel.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <endian.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <vector>

#include "bulkhead/nft/objects.h"

namespace bulkhead::nft {

namespace {

// Replies are small (CAP_ACK keeps the request out of error messages), but a
// kernel without CAP_ACK support echoes the request: room for one message.
constexpr size_t kRecvBufferBytes = 128 * 1024;
// Receive buffer for the replies of one batch: one ACK plus one error per
// refused message. Refusals are rare; this holds thousands of them.
constexpr int kRcvBufBytes = 4 * 1024 * 1024;
// How long to wait for the first reply. The kernel processes a whole batch
// inside sendmsg(), so the replies are normally queued when it returns.
constexpr int kReplyTimeoutMs = 10'000;

std::string errnoText(int err) {
  return std::strerror(err);
}

// The kernel's extended-ACK message text, if it sent one.
std::string extackMessage(const nlmsghdr* nlh) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  size_t offset = MNL_NLMSG_HDRLEN + sizeof(nlmsgerr);
  // Without NLM_F_CAPPED the refused request follows the header.
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - MNL_NLMSG_HDRLEN;
  if (offset >= nlh->nlmsg_len) return "";
  const auto* attr = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(nlh) + offset);
  int left = static_cast<int>(nlh->nlmsg_len - offset);
  for (; mnl_attr_ok(attr, left); attr = mnl_attr_next(attr)) {
    left -= MNL_ALIGN(attr->nla_len);
    if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
        mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
      return mnl_attr_get_str(attr);
    }
  }
  return "";
}

}  // namespace

Result<std::unique_ptr<MnlKernel>> MnlKernel::open() {
  // The buffer holds the replies of one batch (kRcvBufBytes).
  auto opened = NetlinkSocket::open(NETLINK_NETFILTER, kRcvBufBytes, kRecvBufferBytes);
  if (!opened) return opened.takeError();
  // Errors carry the kernel's reason text, but not a copy of the request.
  opened->enable(NETLINK_EXT_ACK);
  opened->enable(NETLINK_CAP_ACK);
  return std::unique_ptr<MnlKernel>(
      new MnlKernel(std::move(*opened), static_cast<uint32_t>(time(nullptr))));
}

MnlKernel::MnlKernel(NetlinkSocket socket, uint32_t seed)
    : socket_(std::move(socket)), portId_(socket_.portId()), seq_(seed) {}

uint32_t MnlKernel::nextSeq(uint32_t count) {
  const uint32_t first = seq_;
  seq_ += count;
  return first;
}

Status MnlKernel::growSendBuffer(size_t bytes) {
  // netlink_sendmsg() refuses a datagram larger than sk_sndbuf - 32 bytes
  // with EMSGSIZE; the whole batch must be one datagram to be one
  // transaction. The kernel doubles the value it is given.
  const size_t want = bytes + 64 * 1024;
  if (want <= sendBuffer_) return {};
  if (want > static_cast<size_t>(INT32_MAX) / 2) {
    return makeError(ErrorCode::kTooLarge, "batch of " + std::to_string(bytes) + " bytes");
  }
  if (Status s = socket_.setSendBuffer(static_cast<int>(want)); !s) return s;
  sendBuffer_ = want;
  return {};
}

Status MnlKernel::commit(const Batch& batch) {
  if (batch.bytes.empty() || batch.messageCount() < 2) {
    return makeError(ErrorCode::kInternal, "empty batch");
  }
  if (Status s = growSendBuffer(batch.bytes.size()); !s) return s;
  // Drop anything left over from an earlier, interrupted exchange.
  socket_.discardQueued();
  if (Status s = socket_.send(batch.bytes.data(), batch.bytes.size()); !s) {
    return makeError(ErrorCode::kKernel,
                     "cannot send a batch of " + std::to_string(batch.bytes.size()) + " bytes (" +
                         std::to_string(batch.messageCount()) + " messages)",
                     s.error().sysErrno);
  }
  return readCommitReplies(batch);
}

Status MnlKernel::readCommitReplies(const Batch& batch) {
  // Only the last nf_tables message asks for an ACK (see BatchBuilder::finish);
  // any refused message answers with an error regardless.
  const uint32_t firstSeq = batch.firstSeq;
  const uint32_t lastSeq = firstSeq + static_cast<uint32_t>(batch.messageCount()) - 2;
  const uint32_t endSeq = firstSeq + static_cast<uint32_t>(batch.messageCount());
  bool acked = false;
  std::optional<Error> firstError;
  size_t moreErrors = 0;
  bool lostReplies = false;
  auto onMessage = [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_seq < firstSeq || nlh->nlmsg_seq >= endSeq) return;  // stale
    if (nlh->nlmsg_type != NLMSG_ERROR) return;
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    if (err->error == 0) {
      if (nlh->nlmsg_seq == lastSeq) acked = true;
      return;
    }
    if (firstError) {
      ++moreErrors;
      return;
    }
    const int code = -err->error;
    std::string what = batch.describe(nlh->nlmsg_seq);
    if (what.empty()) what = "message " + std::to_string(nlh->nlmsg_seq - firstSeq);
    std::string msg = "kernel refused " + what + ": " + errnoText(code);
    if (std::string ext = extackMessage(nlh); !ext.empty()) msg += " (" + ext + ")";
    firstError = Error{ErrorCode::kKernel, code, std::move(msg)};
  };
  for (;;) {
    // Once the outcome is known, only drain what is already queued.
    const bool done = acked || firstError.has_value();
    auto r = socket_.receive(done ? 0 : kReplyTimeoutMs);
    if (!r)
      return makeError(ErrorCode::kKernel, "cannot read the kernel's replies", r.error().sysErrno);
    if (r->kind == NetlinkSocket::Received::Kind::kTimeout) break;
    if (r->kind != NetlinkSocket::Received::Kind::kData) {
      lostReplies = true;  // the receive buffer overflowed: some replies are gone
      continue;
    }
    NetlinkSocket::forEachMessage(r->bytes, onMessage);
  }

  if (firstError) {
    // The kernel aborts the whole transaction on any refusal.
    if (moreErrors > 0) {
      firstError->message += "; " + std::to_string(moreErrors) + " more message(s) refused";
    }
    return *std::move(firstError);
  }
  if (!acked) {
    return makeError(ErrorCode::kKernel,
                     lostReplies ? "kernel replies were lost (receive buffer overflow); "
                                   "the transaction's outcome is unknown"
                                 : "no acknowledgement for the transaction",
                     lostReplies ? ENOBUFS : ETIMEDOUT);
  }
  return {};
}

Result<bool> MnlKernel::tableExists(const std::string& name) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETTABLE,
                                        NFPROTO_INET, NLM_F_ACK, nextSeq(1));
  nftnl_table* t = nftnl_table_alloc();
  if (t == nullptr) return makeError(ErrorCode::kInternal, "cannot allocate nftnl table");
  nftnl_table_set_str(t, NFTNL_TABLE_NAME, name.c_str());
  nftnl_table_nlmsg_build_payload(nlh, t);
  nftnl_table_free(t);
  bool found = false;
  auto err =
      socket_.exchange(nlh, "table inet " + name, kReplyTimeoutMs, [&](const nlmsghdr* reply) {
        if ((reply->nlmsg_type & 0xff) == NFT_MSG_NEWTABLE) found = true;
        return Status{};
      });
  if (!err) return err.takeError();
  if (*err == 0) return found;
  if (*err == ENOENT) return false;
  return makeError(ErrorCode::kKernel,
                   "kernel refused get table inet " + name + ": " + errnoText(*err), *err);
}

Result<uint32_t> MnlKernel::generation() {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETGEN,
                                        AF_UNSPEC, NLM_F_ACK, nextSeq(1));
  std::optional<uint32_t> id;
  auto err =
      socket_.exchange(nlh, "the ruleset generation", kReplyTimeoutMs, [&](const nlmsghdr* reply) {
        if ((reply->nlmsg_type & 0xff) != NFT_MSG_NEWGEN) return Status{};
        mnl_attr_parse(
            reply, sizeof(nfgenmsg),
            [](const nlattr* attr, void* data) {
              if (mnl_attr_get_type(attr) == NFTA_GEN_ID &&
                  mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
                *static_cast<std::optional<uint32_t>*>(data) = be32toh(mnl_attr_get_u32(attr));
              }
              return MNL_CB_OK;
            },
            &id);
        return Status{};
      });
  if (!err) return err.takeError();
  if (*err != 0)
    return makeError(ErrorCode::kKernel, "kernel refused get generation: " + errnoText(*err), *err);
  if (!id) return makeError(ErrorCode::kKernel, "no generation in the kernel's reply", EPROTO);
  return *id;
}

Status MnlKernel::dump(nlmsghdr* request, const std::string& what,
                       const std::function<Status(const nlmsghdr*)>& onReply,
                       Interrupted interrupted) {
  auto err = socket_.exchange(request, "the dump of " + what, kReplyTimeoutMs, onReply);
  // Every reply was read: what an interrupted dump holds is there.
  if (!err && err.error().sysErrno == EINTR && interrupted == Interrupted::kAsRead) return {};
  if (!err) return err.takeError();
  if (*err != 0)
    return makeError(ErrorCode::kKernel, "kernel refused to dump " + what + ": " + errnoText(*err),
                     *err);
  return {};
}

Result<TableContent> MnlKernel::readDeclarations(const std::string& name) {
  return dumpDeclarations(name, Interrupted::kAsRead);
}

Result<std::vector<std::string>> MnlKernel::readElements(const std::string& table,
                                                         const std::string& set) {
  return dumpElements(table, set, Interrupted::kAsRead);
}

Result<TableContent> MnlKernel::dumpDeclarations(const std::string& name, Interrupted interrupted) {
  TableContent content(name);
  auto exists = tableExists(name);
  if (!exists) return exists.takeError();
  if (!*exists) return content;
  content.exists = true;
  auto apply = [&](const nlmsghdr* reply) { return content.apply(reply); };
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  auto* req = reinterpret_cast<char*>(buf.data());
  const std::string table = "table inet " + name;
  // Chains of every table come back (the kernel filters them by family
  // only); content.apply keeps ours.
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(req, NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_DUMP, nextSeq(1));
  if (Status st = dump(nlh, "the chains of " + table, apply, interrupted); !st)
    return st.takeError();
  nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP, nextSeq(1));
  SetPtr setFilter = makeSetRef(name, "");
  nftnl_set_unset(setFilter.get(), NFTNL_SET_NAME);
  nftnl_set_nlmsg_build_payload(nlh, setFilter.get());
  if (Status st = dump(nlh, "the sets of " + table, apply, interrupted); !st) return st.takeError();
  nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, nextSeq(1));
  RulePtr ruleFilter(nftnl_rule_alloc());
  nftnl_rule_set_str(ruleFilter.get(), NFTNL_RULE_TABLE, name.c_str());
  nftnl_rule_nlmsg_build_payload(nlh, ruleFilter.get());
  if (Status st = dump(nlh, "the rules of " + table, apply, interrupted); !st)
    return st.takeError();
  return content;
}

Result<std::vector<std::string>> MnlKernel::dumpElements(const std::string& table,
                                                         const std::string& set,
                                                         Interrupted interrupted) {
  // The replies are parsed as a table's would be: into a content that
  // declares only this set.
  TableContent content(table);
  content.exists = true;
  SetContent& elements = content.sets[set];
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETSETELEM,
                                        NFPROTO_INET, NLM_F_DUMP, nextSeq(1));
  SetPtr s = makeSetRef(table, set);
  nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
  if (Status st = dump(
          nlh, "the elements of set " + set,
          [&](const nlmsghdr* reply) { return content.apply(reply); }, interrupted);
      !st)
    return st.takeError();
  content.normalize();
  return std::move(elements.elements);
}

Result<TableContent> MnlKernel::dumpTable(const std::string& name) {
  auto content = dumpDeclarations(name, Interrupted::kFails);
  if (!content || !content->exists) return content;
  for (auto& [set, setContent] : content->sets) {
    if (setContent.dynamic) continue;
    auto elements = dumpElements(name, set, Interrupted::kFails);
    if (!elements) return elements.takeError();
    setContent.elements = std::move(*elements);
  }
  return content;
}

Result<TableContent> MnlKernel::readTable(const std::string& name) {
  // The dumps are several requests: equal generations around them mean no
  // commit (ours or anyone's) fell between, so they show one state.
  constexpr int kAttempts = 3;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto before = generation();
    if (!before) return before.takeError();
    auto content = dumpTable(name);
    if (!content && content.error().sysErrno != EINTR) return content;
    auto after = generation();
    if (!after) return after.takeError();
    if (content && *before == *after) return content;
  }
  return makeError(ErrorCode::kUnavailable, "table inet " + name + " kept changing while read",
                   EAGAIN);
}

}  // namespace bulkhead::nft
