// What the benchmarks share: a functional failure (exit 1), Ctrl-C that
// unwinds through RAII so namespaces and processes go, and the figures'
// statistics and formatting.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/netns.h"

namespace bulkhead::bench {

// A functional failure: the run is void, exit 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::atomic<bool> gInterrupted{false};

inline void onSignal(int) {
  gInterrupted = true;
}

// Called between steps: a Ctrl-C unwinds through RAII, so what the bench
// made (namespaces, processes, temporary directories) goes.
inline void checkInterrupted() {
  if (gInterrupted) throw Failure("interrupted");
}

// A fresh directory PARENT/NAME.XXXXXX (mkdtemp) for a bench's files: its
// socket, state, logs, inputs; removed on exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name, const std::string& parent = "/tmp") {
    std::string tmpl = parent + "/" + name + ".XXXXXX";
    if (!mkdtemp(tmpl.data())) throw Failure("mkdtemp in " + parent + ": " + std::strerror(errno));
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes `text` to file(name), replacing it.
  void write(const std::string& name, const std::string& text) const {
    std::ofstream out(file(name), std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Failure("cannot write " + file(name));
  }

 private:
  std::string path_;
};

// True when something accepts connections on the unix socket at `path`.
inline bool socketAccepts(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

inline double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds of a thread's clock (pthread_getcpuclockid; by default the
// calling thread's own). On a machine shared with other jobs, wall time
// mostly measures who else ran. This kernel has no IRQ time accounting, so
// softirq work is charged to the thread it interrupted: on veth, the
// thread whose send raised it.
inline double cpuSecondsOf(clockid_t clock = CLOCK_THREAD_CPUTIME_ID) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

struct Stats {
  std::vector<double> samples;

  void add(double v) { samples.push_back(v); }
  bool empty() const { return samples.empty(); }
  double sum() const {
    double s = 0;
    for (double v : samples)
      s += v;
    return s;
  }
  // Nearest rank, as the agent computes its own percentiles.
  double quantile(double q) const {
    if (samples.empty()) return 0;
    std::vector<double> s = samples;
    std::sort(s.begin(), s.end());
    return s[std::min(s.size() - 1, size_t(q * double(s.size())))];
  }
  double median() const {
    if (samples.empty()) return 0;
    std::vector<double> s = samples;
    std::sort(s.begin(), s.end());
    const size_t n = s.size();
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }
  double min() const {
    return samples.empty() ? 0 : *std::min_element(samples.begin(), samples.end());
  }
  double max() const {
    return samples.empty() ? 0 : *std::max_element(samples.begin(), samples.end());
  }
};

inline std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Seconds as a duration a reader takes in at a glance: "412 ms", "3.21 ms", "85 us".
inline std::string dur(double s) {
  if (s >= 10) return fmt("%.1f s", s);
  if (s >= 0.1) return fmt("%.0f ms", s * 1e3);
  if (s >= 0.01) return fmt("%.1f ms", s * 1e3);
  if (s >= 0.001) return fmt("%.2f ms", s * 1e3);
  return fmt("%.0f us", s * 1e6);
}

// 121075 -> "121,075".
inline std::string count(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

inline std::string goalLine(bool pass, const std::string& text) {
  return std::string(pass ? "PASS  " : "MISS  ") + text;
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs argv until it exits (in the calling thread's namespace); wall time,
// spawn included; stdout and stderr go to outPath. A non-zero exit is a
// Failure.
inline double spawn(const std::vector<std::string>& args, const std::string& outPath) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  const auto t0 = std::chrono::steady_clock::now();
  const int err = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) throw Failure("cannot run " + args[0] + ": " + std::strerror(err));
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) throw Failure(std::string("waitpid: ") + std::strerror(errno));
  const double wall = secondsSince(t0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::string cmd;
    for (const auto& a : args)
      cmd += (cmd.empty() ? "" : " ") + a;
    throw Failure("`" + cmd + "` failed: " + readFile(outPath).substr(0, 2000));
  }
  return wall;
}

inline std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

// "kernel 6.18.44, nftables v1.0.6 (...), 2 CPUs": what the figures were measured on.
inline std::string machineLine() {
  utsname u{};
  uname(&u);
  return std::string("kernel ") + u.release + ", " + trimmed(testing::sh("nft --version").out) +
         ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs";
}

// The first line of every report: which bench, when, on what; and a warning
// when the figures come from an unoptimised build.
inline void printBanner(const char* name, const std::string& extra = "") {
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::printf("%s  %s  (%s%s)\n", name, date, machineLine().c_str(), extra.c_str());
#ifndef __OPTIMIZE__
  std::printf("WARNING: built without optimisation; figures are not representative\n");
#endif
  std::fflush(stdout);
}

// The value of a "--name=N" argument when `arg` starts with `prefix`; a value
// that is not a positive number is a Failure.
inline std::optional<int> positiveFlag(const std::string& arg, const char* prefix) {
  if (arg.rfind(prefix, 0) != 0) return std::nullopt;
  const int v = std::atoi(arg.c_str() + std::strlen(prefix));
  if (v <= 0) throw Failure("bad value in " + arg);
  return v;
}

// The same for a count that may be 0 (digits only, at most 9 of them).
inline std::optional<int> countFlag(const std::string& arg, const char* prefix) {
  if (arg.rfind(prefix, 0) != 0) return std::nullopt;
  const std::string v = arg.substr(std::strlen(prefix));
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos)
    throw Failure("bad value in " + arg);
  return std::atoi(v.c_str());
}

// Elements of bulkhead's dispatch map in a namespace, as nft lists them.
inline size_t dispatchEntries(const testing::Netns& ns) {
  const auto r = ns.exec("nft list map inet bulkhead dispatch");
  if (!r.ok()) throw Failure("nft list map in " + ns.name() + ": " + r.out.substr(0, 1000));
  size_t n = 0;
  for (size_t pos = r.out.find(": goto "); pos != std::string::npos;
       pos = r.out.find(": goto ", pos + 1))
    ++n;
  return n;
}

// main() of a benchmark: signals set to unwind, `run` called, a Failure (or
// any exception) reported as "NAME: FAILED: why" with exit status 1.
inline int benchMain(const char* name, int (*run)(int, char**), int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: FAILED: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace bulkhead::bench
