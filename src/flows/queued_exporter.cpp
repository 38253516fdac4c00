// The bounded queue and worker thread every exporter shares
// (queued_exporter.h).
#include "queued_exporter.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstring>

#include "bulkhead/common/thread_name.h"

namespace bulkhead::flows {

using std::chrono::milliseconds;

namespace {

// Blocks SIGPIPE on the calling (worker) thread: OpenSSL writes with
// write(2), which would raise it when a peer goes away.
void blockSigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace

uint64_t attempts(const FlowEvent& e) {
  return e.action == FlowAction::kSummary || !e.fields.empty() ? 0 : e.count;
}

std::string errnoText(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

AddrInfoPtr resolve(const common::Endpoint& t, int socktype, std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(t.host.c_str(), std::to_string(t.port).c_str(), &hints, &res);
  if (rc != 0) {
    *error = "resolve " + t.host + ": " + gai_strerror(rc);
    return nullptr;
  }
  return AddrInfoPtr(res);
}

QueuedExporter::QueuedExporter(std::string name, const ExporterOptions& o)
    : name_(std::move(name)), options_(o), capacity_(std::max<size_t>(o.queueCapacity, 1)) {}

bool QueuedExporter::offer(const FlowEvent& e) {
  FlowEvent copy = e;  // outside the lock
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= capacity_) {
      stats_.droppedQueueFull += attempts(e);
      return false;
    }
    queue_.push_back(std::move(copy));
  }
  cv_.notify_one();
  return true;
}

ExporterStats QueuedExporter::stats() const {
  std::lock_guard lock(mu_);
  ExporterStats s = stats_;
  s.queued = queue_.size();
  return s;
}

bool QueuedExporter::flush(int ms) {
  std::unique_lock lock(mu_);
  return idleCv_.wait_for(lock, milliseconds(std::max(ms, 0)),
                          [&] { return queue_.empty() && taken_ == 0; });
}

void QueuedExporter::start() {
  thread_ = std::thread([this] {
    common::nameThisThread("bh-export");
    blockSigpipe();
    run();
  });
}

void QueuedExporter::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    stopDeadline_ = SteadyClock::now() + milliseconds(std::max(options_.shutdownMs, 0));
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  for (const auto& e : queue_)
    stats_.droppedTargetDown += attempts(e);
  queue_.clear();
}

void QueuedExporter::waitForWork(std::unique_lock<std::mutex>& lock, int ms) {
  if (!queue_.empty()) return;
  if (stopping_)
    cv_.wait_for(lock, milliseconds(ms), [&] { return !queue_.empty(); });
  else
    cv_.wait_for(lock, milliseconds(ms), [&] { return !queue_.empty() || stopping_; });
}

std::optional<FlowEvent> QueuedExporter::take(int ms) {
  std::unique_lock lock(mu_);
  waitForWork(lock, ms);
  if (queue_.empty()) return std::nullopt;
  FlowEvent e = std::move(queue_.front());
  queue_.pop_front();
  ++taken_;
  return e;
}

std::vector<FlowEvent> QueuedExporter::takeBatch(int ms, size_t max) {
  std::vector<FlowEvent> out;
  std::unique_lock lock(mu_);
  waitForWork(lock, ms);
  while (!queue_.empty() && out.size() < max) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  taken_ += out.size();
  return out;
}

void QueuedExporter::count(const FlowEvent& e, bool delivered) {
  if (delivered) {
    ++stats_.delivered;
    stats_.deliveredAttempts += attempts(e);
  } else {
    stats_.droppedTargetDown += attempts(e);
  }
}

void QueuedExporter::resolvedBatch(const std::vector<FlowEvent>& events,
                                   const std::vector<bool>& delivered) {
  {
    std::lock_guard lock(mu_);
    taken_ -= events.size();
    for (size_t i = 0; i < events.size(); ++i)
      count(events[i], delivered[i]);
  }
  idleCv_.notify_all();
}

void QueuedExporter::resolved(const FlowEvent& e, bool delivered) {
  {
    std::lock_guard lock(mu_);
    --taken_;
    count(e, delivered);
  }
  idleCv_.notify_all();
}

void QueuedExporter::requeue(std::vector<FlowEvent>&& events) {
  {
    std::lock_guard lock(mu_);
    taken_ -= events.size();
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (queue_.size() < capacity_)
        queue_.push_front(std::move(*it));
      else
        stats_.droppedTargetDown += attempts(*it);
    }
  }
  idleCv_.notify_all();
}

bool QueuedExporter::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool QueuedExporter::pastStopDeadline() const {
  std::lock_guard lock(mu_);
  return stopping_ && SteadyClock::now() >= stopDeadline_;
}

bool QueuedExporter::queueEmpty() const {
  std::lock_guard lock(mu_);
  return queue_.empty();
}

bool QueuedExporter::sleepUnlessStopped(int ms) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, milliseconds(std::max(ms, 0)), [&] { return stopping_; });
}

void QueuedExporter::setConnected(bool connected) {
  std::lock_guard lock(mu_);
  stats_.connected = connected;
}

void QueuedExporter::countReconnect() {
  std::lock_guard lock(mu_);
  ++stats_.reconnects;
}

void QueuedExporter::noteError(const std::string& error) {
  std::lock_guard lock(mu_);
  ++stats_.sendErrors;
  stats_.lastError = error;
}

}  // namespace bulkhead::flows
