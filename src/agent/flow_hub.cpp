#include "bulkhead/agent/flow_hub.h"

#include <algorithm>
#include <chrono>

namespace bulkhead::agent {

bool FlowSubscription::next(v1::FlowEvent* out, int timeoutMs) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
               [&] { return closed_ || !queue_.empty(); });
  if (queue_.empty()) return false;
  *out = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

void FlowSubscription::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

uint64_t FlowSubscription::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

bool FlowSubscription::wants(const v1::FlowEvent& e) const {
  return (app_.empty() || e.app() == app_) && (workload_.empty() || e.workload() == workload_);
}

void FlowSubscription::push(const v1::FlowEvent& e) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (queue_.size() >= capacity_) {
      ++dropped_;
      return;
    }
    queue_.push_back(e);
  }
  cv_.notify_one();
}

std::shared_ptr<FlowSubscription> FlowHub::subscribe(const std::string& app,
                                                     const std::string& workload) {
  std::lock_guard lock(mu_);
  if (subs_.size() >= kMaxSubscribers) return nullptr;
  subs_.push_back(std::make_shared<FlowSubscription>(app, workload, kQueueCapacity));
  count_ = subs_.size();
  return subs_.back();
}

void FlowHub::unsubscribe(const std::shared_ptr<FlowSubscription>& s) {
  s->close();
  std::lock_guard lock(mu_);
  subs_.remove(s);
  count_ = subs_.size();
}

void FlowHub::publish(const v1::FlowEvent& e) {
  std::lock_guard lock(mu_);
  for (auto& s : subs_)
    if (s->wants(e)) s->push(e);
}

void FlowHub::closeAll() {
  std::lock_guard lock(mu_);
  for (auto& s : subs_)
    s->close();
}

}  // namespace bulkhead::agent
