// Building one nfnetlink batch (BATCH_BEGIN, messages, BATCH_END) into a
// Batch: every message gets the next sequence number and a description, so a
// kernel refusal can be mapped back to the object it concerns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/nft/kernel.h"

struct nlmsghdr;

namespace bulkhead::nft {

// Largest message the builder lets a caller fill. nf_tables attributes carry
// 16-bit lengths, so one message's payload (the set element list above all)
// must stay below 64 KiB; callers keep well under that (see kElemBudgetBytes).
inline constexpr size_t kMaxMessageBytes = 64 * 1024;

class BatchBuilder {
 public:
  explicit BatchBuilder(uint32_t firstSeq);

  // Starts an nf_tables message (NFT_MSG_*) with the next sequence number; the
  // caller fills its payload through the returned header before calling
  // begin() again or finish(). The pointer is valid until then.
  nlmsghdr* begin(uint16_t nftMsgType, uint16_t family, uint16_t flags, std::string description);

  // Closes the batch (BATCH_END) and sets NLM_F_ACK on the last nf_tables
  // message (the only one that asks for an ACK; see batch.cpp). Fails if a message grew past
  // kMaxMessageBytes (a bug in the caller's splitting).
  Result<Batch> finish();

  // Messages so far, BATCH_BEGIN included.
  size_t messageCount() const { return batch_.descriptions.size(); }

 private:
  void closeOpen();
  void putBatchControl(uint16_t type, std::string description);

  Batch batch_;
  std::vector<uint8_t> scratch_;  // the message being filled
  bool open_ = false;
  size_t lastMessage_ = SIZE_MAX;  // offset of the last nf_tables message
  bool overflow_ = false;
};

// Rewrites every message's sequence number to firstSeq + index (the batch is
// built before the kernel hands out its sequence numbers).
void renumberBatch(Batch& batch, uint32_t firstSeq);

}  // namespace bulkhead::nft
