// The agent's denied-flow feed: reads NFLOG in the agent's namespace,
// attributes each packet to its workload and app, folds, rate-limits and
// exports it (flows::Pipeline), publishes it to WatchFlows streams, samples
// the kernel's counters for the accounting, and sends a summary event when
// attempts were suppressed. Runs on its own thread; never blocks
// enforcement (the core's lock is never held while reading or exporting).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "bulkhead/agent/config.h"
#include "bulkhead/agent/flow_hub.h"
#include "bulkhead/agent/scan_detector.h"
#include "bulkhead/common/result.h"
#include "bulkhead/common/time_format.h"
#include "bulkhead/flows/nflog.h"
#include "bulkhead/flows/pipeline.h"
#include "bulkhead/flows/sources.h"
#include "bulkhead/nft/counters.h"
#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::agent {

// When the feed reads the kernel's rule counters: a dump of every rule of
// the table, ~50 ms of CPU at 12,000 rules (1,000 apps), so not every
// second on a host where nothing is denied. A counted attempt has first
// passed its log rule, whose budget refills at least once a second (the
// rate is at least 1/s): an attempt counted at t leaves an NFLOG event in
// the second before t. So the counters move only within a second of the
// feed's last event: every second while events come and once more at
// least a second after the last; otherwise every kIdleInterval, for what
// no event announces.
class CounterSchedule {
 public:
  static constexpr auto kActiveInterval = std::chrono::seconds(1);
  static constexpr auto kIdleInterval = std::chrono::seconds(30);

  explicit CounterSchedule(common::SteadyClock::time_point now) : next_(now) {}
  // NFLOG delivered events (or reported losing some) at `now`.
  void onEvents(common::SteadyClock::time_point now);
  // Whether to sample at `now`; if so, the next one is scheduled.
  bool due(common::SteadyClock::time_point now);

 private:
  common::SteadyClock::time_point next_;
  std::optional<common::SteadyClock::time_point> lastEvent_;
};

// Interface name -> who is behind it. Written by the core as workloads
// change (a few entries at a time), read by the flow thread per packet.
class InterfaceDirectory {
 public:
  void set(const std::string& iface, flows::Attribution who);
  void erase(const std::string& iface);
  void replaceAll(std::unordered_map<std::string, flows::Attribution> all);
  flows::Attribution find(const std::string& iface) const;

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, flows::Attribution> map_;
};

class FlowFeed {
 public:
  // `counters` reads the kernel's rule counters for the accounting;
  // `sources`: the NFLOG reader and exporters to use (the real ones unless
  // a test passes fakes).
  FlowFeed(const AgentConfig& config, std::string host, FlowHub& hub,
           const InterfaceDirectory& interfaces, nft::CounterReader& counters,
           flows::FeedSources sources = {});
  ~FlowFeed();

  // Called on the flow thread for each scan found (config.scanDetection),
  // after its `anomaly` event went out. Set before start().
  void onScan(std::function<void(const ScanFinding&)> handler) { onScan_ = std::move(handler); }

  // Binds the NFLOG group and builds the exporters; starts the thread.
  Status start();
  // An event of the agent's own (anomaly, automatic quarantine) to every
  // target and watcher, past folding and rate limits. Any thread.
  void publish(const flows::FlowEvent& e);
  void stop();

  // Takes the kernel's counters now (before a change rewrites chains and
  // resets them).
  void sampleCounters();
  v1::FlowCounters counters() const;

 private:
  void run();
  flows::Attribution resolve(uint32_t ifindex);
  void observe(const flows::FlowEvent& e, bool repeat);
  void maybeSummarize(flows::WallClock::time_point now);

  AgentConfig config_;
  std::string host_;
  flows::FeedSources sources_;
  FlowHub& hub_;
  std::optional<ScanDetector> scans_;  // flow thread only
  std::function<void(const ScanFinding&)> onScan_;
  std::unique_ptr<flows::NflogReader> reader_;
  std::unique_ptr<flows::Pipeline> pipeline_;

  const InterfaceDirectory& interfaces_;
  // ifindex -> name, refreshed after kIfnameTtl: if_indextoname() costs a
  // socket, an ioctl and a close per call, too much per packet in a flood.
  struct CachedName {
    std::string name;
    common::SteadyClock::time_point fetched;
  };
  std::unordered_map<uint32_t, CachedName> ifnames_;  // flow thread only

  nft::AttemptCounter attempts_;
  flows::NflogStats nflogStats_;

  std::atomic<bool> stop_{false};
  std::thread thread_;
  uint64_t lastSummarized_ = 0;
  flows::WallClock::time_point nextSummary_;
};

}  // namespace bulkhead::agent
