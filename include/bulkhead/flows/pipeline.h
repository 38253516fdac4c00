// From logged packets to exported events: attribution (interface ->
// workload -> app; prefix -> action and reason), folding of identical
// attempts, the per-workload rate limit, fan-out to exporters and watchers,
// and the accounting that makes every attempt either exported or counted as
// suppressed, with its cause.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "bulkhead/flows/event.h"
#include "bulkhead/flows/exporter.h"

namespace bulkhead::flows {

struct Attribution {
  std::string workload;
  std::string app;
  bool scanExempt = false;  // app labelled bulkhead.io/scanner: "true"
};

struct PipelineOptions {
  std::string host;
  // Identical attempts (workload, dst, dport, proto, action, reason) within
  // this window after the first are folded into one follow-up event.
  std::chrono::milliseconds foldWindow{1000};
  // Per workload, in the agent: events per second and burst.
  double workloadRate = 200;
  double workloadBurst = 400;
  size_t maxFoldKeys = 65536;  // bounded memory under a scan of many destinations
  // Sees every attributed attempt as it arrives, before folding and the
  // rate limit (scan detection); called on the reader's thread. `repeat`:
  // an identical attempt (the same fold key: workload, destination, port,
  // protocol, action, reason) was already passed here within the fold
  // window still open, so the observer has seen this tuple less than a
  // fold window ago and may skip it.
  std::function<void(const FlowEvent&, bool repeat)> observe;
};

// Causes of suppression, as reported in status.
inline constexpr const char* kCauseKernel = "kernel";  // rate limit in the kernel, NFLOG losses
inline constexpr const char* kCauseWorkloadRate = "workload_rate_limit";
inline constexpr const char* kCauseQueueFull = "queue_full";
inline constexpr const char* kCauseTargetDown = "target_down";
inline constexpr const char* kCauseNoTarget = "no_target";
inline constexpr const char* kCauseMalformed = "malformed";  // packets that could not be decoded

struct FlowAccounting {
  uint64_t seen = 0;        // from the kernel's counters (set by the caller)
  uint64_t received = 0;    // attempts that reached the agent through NFLOG
  uint64_t exported = 0;    // attempts delivered by the primary exporter (sum of count)
  uint64_t suppressed = 0;  // seen - exported, once idle
  std::map<std::string, uint64_t> suppressedByCause;
};

class Pipeline {
 public:
  using Resolver = std::function<Attribution(uint32_t ifindex)>;
  using Watcher = std::function<void(const FlowEvent&)>;

  Pipeline(PipelineOptions options, Resolver resolver, Watcher watcher,
           std::vector<std::unique_ptr<Exporter>> exporters);

  // One logged packet (the NFLOG reader's thread).
  void onPacket(const LoggedPacket& p, WallClock::time_point now);
  // Emits folded follow-ups whose window closed; call often (e.g. every 50 ms).
  void tick(WallClock::time_point now);

  // The accounting given the kernel's current `seen` (attempts counted by the
  // deny/audit/spoof/quarantine rules).
  FlowAccounting accounting(uint64_t seen) const;
  const std::vector<std::unique_ptr<Exporter>>& exporters() const { return exporters_; }

 private:
  using FoldKey =
      std::tuple<std::string, policy::IpAddr, uint16_t, std::string, FlowAction, std::string>;
  struct Fold {
    // The repeats folded so far (the first of them, with the count of all);
    // null until one comes: a fold that sees none (a scan's) holds no copy
    // of the event, only its key.
    std::unique_ptr<FlowEvent> pending;
    WallClock::time_point windowEnd;
    bool observed = false;  // its first attempt was passed to observe
  };
  // Folds in the order they opened, which (one window length for all) is
  // the order their windows close: tick pops what closed from the front
  // and never walks the open ones. The index finds a fold by its key.
  struct OpenFold {
    FoldKey key;
    Fold fold;
  };
  using FoldList = std::list<OpenFold>;
  struct FoldKeyHash {
    using is_transparent = void;
    size_t operator()(const FoldKey& k) const;
    size_t operator()(const FoldKey* k) const { return (*this)(*k); }
  };
  struct FoldKeyEq {
    using is_transparent = void;
    bool operator()(const FoldKey* a, const FoldKey* b) const { return *a == *b; }
    bool operator()(const FoldKey& a, const FoldKey* b) const { return a == *b; }
    bool operator()(const FoldKey* a, const FoldKey& b) const { return *a == b; }
  };
  struct Bucket {
    double tokens;
    WallClock::time_point last;
  };

  void closeFold(FoldList::iterator it, WallClock::time_point now);
  void emit(const FlowEvent& e, WallClock::time_point now);

  PipelineOptions options_;
  Resolver resolver_;
  Watcher watcher_;
  std::vector<std::unique_ptr<Exporter>> exporters_;

  mutable std::mutex mu_;
  FoldList folds_;
  std::unordered_map<const FoldKey*, FoldList::iterator, FoldKeyHash, FoldKeyEq> foldIndex_;
  std::map<std::string, Bucket> buckets_;
  uint64_t received_ = 0;
  uint64_t rateLimited_ = 0;  // attempts
  uint64_t noTarget_ = 0;     // attempts emitted while no exporter is configured
  uint64_t malformed_ = 0;    // attempts whose packet could not be decoded
};

}  // namespace bulkhead::flows
