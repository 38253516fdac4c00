// Scan detection on the denied-flow feed: per workload, over a sliding
// window, a sweep (at least `hosts` distinct denied destination addresses on
// one protocol and port) or a port scan (at least `ports` distinct denied
// protocol/ports on one destination) is a finding. The same shapes as
// Zeek's scan policy and CrowdSec's port-scan scenario. Fed with every
// attempt before folding and rate limits; memory is bounded by maxEntries
// whatever the traffic. Single-threaded (the flow thread).
//
// The state is two pools of small distinct-sets: per (workload, port) the
// destinations seen, per (workload, destination) the ports seen, each set
// holding at most its threshold of members with the time each was last
// seen (a set full of live members is a finding, so the count is exact).
// Repeats are mostly filtered before: the flow pipeline hints an attempt
// already observed within its fold window (observe's `repeat`), so the
// detector works on the first attempt of a tuple per fold window only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
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
  // Members (one attempt's shape in one set) held at most, both kinds
  // together: the detector's memory is bounded by this whatever the
  // traffic (about 30 bytes each).
  size_t maxEntries = 131072;
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

namespace scan {

// Milliseconds since the detector's base time, from 1 (0: an empty slot).
using Tick = uint32_t;
constexpr uint32_t kNone = ~0u;

// A member is live while younger than the window (a time ahead of `now`,
// from an attempt logged out of order, counts as live).
inline bool live(Tick t, Tick now, Tick window) {
  return t != 0 && int32_t(now - t) < int32_t(window);
}

// Up to maxGroups sets keyed by K, each of at most `cap` distinct members M
// with the tick each was last seen. A set's members are packed at its front
// (no holes to skip) and its header keeps a lower bound of their ticks, so
// an attempt reads only the members held and walks them for expiry only
// when the oldest may have left the window. At the bound a new set takes
// the place of an expired or the oldest one, or, when the workload asking
// holds a quarter of all sets (a flood below the thresholds), of its own.
template <typename K, typename M>
class DistinctSets {
 public:
  struct Header {
    K key{};
    uint64_t hash = 0;
    uint32_t workload = 0;
    Tick last = 0;    // latest attempt
    Tick queued = 0;  // when put at the back of the eviction queue
    Tick oldest = 0;  // no member was seen before this (a lower bound)
    uint32_t size = 0;
    bool held = false;  // in the index under key (not free)
  };

  // The arrays are reserved, and the index sized, for the bound (pages are
  // touched as sets open): growing them by copying and rehashing, mid-scan,
  // stalls the flow thread and churns the allocator it shares.
  DistinctSets(size_t cap, size_t maxGroups)
      : cap_(cap), max_(maxGroups), index_(maxGroups, maxGroups * 4 / 3 + 1) {
    headers_.reserve(max_);
    members_.reserve(max_ * cap_);
    ticks_.reserve(max_ * cap_);
  }

  uint32_t open(const K& k, uint64_t h, uint32_t workload, Tick now, Tick window);
  // Counts m in set g (unless the set is full of live members); the live
  // members after it, m included when it is held.
  uint32_t touch(uint32_t g, const M& m, Tick now, Tick window);
  // Start loading what open (index slot) or touch (the set) will read.
  void prefetchIndex(uint64_t h) const { index_.prefetch(h); }
  void prefetchSet(uint32_t g) const {
    __builtin_prefetch(&headers_[g]);
    const char* m = reinterpret_cast<const char*>(&members_[size_t(g) * cap_]);
    const size_t held = headers_[g].size * sizeof(M);
    for (size_t b = 0; b < held; b += 64)
      __builtin_prefetch(m + b);
  }
  // Every member out (after a finding).
  void empty(uint32_t g);
  void reset();

  // Whether set g is in use for key k (g may be kNone or stale).
  bool holds(uint32_t g, const K& k) const {
    return g < headers_.size() && headers_[g].held && headers_[g].key == k;
  }
  // Members held by set g (all live as of its last touch), in slots [0, size).
  uint32_t size(uint32_t g) const { return headers_[g].size; }
  const M& member(uint32_t g, uint32_t slot) const { return members_[size_t(g) * cap_ + slot]; }
  size_t cap() const { return cap_; }
  size_t used() const { return used_; }
  size_t bytes() const;

 private:
  uint32_t reclaim(uint32_t workload, Tick now, Tick window);
  void release(uint32_t g);
  void restart(uint32_t workload);
  void expire(uint32_t g, Tick now, Tick window);

