#include "bulkhead/agent/notifier.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <sstream>

#include "bulkhead/agent/core.h"

namespace bulkhead::agent {

namespace {

using std::chrono::microseconds;

constexpr std::chrono::seconds kStatusEvery{1};

std::string statusLine(const std::string& text) {
  // A newline would end the field and start another assignment.
  std::string out = "STATUS=";
  for (char c : text)
    out += c == '\n' ? ' ' : c;
  return out;
}

}  // namespace

Notifier::Notifier(Send send, microseconds watchdogPeriod)
    : send_(std::move(send)), watchdogPeriod_(watchdogPeriod) {}

Notifier Notifier::fromEnvironment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (!socket || !*socket) return Notifier(nullptr, microseconds{0});
  uint64_t usec = 0;
  // > 0: WATCHDOG_USEC is set and WATCHDOG_PID (if any) names this process.
  if (sd_watchdog_enabled(0, &usec) <= 0) usec = 0;
  return Notifier([](const std::string& msg) { return sd_notify(0, msg.c_str()) > 0; },
                  microseconds(usec));
}

std::string Notifier::summary(const AgentStatusView& s) {
  std::ostringstream out;
  if (s.version.empty()) {
    out << "no policy yet";
  } else {
    out << "version " << s.version << " in force";
  }
  out << ": " << s.workloads << " workloads, " << s.apps << " apps, " << s.setElements
      << " elements, " << s.chains << " chains in table inet " << s.table;
  if (s.driftRepairs > 0) out << ", " << s.driftRepairs << " drift repairs";
  return out.str();
}

void Notifier::ready(const AgentStatusView& status) {
  if (!active()) return;
  std::lock_guard lock(mu_);
  lastStatus_ = summary(status);
  send_("READY=1\n" + statusLine(lastStatus_));
}

void Notifier::reloading(const std::string& what) {
  if (!active()) return;
  // MONOTONIC_USEC lets newer service managers (Type=notify-reload) match
  // the reload to this notification; older ones ignore it.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t usec = uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
  std::lock_guard lock(mu_);
  lastStatus_.clear();
  send_("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\n" +
        statusLine("reloading " + what));
}

void Notifier::stopping() {
  if (!active()) return;
  std::lock_guard lock(mu_);
  stopping_ = true;
  send_("STOPPING=1\n" + statusLine("stopping; the table stays in the kernel"));
}

bool Notifier::due(common::SteadyClock::time_point now) const {
  if (stopping_) return false;
  auto every = std::chrono::duration_cast<common::SteadyClock::duration>(kStatusEvery);
  if (watchdogPeriod_.count() > 0)
    every = std::min(
        every, std::chrono::duration_cast<common::SteadyClock::duration>(watchdogPeriod_ / 2));
  return now - lastCheck_ >= every;
}

void Notifier::housekeeping(const AgentCore& core) {
  if (!active()) return;
  {
    std::lock_guard lock(mu_);
    if (!due(common::SteadyClock::now())) return;
  }
  // status() takes the core's lock: returning from it is the proof of life.
  const auto status = core.status();
  housekeeping(status, common::SteadyClock::now());
}

void Notifier::housekeeping(const AgentStatusView& status, common::SteadyClock::time_point now) {
  if (!active()) return;
  std::lock_guard lock(mu_);
  if (!due(now)) return;
  lastCheck_ = now;
  std::string msg;
  if (watchdogPeriod_.count() > 0) {
    msg = "WATCHDOG=1";
  }
  auto line = summary(status);
  if (line != lastStatus_) {
    if (!msg.empty()) msg += '\n';
    msg += statusLine(line);
    lastStatus_ = std::move(line);
  }
  if (!msg.empty()) send_(msg);
}

}  // namespace bulkhead::agent
