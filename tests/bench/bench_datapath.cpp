// bench_datapath: what bulkhead's table costs the packets of a workload, end
// to end through a hypervisor namespace's forward path, against baselines
// measured in the same run: no table at all, and a table holding nothing
// but `ct state established,related accept` (the cost of connection
// tracking alone, which any stateful firewall pays).
//
// Three namespaces: a workload (client), a server, and the hypervisor that
// routes between them and holds the table (tests/support Topology). Every
// figure is the median of --rounds rounds, configurations interleaved so
// that the machine's drift hits them alike:
//   - new TCP connections per second: an epoll client keeps 32 connections
//     in flight, each connect, one-byte request, one-byte answer, close
//     (with a reset, so no TIME_WAIT); the server is an epoll loop in its
//     own thread, so the client is the bottleneck, not the server;
//   - single-stream throughput: one connection writing 256 KiB buffers;
//   - denied connection attempts per second: SYNs to a port the policy
//     does not allow, answered by the table's TCP reset (without a table
//     the server's kernel answers them with its own reset: the same shape).
// bulkhead's table is compiled from the generated bundle (bench_policy.h) at
// 100, 1,000 and 10,000 workloads plus the one real client workload, and
// written with the real writer. At 10,000 the table is also measured
// without its pre-conntrack base chain, so that chain's own cost shows.
//
//   sudo build/tests/bench/bench_datapath [--rounds=N] [--seconds=N]
//
// A benchmark, not a test: it prints figures and PASS/MISS against its goals
// and exits 1 only on a functional failure (a connection that should work
// does not, a namespace that cannot be made).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench_policy.h"
#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/compiler/compiler.h"
#include "iptables_equivalent.h"
#include "support/apply.h"
#include "support/netns.h"

namespace bulkhead::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Netns;
using testing::Topology;

constexpr const char* kClientV4 = "192.0.2.10";
constexpr const char* kServerV4 = "198.51.100.10";
constexpr int kEchoPort = 5001;
constexpr int kSinkPort = 5002;
constexpr int kDeniedPort = 5003;
// Served, but not allowed by the policy: proves a table enforces.
constexpr int kServedDeniedPort = 5004;
constexpr int kInFlight = 32;

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

void enterNetns(const Netns& ns) {
  Fd fd(::open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0 || setns(fd.get(), CLONE_NEWNET) != 0) throw Failure("setns " + ns.name());
}

sockaddr_in addrOf(const char* ip, int port) {
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

 private:
  static Fd listenOn(int port) {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const int one = 1;
    setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in a = addrOf(kServerV4, port);
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(s.get(), 4096) != 0)
      throw Failure("server listen on " + std::to_string(port));
    return s;
  }

  void loop(std::atomic<int>& ready) {
    Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    Fd echo = listenOn(kEchoPort), sink = listenOn(kSinkPort), other = listenOn(kServedDeniedPort);
    for (int l : {echo.get(), sink.get(), other.get()}) {
      epoll_event ev{EPOLLIN, {.fd = l}};
      epoll_ctl(ep.get(), EPOLL_CTL_ADD, l, &ev);
    }
    std::map<int, bool> conns;  // fd -> is a sink connection
    std::vector<char> buf(1 << 18);
    epoll_event events[256];
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
};

// Runs `fn` on a thread inside `ns` and returns what it returns.
template <class T>
T inNetns(const Netns& ns, const std::function<T()>& fn) {
  T out{};
  ns.run([&] { out = fn(); });
  return out;
}

struct Attempts {
  uint64_t done = 0, failed = 0;
  double seconds = 0;
  double perSecond() const { return seconds > 0 ? double(done) / seconds : 0; }
};

