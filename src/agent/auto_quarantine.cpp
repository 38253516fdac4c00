#include "bulkhead/agent/auto_quarantine.h"

#include <spdlog/spdlog.h>

#include "bulkhead/common/thread_name.h"
#include "bulkhead/flows/format.h"

namespace bulkhead::agent {

namespace {
constexpr size_t kMaxQueued = 1024;  // findings are rare; a flood of them is dropped
}

AutoQuarantine::AutoQuarantine(AgentCore& core, Options options,
                               std::function<void(const flows::FlowEvent&)> announce)
    : core_(core), options_(options), announce_(std::move(announce)) {}

AutoQuarantine::~AutoQuarantine() {
  stop();
}

void AutoQuarantine::start() {
  thread_ = std::thread([this] {
    common::nameThisThread("bh-quarantine");
    run();
  });
}

void AutoQuarantine::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AutoQuarantine::submit(const ScanFinding& finding) {
  if (!options_.quarantineScanners) return;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued) return;
    queue_.push_back(finding);
  }
  cv_.notify_one();
}

void AutoQuarantine::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, options_.expiryCheck, [&] { return stop_ || !queue_.empty(); });
    while (!queue_.empty() && !stop_) {
      ScanFinding f = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      act(f);
      lock.lock();
    }
    lock.unlock();
    expire();
    lock.lock();
  }
}

void AutoQuarantine::act(const ScanFinding& f) {
  QuarantineWhy why;
  why.reason = std::string("auto/") + scanReason(f.kind);
  why.seconds = options_.seconds;
  auto r = core_.quarantine(f.workload, false, why);
  if (!r) {
    spdlog::error("quarantining scanning workload {}: {}", f.workload, r.error().describe());
    return;
  }
  int64_t until = 0;
  uint32_t seconds = 0;
  const auto list = core_.listQuarantines();
  for (const auto& q : list)
    if (q.workload == f.workload) {
      until = q.untilUnix;
      seconds = q.seconds;
    }
  spdlog::warn("workload {} quarantined: {} ({} distinct), for {} s", f.workload, why.reason,
               f.distinct, seconds);
  if (!announce_) return;
  flows::FlowEvent e = f.trigger;
  e.time = flows::WallClock::now();
  e.action = flows::FlowAction::kQuarantine;
  e.reason = why.reason;
  e.count = f.distinct;
  e.fields = {
      {"seconds", std::to_string(seconds)},
      {"until", flows::rfc3339Micros(flows::WallClock::time_point(std::chrono::seconds(until)))},
      {"distinct", std::to_string(f.distinct)}};
  announce_(e);
}

void AutoQuarantine::expire() {
  for (const auto& name : core_.dueQuarantines()) {
    QuarantineWhy why;
    why.reason = "expired";
    auto r = core_.quarantine(name, true, why);
    if (r) {
      spdlog::info("workload {}: quarantine expired, released", name);
    } else if (r.error().code == ErrorCode::kNotFound) {
      // Gone meanwhile: nothing to release; say it once a minute at most.
      const auto now = common::SteadyClock::now();
      auto& last = gone_[name];
      if (last == common::SteadyClock::time_point{} || now - last > std::chrono::minutes(1)) {
        spdlog::warn("workload {}: quarantine expired, but the workload is gone", name);
        last = now;
      }
    } else {
      spdlog::error("releasing workload {} at the end of its quarantine: {}", name,
                    r.error().describe());
    }
  }
}

}  // namespace bulkhead::agent
