// bench_datapath: what bulkhead's table costs the packets of a workload, end
// to end through a hypervisor namespace's forward path, against baselines
// measured in the same run: no table at all, and a table holding nothing
// but `ct state established,related accept` (the cost of connection
// tracking alone, which any stateful firewall pays).
//
// Every configuration has three namespaces of its own: a workload
// (client), a server, and the hypervisor that routes between them and holds
// the table (tests/support Topology). Each table is loaded once, before the
// first round, and never replaced: a table replaced between figures is
// freed by a kworker after the commit, on the same two CPUs as the next
// figure, and the reload itself (~1 s of kernel work at 10,000 workloads)
// stretched every round. Each round measures one figure of every
// configuration, then the next figure, in the opposite order to the round
// before (ABBA); new connections and the stream in turns of 100 and 250 ms
// (--slice), so that a burst of the machine's other load hits them alike;
// a ratio is the median over rounds of that round's ratio (paired), printed
// with its spread, since on a shared VM single figures move by several
// percent:
//   - new TCP connections per second: an epoll client keeps 32 connections
//     in flight, each connect, one-byte request, one-byte answer, close
//     (with a reset, so no TIME_WAIT); the server is an epoll loop in its
//     own thread, so the client is the bottleneck, not the server;
//   - single-stream throughput: one connection writing 256 KiB buffers.
//     On veth the sending thread's CPU runs most of the path in softirq
//     (its TCP, the hypervisor's forward and netfilter, the server's TCP
//     receive), so the stream is bound by the CPU time of one flow's path,
//     and the table's per-packet work (per 64 KiB GSO segment and per ACK)
//     adds to exactly that: what one flow pays on a real host too;
//   - denied connection attempts per second: SYNs to a port the policy
//     does not allow, answered by the table's TCP reset (without a table
//     the server's kernel answers them with its own reset: the same shape);
//   - SYN floods (syn_flood.h): hand-built SYNs through a raw socket, as
//     fast as one thread sends them, to a port the policy denies from the
//     workload's own address, and to a served port it allows from spoofed
//     addresses: SYNs/s and CPU per SYN, and for the spoofed flood the
//     connection tracking entries it leaves in the hypervisor (none when
//     the spoofs are dropped before conntrack).
// bulkhead's table is compiled from the generated bundle (bench_policy.h) at
// 100, 1,000 and 10,000 workloads plus the one real client workload, and
// written with the real writer. At 10,000 the table is also measured
// without its pre-conntrack base chain, so that chain's own cost shows; and
// conntrack only plus an empty chain before conntrack shows what the hook
// any such check needs costs by itself, before a rule runs.
// The iptables + ipset equivalent (iptables_equivalent.h) is loaded the way
// those systems load it. With --control a second "no table" rig is
// measured too: its ratio to the first is how far two identical rigs differ
// in that run, the floor under every other ratio.
// The load average is printed before and after: with more runnable jobs
// than CPUs, single-stream figures swing by whole factors and only many
// rounds on a quieter machine tell a few percent apart.
//
//   sudo build/tests/bench/bench_datapath [--rounds=N] [--seconds=N] [--slice=MS] [--pin]
//                                         [--control] [--breakdown] [--table=FILE]...
//   sudo build/tests/bench/bench_datapath --write-table=FILE
//
// --breakdown adds conntrack only plus one piece of bulkhead's table at a
// time (breakdownTables), to cost each piece alone; --table=FILE measures
// any table (nft text, e.g. `bulkhead plan` output) next to the others;
// --write-table=FILE writes the 10,000-workload table as nft text and
// measures nothing: edit a copy, then measure both with --table.
//
// --pin puts the client on CPU 0 and the server on CPU 1, so that the
// scheduler's placement does not change from one sample to the next; on a
// VM whose CPUs other jobs also use it does worse (a pinned thread waits
// for its CPU), so it is off by default.
//
// For profiling: --only=TEXT measures only the configurations whose name
// contains TEXT (or any of "A|B|..."), --phase=conns|stream|denied|flood only
// that figure, e.g.
//   perf record -a -g -- sleep 6   while
//   bench_datapath --only="conntrack only" --phase=conns --rounds=4 --seconds=3
// (perf report --comms bench_datapath: softirq work is charged to the
// thread that sent the packet).
//
// A benchmark, not a test: it prints figures and PASS/MISS against its goals
// and exits 1 only on a functional failure (a connection that should work
// does not, a namespace that cannot be made).
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
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_policy.h"
#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/common/fd.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/render.h"
#include "iptables_equivalent.h"
#include "support/apply.h"
#include "support/netns.h"
#include "syn_flood.h"

namespace bulkhead::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Netns;
using testing::Topology;

constexpr const char* kClientV4 = "192.0.2.10";
constexpr const char* kClientIface = "bhc0";  // the client's veth, hypervisor side
constexpr const char* kServerV4 = "198.51.100.10";
constexpr int kEchoPort = 5001;
constexpr int kSinkPort = 5002;
constexpr int kDeniedPort = 5003;
// Served, but not allowed by the policy: proves a table enforces.
constexpr int kServedDeniedPort = 5004;
// Allowed by the policy and served by a listener of its own: the spoofed
// flood's target. A SYN that gets through is answered with a SYN-ACK to an
// address nobody routes (conntrack keeps the entry, SYN_RECV, for 60 s);
// the half-open connections stay in this listener's queue, not the echo
// port's.
constexpr int kSpoofTargetPort = 5005;
constexpr int kInFlight = 32;

