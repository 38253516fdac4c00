// Acts on scan findings and keeps quarantine expiry: with --auto-quarantine
// a scanning workload is quarantined (reason auto/scan/...) for
// --quarantine-seconds, doubled when caught again within a day (see
// QuarantineBook); quarantines whose expiry passed are released. Its own
// thread, so the flow thread never waits for a kernel transaction.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "bulkhead/agent/core.h"
#include "bulkhead/agent/scan_detector.h"
#include "bulkhead/common/time_format.h"

namespace bulkhead::agent {

class AutoQuarantine {
 public:
  struct Options {
    bool quarantineScanners = false;  // --auto-quarantine
    uint32_t seconds = 1800;          // --quarantine-seconds
    std::chrono::milliseconds expiryCheck{500};
  };
  // `announce` sends the `quarantine` event (FlowFeed::publish); may be empty.
  AutoQuarantine(AgentCore& core, Options options,
                 std::function<void(const flows::FlowEvent&)> announce);
  ~AutoQuarantine();

  void start();
  void stop();
  // From the flow thread: never blocks on the kernel.
  void submit(const ScanFinding& finding);

 private:
  void run();
  void act(const ScanFinding& f);
  void expire();

  AgentCore& core_;
  Options options_;
  std::function<void(const flows::FlowEvent&)> announce_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ScanFinding> queue_;
  bool stop_ = false;
  std::thread thread_;
  std::map<std::string, common::SteadyClock::time_point> gone_;  // thread only
};

}  // namespace bulkhead::agent
