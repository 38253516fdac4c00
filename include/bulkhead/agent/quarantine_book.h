// Who is quarantined, why, since and until when. Manual quarantines last
// until released; automatic ones (scan detection) expire, and a workload
// caught again within a day of its last automatic quarantine gets twice
// that length. Released records are kept for a day for that doubling.
// Saved with the agent's state, so quarantines survive restarts with their
// expiry. Not thread-safe: the core holds it under its lock.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::agent {

struct QuarantineWhy {
  std::string reason = "manual";  // "auto/scan/hosts", "auto/scan/ports", "expired", ...
  uint32_t seconds = 0;           // > 0: expires (the base length, before doubling)
};

class QuarantineBook {
 public:
  static constexpr int64_t kRepeatWindow = 86400;       // "caught again within a day"
  static constexpr uint32_t kMaxSeconds = 30u * 86400;  // doubling stops here

  // A quarantine starting at `now` (unix seconds); the record as kept.
  v1::QuarantineRecord start(const std::string& workload, const QuarantineWhy& why, int64_t now);
  // Released (by hand or on expiry): kept inactive for the doubling.
  void end(const std::string& workload, int64_t now);
  // Active quarantines whose expiry is at or before `now`.
  std::vector<std::string> due(int64_t now) const;
  // Active ones, sorted by workload.
  std::vector<v1::QuarantineRecord> active() const;

  // From a saved state: the records, and the names quarantined (a name with
  // no record, from an older state, is a manual quarantine).
  void load(const google::protobuf::RepeatedPtrField<v1::QuarantineRecord>& records,
            const std::set<std::string>& quarantined);
  void saveTo(google::protobuf::RepeatedPtrField<v1::QuarantineRecord>* out) const;

 private:
  std::map<std::string, v1::QuarantineRecord> records_;
};

}  // namespace bulkhead::agent
