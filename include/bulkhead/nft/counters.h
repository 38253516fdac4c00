// The packet counters of the rules in bulkhead's table that count the
// attempts the flow feed reports on: the rules carrying both a comment and a
// counter (see compiler.h). Read through CounterReader, an interface passed
// in as NftKernel is, so the accounting is unit-tested without root. The
// values restart at zero when a chain is rewritten or the table replaced;
// SeenCounter turns the samples into one monotonic total.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "bulkhead/common/result.h"

struct nftnl_rule;

namespace bulkhead::nft {

// (chain, rule handle) -> packets.
using RuleCounters = std::map<std::pair<std::string, uint64_t>, uint64_t>;

// Whether `rule` is counted (a comment and a counter), and its packets.
bool isCountedRule(const nftnl_rule* rule);
uint64_t rulePackets(const nftnl_rule* rule);

class CounterReader {
 public:
  virtual ~CounterReader() = default;
  // The counted rules of `inet <table>`; a missing table is an empty map.
  // EINTR: commits interrupted every dump tried.
  virtual Result<RuleCounters> readRuleCounters(const std::string& table) = 0;
};

// The kernel's: one netfilter socket per read, in the calling thread's
// network namespace.
class MnlCounterReader : public CounterReader {
 public:
  Result<RuleCounters> readRuleCounters(const std::string& table) override;
};

class SeenCounter {
 public:
  // Adds what each rule counted since the last sample; a rule that is new or
  // whose counter went back (rewritten) counts from zero.
  void sample(const RuleCounters& counters);
  uint64_t total() const { return total_; }

 private:
  RuleCounters last_;
  uint64_t total_ = 0;
};

// SeenCounter fed from a CounterReader; any thread.
class AttemptCounter {
 public:
  AttemptCounter(CounterReader& reader, std::string table)
      : reader_(reader), table_(std::move(table)) {}

  // Takes the counters now. A failed read leaves the total as it is: the
  // counters only grow, so the next sample catches up.
  Status sample();
  uint64_t total() const;

 private:
  CounterReader& reader_;
  const std::string table_;
  // One sample at a time, read and applied in order: a read taken before
  // another's but applied after it would look like counters that went back
  // (a rewrite) and be counted again.
  std::mutex sampling_;
  mutable std::mutex mu_;  // seen_, for total() while a sample reads
  SeenCounter seen_;
};

}  // namespace bulkhead::nft
