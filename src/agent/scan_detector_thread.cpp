#include "bulkhead/agent/scan_detector_thread.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string_view>

namespace bulkhead::agent {

namespace scan {

Record::Names* Record::names() const {
  Names* n = nullptr;
  std::memcpy(&n, dst, sizeof n);
  return n;
}

void Record::setNames(Names* n) {
  std::memcpy(dst, &n, sizeof n);
}

Ring::Ring(size_t capacity) {
  size_t n = 16;
  while (n < capacity)
    n <<= 1;
  slots_.resize(n);
  mask_ = n - 1;
}

Record* Ring::slot() {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  if (head - tailSeen_ > mask_) {
    tailSeen_ = tail_.load(std::memory_order_acquire);
    if (head - tailSeen_ > mask_) return nullptr;
  }
  return &slots_[head & mask_];
}

void Ring::push() {
  head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

size_t Ring::pop(Record* out, size_t max) {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (headSeen_ == tail) {
    headSeen_ = head_.load(std::memory_order_acquire);
    if (headSeen_ == tail) return 0;
  }
  const size_t n = size_t(std::min<uint64_t>(headSeen_ - tail, max));
  for (size_t i = 0; i < n; ++i)
    out[i] = slots_[(tail + i) & mask_];
  tail_.store(tail + n, std::memory_order_release);
  return n;
}

}  // namespace scan

namespace {

// While attempts come, the thread polls the ring every kPoll (no wake-up
// call by the flow thread, whose cost per attempt would be a system call);
// after kIdle without any it parks until the flow thread wakes it (or
// kParkTimeout passes).
constexpr auto kPoll = std::chrono::microseconds(500);
constexpr auto kIdle = std::chrono::milliseconds(200);
constexpr auto kParkTimeout = std::chrono::milliseconds(20);
constexpr size_t kBatch = 64;

void copyAddr(const policy::IpAddr& a, uint8_t (&to)[16], uint8_t* v6) {
  std::memcpy(to, a.bytes.data(), 16);
  *v6 = a.family == policy::Family::kIpv6;
}

policy::IpAddr addrOf(const uint8_t (&from)[16], uint8_t v6) {
  policy::IpAddr a;
  a.family = v6 ? policy::Family::kIpv6 : policy::Family::kIpv4;
  std::memcpy(a.bytes.data(), from, 16);
  return a;
}

}  // namespace

ScanDetectorThread::ScanDetectorThread(ScanOptions options, std::string host, Handler onFinding,
                                       size_t ringRecords)
    : detector_(options),
      host_(std::move(host)),
      onFinding_(std::move(onFinding)),
      ring_(ringRecords),
      seed_(uint64_t(std::random_device{}()) << 32 | std::random_device{}()) {
  thread_ = std::thread([this] { run(); });
}

ScanDetectorThread::~ScanDetectorThread() {
  stop();
  // Names handed over but never taken (the thread stopped first).
  scan::Record r;
  while (ring_.pop(&r, 1))
    if (r.kind == scan::Record::kNames) delete r.names();
}

void ScanDetectorThread::stop() {
  stop_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
}

void ScanDetectorThread::wake() {
  {
    std::lock_guard lock(mu_);
    parked_.store(false, std::memory_order_relaxed);
  }
  cv_.notify_one();
}

uint32_t ScanDetectorThread::intern(const flows::FlowEvent& e, bool* fresh) {
  // Keyed by the workload's name; the app is checked on a hit (a workload
  // that moved to another app, or a hash shared by two names, gets its
  // number's names sent again).
  const uint64_t h = hashMix(seed_, std::hash<std::string_view>()(e.workload));
  auto [id, added] = ids_.insert(h, h);
  if (!id) {
    // More (workload, app) pairs than a host has: numbers start over (each
    // is re-sent with its names before it is used again).
    ids_.clear();
    names_.clear();
    std::tie(id, added) = ids_.insert(h, h);
  }
  if (added) {
    *id = uint32_t(names_.size());
    names_.emplace_back();
  }
  auto& [workload, app] = names_[*id];
  *fresh = added || workload != e.workload || app != e.app;
  return *id;
}

void ScanDetectorThread::offer(const flows::FlowEvent& e) {
  bool fresh = false;
  const uint32_t who = intern(e, &fresh);
  if (fresh) {
    scan::Record* n = ring_.slot();
    if (!n) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      names_[who] = {};  // not sent: sent again with the next attempt
      return;
    }
    names_[who] = {e.workload, e.app};
    n->kind = scan::Record::kNames;
    n->who = who;
    n->setNames(new scan::Record::Names{e.workload, e.app});
    ring_.push();
    offered_.store(offered_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  scan::Record* r = ring_.slot();
  if (!r) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  r->kind = scan::Record::kAttempt;
  r->who = who;
  r->timeNs =
      std::chrono::duration_cast<std::chrono::nanoseconds>(e.time.time_since_epoch()).count();
  copyAddr(e.dst, r->dst, &r->dstV6);
  copyAddr(e.src, r->src, &r->srcV6);
  r->proto = 0;
  std::memcpy(&r->proto, e.proto.data(), std::min<size_t>(e.proto.size(), sizeof r->proto));
  r->sport = e.sport;
  r->dport = e.dport;
  r->action = uint8_t(e.action);
  ring_.push();
  offered_.store(offered_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (parked_.load(std::memory_order_relaxed)) wake();
}

void ScanDetectorThread::consume(const scan::Record& r) {
  if (r.kind == scan::Record::kNames) {
    if (known_.size() <= r.who) known_.resize(r.who + 1);
    known_[r.who].reset(r.names());
    return;
  }
  const scan::Record::Names* n = r.who < known_.size() ? known_[r.who].get() : nullptr;
  if (!n) return;  // (never: names come before the attempts that use them)
  flows::FlowEvent& e = event_;
  e.time = flows::WallClock::time_point(
      std::chrono::duration_cast<flows::WallClock::duration>(std::chrono::nanoseconds(r.timeNs)));
  e.host = host_;
  e.action = flows::FlowAction(r.action);
  e.workload = n->workload;
  e.app = n->app;
  e.dst = addrOf(r.dst, r.dstV6);
  e.src = addrOf(r.src, r.srcV6);
  e.sport = r.sport;
  e.dport = r.dport;
  const char* p = reinterpret_cast<const char*>(&r.proto);
  e.proto.assign(p, strnlen(p, sizeof r.proto));
  e.count = 1;
  if (auto found = detector_.observe(e)) {
    findings_.fetch_add(1, std::memory_order_relaxed);
    if (onFinding_) onFinding_(*found);
  }
}

void ScanDetectorThread::run() {
  scan::Record batch[kBatch];
  auto lastSeen = std::chrono::steady_clock::now();
  for (;;) {
    size_t n = ring_.pop(batch, kBatch);
    if (n == 0) {
      if (stop_) return;
      const auto now = std::chrono::steady_clock::now();
      if (now - lastSeen < kIdle) {
        std::this_thread::sleep_for(kPoll);
        continue;
      }
      // Park: the flow thread wakes a parked thread when it hands an
      // attempt over; the store of parked_ and its check are not fenced
      // against each other (a fence per attempt would cost the flow thread
      // more than the rest), so a missed wake-up is bounded by the timeout.
      parked_.store(true, std::memory_order_seq_cst);
      n = ring_.pop(batch, kBatch);
      if (n == 0) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, kParkTimeout,
                     [&] { return !parked_.load(std::memory_order_relaxed) || stop_; });
      }
      parked_.store(false, std::memory_order_relaxed);
      if (n == 0) continue;
    }
    lastSeen = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; ++i)
      consume(batch[i]);
    consumed_.fetch_add(n, std::memory_order_release);
  }
}

void ScanDetectorThread::drain() {
  const uint64_t target = offered_.load(std::memory_order_acquire);
  while (consumed_.load(std::memory_order_acquire) < target && thread_.joinable() && !stop_) {
    wake();
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

size_t ScanDetectorThread::bytes() const {
  size_t n = detector_.bytes() + ring_.capacity() * sizeof(scan::Record) + ids_.bytes();
  for (const auto& [w, a] : names_)
    n += sizeof(w) * 2 + w.capacity() + a.capacity();
  for (const auto& k : known_)
    n += sizeof(k) + (k ? sizeof(*k) + k->workload.capacity() + k->app.capacity() : 0);
  return n;
}

}  // namespace bulkhead::agent
