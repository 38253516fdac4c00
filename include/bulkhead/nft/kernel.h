// Kernel access for the nft layer, behind an interface passed to the writer
// (as katran's BaseBpfAdapter): the real one talks netlink through libmnl; tests
// without root pass one that records the batch and decodes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/nft/table_content.h"

namespace bulkhead::nft {

// One nfnetlink batch: BATCH_BEGIN, the messages, BATCH_END, as bytes ready to
// send, plus what each message does so a refusal can name the object.
class Batch {
 public:
  std::vector<uint8_t> bytes;
  uint32_t firstSeq = 0;  // sequence number of BATCH_BEGIN
  std::vector<std::string>
      descriptions;  // index: seq - firstSeq ("add set inet bulkhead a4_billing")

  // The description of the message with sequence number `seq`, or "".
  std::string describe(uint32_t seq) const;
  size_t messageCount() const { return descriptions.size(); }
};

class NftKernel {
 public:
  virtual ~NftKernel() = default;

  // Sends one batch as one transaction and checks every ACK. On a refusal the
  // error carries the kernel's errno and names the object it refused.
  virtual Status commit(const Batch& batch) = 0;

  // Whether `table inet <name>` exists now.
  virtual Result<bool> tableExists(const std::string& name) = 0;
  // The netns-wide ruleset generation: every commit, by anyone, to any
  // table bumps it. Equal before and after means nobody committed between.
  virtual Result<uint32_t> generation() = 0;

  // What `table inet <name>` holds now, read back from the kernel (a
  // content that does not exist when the table is missing): what the drift
  // check compares with what was applied. Kernels that cannot read a table
  // back answer kUnavailable; the check then only asks tableExists().
  virtual Result<TableContent> readTable(const std::string& name) {
    return makeError(ErrorCode::kUnavailable, "this kernel cannot read table inet " + name);
  }
  // The same in pieces, for a reader that lets commits of its own fall
  // between them and compares each piece with what it applied at that
  // moment (the agent's drift check): the table's chains with their rules
  // and its sets' declarations, every set without elements... A dump that
  // a commit interrupted (anyone's, to any table: the kernel cannot tell
  // whether it touched what was dumped) is returned as read; the caller
  // reads a piece that differs again before the difference counts.
  virtual Result<TableContent> readDeclarations(const std::string& table) {
    return makeError(ErrorCode::kUnavailable, "this kernel cannot read table inet " + table);
  }
  // ...and the elements of one set, sorted as TableContent::normalize does;
  // a set that does not exist is a kKernel error with errno ENOENT.
  virtual Result<std::vector<std::string>> readElements(const std::string& table,
                                                        const std::string& set) {
    return makeError(ErrorCode::kUnavailable,
                     "this kernel cannot read set " + set + " of table inet " + table);
  }

  // A sequence number for the next batch (monotonic per kernel object).
  virtual uint32_t nextSeq(uint32_t count) = 0;
};

// How `table inet <expected.table()>` in `kernel` differs from `expected`
// (normalized): nullopt when it holds the same. A difference counts only
// when kTableReads reads, `pause` apart, all show one: the dump of a hash
// set the kernel is still growing can miss elements (see kernel.cpp).
inline constexpr int kTableReads = 3;
inline constexpr std::chrono::milliseconds kTableReadPause{100};
Result<std::optional<std::string>> kernelDifferences(
    NftKernel& kernel, const TableContent& expected,
    std::chrono::milliseconds pause = kTableReadPause);

}  // namespace bulkhead::nft
