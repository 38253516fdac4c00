// Names the calling thread, so that `top -H`, `ps -T` and perf tell the
// agent's threads apart (and a bench can read one thread's CPU time from
// /proc/PID/task/TID/comm).
#pragma once

#include <pthread.h>

#include <string>

namespace bulkhead::common {

// The kernel keeps 15 bytes of a thread's name (TASK_COMM_LEN less the
// NUL) and refuses a longer one with ERANGE, leaving the old name: cut it
// here instead.
inline void nameThisThread(const std::string& name) {
  const std::string cut = name.substr(0, 15);
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace bulkhead::common
