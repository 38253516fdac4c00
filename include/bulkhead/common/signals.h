// The signals of bulkhead's daemons (the agent, the controller): SIGTERM,
// SIGINT and SIGHUP are taken synchronously by the main loop (sigtimedwait),
// SIGPIPE is ignored (a peer that went away is an error return, not the
// end of the process).
#pragma once

#include <signal.h>

namespace bulkhead::common {

// Blocks SIGTERM, SIGINT and SIGHUP and ignores SIGPIPE; returns the
// blocked set for the main loop to wait on. Call it before any thread
// starts: every thread inherits the mask, so none of them takes the signals.
inline sigset_t blockDaemonSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP})
    sigaddset(&signals, s);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

}  // namespace bulkhead::common
