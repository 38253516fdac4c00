// A kernel for unit tests of the layers above nft: counts transactions and
// refuses the ones a test asks it to, as the real kernel would (errno set).
// The real kernel is exercised by the privileged tests.
#pragma once

#include <cerrno>
#include <string>

#include "bulkhead/nft/kernel.h"

namespace bulkhead::agent {

// Counts transactions and refuses the ones it is told to, like a kernel
// answering EPERM/ENOENT. Tracks whether the table "exists".
class ScriptedKernel : public nft::NftKernel {
 public:
  Status commit(const nft::Batch& batch) override {
    ++commits;
    lastMessages = batch.messageCount();
    bool deletesChain = false, dropsReference = false;
    for (const auto& d : batch.descriptions) {
      deletesChain |= d.rfind("delete chain", 0) == 0;
      dropsReference |= d.rfind("delete elements", 0) == 0;
    }
    // Late notice: a chain deleted in the batch that removes the dispatch
    // element pointing at it still looks referenced.
    if (deletesChain && dropsReference && busyOnChainDelete) {
      return makeError(ErrorCode::kKernel, "kernel refused delete chain", EBUSY);
    }
    if (deletesChain) ++chainDeletes;
    if (refuse > 0) {
      --refuse;
      return makeError(ErrorCode::kKernel, "kernel refused add element", ENOENT);
    }
    tableThere = true;
    ++gen;
    return {};
  }
  Result<bool> tableExists(const std::string&) override { return tableThere; }
  // Bumped by every accepted commit; tests bump it to play a foreign commit.
  Result<uint32_t> generation() override { return gen; }
  uint32_t nextSeq(uint32_t count) override {
    const uint32_t s = seq;
    seq += count;
    return s;
  }

  int commits = 0;
  int chainDeletes = 0;
  bool busyOnChainDelete = false;
  int refuse = 0;
  size_t lastMessages = 0;
  bool tableThere = false;
  uint32_t gen = 1;
  uint32_t seq = 1;
};

}  // namespace bulkhead::agent
