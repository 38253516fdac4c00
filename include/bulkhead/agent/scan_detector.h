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

#include "bulkhead/flows/event.h"

namespace bulkhead::agent {

struct ScanOptions {
  uint32_t hosts = 20;  // distinct destinations on one port: a sweep
  uint32_t ports = 15;  // distinct ports on one destination: a port scan
  std::chrono::seconds window{60};
  size_t maxEntries = 200000;  // (workload, port, destination) entries held at most
  size_t sample = 5;           // destinations or ports named in the evidence
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
  explicit ScanDetector(ScanOptions options) : options_(options), refresh_(options.window / 8) {}

  // One denied (or audited) attempt; the finding when it crosses a
  // threshold. A workload reported for a kind is not reported again for it
  // within the window. Other actions and unattributed attempts are ignored.
  std::optional<ScanFinding> observe(const flows::FlowEvent& e);

  size_t entries() const { return entries_; }
  size_t workloads() const { return state_.size(); }
  const ScanOptions& options() const { return options_; }

 private:
  struct IpHash {
    size_t operator()(const policy::IpAddr& a) const;
  };
  using Time = flows::Clock::time_point;
  using ByAddr = std::unordered_map<policy::IpAddr, Time, IpHash>;
  using ByPort = std::unordered_map<uint32_t, Time>;
  struct Workload {
    std::unordered_map<uint32_t, ByAddr> sweeps;               // port -> destinations
    std::unordered_map<policy::IpAddr, ByPort, IpHash> scans;  // destination -> ports
    Time quietHosts{}, quietPorts{};
    size_t entries = 0;
  };

  // The part of observe() for an attempt not seen recently.
  [[gnu::noinline]] std::optional<ScanFinding> observeNew(const flows::FlowEvent& e);
  static uint64_t keyOf(const flows::FlowEvent& e);
  uint32_t portKey(const flows::FlowEvent& e);
  std::string portName(uint32_t key) const;
  template <typename Map>
  size_t pruneGroup(Map& group, Time now);
  void pruneWorkload(Workload& w, Time now);
  void enforceBound(Time now);

  ScanOptions options_;
  flows::Clock::duration refresh_;  // a repeat refreshes its entry this often at most
  std::unordered_map<std::string, Workload> state_;
  size_t entries_ = 0;
  Time lastPrune_{};
  // Direct-mapped cache of (workload, destination, port) keys -> when last
  // counted: a repeat skips the per-workload maps. A collision only sends an
  // attempt down the full path. Fixed size (1 MiB); cleared every window.
  struct Recent {
    uint64_t key = 0;
    Time when{};
  };
  static constexpr size_t kRecentSlots = 1 << 16;
  std::vector<Recent> recent_ = std::vector<Recent>(kRecentSlots);
  std::vector<std::string> protos_;  // interned protocol names
};

}  // namespace bulkhead::agent
