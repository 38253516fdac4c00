#include "support/netns.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace bulkhead::testing {

namespace {

std::atomic<int> counter{0};

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void must(const CmdResult& r, const std::string& what) {
  if (!r.ok()) throw std::runtime_error(what + " failed: " + r.out);
}

}  // namespace

CmdResult sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
    r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

bool havePrivileges() {
  return geteuid() == 0 && sh("command -v ip >/dev/null && command -v nft >/dev/null").ok();
}

bool skipUnlessCi(bool met, const std::string& what) {
  if (met) return false;
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true") ADD_FAILURE() << "cannot run in CI: " << what;
  return true;
}

void sweepStaleNamespaces() {
  const auto list = sh("ip netns list 2>/dev/null | awk '{print $1}'");
  size_t pos = 0;
  while (pos < list.out.size()) {
    size_t end = list.out.find('\n', pos);
    if (end == std::string::npos) end = list.out.size();
    const std::string name = list.out.substr(pos, end - pos);
    pos = end + 1;
    unsigned pid = 0, n = 0;
    if (std::sscanf(name.c_str(), "bht%ux%u", &pid, &n) != 2) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno == EPERM) continue;  // its test still runs
    sh("for p in $(ip netns pids " + name + "); do kill -9 $p; done; ip netns del " + name);
  }
}

Netns::Netns() : name_("bht" + std::to_string(getpid()) + "x" + std::to_string(counter++)) {
  must(sh("ip netns add " + name_), "ip netns add");
  must(exec("ip link set lo up"), "lo up");
}

Netns::~Netns() {
  // Processes left in the namespace would keep it alive; end them first.
  sh("for p in $(ip netns pids " + name_ + " 2>/dev/null); do kill -9 $p; done; ip netns del " +
     name_);
}

CmdResult Netns::exec(const std::string& cmd) const {
  return sh("ip netns exec " + name_ + " sh -c " + shellQuote(cmd));
}

