#include "bulkhead/agent/quarantine_book.h"

#include <algorithm>

namespace bulkhead::agent {

v1::QuarantineRecord QuarantineBook::start(const std::string& workload, const QuarantineWhy& why,
                                           int64_t now) {
  v1::QuarantineRecord r;
  r.set_workload(workload);
  r.set_reason(why.reason);
  r.set_since_unix(now);
  r.set_active(true);
  if (why.seconds > 0) {
    uint32_t seconds = why.seconds;
    auto it = records_.find(workload);
    // Caught again within a day of the last automatic quarantine: twice as long.
    if (it != records_.end() && it->second.seconds() > 0 &&
        now - it->second.since_unix() < kRepeatWindow)
      seconds = std::min<uint64_t>(uint64_t(it->second.seconds()) * 2, kMaxSeconds);
    r.set_seconds(seconds);
    r.set_until_unix(now + seconds);
  }
  records_[workload] = r;
  return r;
}

void QuarantineBook::end(const std::string& workload, int64_t now) {
  auto it = records_.find(workload);
  if (it == records_.end()) return;
  it->second.set_active(false);
  // A manual record has nothing to double; forget it.
  if (it->second.seconds() == 0) records_.erase(it);
  // Inactive records older than the repeat window are of no use any more.
  for (auto i = records_.begin(); i != records_.end();)
    i = !i->second.active() && now - i->second.since_unix() >= kRepeatWindow ? records_.erase(i)
                                                                             : std::next(i);
}

std::vector<std::string> QuarantineBook::due(int64_t now) const {
  std::vector<std::string> out;
  for (const auto& [name, r] : records_)
    if (r.active() && r.until_unix() > 0 && r.until_unix() <= now) out.push_back(name);
  return out;
}

std::vector<v1::QuarantineRecord> QuarantineBook::active() const {
  std::vector<v1::QuarantineRecord> out;
  for (const auto& [name, r] : records_)
    if (r.active()) out.push_back(r);
  return out;
}

void QuarantineBook::load(const google::protobuf::RepeatedPtrField<v1::QuarantineRecord>& records,
                          const std::set<std::string>& quarantined) {
  records_.clear();
  for (const auto& r : records)
    records_[r.workload()] = r;
  for (auto& [name, r] : records_)
    r.set_active(quarantined.count(name) > 0);
  for (const auto& name : quarantined) {
    if (records_.count(name)) continue;
    v1::QuarantineRecord r;
    r.set_workload(name);
    r.set_reason("manual");
    r.set_active(true);
    records_[name] = r;
  }
}

void QuarantineBook::saveTo(google::protobuf::RepeatedPtrField<v1::QuarantineRecord>* out) const {
  out->Clear();
  for (const auto& [name, r] : records_)
    *out->Add() = r;
}

}  // namespace bulkhead::agent
