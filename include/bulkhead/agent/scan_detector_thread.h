// Scan detection off the flow thread. The flow thread hands each attempt
// over as one 64-byte record through a bounded single-producer
// single-consumer ring (no lock, no allocation, no system call in the
// common case) and goes on; a thread of its own runs the ScanDetector on
// the records and reports findings. On the flow thread an attempt costs
// an interned-name lookup and a record copy, whatever the detector does
// with it.
//
// When the ring is full (the detector thread starved of CPU for longer
// than the ring lasts), the attempt is not seen by the detector: counted
// in dropped(), never blocking the flow thread. A dropped attempt can only
// delay a finding, never make one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bulkhead/agent/scan_detector.h"
#include "bulkhead/common/flat_table.h"

namespace bulkhead::agent {

namespace scan {

// One slot of the ring: an attempt, or the (workload, app) names the
// attempts after it refer to by number.
struct Record {
  int64_t timeNs = 0;  // the attempt's time since the epoch
  uint8_t dst[16] = {}, src[16] = {};
  uint64_t proto = 0;  // the protocol's name, up to 8 bytes
  uint32_t who = 0;    // names' number (attempts) or the number to give (names)
  uint16_t sport = 0, dport = 0;
  uint8_t kind = 0;  // Kind
  uint8_t action = 0, dstV6 = 0, srcV6 = 0;
  uint32_t pad = 0;
  enum Kind : uint8_t { kAttempt, kNames, kForget };
  // kNames: the names, owned by the ring until the consumer takes them.
  struct Names {
    std::string workload, app;
  };
  Names* names() const;
  void setNames(Names* n);
};
static_assert(sizeof(Record) == 64);

// A bounded lock-free ring for one producer thread and one consumer
// thread. Each side caches the other's index and reads it again only when
// the ring looks full (producer) or empty (consumer).
class Ring {
 public:
  explicit Ring(size_t capacity);  // rounded up to a power of two
  // Producer: the slot to fill, or nullptr when full; then push().
  Record* slot();
  void push();
  // Consumer: up to max records into out; returns how many.
  size_t pop(Record* out, size_t max);
  size_t capacity() const { return slots_.size(); }

 private:
  std::vector<Record> slots_;
  size_t mask_;
  alignas(64) std::atomic<uint64_t> head_{0};  // next to write (producer)
  uint64_t tailSeen_ = 0;                      // producer's copy of tail_
  alignas(64) std::atomic<uint64_t> tail_{0};  // next to read (consumer)
  uint64_t headSeen_ = 0;                      // consumer's copy of head_
};

}  // namespace scan

class ScanDetectorThread {
 public:
  using Handler = std::function<void(const ScanFinding&)>;
  // `host`: the events' host field. `onFinding` runs on the detector thread.
  ScanDetectorThread(ScanOptions options, std::string host, Handler onFinding,
                     size_t ringRecords = kRingRecords);
  ~ScanDetectorThread();  // stops: records still in the ring are looked at first

  // The flow thread (one thread only): hands the attempt over.
  void offer(const flows::FlowEvent& e);
  // Waits until every record offered so far has been looked at (tests,
  // benchmarks).
  void drain();
  void stop();

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t findings() const { return findings_.load(std::memory_order_relaxed); }
  const ScanOptions& options() const { return detector_.options(); }
  // Memory of the detector's tables, the ring and the names (read after
  // drain() or stop()).
  size_t bytes() const;

  static constexpr size_t kRingRecords = 32768;  // 2 MiB; ~10 ms of a saturated flow thread
  static constexpr size_t kMaxNames = 65536;     // (workload, app) pairs; beyond, start over

 private:
  uint32_t intern(const flows::FlowEvent& e, bool* fresh);
  void run();
  void consume(const scan::Record& r);
  void wake();

  ScanDetector detector_;  // detector thread only
  std::string host_;
  Handler onFinding_;
  scan::Ring ring_;
  std::atomic<uint64_t> dropped_{0}, findings_{0}, offered_{0}, consumed_{0};

  // Producer side: (workload, app) -> number.
  FlatTable<uint64_t, uint32_t> ids_{kMaxNames};
  std::vector<std::pair<std::string, std::string>> names_;
  uint64_t seed_;
  // Consumer side: number -> names, and the event handed to the detector.
  std::vector<std::unique_ptr<scan::Record::Names>> known_;
  flows::FlowEvent event_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> parked_{false}, stop_{false};
  std::thread thread_;
};

}  // namespace bulkhead::agent
