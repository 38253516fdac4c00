// Scan detection on the denied-flow feed: per workload, over a sliding
// window, a sweep (at least `hosts` distinct denied destination addresses on
// one protocol and port) or a port scan (at least `ports` distinct denied
// protocol/ports on one destination) is a finding. The same shapes as
// Zeek's scan policy and CrowdSec's port-scan scenario. Fed with every
// attempt before folding and rate limits; memory is bounded by maxEntries
// whatever the traffic. Single-threaded (the flow thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bulkhead/common/flat_table.h"
#include "bulkhead/flows/event.h"

namespace bulkhead::agent {

struct ScanOptions {
  uint32_t hosts = 20;  // distinct destinations on one port: a sweep
  uint32_t ports = 15;  // distinct ports on one destination: a port scan
  std::chrono::seconds window{60};
  // (workload, port, destination) entries held at most: the detector's
  // memory is bounded by this whatever the traffic (about 130 bytes each).
  size_t maxEntries = 65536;
  size_t sample = 5;  // destinations or ports named in the evidence
};

enum class ScanKind { kHosts, kPorts };

// "scan/hosts" or "scan/ports".
const char* scanReason(ScanKind kind);

struct ScanFinding {
  ScanKind kind = ScanKind::kHosts;
  std::string workload, app;
  uint32_t distinct = 0;
  std::string port;                 // sweep: "tcp/22"
  policy::IpAddr dst;               // port scan: the destination
  std::vector<std::string> sample;  // sorted
  flows::FlowEvent trigger;         // the attempt that crossed the threshold
};

// The `anomaly` event a finding is reported as (evidence in fields).
flows::FlowEvent anomalyEvent(const ScanFinding& f, const ScanOptions& o);

class ScanDetector {
 public:
  explicit ScanDetector(ScanOptions options);

  // One denied (or audited) attempt; the finding when it crosses a
  // threshold. A workload reported for a kind is not reported again for it
  // within the window. Other actions and unattributed attempts are ignored.
  std::optional<ScanFinding> observe(const flows::FlowEvent& e);

  // (workload, protocol/port, destination) entries held; at most maxEntries.
  size_t entries() const { return triples_.size(); }
  size_t workloads() const { return names_.size(); }
  // Memory held by the detector's tables (grows with use up to its bound).
  size_t bytes() const;
  const ScanOptions& options() const { return options_; }

  static constexpr size_t kMaxWorkloads = 65536;  // interned names; beyond, all state starts over

 private:
  using Time = flows::Clock::time_point;
  // One attempt's shape: the workload's id, the port key and the
  // destination. wp: workload id << 32 | family << 24 | protocol index << 16 | port.
  struct Triple {
    uint64_t wp = 0, lo = 0, hi = 0;
    bool operator==(const Triple&) const = default;
  };
  struct Entry {
    Time when{};          // last attempt
    bool counted = true;  // false: found expired at a check, no longer in the counts
  };
  struct DstKey {  // (workload id, family) and the destination: a port scan's group
    uint64_t wf = 0, lo = 0, hi = 0;
    bool operator==(const DstKey&) const = default;
  };
  struct Record {  // expiry order: an entry and its time when queued
    Triple key;
    Time when{};
  };
  struct Workload {
    Time quietHosts{}, quietPorts{};
    size_t live = 0;  // entries held
  };

  uint32_t workloadId(const std::string& name);
  uint32_t portKey(const flows::FlowEvent& e);
  std::string portName(uint32_t key) const;
  uint64_t hashOf(const Triple& t) const;
  uint64_t hashOf(uint64_t sweep) const;
  uint64_t hashOf(const DstKey& d) const;
  static uint64_t sweepKey(const Triple& t) { return t.wp & ~(uint64_t(0xff) << 24); }
  static DstKey dstKey(const Triple& t) {
    return {t.wp >> 32 << 32 | (t.wp >> 24 & 0xff), t.lo, t.hi};
  }
  static policy::IpAddr dstOf(const Triple& t);

  void expire(Time now);
  void uncount(const Triple& t, Entry& e);
  void drop(const Triple& t);  // removes an entry (its record is handled by the caller)
  bool makeRoom(uint32_t wid);
  void restartWorkload(uint32_t wid);
  void push(const Record& r);
  Record pop();
  std::optional<ScanFinding> check(ScanKind kind, const Triple& t, const flows::FlowEvent& e,
                                   Time& quiet);

  ScanOptions options_;
  uint64_t seed_;
  FlatTable<Triple, Entry> triples_;
  FlatTable<uint64_t, uint32_t> sweeps_;  // (workload, port) -> destinations counted
  FlatTable<DstKey, uint32_t> scans_;     // (workload, destination) -> ports counted
  // Every entry once, in the order its time was last queued: expiry pops the
  // front (a ring over a vector that grows up to maxEntries).
  std::vector<Record> ring_;
  size_t head_ = 0, queued_ = 0;
  // Interned workload names: name -> id, and per id its state.
  FlatTable<uint64_t, uint32_t> ids_;                   // name hash -> id
  std::unordered_map<std::string, uint32_t> collided_;  // names whose hash another name has
  std::vector<std::string> names_;
  std::vector<Workload> state_;
  std::vector<std::string> protos_;  // interned protocol names
};

}  // namespace bulkhead::agent
