// Internal to bulkhead_flows: the part every exporter shares (the bounded
// queue, the worker thread, the counters), and the constructors of the two
// kinds of exporter, which makeExporter() (exporter.cpp) picks between.
#pragma once

#include <netdb.h>
#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bulkhead/common/endpoint.h"
#include "bulkhead/common/owned.h"
#include "bulkhead/common/time_format.h"
#include "bulkhead/flows/exporter.h"

namespace bulkhead::flows {

using common::SteadyClock;

// Attempts an event stands for in the accounting. A summary event reports
// attempts that were not delivered; delivering it delivers none of them.
// Events with evidence fields (anomaly, automatic quarantine) are the
// agent's own findings, not attempts.
uint64_t attempts(const FlowEvent& e);

// "what: strerror(err)".
std::string errnoText(const std::string& what, int err);

// The addresses of a host:port endpoint for one socket type; null, with
// *error set, when the name does not resolve.
using AddrInfoPtr = Owned<addrinfo, freeaddrinfo>;
AddrInfoPtr resolve(const common::Endpoint& target, int socktype, std::string* error);

// The queue, the worker thread and the counters. offer() only takes a short
// lock to append (or count a drop); the worker (run(), in the derived
// class) formats and writes.
class QueuedExporter : public Exporter {
 public:
  bool offer(const FlowEvent& e) override;
  ExporterStats stats() const override;
  std::string name() const override { return name_; }
  bool flush(int ms) override;

 protected:
  QueuedExporter(std::string name, const ExporterOptions& o);

  // Derived constructors call start() last, derived destructors stop() first.
  void start();
  void stop();
  virtual void run() = 0;

  // Worker side. take() hands out the oldest event (waiting up to ms); every
  // taken event is later resolved() or requeue()d. takeBatch(): up to `max`
  // at once, one lock and one wake-up per batch when a flood keeps the
  // queue full.
  std::optional<FlowEvent> take(int ms);
  std::vector<FlowEvent> takeBatch(int ms, size_t max);
  void resolved(const FlowEvent& e, bool delivered);
  void resolvedBatch(const std::vector<FlowEvent>& events, const std::vector<bool>& delivered);
  // Puts taken events back at the front, in order; those that no longer fit
  // are lost to the target's failure.
  void requeue(std::vector<FlowEvent>&& events);

  bool stopping() const;
  // After stop(): past the time allowed to keep delivering?
  bool pastStopDeadline() const;
  bool queueEmpty() const;
  // Sleeps up to ms unless stop() is called; true when stopping.
  bool sleepUnlessStopped(int ms);
  void setConnected(bool connected);
  void countReconnect();
  void noteError(const std::string& error);

  const std::string name_;
  const ExporterOptions options_;

 private:
  // Waits (lock held) up to ms for work; once stopping, only for work.
  void waitForWork(std::unique_lock<std::mutex>& lock, int ms);
  void count(const FlowEvent& e, bool delivered);  // mu_ held

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;      // worker: work arrived or stopping
  std::condition_variable idleCv_;  // flush(): progress
  std::deque<FlowEvent> queue_;
  size_t taken_ = 0;  // handed to the worker, not yet resolved
  bool stopping_ = false;
  SteadyClock::time_point stopDeadline_;
  ExporterStats stats_;
  std::thread thread_;
};

// unix://PATH, udp://HOST:PORT, journald (datagram_exporter.cpp).
std::unique_ptr<Exporter> makeDatagramExporter(std::string name, common::Endpoint target,
                                               const ExporterOptions& o);

// tcp://HOST:PORT, and tls://HOST:PORT with the context makeTlsContext()
// built (stream_exporter.cpp).
using SslCtxPtr = Owned<SSL_CTX, SSL_CTX_free>;
Result<SslCtxPtr> makeTlsContext(const ExporterOptions& o);
std::unique_ptr<Exporter> makeStreamExporter(std::string name, common::Endpoint target,
                                             const ExporterOptions& o, SslCtxPtr tls);

}  // namespace bulkhead::flows