  size_t cap_, max_;
  FlatTable<K, uint32_t> index_;  // key -> set number
  std::vector<Header> headers_;
  std::vector<M> members_;  // cap_ per set
  std::vector<Tick> ticks_;
  std::vector<uint32_t> free_;
  std::deque<uint32_t> queue_;         // sets in the order they were (re)queued
  std::vector<uint32_t> perWorkload_;  // sets held, by workload id
  size_t used_ = 0;                    // members held
};

// A destination as a sweep's member (both families in one set).
struct Addr {
  uint64_t lo = 0, hi = 0;
  uint64_t v6 = 0;
  bool operator==(const Addr&) const = default;
};
// A port scan's set: (workload id, family) and the destination.
struct DstKey {
  uint64_t wf = 0, lo = 0, hi = 0;
  bool operator==(const DstKey&) const = default;
};

}  // namespace scan

class ScanDetector {
 public:
  explicit ScanDetector(ScanOptions options);

  // One denied (or audited) attempt; the finding when it crosses a
  // threshold. A workload reported for a kind is not reported again for it
  // within the window. Other actions and unattributed attempts are ignored.
  // `repeat` (the flow pipeline's fold hint, PipelineOptions::observe): the
  // same (workload, destination, port, protocol) was observed less than a
  // fold window ago. It changes no distinct count, only a last-seen time
  // that matters at the scale of the window, so it is skipped: last-seen
  // lags by at most one fold window (the first attempt of each fold window
  // is looked at in full).
  std::optional<ScanFinding> observe(const flows::FlowEvent& e, bool repeat = false) {
    if (repeat) return std::nullopt;
    return observeFull(e);
  }

  // Members held: attempt shapes in the larger of the two kinds' sets (each
  // distinct (workload, port, destination) is one member of each kind); at
  // most maxEntries.
  size_t entries() const { return std::max(sweeps_.used(), scans_.used()); }
  size_t workloads() const { return names_.size(); }
  // Memory held by the detector's tables (grows with use up to its bound).
  size_t bytes() const;
  const ScanOptions& options() const { return options_; }

  static constexpr size_t kMaxWorkloads = 65536;  // interned names; beyond, all state starts over

 private:
  using Time = flows::WallClock::time_point;
  using Tick = scan::Tick;
  struct Workload {
    Time quietHosts{}, quietPorts{};
    // The sets this workload's last attempt counted in (may be stale).
    uint32_t sweepSet = scan::kNone, portSet = scan::kNone;
  };
  // A short workload name as an exact key (its bytes and length).
  struct NameKey {
    uint64_t w0 = 0, w1 = 0, size = 0;
    bool operator==(const NameKey&) const = default;
  };
  std::optional<ScanFinding> observeFull(const flows::FlowEvent& e);
  // Count the attempt in its set; whether the set is now at its threshold.
  bool sweepCrossed(const flows::FlowEvent& e, uint64_t wp, uint32_t g, Tick now);
  bool scanCrossed(uint64_t wp, uint32_t g, Tick now);
  uint32_t workloadId(const std::string& name);
  uint32_t internWorkload(const std::string& name);
  uint32_t portKey(const flows::FlowEvent& e);
  std::string portName(uint32_t key) const;
  Tick tickOf(Time t);
  std::optional<ScanFinding> finding(ScanKind kind, uint32_t set, const flows::FlowEvent& e,
                                     uint64_t wp);
  void reset();

  ScanOptions options_;
  uint64_t seed_;
  Time base_{};
  bool based_ = false;
  Tick window_ = 0;
  scan::DistinctSets<uint64_t, scan::Addr> sweeps_;   // (workload, port) -> destinations
  scan::DistinctSets<scan::DstKey, uint32_t> scans_;  // (workload, destination) -> ports
  // Interned workload names: name -> id, and per id its state. Names up to
  // 16 bytes by their exact bytes in a flat table; longer ones (rare) in a
  // map. Exact keys: two names never share an id.
  FlatTable<NameKey, uint32_t> ids_;
  std::unordered_map<std::string, uint32_t> longIds_;
  std::vector<std::string> names_;
  std::vector<Workload> state_;
  // Interned protocol names, with their exact short key (0: longer than 8).
  std::vector<std::string> protos_;
  std::vector<std::pair<uint64_t, uint64_t>> protoKeys_;
};

}  // namespace bulkhead::agent
