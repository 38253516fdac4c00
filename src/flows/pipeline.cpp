#include "bulkhead/flows/pipeline.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "bulkhead/common/flat_table.h"

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
  const auto found = foldIndex_.find(key);
  Fold* fold = found == foldIndex_.end() ? nullptr : &found->second->fold;
  const bool open = fold && now < fold->windowEnd;
  // Every attempt is observed before folding and the rate limit; the fold
  // lookup only tells the observer whether it saw this exact one already.
  const bool observed = options_.observe && !who.scanExempt;
  if (observed) options_.observe(e, open && fold->observed);

  if (open) {
    // A repeat within the window: folded into the follow-up event.
    if (!fold->pending) {
      fold->pending = std::make_unique<FlowEvent>(e);
    } else {
      ++fold->pending->count;
    }
    return;
  }
  if (fold) closeFold(found->second, now);
  if (folds_.size() >= options_.maxFoldKeys) {
    // A scan of many destinations: stop folding rather than grow.
    for (auto& f : folds_)
      if (f.fold.pending) emit(*f.fold.pending, now);
    foldIndex_.clear();
    folds_.clear();
  }
  folds_.push_back(OpenFold{std::move(key), Fold{nullptr, now + options_.foldWindow, observed}});
  foldIndex_.emplace(&folds_.back().key, std::prev(folds_.end()));
  // The first attempt goes out at once: a scan is seen when it starts.
  emit(e, now);
}

void Pipeline::tick(WallClock::time_point now) {
  std::lock_guard lock(mu_);
  // A window ending later than one window from now opened before the wall
  // clock was stepped back: it is closed too, or it would hold the queue.
  const auto latest = now + options_.foldWindow;
  while (!folds_.empty()) {
    const auto end = folds_.front().fold.windowEnd;
    if (end > now && end <= latest) break;
    closeFold(folds_.begin(), now);
  }
}

void Pipeline::closeFold(FoldList::iterator it, WallClock::time_point now) {
  if (it->fold.pending) emit(*it->fold.pending, now);
  foldIndex_.erase(&it->key);
  folds_.erase(it);
}

size_t Pipeline::FoldKeyHash::operator()(const FoldKey& k) const {
  const auto& [workload, dst, dport, proto, action, reason] = k;
  const std::hash<std::string_view> text;
  uint64_t lo = 0, hi = 0;
  std::memcpy(&lo, dst.bytes.data(), 8);
  std::memcpy(&hi, dst.bytes.data() + 8, 8);
  uint64_t h = hashMix(text(workload), lo);
  h = hashMix(h, hi);
  h = hashMix(h, uint64_t(dport) | uint64_t(action) << 16 | uint64_t(dst.family) << 24 |
                     uint64_t(text(proto)) << 32);
  return hashMix(h, text(reason));
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