Fd startConnect(int port) {
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
Attempts connectLoop(int port, double seconds, bool expectAnswer) {
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
  return a;
}

// One connection writing for `seconds`; the server counts what arrives.
double streamBytesPerSecond(const Netns& client, const Server& server, double seconds) {
  const uint64_t before = server.sunkBytes();
  const double took = inNetns<double>(client, [&] {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in a = addrOf(kServerV4, kSinkPort);
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      throw Failure("stream connect failed");
    std::vector<char> buf(256 << 10, 'x');
    const auto t0 = Clock::now();
    while (secondsSince(t0) < seconds)
      if (::write(s.get(), buf.data(), buf.size()) <= 0) throw Failure("stream write failed");
    return secondsSince(t0);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the last bytes land
  return double(server.sunkBytes() - before) / took;
}

// --- the tables --------------------------------------------------------------

// The generated bundle plus the real client: its app may reach the server's
// echo and sink ports and nothing else.
compiler::Ruleset bulkheadTable(int workloads, const std::string& clientIface) {
  using namespace policy;
  Bundle b = generateBundle(workloads);
  Service server;
  server.name = "bench-server";
  Endpoint ep;
  ep.cidrs = {Cidr{*IpAddr::parse(kServerV4), 32}};
  ep.ports = {port(kProtoTcp, kEchoPort), port(kProtoTcp, kSinkPort)};
  server.endpoints.push_back(ep);
  b.services.push_back(server);
  App app;
  app.name = "bench-client";
  EgressRule r;
  r.to.push_back(NameRef{"bench-server", {}});
  app.egress.push_back(r);
  b.apps.push_back(app);
  Workload w;
  w.name = "bench-client-1";
  w.app = "bench-client";
  w.interfaces = {clientIface};
  w.addresses = {*IpAddr::parse(kClientV4)};
  b.workloads.push_back(w);
  auto rs = compiler::compile(b, {}, compiler::CompileOptions{});
  if (!rs) throw Failure("compile: " + rs.error().describe());
  return std::move(*rs);
}

// The same table without the base chains that run before conntrack.
compiler::Ruleset withoutPreConntrack(compiler::Ruleset rs) {
  std::erase_if(rs.chains, [](const compiler::Chain& c) { return c.base && c.base->priority < 0; });
  return rs;
}

constexpr const char* kConntrackOnly =
    "table inet bhbench {\n"
    "  chain forward {\n"
    "    type filter hook forward priority filter; policy accept;\n"
    "    ct state established,related accept\n"
    "  }\n"
    "}\n";

void clearTables(const Netns& hv) {
  hv.exec(
      "nft delete table inet bulkhead 2>/dev/null; nft delete table inet bhbench 2>/dev/null; "
      "for t in raw filter; do iptables-legacy -t $t -F; iptables-legacy -t $t -X; done "
      "2>/dev/null; ipset destroy 2>/dev/null; true");
}

// The iptables + ipset equivalent of `rs` (iptables_equivalent.h), loaded
// the way those systems load it: ipset restore, then iptables-restore.
void loadIptables(const Netns& hv, const compiler::Ruleset& rs, const std::string& dir) {
  const auto r = iptables::translate(rs);
  std::ofstream(dir + "/ipset") << r.ipset;
  std::ofstream(dir + "/iptables") << r.iptables;
  clearTables(hv);
  const auto out = hv.exec("ipset restore < " + dir + "/ipset && iptables-legacy-restore < " + dir +
                           "/iptables");
  if (!out.ok()) throw Failure("loading the iptables baseline: " + out.out.substr(0, 2000));
}

struct Config {
  std::string name;
  std::function<void()> load;  // puts this configuration's table in hv
  bool enforcing = true;       // a served port outside the policy is refused
};

// Whether one connection to the served but not allowed port is refused.
bool servedPortRefused(const Netns& client) {
  return inNetns<bool>(client, [] {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in a = addrOf(kServerV4, kServedDeniedPort);
    return ::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 &&
           errno == ECONNREFUSED;
  });
}

struct Figures {
  Stats connRate, streamRate, deniedRate;
};

int run(int argc, char** argv) {
  report().init("bench_datapath", argc, argv);
  int rounds = 3, seconds = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (auto v = positiveFlag(a, "--rounds="))
      rounds = *v;
    else if (auto v = positiveFlag(a, "--seconds="))
      seconds = *v;
    else
      throw Failure("unknown argument " + a + " (--rounds=N --seconds=N)");
  }
  printBanner("bench_datapath");
  Topology topo;
  auto& client = topo.addHost("bhc0", kClientV4, "");
  auto& serverHost = topo.addHost("bhs0", kServerV4, "");
  // The client's own ephemeral ports: a wide range, reused at once.
  client.ns->exec("sysctl -qw net.ipv4.ip_local_port_range='1024 65000'");
  Server server(*serverHost.ns);
  Netns& hv = topo.hv();

  std::map<int, compiler::Ruleset> tables;
  for (int n : {100, 1000, 10000})
    tables.emplace(n, bulkheadTable(n, "bhc0"));
  const compiler::Ruleset before = withoutPreConntrack(tables.at(10000));
  const bool hasPre = before.chains.size() != tables.at(10000).chains.size();

  auto loadRuleset = [&](const compiler::Ruleset& rs) {
    clearTables(hv);
    testing::KernelApplier applier(hv);
    if (auto st = applier.replace(rs); !st) throw Failure("apply: " + st.error().describe());
  };
  std::vector<Config> configs = {
      {"no table", [&] { clearTables(hv); }, false},
      {"conntrack only",
       [&] {
         clearTables(hv);
         auto r = hv.exec("printf '%s' '" + std::string(kConntrackOnly) + "' | nft -f -");
         if (!r.ok()) throw Failure("nft -f: " + r.out);
       },
       false},
  };
  for (int n : {100, 1000, 10000})
    configs.push_back(
        {"bulkhead " + count(n) + " workloads", [&, n] { loadRuleset(tables.at(n)); }});
  if (hasPre)
    configs.push_back({"bulkhead 10,000, no pre-conntrack chain", [&] { loadRuleset(before); }});
  char dirTemplate[] = "/tmp/bench_datapath.XXXXXX";
  if (!mkdtemp(dirTemplate)) throw Failure("mkdtemp");
  const std::string dir = dirTemplate;
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() { std::filesystem::remove_all(dir); }
  } removeDir{dir};
  // The translation covers the shapes it knows; a table using one it does
  // not is reported, and that baseline left out rather than approximated.
  std::string iptablesGap;
  try {
    (void)iptables::translate(tables.at(10000));
    configs.push_back(
        {"iptables + ipset 10,000 workloads", [&] { loadIptables(hv, tables.at(10000), dir); }});
  } catch (const Failure& e) {
    iptablesGap = e.what();
  }

  std::map<std::string, Figures> figures;
  for (int round = 0; round < rounds; ++round) {
    for (const auto& c : configs) {
      checkInterrupted();
      c.load();
      if (servedPortRefused(*client.ns) != c.enforcing)
        throw Failure(c.name + ": the port outside the policy is " +
                      (c.enforcing ? "reachable" : "refused"));
      auto& f = figures[c.name];
      const Attempts conns =
          inNetns<Attempts>(*client.ns, [&] { return connectLoop(kEchoPort, seconds, true); });
      if (conns.done == 0 || conns.failed > conns.done / 100)
        throw Failure(c.name + ": allowed connections failed (" + std::to_string(conns.failed) +
                      " of " + std::to_string(conns.done + conns.failed) + ")");
      f.connRate.add(conns.perSecond());
      f.streamRate.add(streamBytesPerSecond(*client.ns, server, seconds));
      const Attempts denied = inNetns<Attempts>(
          *client.ns, [&] { return connectLoop(kDeniedPort, seconds / 2.0, false); });
      f.deniedRate.add(denied.perSecond());
    }
  }
  clearTables(hv);

  const auto& none = figures.at("no table");
  const auto& ct = figures.at("conntrack only");
  std::printf("\n  %-42s %14s %10s %14s %10s %14s\n", "configuration", "new conn/s", "vs ct",
              "stream Gbit/s", "vs none", "denied/s");
  for (const auto& c : configs) {
    const auto& f = figures.at(c.name);
    std::printf("  %-42s %14s %10s %14s %10s %14s\n", c.name.c_str(),
                count(uint64_t(f.connRate.median())).c_str(),
                fmt("%.3f", f.connRate.median() / ct.connRate.median()).c_str(),
                fmt("%.2f", f.streamRate.median() * 8 / 1e9).c_str(),
                fmt("%.3f", f.streamRate.median() / none.streamRate.median()).c_str(),
                count(uint64_t(f.deniedRate.median())).c_str());
    report().figure("new connections/s", c.name, 0, f.connRate.median(), "1/s");
    report().figure("stream", c.name, 0, f.streamRate.median() * 8, "bit/s");
    report().figure("denied SYNs/s", c.name, 0, f.deniedRate.median(), "1/s");
  }
  const auto& big = figures.at("bulkhead 10,000 workloads");
  const double connRatio = big.connRate.median() / ct.connRate.median();
  const double streamRatio = big.streamRate.median() / none.streamRate.median();
  std::printf("\n  medians of %d rounds of %d s each\n", rounds, seconds);
  if (!iptablesGap.empty())
    std::printf("  iptables + ipset baseline left out: %s\n", iptablesGap.c_str());
  std::printf("  %s\n", goalLine(connRatio >= 0.95,
                                 "new connections at 10,000 workloads >= 0.95x conntrack only: " +
                                     fmt("%.3f", connRatio))
                            .c_str());
  std::printf("  %s\n", goalLine(streamRatio >= 0.95,
                                 "established stream at 10,000 workloads >= 0.95x no table: " +
                                     fmt("%.3f", streamRatio))
                            .c_str());
  if (hasPre) {
    const auto& b = figures.at("bulkhead 10,000, no pre-conntrack chain");
    const double preConn = big.connRate.median() / b.connRate.median();
    const double preStream = big.streamRate.median() / b.streamRate.median();
    std::printf("  %s\n", goalLine(preConn >= 0.90,
                                   "pre-conntrack chain, new connections >= 0.90x without: " +
                                       fmt("%.3f", preConn))
                              .c_str());
    std::printf("  %s\n", goalLine(preStream >= 0.97,
                                   "pre-conntrack chain, established stream >= 0.97x "
                                   "without: " +
                                       fmt("%.3f", preStream))
                              .c_str());
  }
  report().goal(
      "new connections at 10,000 workloads vs conntrack only", connRatio >= 0.95, connRatio, 0.95,
      "new connections at 10,000 workloads >= 0.95x conntrack only: " + fmt("%.3f", connRatio));
  report().goal(
      "established stream at 10,000 workloads vs no table", streamRatio >= 0.95, streamRatio, 0.95,
      "established stream at 10,000 workloads >= 0.95x no table: " + fmt("%.3f", streamRatio));
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_datapath", bulkhead::bench::run, argc, argv);
}