void Netns::run(const std::function<void()>& fn) const {
  std::exception_ptr error;
  std::thread t([&] {
    try {
      const int fd = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("setns " + name_);
      ::close(fd);
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
}

Process::Process(const Netns& ns, const std::string& cmd) {
  pid_ = fork();
  if (pid_ == 0) {
    setpgid(0, 0);
    const int devnull = ::open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    execlp("ip", "ip", "netns", "exec", ns.name().c_str(), "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  setpgid(pid_, pid_);
}

Process::~Process() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Process::running() {
  if (pid_ <= 0) return false;
  return waitpid(pid_, nullptr, WNOHANG) == 0;
}

void Process::kill(int sig) {
  if (pid_ > 0) ::kill(-pid_, sig);
}

int Process::wait(int ms) {
  for (int i = 0; i < ms / 10 + 1; ++i) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

Topology::Topology() {
  must(hv_.exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
                "net.ipv6.conf.default.accept_dad=0 && "
                "ip addr add " +
                std::string(kHostV4) +
                "/32 dev lo && "
                "ip -6 addr add " +
                kHostV6 + "/128 dev lo nodad"),
       "hv setup");
}

Topology::Host& Topology::addHost(const std::string& hvIface, const std::string& v4,
                                  const std::string& v6) {
  auto h = std::make_unique<Host>();
  h->ns = std::make_unique<Netns>();
  h->hvIface = hvIface;
  h->v4 = v4;
  h->v6 = v6;
  const std::string ns = h->ns->name();
  // The hypervisor side answers as 192.0.2.1 / fe80::1 on every link: the
  // gateway each host routes through.
  must(hv_.exec("ip link add " + hvIface + " type veth peer name eth0 netns " + ns +
                " && ip link set " + hvIface + " up && ip addr add 192.0.2.1/32 dev " + hvIface +
                " && ip -6 addr add fe80::1/64 dev " + hvIface + " nodad" + " && ip route add " +
                v4 + "/32 dev " + hvIface +
                (v6.empty() ? "" : " && ip -6 route add " + v6 + "/128 dev " + hvIface)),
       "hv link " + hvIface);
  must(h->ns->exec("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"
                   " net.ipv6.conf.eth0.accept_dad=0 && ip link set eth0 up && ip addr add " +
                   v4 +
                   "/32 dev eth0 && ip route add 192.0.2.1 dev eth0 && "
                   "ip route add default via 192.0.2.1 dev eth0" +
                   (v6.empty() ? ""
                               : " && ip -6 addr add " + v6 +
                                     "/128 dev eth0 nodad && "
                                     "ip -6 route add default via fe80::1 dev eth0")),
       "host link " + hvIface);
  hosts_.push_back(std::move(h));
  return *hosts_.back();
}

Topology::Host& Topology::host(const std::string& hvIface) {
  for (auto& h : hosts_)
    if (h->hvIface == hvIface) return *h;
  throw std::runtime_error("no host on " + hvIface);
}

void Topology::removeAddress(Host& host, const std::string& addr) {
  const bool v6 = addr.find(':') != std::string::npos;
  host.ns->exec(std::string(v6 ? "ip -6" : "ip") + " addr del " + addr + (v6 ? "/128" : "/32") +
                " dev eth0");
  hv_.exec(std::string(v6 ? "ip -6" : "ip") + " route del " + addr);
}

void Topology::addAddress(Host& host, const std::string& addr, bool route) {
  const bool v6 = addr.find(':') != std::string::npos;
  must(host.ns->exec(std::string(v6 ? "ip -6" : "ip") + " addr add " + addr +
                     (v6 ? "/128 dev eth0 nodad" : "/32 dev eth0")),
       "add address");
  if (route)
    must(hv_.exec(std::string(v6 ? "ip -6" : "ip") + " route add " + addr + " dev " + host.hvIface),
         "add route");
}

std::string tcpListenCmd(int port, bool v6) {
  // The answering shell stays until the client's EOF (cat): a shell that
  // exited before socat's transfer loop began made socat's first write to it
  // fail (EPIPE) and the child exit without relaying the answer. -t5: after
  // the probe's half-close (its stdin is empty, so at once) socat waits up to
  // 5 s, not the default 0.5 s, for the answer; forking the shell on a loaded
  // machine took longer, and permitted probes came back empty.
  return std::string("exec socat -t5 ") + (v6 ? "TCP6-LISTEN:" : "TCP4-LISTEN:") +
         std::to_string(port) + (v6 ? ",ipv6only=1" : "") +
         ",fork,reuseaddr SYSTEM:'echo ok; exec cat >/dev/null'";
}

std::string udpListenCmd(int port, bool v6, const std::string& bindAddr) {
  // A datagram's answer leaves from the address routing picks, not the one
  // it was sent to: bind when the host has several, or clients drop it.
  std::string bind;
  if (!bindAddr.empty()) bind = ",bind=" + (v6 ? "[" + bindAddr + "]" : bindAddr);
  // The answering shell reads the datagram before it answers: socat writes
  // the datagram to the shell's stdin, and a shell that had already exited
  // made that write fail (EPIPE), the child die, and the answer never leave.
  return std::string("exec socat ") + (v6 ? "UDP6-RECVFROM:" : "UDP4-RECVFROM:") +
         std::to_string(port) + (v6 ? ",ipv6only=1" : "") + bind +
         ",fork,reuseaddr SYSTEM:'timeout 1 head -n 1 >/dev/null; echo ok'";
}

namespace {

Probe probe(const Netns& from, const std::string& target, double timeoutSec, bool udp) {
  Probe p;
  const auto start = std::chrono::steady_clock::now();
  char t[32];
  std::snprintf(t, sizeof(t), "%.1f", timeoutSec);
  // -t: after our side's EOF (right away: one line, or /dev/null) socat
  // waits only -t for the answer, 0.5 s by default; a loaded machine's
  // listener (it forks a shell per answer) can take longer than that.
  const std::string socat = "timeout " + std::to_string(int(timeoutSec) + 2) + " socat -T" + t +
                            " -t" + t + " - " + target;
  const std::string cmd =
      udp ? "echo hi | " + socat : socat + ",connect-timeout=" + t + " </dev/null";
  const auto r = from.exec(cmd);
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  p.out = r.out;
  p.ok = r.out.find("ok") != std::string::npos;
  return p;
}

std::string bracket(const std::string& addr) {
  return addr.find(':') != std::string::npos ? "[" + addr + "]" : addr;
}

}  // namespace

Probe tcpProbe(const Netns& from, const std::string& addr, int port, double timeoutSec,
               const std::string& bindAddr) {
  const bool v6 = addr.find(':') != std::string::npos;
  return probe(from,
               std::string(v6 ? "TCP6:" : "TCP4:") + bracket(addr) + ":" + std::to_string(port) +
                   (bindAddr.empty() ? "" : ",bind=" + bracket(bindAddr)),
               timeoutSec, false);
}

Probe udpProbe(const Netns& from, const std::string& addr, int port, double timeoutSec) {
  const bool v6 = addr.find(':') != std::string::npos;
  return probe(from,
               std::string(v6 ? "UDP6:" : "UDP4:") + bracket(addr) + ":" + std::to_string(port),
               timeoutSec, true);
}

std::vector<std::string> normalizedNftLines(const std::string& text) {
  static const std::regex counters("counter packets [0-9]+ bytes [0-9]+");
  static const std::regex elementsOpen("^elements = \\{ ");
  std::vector<std::string> out;
  std::istringstream in(std::regex_replace(text, counters, "counter"));
  for (std::string line; std::getline(in, line);) {
    line.erase(0, line.find_first_not_of(" \t"));
    line = std::regex_replace(line, elementsOpen, "");
    if (line.size() >= 2 && line.compare(line.size() - 2, 2, " }") == 0 &&
        line.find('{') == std::string::npos)
      line.erase(line.size() - 2);
    if (!line.empty() && line.back() == ',') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool waitFor(const std::function<bool()>& cond, int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

uint64_t jsonInt(const std::string& json, const std::string& field) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + field + "\"\\s*:\\s*\"?([0-9]+)")))
    return uint64_t(-1);
  return std::stoull(m[1]);
}

std::string jsonString(const std::string& json, const std::string& field) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + field + "\"\\s*:\\s*\"([^\"]*)\"")))
    return "<none>";
  return m[1];
}

bool waitListening(const Netns& ns, int port, bool udp) {
  for (int i = 0; i < 60; ++i) {
    if (ns.exec(std::string("ss -Hln") + (udp ? "u" : "t") +
                " | grep -q ':" + std::to_string(port) + " '")
            .ok())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace bulkhead::testing
