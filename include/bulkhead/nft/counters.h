// Reads the packet counters of the rules in bulkhead's table that count the
// attempts the flow feed reports on: the rules carrying both a comment and a
// counter (see compiler.h). Their values restart at zero when a chain is
// rewritten or the table replaced; SeenCounter turns the samples into one
// monotonic total.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "bulkhead/common/result.h"

namespace bulkhead::nft {

// (chain, rule handle) -> packets, for the counted rules of `inet <table>`, in
// the calling thread's network namespace. A missing table is an empty map.
Result<std::map<std::pair<std::string, uint64_t>, uint64_t>> readRuleCounters(
    const std::string& table);

class SeenCounter {
 public:
  // Adds what each rule counted since the last sample; a rule that is new or
  // whose counter went back (rewritten) counts from zero.
  void sample(const std::map<std::pair<std::string, uint64_t>, uint64_t>& counters);
  uint64_t total() const { return total_; }

 private:
  std::map<std::pair<std::string, uint64_t>, uint64_t> last_;
  uint64_t total_ = 0;
};

}  // namespace bulkhead::nft
