// A kernel for unit tests of the drift check: every committed batch (the
// writer's real bytes) is applied to a TableContent with the same parser the
// real kernel's dump goes through, and readTable() answers with it. Tests
// tamper with `content` to play a foreign change.
#pragma once

#include <string>

#include "bulkhead/nft/kernel.h"
#include "bulkhead/nft/table_content.h"

namespace bulkhead::agent {

class ContentKernel : public nft::NftKernel {
 public:
  explicit ContentKernel(std::string table) : content(std::move(table)) {}

  Status commit(const nft::Batch& batch) override {
    ++commits;
    if (Status st = content.apply(batch); !st) return st;
    ++gen;
    return {};
  }
  Result<bool> tableExists(const std::string&) override { return content.exists; }
  Result<uint32_t> generation() override { return gen; }
  Result<nft::TableContent> readTable(const std::string&) override {
    ++reads;
    nft::TableContent copy = content;
    copy.normalize();
    return copy;
  }
  uint32_t nextSeq(uint32_t count) override {
    const uint32_t s = seq;
    seq += count;
    return s;
  }

  nft::TableContent content;
  int commits = 0;
  int reads = 0;
  uint32_t gen = 1;
  uint32_t seq = 1;
};

}  // namespace bulkhead::agent
