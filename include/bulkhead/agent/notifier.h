// Tells the service manager what the agent is doing (systemd's Type=notify
// protocol, through libsystemd's sd_notify): READY=1 once the table is in
// the kernel and the listeners accept, STATUS= lines, WATCHDOG=1 keep-alives,
// RELOADING=1 around SIGHUP, STOPPING=1 on shutdown. Without NOTIFY_SOCKET
// in the environment every call is a no-op.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "bulkhead/agent/core_types.h"
#include "bulkhead/common/time_format.h"

namespace bulkhead::agent {

class AgentCore;

class Notifier {
 public:
  // Sends one notification ("READY=1\nSTATUS=..."); false when it was not
  // delivered.
  using Send = std::function<bool(const std::string&)>;

  // `watchdogPeriod`: the service manager's watchdog timeout (0: none).
  // Keep-alives go out at half of it. Safe to call from several threads.
  Notifier(Send send, std::chrono::microseconds watchdogPeriod);
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // From the environment: sd_notify when NOTIFY_SOCKET is set (else a
  // no-op), the period from sd_watchdog_enabled (WATCHDOG_USEC, checked
  // against WATCHDOG_PID).
  static Notifier fromEnvironment();

  bool active() const { return static_cast<bool>(send_); }
  std::chrono::microseconds watchdogPeriod() const { return watchdogPeriod_; }

  void ready(const AgentStatusView& status);
  void reloading(const std::string& what);
  void stopping();

  // Called on every turn of the housekeeping loop. At most once a second
  // (or at the keep-alive interval, when shorter) it asks the core for its
  // status — which takes the core's lock — and only once that returned
  // sends WATCHDOG=1 when one is due, and STATUS= when the summary changed.
  // A core stuck holding its lock stalls this call, so the keep-alives stop
  // and the service manager restarts the agent.
  void housekeeping(const AgentCore& core);
  // The same with a status already taken (tests; the clock passed in).
  void housekeeping(const AgentStatusView& status, common::SteadyClock::time_point now);

  // One line: the version in force and the counts.
  static std::string summary(const AgentStatusView& status);

 private:
  bool due(common::SteadyClock::time_point now) const;

  std::mutex mu_;
  Send send_;
  std::chrono::microseconds watchdogPeriod_;
  common::SteadyClock::time_point lastCheck_{};
  std::string lastStatus_;
  bool stopping_ = false;  // no keep-alives after STOPPING=1
};

}  // namespace bulkhead::agent
