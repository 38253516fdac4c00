#include "bulkhead/agent/housekeeping.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <thread>

namespace bulkhead::agent {

namespace {

// After the first event of a burst, gather the rest for this long: one
// repair for a burst (a flush is many notifications).
constexpr int kBurstMs = 30;
// Trim at least this often while changes keep coming.
constexpr auto kTrimAtLeast = std::chrono::seconds(30);
constexpr auto kTrimEvery = std::chrono::seconds(5);
bool allLost(const std::vector<nft::TableEvent>& events) {
  for (const auto& e : events)
    if (e.kind != nft::TableEvent::Kind::kLostEvents) return false;
  return true;
}

}  // namespace

Housekeeping::Housekeeping(AgentCore& core, HousekeepingOptions options, TableEventWait events)
    : core_(core), options_(std::move(options)), events_(std::move(events)) {
  const auto now = common::SteadyClock::now();
  nextCheck_ = now + options_.resync;
  nextTrim_ = now;
  lastTrim_ = now;
}

void Housekeeping::run(const std::atomic<bool>& stop) {
  while (!stop)
    step();
}

void Housekeeping::step() {
  handleEvents();
  promote();
  const auto now = common::SteadyClock::now();
  trimMemory(now);
  periodicCheck(now);
  if (options_.afterRound) options_.afterRound();
}

void Housekeeping::handleEvents() {
  if (!events_) {
    std::this_thread::sleep_for(options_.idle);
    return;
  }
  auto events = events_(static_cast<int>(options_.idle.count()));
  if (!events) {
    spdlog::error("watching nftables events: {}", events.error().describe());
    std::this_thread::sleep_for(2 * options_.idle);
    return;
  }
  if (events->empty()) return;
  const std::string why = events->front().what;
  bool onlyLost = allLost(*events);
  for (;;) {
    auto more = events_(kBurstMs);
    if (!more || more->empty()) break;
    onlyLost &= allLost(*more);
  }
  auto r = onlyLost ? core_.repairAfterLostEvents(why) : core_.repair(true, why);
  if (r && *r) spdlog::warn("drift: {}; table inet {} restored", why, options_.table);
  if (!r) spdlog::error("drift: {}; restoring failed: {}", why, r.error().describe());
}

void Housekeeping::promote() {
  // New interfaces are enforced through staged sets; move them into the
  // dispatch map here, in batches, off the request path.
  auto promoted = core_.promoteStaged();
  if (!promoted) {
    spdlog::error("moving staged interfaces into the dispatch map: {}",
                  promoted.error().describe());
  } else if (*promoted > 0) {
    spdlog::debug("{} staged interfaces moved into the dispatch map", *promoted);
    trimWanted_ = true;  // a batch's diff was freed
  }
}

void Housekeeping::trimMemory(common::SteadyClock::time_point now) {
  if (now >= nextTrim_) trimWanted_ = true;
  // Workload changes free small blocks all over the heap; give them back
  // off the request path. malloc_trim locks the arenas while it walks
  // them (tens of ms on a loaded heap) and would stall requests that
  // allocate meanwhile: wait for a quiet second, or 30 s at most.
  if (!trimWanted_) return;
  if (core_.quietFor() < std::chrono::seconds(1) && now < lastTrim_ + kTrimAtLeast) return;
  malloc_trim(0);
  trimWanted_ = false;
  lastTrim_ = now;
  nextTrim_ = now + kTrimEvery;
}

void Housekeeping::periodicCheck(common::SteadyClock::time_point now) {
  if (now < nextCheck_) return;
  checkDone(core_.checkDrift("periodic check"));
}

void Housekeeping::checkDone(const Result<std::optional<std::string>>& drift) {
  // From the end of this check: a slow check never runs back to back.
  nextCheck_ = common::SteadyClock::now() + options_.resync;
  if (!drift) {
    spdlog::error("periodic check of table inet {}: {}", options_.table, drift.error().describe());
  } else if (*drift) {
    spdlog::warn("periodic check: table inet {} differed from what was applied ({}); restored",
                 options_.table, **drift);
  }
  // A check holds two copies of the table's content for a moment.
  trimWanted_ = true;
}

}  // namespace bulkhead::agent
