// The agent's housekeeping loop, off the request path: repairs drift (foreign
// changes heard as nftables events, and a periodic check that compares the
// kernel's table with what was applied, by content), moves staged interfaces
// into the dispatch map, and gives freed memory back to the system.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "bulkhead/agent/core.h"
#include "bulkhead/common/result.h"
#include "bulkhead/common/time_format.h"
#include "bulkhead/nft/monitor.h"

namespace bulkhead::agent {

struct HousekeepingOptions {
  std::string table;                         // for messages
  std::chrono::milliseconds resync{30'000};  // periodic drift check
  std::chrono::milliseconds idle{100};       // a round's wait without events
  // Called at the end of every round (the service manager's watchdog).
  std::function<void()> afterRound;
};

// Where foreign changes to the table are heard: nft::TableMonitor::wait in
// the agent. Empty: no monitor (it failed to open, or is switched off with
// --drift-events=false); drift is then found by the periodic check only.
using TableEventWait = std::function<Result<std::vector<nft::TableEvent>>(int timeoutMs)>;

class Housekeeping {
 public:
  Housekeeping(AgentCore& core, HousekeepingOptions options, TableEventWait events);

  // Rounds until `stop`.
  void run(const std::atomic<bool>& stop);
  // One round: events (waiting up to `idle` for them), staged interfaces,
  // memory, and the periodic check when due.
  void step();

 private:
  void handleEvents();
  void promote();
  void trimMemory(common::SteadyClock::time_point now);
  void periodicCheck(common::SteadyClock::time_point now);
  void checkDone(const Result<std::optional<std::string>>& drift);

  AgentCore& core_;
  HousekeepingOptions options_;
  TableEventWait events_;
  common::SteadyClock::time_point nextCheck_;
  common::SteadyClock::time_point nextTrim_;
  common::SteadyClock::time_point lastTrim_;
  bool trimWanted_ = false;
};

}  // namespace bulkhead::agent
