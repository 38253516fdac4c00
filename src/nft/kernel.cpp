#include "bulkhead/nft/kernel.h"

#include <thread>

namespace bulkhead::nft {

// The kernel dumps a set's elements in several netlink messages, and each
// continuation walks the set again from its start, skipping the elements
// already sent. A hash set (rhashtable) grows in a deferred worker after a
// large commit; a rehash between two continuations reorders that walk, so
// the dump misses elements (a 120,000-element set, read right after the
// commit that filled it, came back 4,000-10,000 short; 200 ms later, whole).
// Interval sets (pipapo) keep their order. Nothing in the dump says it
// happened, so a difference is read again before it counts.
Result<std::optional<std::string>> kernelDifferences(NftKernel& kernel,
                                                     const TableContent& expected,
                                                     std::chrono::milliseconds pause) {
  for (int read = 1;; ++read) {
    auto actual = kernel.readTable(expected.table());
    if (!actual) return actual.takeError();
    auto differs = expected.differences(*actual);
    if (!differs || read == kTableReads) return differs;
    std::this_thread::sleep_for(pause);
  }
}

}  // namespace bulkhead::nft
