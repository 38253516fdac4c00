// Fan-out of denied-flow events to WatchFlows streams. Each subscriber has a
// bounded queue: a slow or stuck client loses events (counted) and never
// blocks the publisher.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::agent {

class FlowSubscription {
 public:
  FlowSubscription(std::string app, std::string workload, size_t capacity)
      : app_(std::move(app)), workload_(std::move(workload)), capacity_(capacity) {}

  // Waits up to timeoutMs for the next event; false on timeout or close.
  bool next(v1::FlowEvent* out, int timeoutMs);
  void close();
  uint64_t dropped() const;

 private:
  friend class FlowHub;
  bool wants(const v1::FlowEvent& e) const;
  void push(const v1::FlowEvent& e);

  const std::string app_, workload_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::FlowEvent> queue_;
  uint64_t dropped_ = 0;
  bool closed_ = false;
};

class FlowHub {
 public:
  static constexpr size_t kQueueCapacity = 4096;
  static constexpr size_t kMaxSubscribers = 64;

  // nullptr when kMaxSubscribers are already watching.
  std::shared_ptr<FlowSubscription> subscribe(const std::string& app, const std::string& workload);
  void unsubscribe(const std::shared_ptr<FlowSubscription>& s);
  void publish(const v1::FlowEvent& e);
  // Cheap check before building an event nobody watches.
  bool watched() const { return count_.load(std::memory_order_relaxed) > 0; }
  // Ends every stream (agent shutdown).
  void closeAll();

 private:
  std::mutex mu_;
  std::list<std::shared_ptr<FlowSubscription>> subs_;
  std::atomic<size_t> count_{0};
};

}  // namespace bulkhead::agent
