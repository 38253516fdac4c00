// Test hosts for privileged tests: throwaway network namespaces, veth pairs
// and processes, each removed by RAII even when a test fails. Never touches
// the root namespace's ruleset or routes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bulkhead::testing {

struct CmdResult {
  int status = -1;  // exit status, or -1 if it did not exit normally
  std::string out;  // stdout and stderr
  bool ok() const { return status == 0; }
};

// Runs `cmd` with /bin/sh, capturing output.
CmdResult sh(const std::string& cmd);

// True when running as root with `ip netns` usable; privileged tests skip
// (with a message) otherwise, so `ctest -L unit` never needs root.
bool havePrivileges();

// Removes namespaces left by test processes that no longer exist (a crash
// or a kill -9 skips RAII). Names carry the creating pid: bht<pid>x<n>.
void sweepStaleNamespaces();

// For a privileged test whose requirement `met` is false (no root, a tool
// missing): true, so that the caller skips (right on a laptop), but in CI
// (CI=true) a failure naming `what` is recorded first: there a privileged
// test must never pass by skipping.
bool skipUnlessCi(bool met, const std::string& what);

class Netns {
 public:
  Netns();  // a new namespace with a unique name, loopback up
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  const std::string& name() const { return name_; }
  // `ip netns exec NAME sh -c CMD`.
  CmdResult exec(const std::string& cmd) const;
  // Runs fn on a thread that has entered this namespace (setns affects only
  // the calling thread), for in-process netlink access.
  void run(const std::function<void()>& fn) const;

 private:
  std::string name_;
};

// A background process in a namespace, in its own process group; killed
// (the whole group) and reaped on destruction.
class Process {
 public:
  Process(const Netns& ns, const std::string& cmd);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  pid_t pid() const { return pid_; }
  bool running();
  void kill(int sig);
  // Waits up to `ms` for the process to exit; its exit status or -1.
  int wait(int ms);

 private:
  pid_t pid_ = -1;
};

// A hypervisor namespace routing for workload and server namespaces, each
// attached by a veth pair (the hypervisor's side named by the caller, as a
// container's host-side veth would be). Addresses are host routes (/32,
// /128), as in Calico's routed model, so every packet crosses the
// hypervisor's forward hook.
class Topology {
 public:
  struct Host {
    std::unique_ptr<Netns> ns;
    std::string hvIface;
    std::string v4, v6;  // may be empty
  };

  Topology();  // hv namespace with forwarding on and the host's own
               // addresses 203.0.113.1 and 2001:db8:ff::1 on lo
  Netns& hv() { return hv_; }
  // Adds a namespace attached through hv interface `hvIface`, with eth0
  // holding v4 (and v6 when non-empty).
  Host& addHost(const std::string& hvIface, const std::string& v4, const std::string& v6);
  Host& host(const std::string& hvIface);
  // Adds another address to a host (for spoofing tests), without a route on hv
  // unless `route` is set.
  void addAddress(Host& host, const std::string& addr, bool route);
  void removeAddress(Host& host, const std::string& addr);

  static constexpr const char* kHostV4 = "203.0.113.1";
  static constexpr const char* kHostV6 = "2001:db8:ff::1";

 private:
  Netns hv_;
  std::vector<std::unique_ptr<Host>> hosts_;
};

// Traffic helpers on socat. Listeners answer "ok" to each connection or
// datagram; probes return true when the answer came back.
std::string tcpListenCmd(int port, bool v6);
std::string udpListenCmd(int port, bool v6, const std::string& bindAddr = "");
struct Probe {
  bool ok = false;
  double seconds = 0;  // how long the attempt took
  std::string out;
};
Probe tcpProbe(const Netns& from, const std::string& addr, int port, double timeoutSec = 2.0,
               const std::string& bindAddr = "");
Probe udpProbe(const Netns& from, const std::string& addr, int port, double timeoutSec = 1.5);
// Lines of nft text with counters' values dropped and element lists split
// one element a line, sorted: `nft list` output and `plan` output compare
// equal when they describe the same table (the kernel lists hash sets in its
// own order).
std::vector<std::string> normalizedNftLines(const std::string& text);

// Polls `cond` every 20 ms for up to `ms`; its last answer.
bool waitFor(const std::function<bool()>& cond, int ms);
// A file's whole content ("" when it cannot be read).
std::string readAll(const std::string& path);
// The first integer (or quoted integer) value of "field" in JSON text, or
// uint64_t(-1); the first string value, or "<none>". Enough for the CLI's
// `--json` output in tests.
uint64_t jsonInt(const std::string& json, const std::string& field);
std::string jsonString(const std::string& json, const std::string& field);

// Waits until something listens on port in ns (tcp or udp), up to ~3 s.
bool waitListening(const Netns& ns, int port, bool udp);

}  // namespace bulkhead::testing
