// The datapath bench's rig (bench_datapath): a workload (client), a
// server and the hypervisor that routes between them, each a namespace of
// its own (tests/support Topology); the server's epoll thread; and the
// client's traffic: new connections kept in flight, one stream, denied
// attempts. Addresses and ports the tables (datapath_tables.h) refer to.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "bulkhead/common/fd.h"
#include "support/netns.h"

namespace bulkhead::bench::datapath {

using Clock = std::chrono::steady_clock;
using testing::Netns;
using testing::Topology;

inline constexpr const char* kClientV4 = "192.0.2.10";
inline constexpr const char* kClientIface = "bhc0";  // the client's veth, hypervisor side
inline constexpr const char* kServerV4 = "198.51.100.10";
inline constexpr int kEchoPort = 5001;
inline constexpr int kSinkPort = 5002;
inline constexpr int kDeniedPort = 5003;
// Served, but not allowed by the policy: proves a table enforces.
inline constexpr int kServedDeniedPort = 5004;
// Allowed by the policy and served by a listener of its own: the spoofed
// flood's target. A SYN that gets through is answered with a SYN-ACK to an
// address nobody routes (conntrack keeps the entry, SYN_RECV, for 60 s);
// the half-open connections stay in this listener's queue, not the echo
// port's.
inline constexpr int kSpoofTargetPort = 5005;
inline constexpr int kInFlight = 32;

// --pin: the client on CPU 0, the server on CPU 1 (with two CPUs or more).
inline bool gPin = false;

inline void pinTo(int cpu) {
  if (!gPin || std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) throw Failure("sched_setaffinity");
}

inline void enterNetns(const Netns& ns) {
  Fd fd(::open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0 || setns(fd.get(), CLONE_NEWNET) != 0) throw Failure("setns " + ns.name());
}

inline sockaddr_in addrOf(const char* ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// The server: one epoll thread in the server namespace. On the echo port
// every read is answered with one byte; on the sink port bytes are counted.
class Server {
 public:
  explicit Server(const Netns& ns) {
    std::atomic<int> ready{0};
    thread_ = std::thread([this, &ns, &ready] {
      try {
        enterNetns(ns);
        pinTo(1);
        loop(ready);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "server: %s\n", e.what());
        ready = -1;
      }
    });
    while (ready == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (ready < 0) {
      thread_.join();
      throw Failure("server did not start");
    }
  }
  ~Server() {
    stop_ = true;
    thread_.join();
  }
  uint64_t sunkBytes() const { return sunk_; }
  // CPU time of the server thread so far, softirq work it ran included.
  double cpuSeconds() const { return cpuSecondsOf(cpuClock_); }

 private:
  static Fd listenOn(int port, int backlog = 4096) {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const int one = 1;
    setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in a = addrOf(kServerV4, port);
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(s.get(), backlog) != 0)
      throw Failure("server listen on " + std::to_string(port));
    return s;
  }

  void loop(std::atomic<int>& ready) {
    Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    Fd echo = listenOn(kEchoPort), sink = listenOn(kSinkPort), other = listenOn(kServedDeniedPort);
    // Never accepted from: a spoofed handshake does not complete. A short
    // queue, so that the flood soon meets SYN cookies, as a real server's
    // would.
    const Fd spoofTarget = listenOn(kSpoofTargetPort, 64);
    for (int l : {echo.get(), sink.get(), other.get()}) {
      epoll_event ev{EPOLLIN, {.fd = l}};
      epoll_ctl(ep.get(), EPOLL_CTL_ADD, l, &ev);
    }
    std::map<int, bool> conns;  // fd -> is a sink connection
    std::vector<char> buf(1 << 18);
    epoll_event events[256];
    pthread_getcpuclockid(pthread_self(), &cpuClock_);
    ready = 1;
    while (!stop_) {
      const int n = epoll_wait(ep.get(), events, 256, 50);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == echo.get() || fd == sink.get() || fd == other.get()) {
          for (;;) {
            const int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) break;
            epoll_event ev{EPOLLIN, {.fd = c}};
            epoll_ctl(ep.get(), EPOLL_CTL_ADD, c, &ev);
            conns[c] = fd == sink.get();
          }
          continue;
        }
        const ssize_t got = ::read(fd, buf.data(), buf.size());
        if (got < 0 && errno == EAGAIN) continue;
        if (got > 0 && conns[fd]) {
          sunk_ += uint64_t(got);
          continue;
        }
        if (got > 0 && ::write(fd, "a", 1) == 1) continue;
        ::close(fd);  // the kernel drops it from the epoll set
        conns.erase(fd);
      }
    }
    for (const auto& [fd, sinkConn] : conns)
      ::close(fd);
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sunk_{0};
  clockid_t cpuClock_ = CLOCK_THREAD_CPUTIME_ID;  // set before `ready`
};

