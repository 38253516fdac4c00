#include "bulkhead/flows/pipeline.h"

#include <algorithm>

namespace bulkhead::flows {

Pipeline::Pipeline(PipelineOptions options, Resolver resolver, Watcher watcher,
                   std::vector<std::unique_ptr<Exporter>> exporters)
    : options_(std::move(options)),
      resolver_(std::move(resolver)),
      watcher_(std::move(watcher)),
      exporters_(std::move(exporters)) {}

void Pipeline::onPacket(const LoggedPacket& p, WallClock::time_point now) {
  auto prefix = parsePrefix(p.prefix);
  if (!prefix) return;  // not one of our rules' events
  std::lock_guard lock(mu_);
  ++received_;
  auto decoded = decodePacket(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(p.payload.data()), p.payload.size()));
  if (!decoded) {
    ++malformed_;
    return;
  }
  const Attribution who = resolver_ ? resolver_(p.inIfindex) : Attribution{};
  FlowEvent e;
  e.time = p.timestamp.value_or(now);
  e.host = options_.host;
  e.action = prefix->action;
  e.reason = prefix->reason;
  e.app = who.app;
  e.workload = who.workload;
  e.src = decoded->src;
  e.dst = decoded->dst;
  e.sport = decoded->sport;
  e.dport = decoded->dport;
  e.proto = protoName(decoded->proto);
  e.count = 1;
  FoldKey key{e.workload, e.dst, e.dport, e.proto, e.action, e.reason};
  auto it = folds_.find(key);
  const bool open = it != folds_.end() && now < it->second.windowEnd;
  // Every attempt is observed before folding and the rate limit; the fold
  // lookup only tells the observer whether it saw this exact one already.
  const bool observed = options_.observe && !who.scanExempt;
  if (observed) options_.observe(e, open && it->second.observed);

  if (open) {
    // A repeat within the window: folded into the follow-up event.
    Fold& f = it->second;
    if (f.pending.count == 0) {
      f.pending = e;
    } else {
      ++f.pending.count;
    }
    return;
  }
  if (it != folds_.end()) {
    if (it->second.pending.count > 0) emit(it->second.pending, now);
    folds_.erase(it);
  }
  if (folds_.size() >= options_.maxFoldKeys) {
    // A scan of many destinations: stop folding rather than grow.
    for (auto& [k, f] : folds_)
      if (f.pending.count > 0) emit(f.pending, now);
    folds_.clear();
  }
  FlowEvent none = e;
  none.count = 0;
  folds_.emplace(key, Fold{none, now + options_.foldWindow, observed});
  // The first attempt goes out at once: a scan is seen when it starts.
  emit(e, now);
}

void Pipeline::tick(WallClock::time_point now) {
  std::lock_guard lock(mu_);
  for (auto it = folds_.begin(); it != folds_.end();) {
    if (it->second.windowEnd > now) {
      ++it;
      continue;
    }
    if (it->second.pending.count > 0) emit(it->second.pending, now);
    it = folds_.erase(it);
  }
}

void Pipeline::emit(const FlowEvent& e, WallClock::time_point now) {
  auto [it, fresh] = buckets_.try_emplace(e.workload, Bucket{options_.workloadBurst, now});
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens =
      std::min(options_.workloadBurst, b.tokens + std::max(0.0, elapsed) * options_.workloadRate);
  b.last = now;
  if (b.tokens < 1) {
    rateLimited_ += e.count;
    return;
  }
  b.tokens -= 1;
  if (watcher_) watcher_(e);
  if (exporters_.empty()) {
    noTarget_ += e.count;
    return;
  }
  for (auto& x : exporters_)
    x->offer(e);
}

FlowAccounting Pipeline::accounting(uint64_t seen) const {
  std::lock_guard lock(mu_);
  FlowAccounting a;
  a.seen = seen;
  a.received = received_;
  auto& by = a.suppressedByCause;
  by[kCauseKernel] = seen > received_ ? seen - received_ : 0;
  by[kCauseWorkloadRate] = rateLimited_;
  by[kCauseMalformed] = malformed_;
  by[kCauseNoTarget] = noTarget_;
  if (!exporters_.empty()) {
    // The first exporter is the primary: `exported` is what it delivered.
    const ExporterStats s = exporters_.front()->stats();
    a.exported = s.deliveredAttempts;
    by[kCauseQueueFull] = s.droppedQueueFull;
    by[kCauseTargetDown] = s.droppedTargetDown;
  }
  for (const auto& [cause, n] : by)
    a.suppressed += n;
  return a;
}

}  // namespace bulkhead::flows
