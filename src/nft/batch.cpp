#include "bulkhead/nft/batch.h"

// Before the linux/ headers: glibc and uapi then agree on struct in_addr.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstring>

namespace bulkhead::nft {

std::string Batch::describe(uint32_t seq) const {
  if (seq < firstSeq) return "";
  const size_t index = seq - firstSeq;
  return index < descriptions.size() ? descriptions[index] : "";
}

BatchBuilder::BatchBuilder(uint32_t firstSeq) {
  batch_.firstSeq = firstSeq;
  putBatchControl(NFNL_MSG_BATCH_BEGIN, "begin transaction");
}

void BatchBuilder::putBatchControl(uint16_t type, std::string description) {
  closeOpen();
  const size_t offset = batch_.bytes.size();
  batch_.bytes.resize(offset + MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg)));
  nlmsghdr* nlh = mnl_nlmsg_put_header(batch_.bytes.data() + offset);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = batch_.firstSeq + static_cast<uint32_t>(batch_.descriptions.size());
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  // The batch is addressed to nf_tables by res_id, not by message type.
  nfg->res_id = htons(NFNL_SUBSYS_NFTABLES);
  batch_.descriptions.push_back(std::move(description));
}

nlmsghdr* BatchBuilder::begin(uint16_t nftMsgType, uint16_t family, uint16_t flags,
                              std::string description) {
  closeOpen();
  // Built in a scratch buffer with room for the largest message, then copied
  // into the batch at its real length by closeOpen().
  if (scratch_.empty()) scratch_.resize(kMaxMessageBytes + 4096);
  open_ = true;
  nlmsghdr* nlh = mnl_nlmsg_put_header(scratch_.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | nftMsgType;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = batch_.firstSeq + static_cast<uint32_t>(batch_.descriptions.size());
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = static_cast<uint8_t>(family);
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  batch_.descriptions.push_back(std::move(description));
  return nlh;
}

void BatchBuilder::closeOpen() {
  if (!open_) return;
  open_ = false;
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(scratch_.data());
  if (nlh->nlmsg_len > kMaxMessageBytes) {
    overflow_ = true;
    return;
  }
  const size_t len = MNL_ALIGN(nlh->nlmsg_len);
  lastMessage_ = batch_.bytes.size();
  batch_.bytes.insert(batch_.bytes.end(), scratch_.begin(), scratch_.begin() + len);
}

Result<Batch> BatchBuilder::finish() {
  closeOpen();
  // Only the last message asks for an ACK. The kernel reports every failing
  // message whether it asked or not, and processes the whole batch before
  // answering: so "no error and the last ACK arrived" means committed, and
  // a batch of 100k messages does not queue 100k ACKs (each a separate skb
  // of ~1 KiB truesize) into the receive buffer, where they would overflow.
  if (lastMessage_ != SIZE_MAX) {
    reinterpret_cast<nlmsghdr*>(batch_.bytes.data() + lastMessage_)->nlmsg_flags |= NLM_F_ACK;
  }
  putBatchControl(NFNL_MSG_BATCH_END, "commit transaction");
  if (overflow_) {
    return makeError(ErrorCode::kInternal, "a netlink message of the batch exceeds 64 KiB");
  }
  return std::move(batch_);
}

void renumberBatch(Batch& batch, uint32_t firstSeq) {
  batch.firstSeq = firstSeq;
  uint32_t seq = firstSeq;
  size_t offset = 0;
  while (offset + sizeof(nlmsghdr) <= batch.bytes.size()) {
    auto* nlh = reinterpret_cast<nlmsghdr*>(batch.bytes.data() + offset);
    nlh->nlmsg_seq = seq++;
    offset += MNL_ALIGN(nlh->nlmsg_len);
  }
}

}  // namespace bulkhead::nft