// Runs `fn` on a thread inside `ns` and returns what it returns.
template <class T>
T inNetns(const Netns& ns, const std::function<T()>& fn) {
  T out{};
  ns.run([&] {
    pinTo(0);
    out = fn();
  });
  return out;
}

struct Attempts {
  uint64_t done = 0, failed = 0;
  double seconds = 0;
  double cpu = 0;  // the client thread's CPU seconds meanwhile
  double perSecond() const { return seconds > 0 ? double(done) / seconds : 0; }
};

inline Fd startConnect(int port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const linger reset{1, 0};  // close with a reset: no TIME_WAIT to run out of ports
  setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  const int one = 1;
  setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const sockaddr_in a = addrOf(kServerV4, port);
  const int rc = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
  if (rc != 0 && errno != EINPROGRESS) return Fd();
  return s;
}

// Keeps kInFlight connections to `port` going for `seconds`. With
// `expectAnswer`, a connection counts once it got its one-byte answer; else
// (denied attempts) once the connect failed with a reset.
inline Attempts connectLoop(int port, double seconds, bool expectAnswer) {
  Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  std::map<int, Fd> open;
  Attempts a;
  auto launch = [&] {
    Fd s = startConnect(port);
    if (s.get() < 0) {
      ++a.failed;
      return;
    }
    epoll_event ev{EPOLLOUT | EPOLLIN, {.fd = s.get()}};
    epoll_ctl(ep.get(), EPOLL_CTL_ADD, s.get(), &ev);
    open.emplace(s.get(), std::move(s));
  };
  for (int i = 0; i < kInFlight; ++i)
    launch();
  const auto t0 = Clock::now();
  const double cpu0 = cpuSecondsOf();
  epoll_event events[kInFlight];
  char b;
  while (secondsSince(t0) < seconds) {
    const int n = epoll_wait(ep.get(), events, kInFlight, 100);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      bool finished = false;
      if (!expectAnswer) {
        if (err == ECONNREFUSED)
          ++a.done, finished = true;
        else if (err != 0 || (events[i].events & EPOLLOUT))
          ++a.failed, finished = true;
      } else if (err != 0) {
        ++a.failed, finished = true;
      } else if (events[i].events & EPOLLIN) {
        if (::read(fd, &b, 1) == 1)
          ++a.done;
        else
          ++a.failed;
        finished = true;
      } else if (events[i].events & EPOLLOUT) {
        if (::write(fd, "q", 1) != 1) ++a.failed, finished = true;
        epoll_event ev{EPOLLIN, {.fd = fd}};
        if (!finished) epoll_ctl(ep.get(), EPOLL_CTL_MOD, fd, &ev);
      }
      if (finished) {
        open.erase(fd);
        launch();
      }
    }
  }
  a.seconds = secondsSince(t0);
  a.cpu = cpuSecondsOf() - cpu0;
  return a;
}

struct Stream {
  double bytes = 0;    // what the server received
  double seconds = 0;  // of writing
  double cpu = 0;      // client and server threads, seconds
  double bytesPerSecond() const { return seconds > 0 ? bytes / seconds : 0; }
  double cpuPerGigabyte() const { return bytes > 0 ? cpu / bytes * 1e9 : 0; }
};

// One connection writing for `seconds`; the server counts what arrives.
inline Stream stream(const Netns& client, const Server& server, double seconds) {
  const uint64_t before = server.sunkBytes();
  const double serverCpu0 = server.cpuSeconds();
  double clientCpu = 0;
  const double took = inNetns<double>(client, [&] {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in a = addrOf(kServerV4, kSinkPort);
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      throw Failure("stream connect failed");
    std::vector<char> buf(256 << 10, 'x');
    const auto t0 = Clock::now();
    const double cpu0 = cpuSecondsOf();
    while (secondsSince(t0) < seconds)
      if (::write(s.get(), buf.data(), buf.size()) <= 0) throw Failure("stream write failed");
    clientCpu = cpuSecondsOf() - cpu0;
    return secondsSince(t0);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the last bytes land
  return {double(server.sunkBytes() - before), took, clientCpu + server.cpuSeconds() - serverCpu0};
}

// A client, a server and the hypervisor between them; one per
// configuration (see Config). That also keeps legacy iptables' tables,
// which stay hooked in a namespace once made, away from "no table".
struct Rig {
  Topology topo;
  Topology::Host* client = nullptr;
  std::unique_ptr<Server> server;

  Rig() {
    client = &topo.addHost(kClientIface, kClientV4, "");
    auto& serverHost = topo.addHost("bhs0", kServerV4, "");
    // The client's own ephemeral ports: a wide range, reused at once.
    client->ns->exec("sysctl -qw net.ipv4.ip_local_port_range='1024 65000'");
    server = std::make_unique<Server>(*serverHost.ns);
  }
  Netns& hv() { return topo.hv(); }
};

}  // namespace bulkhead::bench::datapath