// --phase=conns|stream|denied|flood: measure only that figure (the others
// stay unmeasured), so that `perf record -a` during the run profiles one kind of traffic.
std::string gPhase;
bool phase(const char* name) {
  return gPhase.empty() || gPhase == name;
}

// --pin: the client on CPU 0, the server on CPU 1 (with two CPUs or more).
bool gPin = false;

void pinTo(int cpu) {
  if (!gPin || std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) throw Failure("sched_setaffinity");
}

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

// CPU time of a thread's clock (pthread_getcpuclockid, or the caller's own
// with CLOCK_THREAD_CPUTIME_ID). This kernel has no IRQ time accounting, so
// softirq work is charged to the thread it interrupted: on veth that is the
// thread whose send raised it, i.e. the path of the bench's own packets.
double cpuSecondsOf(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
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
  const double cpu0 = cpuSecondsOf(CLOCK_THREAD_CPUTIME_ID);
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
  a.cpu = cpuSecondsOf(CLOCK_THREAD_CPUTIME_ID) - cpu0;
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
Stream stream(const Netns& client, const Server& server, double seconds) {
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
    const double cpu0 = cpuSecondsOf(CLOCK_THREAD_CPUTIME_ID);
    while (secondsSince(t0) < seconds)
      if (::write(s.get(), buf.data(), buf.size()) <= 0) throw Failure("stream write failed");
    clientCpu = cpuSecondsOf(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    return secondsSince(t0);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the last bytes land
  return {double(server.sunkBytes() - before), took, clientCpu + server.cpuSeconds() - serverCpu0};
}

// --- the tables --------------------------------------------------------------

// The generated bundle plus the real client: its app may reach the server's
// echo and sink ports and kSpoofTargetPort, nothing else.
compiler::Ruleset bulkheadTable(int workloads, const std::string& clientIface) {
  using namespace policy;
  Bundle b = generateBundle(workloads);
  Service server;
  server.name = "bench-server";
  Endpoint ep;
  ep.cidrs = {Cidr{*IpAddr::parse(kServerV4), 32}};
  ep.ports = {port(kProtoTcp, kEchoPort), port(kProtoTcp, kSinkPort),
              port(kProtoTcp, kSpoofTargetPort)};
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

// The same table with its pre-conntrack checks on an ingress chain of the
// workload's interface instead of prerouting: a design that puts no base
// chain on packets from other interfaces (the server's answers here). Not
// what the agent loads; measured to know what that design would gain. The
// table as nft text, with the prerouting hook line replaced.
std::string checksAtIngress(const compiler::Ruleset& rs, const std::string& device) {
  std::string text = compiler::renderRuleset(rs);
  const std::string hook = "type filter hook prerouting priority raw;";
  const size_t at = text.find(hook);
  if (at == std::string::npos) throw Failure("no pre-conntrack chain in the table");
  text.replace(at, hook.size(), "type filter hook ingress device \"" + device + "\" priority 0;");
  return text;
}

// A table holding `ct state established,related accept` in forward, then
// `forward`'s rules; `sets`; and with `pre` a base chain before conntrack
// (prerouting, priority raw) holding those rules. {} is conntrack only;
// {.pre = ""} adds the empty hook that bulkhead's pre-conntrack checks
// need: what that hook itself costs every packet, before any rule in it.
struct CtTable {
  std::string sets;
  std::optional<std::string> pre;
  std::string forward;
};

std::string conntrackTable(const CtTable& t) {
  std::string text = "table inet bhbench {\n" + t.sets +
                     "  chain forward {\n"
                     "    type filter hook forward priority filter; policy accept;\n"
                     "    ct state established,related accept\n" +
                     t.forward + "  }\n";
  if (t.pre)
    text +=
        "  chain prerouting {\n"
        "    type filter hook prerouting priority raw; policy accept;\n" +
        *t.pre + "  }\n";
  return text + "}\n";
}

// --breakdown: conntrack only plus one piece of what bulkhead's table does,
// to cost each piece alone. Per packet, both directions (bulkhead's
// pre-conntrack chain: a workload's packet ends at its first lookup,
// `iifname . ip saddr @src4`; the server's answers miss it and
// `@registered`), in sets of the client's entry and 10,000 others, like the
// 10,000-workload table. Per new connection (bulkhead's app chain: one
// lookup in the app's egress set, 8 entries here, a hash or an interval
// set, which the kernel keeps as pipapo); and the interval set at 10,000
// entries, to show whether pipapo's cost grows with its entries.
std::vector<std::pair<std::string, CtTable>> breakdownTables() {
  const std::string client = "\"" + std::string(kClientIface) + "\"";
  std::string ifnames = client, addrs = kClientV4, pairs = client + " . " + kClientV4;
  for (uint32_t i = 0; i < 10000; ++i) {
    const std::string a = v4(kWorkloadBase + i * 4).toString();
    const std::string name = "\"v" + std::to_string(i) + "\"";
    ifnames += ", " + name;
    addrs += ", " + a;
    pairs += ", " + name + " . " + a;
  }
  std::string dsts = std::string(kServerV4) + " . tcp . " + std::to_string(kEchoPort), fewDsts;
  for (uint32_t i = 0; i < 10000; ++i) {
    dsts += ", " + v4(kServiceBase + i).toString() + " . tcp . 443";
    if (i == 6) fewDsts = dsts;
  }
  auto set = [](const std::string& name, const std::string& type, const std::string& elements,
                bool interval = false) {
    return "  set " + name + " {\n    type " + type + "\n" +
           (interval ? "    flags interval\n" : "") + "    elements = { " + elements + " }\n  }\n";
  };
  const std::string destType = "ipv4_addr . inet_proto . inet_service";
  const std::string destRule = "    ip daddr . meta l4proto . th dport @d accept\n";
  return {
      {"conntrack + address lookup per packet",
       {set("s", "ipv4_addr", addrs), "    ip saddr @s accept\n", ""}},
      {"conntrack + interface lookup per packet",
       {set("s", "ifname", ifnames), "    iifname @s accept\n", ""}},
      {"conntrack + ifname.addr lookup per packet",
       {set("s", "ifname . ipv4_addr", pairs), "    iifname . ip saddr @s accept\n", ""}},
      {"conntrack + hash lookup per connection",
       {set("d", destType, fewDsts), std::nullopt, destRule}},
      {"conntrack + interval lookup per connection",
       {set("d", destType, fewDsts, true), std::nullopt, destRule}},
      {"conntrack + interval lookup, 10,000 entries",
       {set("d", destType, dsts, true), std::nullopt, destRule}},
  };
}

// The iptables + ipset equivalent of `rs` (iptables_equivalent.h), loaded
// the way those systems load it: ipset restore, then iptables-restore.
void loadIptables(const Netns& hv, const compiler::Ruleset& rs, const std::string& dir) {
  const auto r = iptables::translate(rs);
  std::ofstream(dir + "/ipset") << r.ipset;
  std::ofstream(dir + "/iptables") << r.iptables;
  const auto out = hv.exec("ipset restore < " + dir + "/ipset && iptables-legacy-restore < " + dir +
                           "/iptables");
  if (!out.ok()) throw Failure("loading the iptables baseline: " + out.out.substr(0, 2000));
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

// One configuration in a rig of its own, its table loaded once before the
// first round: no table is replaced between two measurements, so no
// configuration runs while the kernel still frees the one before it (a
// deleted table is released by a kworker after the commit, on the CPUs
// that measure the next figure).
struct Config {
  std::string name;
  std::function<void(Netns& hv)> load;  // puts this configuration's table in hv
  // Whether a served port outside the policy is refused (nullopt: a table
  // from --table, whose policy the bench does not know).
  std::optional<bool> enforcing = true;
  std::unique_ptr<Rig> rig;
  // Whether the table drops spoofed packets before conntrack sees them:
  // then a spoofed flood must leave no connection tracking entry.
  bool dropsSpoofs = false;
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

// A figure --phase left out stays NaN: "not measured", never a zero that
// the report would print, plot or divide as if it had been.
inline constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

// One round's figures of one configuration.
struct Sample {
  // Per second: connections, bytes, refusals.
  double conns = kNotMeasured, stream = kNotMeasured, denied = kNotMeasured;
  // CPU seconds of the client and server threads per connection, per GB
  // and per refused attempt: a cost a busy machine distorts far less than a
  // rate (a rate also counts the time the bench's threads waited for a CPU).
  double connCpu = kNotMeasured, streamCpu = kNotMeasured, deniedCpu = kNotMeasured;
  // The two SYN floods (own address to a denied port, spoofed addresses to
  // an allowed one): SYNs/s and the sender's CPU seconds per SYN; for the
  // spoofed one the hypervisor's connection tracking entries left per
  // 1,000 SYNs. (A denied SYN leaves none in any configuration: the table
  // drops it before conntrack confirms its entry, or the server's reset
  // makes conntrack delete it.)
  double floodRate = kNotMeasured, floodCpu = kNotMeasured;
  double spoofRate = kNotMeasured, spoofCpu = kNotMeasured, spoofEntries = kNotMeasured;
};
using Samples = std::map<std::string, std::vector<Sample>>;  // configuration -> rounds

// The rounds that measured `field` (empty: this run did not).
Stats across(const std::vector<Sample>& rounds, double Sample::*field) {
  Stats s;
  for (const auto& r : rounds)
    if (!std::isnan(r.*field)) s.add(r.*field);
  return s;
}

// a/b within each round: the two were measured seconds apart, so the drift
// of a shared machine cancels far better than in a ratio of medians.
Stats pairedRatios(const Samples& samples, const std::string& a, const std::string& b,
                   double Sample::*field) {
  Stats s;
  const auto &x = samples.at(a), &y = samples.at(b);
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    if (!std::isnan(x[i].*field) && !std::isnan(y[i].*field)) s.add(x[i].*field / y[i].*field);
  return s;
}

// "0.962 (0.941-0.975 over 10 rounds, middle half 0.955-0.968)".
std::string spread(const Stats& r) {
  if (r.empty()) return "not measured";
  return fmt("%.3f", r.median()) + " (" + fmt("%.3f", r.min()) + "-" + fmt("%.3f", r.max()) +
         " over " + std::to_string(r.samples.size()) + " rounds, middle half " +
         fmt("%.3f", r.quantile(0.25)) + "-" + fmt("%.3f", r.quantile(0.75)) + ")";
}

enum class Phase { kConns, kStream, kDenied, kFlood };

// Builds the configuration's rig, loads its table and proves it enforces.
void prepare(Config& c) {
  c.rig = std::make_unique<Rig>();
  c.load(c.rig->hv());
  if (c.enforcing && servedPortRefused(*c.rig->client->ns) != *c.enforcing)
    throw Failure(c.name + ": the port outside the policy is " +
                  (*c.enforcing ? "reachable" : "refused"));
}

// One figure of one configuration into `s`; a functional failure throws.
// One run of new connections on c's rig, with the server thread's CPU time
// meanwhile added to the client's.
Attempts connsOn(const Config& c, double seconds) {
  const double serverCpu0 = c.rig->server->cpuSeconds();
  Attempts a =
      inNetns<Attempts>(*c.rig->client->ns, [&] { return connectLoop(kEchoPort, seconds, true); });
  a.cpu += c.rig->server->cpuSeconds() - serverCpu0;
  return a;
}

void recordConns(const Config& c, const Attempts& conns, Sample& s) {
  if (conns.done == 0 || conns.failed > conns.done / 100)
    throw Failure(c.name + ": allowed connections failed (" + std::to_string(conns.failed) +
                  " of " + std::to_string(conns.done + conns.failed) + ")");
  s.connCpu = conns.cpu / double(conns.done);
  s.conns = conns.perSecond();
}

// New connections or the stream of every configuration in `order`, taking
// turns in slices of `sliceMs` (forward, then reversed) until each ran
// `seconds`: a burst of the machine's other load lands on all of them alike
// instead of on the one figure measured while it lasted.
void measureSliced(Phase p, const std::vector<const Config*>& order, int seconds, int sliceMs,
                   const std::vector<Sample*>& out) {
  std::vector<Attempts> conns(order.size());
  std::vector<Stream> streams(order.size());
  const int slices = std::max(1, seconds * 1000 / sliceMs);
  for (int k = 0; k < slices; ++k)
    for (size_t j = 0; j < order.size(); ++j) {
      checkInterrupted();
      const size_t i = k % 2 ? order.size() - 1 - j : j;
      const Config& c = *order[i];
      if (p == Phase::kConns) {
        const Attempts a = connsOn(c, sliceMs / 1000.0);
        conns[i].done += a.done;
        conns[i].failed += a.failed;
        conns[i].seconds += a.seconds;
        conns[i].cpu += a.cpu;
      } else {
        const Stream st = stream(*c.rig->client->ns, *c.rig->server, sliceMs / 1000.0);
        streams[i].bytes += st.bytes;
        streams[i].seconds += st.seconds;
        streams[i].cpu += st.cpu;
      }
    }
  for (size_t i = 0; i < order.size(); ++i) {
    if (p == Phase::kConns) {
      recordConns(*order[i], conns[i], *out[i]);
    } else {
      out[i]->stream = streams[i].bytesPerSecond();
      out[i]->streamCpu = streams[i].cpuPerGigabyte();
    }
  }
}

// Entries in the hypervisor's connection tracking table. /proc/sys/net
// shows the namespace of the thread that opens it: read from inside.
uint64_t conntrackEntries(const Netns& hv) {
  return inNetns<uint64_t>(
      hv, [] { return std::stoull(readFile("/proc/sys/net/netfilter/nf_conntrack_count")); });
}

void flushConntrack(const Netns& hv) {
  if (auto r = hv.exec("conntrack -F"); !r.ok()) throw Failure("conntrack -F: " + r.out);
}

struct FloodFigures {
  double rate = 0, cpu = 0;       // SYNs/s; the sender's CPU seconds per SYN
  double entriesPerThousand = 0;  // connection tracking entries left per 1,000 SYNs
};

// One SYN flood from c's client for `seconds`: its rate, the sender's CPU
// per SYN (the hypervisor's and the server's work runs in its softirq) and
// the entries it left in the hypervisor's connection tracking table,
// counted from an emptied table, which is emptied again after (entries
// left would slow the configuration's next figures).
FloodFigures floodOn(const Config& c, FloodSource how, double seconds) {
  const Netns& hv = c.rig->hv();
  flushConntrack(hv);
  const uint16_t port = how == FloodSource::kOwn ? kDeniedPort : kSpoofTargetPort;
  const FloodResult f = inNetns<FloodResult>(
      *c.rig->client->ns, [&] { return synFlood(kClientV4, kServerV4, port, how, seconds); });
  // What the softirq daemon still holds lands before the count.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const uint64_t left = conntrackEntries(hv);
  flushConntrack(hv);
  if (f.sent == 0) throw Failure(c.name + ": the SYN flood sent nothing");
  if (how == FloodSource::kSpoofed && c.dropsSpoofs && left > 0)
    throw Failure(c.name + ": " + std::to_string(left) + " connection tracking entries after " +
                  std::to_string(f.sent) +
                  " spoofed SYNs (the source check runs before conntrack)");
  // The flood's own proof: with conntrack and nothing before it, the
  // server's SYN-ACKs keep a spoofed SYN's entry. None kept would mean
  // malformed SYNs (conntrack tracks nothing of a bad checksum), and every
  // flood figure would measure another path.
  if (how == FloodSource::kSpoofed && c.name == "conntrack only" && left == 0)
    throw Failure("conntrack only: no connection tracking entry after " + std::to_string(f.sent) +
                  " spoofed SYNs: the flood's SYNs are not what a host accepts");
  return {f.perSecond(), f.cpuPerSyn(), double(left) * 1000 / double(f.sent)};
}

void measure(const Config& c, Phase p, int seconds, Sample& s) {
  const Netns& client = *c.rig->client->ns;
  if (p == Phase::kConns) {
    recordConns(c, connsOn(c, seconds), s);
  } else if (p == Phase::kStream) {
    const Stream st = stream(client, *c.rig->server, seconds);
    s.stream = st.bytesPerSecond();
    s.streamCpu = st.cpuPerGigabyte();
  } else if (p == Phase::kDenied) {
    const Attempts a =
        inNetns<Attempts>(client, [&] { return connectLoop(kDeniedPort, seconds / 2.0, false); });
    s.denied = a.perSecond();
    s.deniedCpu = a.done > 0 ? a.cpu / double(a.done) : kNotMeasured;
  } else {
    const FloodFigures denied = floodOn(c, FloodSource::kOwn, seconds / 2.0);
    s.floodRate = denied.rate;
    s.floodCpu = denied.cpu;
    const FloodFigures spoofed = floodOn(c, FloodSource::kSpoofed, seconds / 2.0);
    s.spoofRate = spoofed.rate;
    s.spoofCpu = spoofed.cpu;
    s.spoofEntries = spoofed.entriesPerThousand;
  }
}

constexpr const char* kBig = "bulkhead 10,000 workloads";
constexpr const char* kBigNoPre = "bulkhead 10,000, no pre-conntrack chain";
constexpr const char* kControl = "no table, second rig (--control)";
constexpr const char* kEmptyPre = "conntrack + empty pre-conntrack chain";
constexpr const char* kIngress = "bulkhead 10,000, checks at ingress";

// The median of the paired ratios a/b, or "-" when one was not measured
// (--only, --phase).
std::string ratioCell(const Samples& samples, const std::string& a, const std::string& b,
                      double Sample::*field) {
  if (!samples.count(a) || !samples.count(b)) return "-";
  const Stats r = pairedRatios(samples, a, b, field);
  return r.empty() ? "-" : fmt("%.3f", r.median());
}

// One configuration's median of `field`, recorded in the report (times
// `reportScale`, in `unit`) when this run measured it.
std::optional<double> figureOf(const Config& c, const std::vector<Sample>& rounds,
                               double Sample::*field, const char* name, const char* unit,
                               double reportScale = 1) {
  const Stats s = across(rounds, field);
  if (s.empty()) return std::nullopt;
  report().figure(name, c.name, 0, s.median() * reportScale, unit);
  return s.median();
}

std::string cell(std::optional<double> v, const std::function<std::string(double)>& show) {
  return v ? show(*v) : "-";
}

// The SYN floods: per flood, SYNs/s, the sender's CPU per SYN and its
// ratio to no table (below 1 costs more); for the spoofed one the
// connection tracking entries it left per 1,000 SYNs.
void printFloods(const std::vector<Config>& configs, const Samples& samples) {
  if (std::none_of(configs.begin(), configs.end(), [&](const Config& c) {
        return !across(samples.at(c.name), &Sample::floodRate).empty();
      }))
    return;
  std::printf("\n  %-42s %-26s %s\n", "SYN floods (raw socket, one thread)",
              "own address, denied port", "spoofed addresses, allowed port");
  std::printf("  %-42s %9s %7s %8s %9s %7s %8s %11s\n", "configuration", "SYN/s", "us/SYN",
              "vs none", "SYN/s", "us/SYN", "vs none", "ct per 1k");
  const auto rate = [](double v) { return count(uint64_t(v)); };
  const auto micros = [](double v) { return fmt("%.2f", v * 1e6); };
  const auto entries = [](double v) { return fmt("%.0f", v); };
  for (const auto& c : configs) {
    const auto& r = samples.at(c.name);
    std::printf(
        "  %-42s %9s %7s %8s %9s %7s %8s %11s\n", c.name.c_str(),
        cell(figureOf(c, r, &Sample::floodRate, "SYN flood, denied port", "1/s"), rate).c_str(),
        cell(figureOf(c, r, &Sample::floodCpu, "CPU per SYN, denied port", "s"), micros).c_str(),
        ratioCell(samples, "no table", c.name, &Sample::floodCpu).c_str(),
        cell(figureOf(c, r, &Sample::spoofRate, "SYN flood, spoofed", "1/s"), rate).c_str(),
        cell(figureOf(c, r, &Sample::spoofCpu, "CPU per SYN, spoofed", "s"), micros).c_str(),
        ratioCell(samples, "no table", c.name, &Sample::spoofCpu).c_str(),
        cell(
            figureOf(c, r, &Sample::spoofEntries, "conntrack entries per 1,000 SYNs, spoofed", "1"),
            entries)
            .c_str());
  }
}

void printTable(const std::vector<Config>& configs, const Samples& samples) {
  std::printf("\n  %-42s %12s %8s %13s %8s %12s\n", "configuration", "new conn/s", "vs ct",
              "stream Gbit/s", "vs none", "denied/s");
  const auto rate = [](double v) { return count(uint64_t(v)); };
  for (const auto& c : configs) {
    const auto& r = samples.at(c.name);
    const auto conns = figureOf(c, r, &Sample::conns, "new connections/s", "1/s");
    const auto stream = figureOf(c, r, &Sample::stream, "stream", "bit/s", 8);
    const auto denied = figureOf(c, r, &Sample::denied, "denied SYNs/s", "1/s");
    std::printf("  %-42s %12s %8s %13s %8s %12s\n", c.name.c_str(), cell(conns, rate).c_str(),
                ratioCell(samples, c.name, "conntrack only", &Sample::conns).c_str(),
                cell(stream, [](double v) { return fmt("%.2f", v * 8 / 1e9); }).c_str(),
                ratioCell(samples, c.name, "no table", &Sample::stream).c_str(),
                cell(denied, rate).c_str());
  }
  // The same comparison in CPU time per unit of work (base / this, so that
  // it reads like the rates' ratios: below 1 costs more).
  std::printf("\n  %-42s %12s %8s %13s %8s %12s %8s\n", "CPU time (client + server threads)",
              "us/conn", "vs ct", "ms/GB stream", "vs none", "us/denied", "vs none");
  const auto micros = [](double v) { return fmt("%.1f", v * 1e6); };
  for (const auto& c : configs) {
    const auto& r = samples.at(c.name);
    const auto connCpu = figureOf(c, r, &Sample::connCpu, "CPU per connection", "s");
    const auto streamCpu = figureOf(c, r, &Sample::streamCpu, "CPU per GB streamed", "s");
    const auto deniedCpu =
        figureOf(c, r, &Sample::deniedCpu, "CPU per denied connection attempt", "s");
    std::printf("  %-42s %12s %8s %13s %8s %12s %8s\n", c.name.c_str(),
                cell(connCpu, micros).c_str(),
                ratioCell(samples, "conntrack only", c.name, &Sample::connCpu).c_str(),
                cell(streamCpu, [](double v) { return fmt("%.1f", v * 1e3); }).c_str(),
                ratioCell(samples, "no table", c.name, &Sample::streamCpu).c_str(),
                cell(deniedCpu, micros).c_str(),
                ratioCell(samples, "no table", c.name, &Sample::deniedCpu).c_str());
  }
  printFloods(configs, samples);
}

void printGoal(const Stats& r, double goal, const std::string& what) {
  if (r.empty()) {
    // --phase left this figure out: no verdict either way.
    std::printf("  --    %s: not measured in this run\n", what.c_str());
    return;
  }
  report().goal(what, r.median() >= goal, r.median(), goal,
                what + " >= " + fmt("%.2f", goal) + "x: " + spread(r));
  std::printf(
      "  %s\n",
      goalLine(r.median() >= goal, what + " >= " + fmt("%.2f", goal) + "x: " + spread(r)).c_str());
}

// An informational ratio, when this run measured it (--phase, --only).
void printInfo(const Stats& r, const std::string& what) {
  if (r.empty()) return;
  std::printf("  info  %s: %s\n", what.c_str(), spread(r).c_str());
}

void printGoals(const Samples& samples, bool hasPre) {
  for (const char* needed : {kBig, "conntrack only", "no table"})
    if (!samples.count(needed)) return;  // --only left out a baseline
  std::printf("\n  ratios: median of the per-round ratios (paired), with their spread\n");
  // Issue 9: what bulkhead's rules cost on top of connection tracking, and
  // what the whole table costs an established stream.
  printGoal(pairedRatios(samples, kBig, "conntrack only", &Sample::conns), 0.95,
            "new connections at 10,000 workloads vs conntrack only");
  printGoal(pairedRatios(samples, kBig, "no table", &Sample::stream), 0.95,
            "established stream at 10,000 workloads vs no table");
  // Not goals: the same two in CPU time, which a busy machine distorts less.
  printInfo(pairedRatios(samples, "conntrack only", kBig, &Sample::connCpu),
            "CPU per connection, conntrack only / 10,000 workloads");
  printInfo(pairedRatios(samples, "no table", kBig, &Sample::streamCpu),
            "CPU per GB streamed, no table / 10,000 workloads");
  // Not goals: what a denied or spoofed SYN costs the host with the table,
  // against the same SYN without one (forwarded, answered by the server).
  printInfo(pairedRatios(samples, "no table", kBig, &Sample::deniedCpu),
            "CPU per denied connection attempt, no table / 10,000 workloads");
  printInfo(pairedRatios(samples, "no table", kBig, &Sample::floodCpu),
            "CPU per SYN of a flood to a denied port, no table / 10,000 workloads");
  printInfo(pairedRatios(samples, "no table", kBig, &Sample::spoofCpu),
            "CPU per spoofed SYN of a flood, no table / 10,000 workloads");
  if (samples.count(kControl))
    std::printf("  info  control, second no-table rig vs first: new conn/s %s, stream %s\n",
                spread(pairedRatios(samples, kControl, "no table", &Sample::conns)).c_str(),
                spread(pairedRatios(samples, kControl, "no table", &Sample::stream)).c_str());
  // Not goals: the goal's ratio split in two, the hook a check before
  // conntrack needs at all, and bulkhead's rules beyond that hook.
  if (samples.count(kEmptyPre)) {
    printInfo(pairedRatios(samples, kEmptyPre, "conntrack only", &Sample::conns),
              "new connections, an empty pre-conntrack chain vs conntrack only");
    printInfo(pairedRatios(samples, kBig, kEmptyPre, &Sample::conns),
              "new connections, 10,000 workloads vs conntrack + empty pre-conntrack chain");
  }
  if (samples.count(kIngress)) {
    printInfo(pairedRatios(samples, kIngress, "conntrack only", &Sample::conns),
              "checks at ingress instead, new connections vs conntrack only");
    printInfo(pairedRatios(samples, kIngress, "no table", &Sample::stream),
              "checks at ingress instead, established stream vs no table");
  }
  if (!hasPre || !samples.count(kBigNoPre)) return;
  // Issue 8: the pre-conntrack chain's own cost, with vs without it.
  printGoal(pairedRatios(samples, kBig, kBigNoPre, &Sample::conns), 0.90,
            "pre-conntrack chain, new connections, with vs without");
  printGoal(pairedRatios(samples, kBig, kBigNoPre, &Sample::stream), 0.97,
            "pre-conntrack chain, established stream, with vs without");
}

// The one-minute load average: how many jobs wanted a CPU meanwhile.
std::string loadAverage() {
  const std::string s = readFile("/proc/loadavg");
  return s.substr(0, s.find(' '));
}

int run(int argc, char** argv) {
  report().init("bench_datapath", argc, argv);
  int rounds = 10, seconds = 1;
  // Configurations take turns this often within a round (0: one run of
  // --seconds each); the stream's turns are longer, each pays a connect and
  // 100 ms for its last bytes to land.
  int sliceMs = 100, streamSliceMs = 250;
  std::string only;  // measure only configurations whose name contains this
  bool control = false;
  bool breakdown = false;
  std::vector<std::string> extraTables;
  std::string writeTable;  // --write-table: the 10,000-workload table's nft text, no measuring
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (auto v = positiveFlag(a, "--rounds="))
      rounds = *v;
    else if (auto v = positiveFlag(a, "--seconds="))
      seconds = *v;
    else if (auto v = countFlag(a, "--slice="))
      sliceMs = streamSliceMs = *v;
    else if (a == "--pin")
      gPin = true;
    else if (a.rfind("--only=", 0) == 0)
      only = a.substr(7);
    else if (a == "--control")
      control = true;
    else if (a == "--breakdown")
      breakdown = true;
    else if (a.rfind("--table=", 0) == 0)
      extraTables.push_back(a.substr(8));
    else if (a.rfind("--write-table=", 0) == 0)
      writeTable = a.substr(14);
    else if (a.rfind("--phase=", 0) == 0)
      gPhase = a.substr(8);
    else
      throw Failure("unknown argument " + a +
                    " (--rounds=N --seconds=N --slice=MS --pin --control --breakdown --table=FILE "
                    "--write-table=FILE --only=TEXT --phase=conns|stream|denied|flood)");
  }
  if (!writeTable.empty()) {
    // The table the bench loads, to edit and measure as --table=FILE beside it.
    std::ofstream out(writeTable);
    out << compiler::renderRuleset(bulkheadTable(10000, kClientIface));
    if (!out.flush()) throw Failure("writing " + writeTable);
    std::printf("bench_datapath: the 10,000-workload table written to %s\n", writeTable.c_str());
    return 0;
  }
  if (!gPhase.empty() && gPhase != "conns" && gPhase != "stream" && gPhase != "denied" &&
      gPhase != "flood")
    throw Failure("--phase= takes conns, stream, denied or flood");
  printBanner("bench_datapath");
  const std::string loadBefore = loadAverage();
  std::map<int, compiler::Ruleset> tables;
  for (int n : {100, 1000, 10000})
    tables.emplace(n, bulkheadTable(n, kClientIface));
  const compiler::Ruleset before = withoutPreConntrack(tables.at(10000));
  const bool hasPre = before.chains.size() != tables.at(10000).chains.size();

  auto loadRuleset = [](Netns& hv, const compiler::Ruleset& rs) {
    testing::KernelApplier applier(hv);
    if (auto st = applier.replace(rs); !st) throw Failure("apply: " + st.error().describe());
  };
  char dirTemplate[] = "/tmp/bench_datapath.XXXXXX";
  if (!mkdtemp(dirTemplate)) throw Failure("mkdtemp");
  const std::string dir = dirTemplate;
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() { std::filesystem::remove_all(dir); }
  } removeDir{dir};
  std::vector<Config> configs;
  configs.push_back({"no table", [](Netns&) {}, false, nullptr});
  // --control: "no table" once more in a rig of its own, whose ratio to the
  // first tells how far two identical rigs differ in this run.
  if (control) configs.push_back({kControl, [](Netns&) {}, false, nullptr});
  // A table as nft text, made when the configuration is prepared (--only
  // may leave it out), through a file: `nft -f FILE`.
  auto loadFile = [](Netns& hv, const std::string& file) {
    auto r = hv.exec("nft -f " + file);
    if (!r.ok()) throw Failure("nft -f " + file + ": " + r.out);
  };
  auto loadText = [&dir, loadFile](std::string name, std::function<std::string()> text) {
    return [&dir, loadFile, name, text](Netns& hv) {
      const std::string file = dir + "/" + name + ".nft";
      std::ofstream(file) << text();
      loadFile(hv, file);
    };
  };
  configs.push_back(
      {"conntrack only", loadText("ct", [] { return conntrackTable({}); }), false, nullptr});
  configs.push_back(
      {kEmptyPre, loadText("ct-pre", [] { return conntrackTable({.pre = ""}); }), false, nullptr});
  if (breakdown) {
    int n = 0;
    for (auto& [name, table] : breakdownTables())
      configs.push_back(
          {name,
           loadText("breakdown" + std::to_string(n++), [table] { return conntrackTable(table); }),
           false, nullptr});
  }
  for (int n : {100, 1000, 10000})
    configs.push_back({"bulkhead " + count(n) + " workloads",
                       [&, n](Netns& hv) { loadRuleset(hv, tables.at(n)); }, true, nullptr,
                       /*dropsSpoofs=*/hasPre});
  if (hasPre) {
    configs.push_back({kBigNoPre, [&](Netns& hv) { loadRuleset(hv, before); }, true, nullptr});
    configs.push_back(
        {kIngress,
         loadText("ingress", [&] { return checksAtIngress(tables.at(10000), kClientIface); }), true,
         nullptr, /*dropsSpoofs=*/true});
  }
  for (const auto& file : extraTables)
    configs.push_back({"table " + file, [loadFile, file](Netns& hv) { loadFile(hv, file); },
                       std::nullopt, nullptr});
  // The translation covers the shapes it knows; a table using one it does
  // not is reported, and that baseline left out rather than approximated.
  std::string iptablesGap;
  try {
    (void)iptables::translate(tables.at(10000));
    configs.push_back({"iptables + ipset 10,000 workloads",
                       [&](Netns& hv) { loadIptables(hv, tables.at(10000), dir); }, true, nullptr});
  } catch (const Failure& e) {
    iptablesGap = e.what();
  }

  // --only: one configuration at a time, e.g. under `perf record -a`.
  // Several as "A|B": the configurations whose name contains any of them.
  std::vector<std::string> wanted;
  for (size_t at = 0;;) {
    const size_t bar = only.find('|', at);
    wanted.push_back(only.substr(at, bar == std::string::npos ? bar : bar - at));
    if (bar == std::string::npos) break;
    at = bar + 1;
  }
  std::erase_if(configs, [&](const Config& c) {
    return std::none_of(wanted.begin(), wanted.end(),
                        [&](const std::string& w) { return c.name.find(w) != std::string::npos; });
  });
  if (configs.empty()) throw Failure("--only=" + only + " matches no configuration");
  for (auto& c : configs)
    prepare(c);

  Samples samples;
  for (auto& c : configs)
    samples[c.name].resize(size_t(rounds));
  std::vector<Phase> phases;
  for (auto [p, name] : {std::pair{Phase::kConns, "conns"}, std::pair{Phase::kStream, "stream"},
                         std::pair{Phase::kDenied, "denied"}, std::pair{Phase::kFlood, "flood"}})
    if (phase(name)) phases.push_back(p);
  for (int round = 0; round < rounds; ++round) {
    // One figure of every configuration back to back, so that each pair
    // in a ratio was measured seconds apart; ABBA: every other round in
    // reverse, so a drift over the round favours no configuration.
    for (const Phase p : phases) {
      const int slice = p == Phase::kConns ? sliceMs : p == Phase::kStream ? streamSliceMs : 0;
      if (slice > 0) {
        std::vector<const Config*> order;
        std::vector<Sample*> out;
        for (size_t i = 0; i < configs.size(); ++i) {
          const auto& c = configs[round % 2 ? configs.size() - 1 - i : i];
          order.push_back(&c);
          out.push_back(&samples[c.name][size_t(round)]);
        }
        measureSliced(p, order, seconds, slice, out);
        continue;
      }
      for (size_t i = 0; i < configs.size(); ++i) {
        checkInterrupted();
        const auto& c = configs[round % 2 ? configs.size() - 1 - i : i];
        measure(c, p, seconds, samples[c.name][size_t(round)]);
      }
    }
  }

  const std::string loadAfter = loadAverage();
  printTable(configs, samples);
  std::printf(
      "\n  %d rounds of %d s per figure%s%s; load average %s before, %s after\n", rounds, seconds,
      sliceMs > 0 ? (", in turns of " + std::to_string(sliceMs) + " ms (stream " +
                     std::to_string(streamSliceMs) + " ms)")
                        .c_str()
                  : "",
      gPin ? ", client on CPU 0, server on CPU 1" : "", loadBefore.c_str(), loadAfter.c_str());
  if (!iptablesGap.empty())
    std::printf("  iptables + ipset baseline left out: %s\n", iptablesGap.c_str());
  printGoals(samples, hasPre);
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_datapath", bulkhead::bench::run, argc, argv);
}
