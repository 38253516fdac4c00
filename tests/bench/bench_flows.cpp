// bench_flows: the denied-flow feed against ulogd2 on the same flood. Denied
// packets go from NFLOG to a UDP syslog receiver: through the real
// bulkhead-agent (RFC 5424 over udp://), then, on the same table and the same
// flood, through Debian's ulogd2 (NFLOG -> BASE -> IFINDEX -> IP2STR -> JSON
// over UDP). Figures: events per second at the receiver, what each side lost
// and whether it said so, and the latency from the denied packet to its line
// at the receiver at a steady 1,000 events/s. A benchmark, not a test: it
// prints figures and PASS/MISS against the goals, never fails on a timing.
// It exits 1 only when something fails functionally (the agent or ulogd does
// not start, the policy is refused, no event arrives at all).
//
// Needs root, ulogd2 and ulogd2-json (packaging/install-deps.sh). Everything
// runs in throwaway namespaces (tests/support Topology): a hypervisor
// namespace holding the agent, ulogd and the receiver (127.0.0.1 there), and
// a workload namespace whose sender thread makes the flood. All of it is
// removed on exit, also on an error or Ctrl-C. No packet leaves them.
//
//   sudo build/tests/bench/bench_flows [--flood=N] [--rounds=N] [--rate=N] [--seconds=N]
//
// docs/benchmarks.md explains each figure.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_report.h"
#include "bench_util.h"
#include "support/netns.h"
#include "udp_io.h"

namespace bulkhead::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Netns;
using testing::Process;
using testing::Topology;

const std::string kBin = BULKHEAD_BINARY_DIR;
constexpr const char* kUlogd = "/usr/sbin/ulogd";
constexpr const char* kUlogdPlugins = "/usr/lib/x86_64-linux-gnu/ulogd";
constexpr const char* kWorkloadIface = "vflood1";
constexpr const char* kWorkloadAddr = "192.0.2.10";
constexpr uint32_t kDstNet = 0xc6336400u;  // 198.51.100.0/24, routed to a veth on hv
constexpr int kDstHosts = 250;             // .1 - .250
constexpr int kPortBase = 1024;
// Kernel log limit and agent per-workload limit for the run: high enough that
// neither is the bottleneck (both sides read the same table).
constexpr int kLogRate = 1000000;
constexpr int kReceiverPort = 10514;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void sleepMs(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// --- formatting ------------------------------------------------------------------

std::string pad(std::string s, size_t width) {
  if (s.size() >= width) return s;
  return s + std::string(width - s.size(), ' ');
}

// A cell wider than its column still leaves a space before the next one.
void row(const std::string& label, const std::string& a, const std::string& b = "") {
  std::printf("  %s %s%s\n", pad(label, 44).c_str(),
              b.empty() ? a.c_str() : pad(a + " ", 26).c_str(), b.c_str());
}

std::string tail(const std::string& path, const std::string& what) {
  std::string log = readFile(path);
  if (log.size() > 2000) log = "..." + log.substr(log.size() - 2000);
  return log.empty() ? "" : "; " + what + ":\n" + log;
}

std::string pct(const Stats& s) {
  if (s.empty()) return "-";
  return dur(s.quantile(0.5)) + " / " + dur(s.quantile(0.99)) + " / " + dur(s.max());
}

// --- attempts: index <-> (dst, dport) ------------------------------------------------
//
// Attempt i goes to 198.51.100.(1 + i % 250), port 1024 + i / 250: every
// attempt of a run is a distinct (dst, dport), so nothing is folded, and the
// receiver maps a line back to its attempt from the line's dst and dport.

sockaddr_in target(uint32_t i) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(kDstNet + 1 + i % kDstHosts);
  sa.sin_port = htons(uint16_t(kPortBase + i / kDstHosts));
  return sa;
}

constexpr uint32_t kMaxIndex = uint32_t(kDstHosts) * (65535 - kPortBase);

std::optional<uint32_t> indexOf(uint32_t dstHost, uint32_t port) {
  const uint32_t host = dstHost - kDstNet;
  if (host < 1 || host > uint32_t(kDstHosts) || port < uint32_t(kPortBase)) return std::nullopt;
  return (port - kPortBase) * kDstHosts + host - 1;
}

// dst and dport of a line in either format: RFC 5424 (`dst="198.51.100.7"
// ... dport="1030"`) or ulogd's JSON (`"dest_ip": "198.51.100.7", ...
// "dest_port": 1030`).
std::optional<uint32_t> parseLine(const char* p, size_t n) {
  const std::string_view line(p, n);
  auto after = [&](std::string_view a, std::string_view b) -> size_t {
    size_t at = line.find(a);
    if (at != std::string_view::npos) return at + a.size();
    at = line.find(b);
    return at == std::string_view::npos ? std::string_view::npos : at + b.size();
  };
  const size_t ip = after("dst=\"", "\"dest_ip\": \"");
  const size_t port = after("dport=\"", "\"dest_port\": ");
  if (ip == std::string_view::npos || port == std::string_view::npos) return std::nullopt;
  const size_t ipEnd = line.find('"', ip);
  if (ipEnd == std::string_view::npos || ipEnd - ip > 15) return std::nullopt;
  char buf[16] = {};
  line.copy(buf, ipEnd - ip, ip);
  in_addr a{};
  if (inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
  uint32_t v = 0;
  size_t k = port;
  while (k < line.size() && line[k] >= '0' && line[k] <= '9')
    v = v * 10 + uint32_t(line[k++] - '0');
  if (k == port) return std::nullopt;
  return indexOf(ntohl(a.s_addr), v);
}

// --- the receiver ------------------------------------------------------------------------

// A UDP socket on 127.0.0.1 in the hypervisor namespace, read by its own
// thread: one datagram is one line. Records, per attempt of the current
// phase, when its first line arrived.
class Receiver {
 public:
  Receiver(const Netns& ns, int port) : fd_(bindLoopbackUdp(ns, port, 64 << 20)) {
    thread_ = std::thread([this] { run(); });
  }
  ~Receiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  struct Phase {
    uint32_t base = 0;
    std::vector<Clock::time_point> arrival;  // per attempt; epoch: not (yet) arrived
    uint64_t matched = 0;                    // distinct attempts with a line
    uint64_t duplicates = 0, other = 0;      // repeated lines; lines not of this phase
    // The agent's scan `anomaly` events: not attempts, though they carry the
    // triggering attempt's destination and port.
    uint64_t anomalies = 0;
    uint64_t bytes = 0;
    Clock::time_point first{}, last{};
  };

  // Starts recording attempts [base, base + n); returns the previous phase.
  Phase begin(uint32_t base, uint32_t n) {
    std::lock_guard lock(mu_);
    Phase old = std::move(phase_);
    phase_ = Phase{};
    phase_.base = base;
    phase_.arrival.assign(n, Clock::time_point{});
    return old;
  }
  Phase end() { return begin(0, 0); }

  uint64_t matched() const {
    std::lock_guard lock(mu_);
    return phase_.matched;
  }
  Clock::time_point lastArrival() const {
    std::lock_guard lock(mu_);
    return phase_.last;
  }
  uint64_t lines() const { return lines_; }
  // Datagrams the kernel dropped on this socket (SO_RXQ_OVFL): lost by the
  // bench's receiver, not by the sender.
  uint64_t socketDrops() const { return drops_; }

  // Waits until the phase's lines stop coming: nothing new for `quiet`
  // seconds (or all `expect` arrived), at most `limit` seconds.
  void waitIdle(uint64_t expect, double quiet, double limit) {
    const auto t0 = Clock::now();
    uint64_t seen = matched();
    auto changed = Clock::now();
    while (secondsSince(t0) < limit) {
      checkInterrupted();
      sleepMs(20);
      const uint64_t now = matched();
      if (now >= expect) return;
      if (now != seen) {
        seen = now;
        changed = Clock::now();
      } else if (secondsSince(changed) >= quiet) {
        return;
      }
    }
  }

 private:
  void run() {
    DatagramBatch batch(4096);
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int n = batch.read(fd_.get());
      if (n == 0) continue;
      const auto now = Clock::now();
      std::lock_guard lock(mu_);
      drops_ = batch.drops();
      for (int i = 0; i < n; ++i) {
        ++lines_;
        const std::string_view line = batch.line(i);
        Phase& ph = phase_;
        if (isAnomalyLine(line)) {
          ++ph.anomalies;
          continue;
        }
        const auto idx = parseLine(line.data(), line.size());
        if (!idx || *idx < ph.base || *idx - ph.base >= ph.arrival.size()) {
          ++ph.other;
          continue;
        }
        auto& at = ph.arrival[*idx - ph.base];
        if (at != Clock::time_point{}) {
          ++ph.duplicates;
          continue;
        }
        at = now;
        ++ph.matched;
        ph.bytes += line.size();
        if (ph.first == Clock::time_point{}) ph.first = now;
        ph.last = now;
      }
    }
  }

  Fd fd_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  Phase phase_;
  std::atomic<uint64_t> lines_{0}, drops_{0};
};

struct Sent {
  std::vector<Clock::time_point> at;  // per attempt
  uint64_t ok = 0, refused = 0;
  Clock::time_point start{}, end{};
};

// As fast as one thread goes: sendmmsg, UdpSender::kBatch attempts a call.
Sent flood(UdpSender& s, uint32_t base, uint32_t n) {
  Sent out;
  out.at.resize(n);
  out.start = Clock::now();
  for (uint32_t k = 0; k < n; k += UdpSender::kBatch) {
    if ((k & 1023) == 0) checkInterrupted();
    const uint32_t b = std::min(UdpSender::kBatch, n - k);
    const auto t = Clock::now();
    std::fill(out.at.begin() + k, out.at.begin() + k + b, t);
    const uint32_t ok = s.sendBatch(base + k, b);
    out.ok += ok;
    out.refused += b - ok;
  }
  out.end = Clock::now();
  return out;
}

// `rate` per second for `secs` seconds, on a fixed schedule.
Sent paced(UdpSender& s, uint32_t base, int rate, int secs) {
  Sent out;
  const uint32_t n = uint32_t(rate) * uint32_t(secs);
  out.at.resize(n);
  out.start = Clock::now();
  for (uint32_t k = 0; k < n; ++k) {
    checkInterrupted();
    std::this_thread::sleep_until(out.start +
                                  std::chrono::nanoseconds(int64_t(k) * 1000000000 / rate));
    out.at[k] = Clock::now();
    (s.send(base + k) ? out.ok : out.refused)++;
  }
  out.end = Clock::now();
  return out;
}

// --- the kernel's view ------------------------------------------------------------------------

// Sum of the packet counters of table inet bulkhead in `ns`: attempts that
// reached a counted rule (here only the flood app's deny rule counts).
uint64_t tableCounter(const Netns& ns) {
  const auto r = ns.exec("nft list table inet bulkhead");
  if (!r.ok()) throw Failure("nft list table: " + r.out.substr(0, 1000));
  static const std::regex counter("counter packets ([0-9]+)");
  uint64_t sum = 0;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), counter), end; it != end; ++it)
    sum += std::stoull((*it)[1]);
  return sum;
}

// --- the agent -----------------------------------------------------------------------------------

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: flood}
spec:
  denyAction: drop
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: flood-1}
spec: {app: flood, interfaces: [vflood1], addresses: [192.0.2.10]}
)";

struct FlowCounters {
  uint64_t seen = 0, exported = 0, suppressed = 0;
  std::map<std::string, uint64_t> byCause;
};

class Agent {
 public:
  Agent(const Netns& hv, const std::string& dir) : dir_(dir) {
    socket_ = "unix://" + dir + "/agent.sock";
    process_ = std::make_unique<Process>(
        hv, "exec " + kBin + "/bulkhead-agent --listen " + socket_ + " --state-dir " + dir +
                "/state --syslog udp://127.0.0.1:" + std::to_string(kReceiverPort) +
                " --log-rate " + std::to_string(kLogRate) + " --flow-workload-rate " +
                std::to_string(kLogRate) + " 2>>" + dir + "/agent.log");
    const auto t0 = Clock::now();
    while (!cli("status").ok()) {
      checkInterrupted();
      if (!process_->running()) throw Failure("bulkhead-agent exited at start" + logTail());
      if (secondsSince(t0) > 15) throw Failure("bulkhead-agent does not answer" + logTail());
      sleepMs(50);
    }
    std::ofstream(dir + "/policy.yaml") << kPolicy;
    const auto push = cli("push " + dir + "/policy.yaml");
    if (!push.ok()) throw Failure("bulkhead push: " + push.out + logTail());
  }

  testing::CmdResult cli(const std::string& args) const {
    return testing::sh(kBin + "/bulkhead --agent " + socket_ + " " + args);
  }

  FlowCounters counters() const {
    const auto r = cli("status --json");
    if (!r.ok()) throw Failure("bulkhead status: " + r.out + logTail());
    FlowCounters c;
    auto num = [&](const char* field) -> uint64_t {
      std::smatch m;
      if (!std::regex_search(r.out, m,
                             std::regex(std::string("\"") + field + "\"\\s*:\\s*([0-9]+)")))
        throw Failure(std::string("no ") + field + " in status: " + r.out);
      return std::stoull(m[1]);
    };
    c.seen = num("seen");
    c.exported = num("exported");
    c.suppressed = num("suppressed");
    std::smatch m;
    if (std::regex_search(r.out, m, std::regex("\"suppressed_by_cause\"\\s*:\\s*\\{([^}]*)\\}"))) {
      const std::string obj = m[1];
      static const std::regex kv("\"([a-z_]+)\"\\s*:\\s*([0-9]+)");
      for (std::sregex_iterator it(obj.begin(), obj.end(), kv), end; it != end; ++it)
        c.byCause[(*it)[1]] = std::stoull((*it)[2]);
    }
    return c;
  }

  // Once idle: counters that no longer move and balance (seen == exported +
  // suppressed), or the last read after `limit` seconds.
  FlowCounters settled(double limit) const {
    const auto t0 = Clock::now();
    FlowCounters prev = counters();
    while (true) {
      checkInterrupted();
      sleepMs(1100);  // the agent samples the kernel's counters every second
      FlowCounters c = counters();
      if ((c.seen == prev.seen && c.exported == prev.exported &&
           c.seen == c.exported + c.suppressed) ||
          secondsSince(t0) > limit)
        return c;
      prev = c;
    }
  }

  // SIGTERM: the agent exits 0 and leaves its table in the kernel.
  int stop() {
    process_->kill(SIGTERM);
    return process_->wait(10000);
  }

  std::string logTail() const { return tail(dir_ + "/agent.log", "agent log"); }

 private:
  std::string dir_, socket_;
  std::unique_ptr<Process> process_;
};

// --- ulogd2 ----------------------------------------------------------------------------------

// Debian's ulogd2 with its own config: NFLOG group 1771 in the hypervisor
// namespace (the agent is stopped; its table stays), BASE, IFINDEX, IP2STR,
// JSON over UDP to the same receiver. The netlink socket buffer starts at
// the agent's (8 MiB); ulogd may double it once on ENOBUFS. Kernel batching
// (qthreshold, qtimeout) is left at ulogd's defaults.
class Ulogd {
 public:
  Ulogd(const Netns& hv, const std::string& dir) : dir_(dir) {
    std::ofstream conf(dir + "/ulogd.conf");
    conf << "[global]\nlogfile=\"" << dir << "/ulogd.log\"\nloglevel=5\n";
    for (const char* p :
         {"inppkt_NFLOG", "raw2packet_BASE", "filter_IFINDEX", "filter_IP2STR", "output_JSON"})
      conf << "plugin=\"" << kUlogdPlugins << "/ulogd_" << p << ".so\"\n";
    conf << "stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,json1:JSON\n"
         << "[log1]\ngroup=1771\nunbind=0\n"
         << "netlink_socket_buffer_size=8388608\nnetlink_socket_buffer_maxsize=16777216\n"
         << "[json1]\nmode=\"udp\"\nhost=\"127.0.0.1\"\nport=\"" << kReceiverPort << "\"\n";
    conf.close();
    process_ = std::make_unique<Process>(
        hv, std::string("exec ") + kUlogd + " -c " + dir + "/ulogd.conf 2>>" + dir + "/ulogd.err");
    sleepMs(300);
    if (!process_->running()) throw Failure("ulogd exited at start" + logTail());
  }
  bool running() { return process_->running(); }
  // "We are losing events" notices: ENOBUFS seen, events not counted.
  int lossNotices() const {
    const std::string log = readFile(dir_ + "/ulogd.log");
    int n = 0;
    for (size_t at = log.find("losing events"); at != std::string::npos;
         at = log.find("losing events", at + 1))
      ++n;
    return n;
  }
  std::string logTail() const {
    return tail(dir_ + "/ulogd.log", "ulogd log") + tail(dir_ + "/ulogd.err", "ulogd stderr");
  }

 private:
  std::string dir_;
  std::unique_ptr<Process> process_;
};

std::string ulogdVersion() {
  const auto r = testing::sh(std::string(kUlogd) + " -V 2>&1 | head -1");
  return trimmed(r.out);
}

// --- phases
// ----------------------------------------------------------------------------------------

struct FloodResult {
  Sent sent;
  Receiver::Phase got;
  uint64_t reached = 0;  // the kernel's counter of the deny rule
  double rate() const {  // lines per second from the first send to the last line
    if (got.matched == 0) return 0;
    return double(got.matched) / seconds(got.last - sent.start);
  }
};

struct LatencyResult {
  Sent sent;
  Receiver::Phase got;
  Stats latency;
};

// Waits for the first line of attempts sent from `base` on (retrying with a
// fresh attempt every 200 ms): the pipeline is up end to end.
void warmUp(UdpSender& s, Receiver& r, uint32_t base, const std::function<std::string()>& why) {
  r.begin(base, 100);
  const auto t0 = Clock::now();
  for (uint32_t k = 0; r.matched() == 0; ++k) {
    checkInterrupted();
    if (secondsSince(t0) > 15) throw Failure("no line at the receiver after 15 s" + why());
    if (k % 10 == 0) s.send(base + k / 10);
    sleepMs(20);
  }
  r.waitIdle(100, 0.3, 2);
  r.end();
}

FloodResult runFlood(UdpSender& s, Receiver& r, const Netns& hv, uint32_t base, uint32_t n) {
  FloodResult f;
  const uint64_t before = tableCounter(hv);
  r.begin(base, n);
  f.sent = flood(s, base, n);
  r.waitIdle(n, 1.5, 60);
  f.got = r.end();
  f.reached = tableCounter(hv) - before;
  return f;
}

LatencyResult runLatency(UdpSender& s, Receiver& r, uint32_t base, int rate, int secs) {
  LatencyResult l;
  r.begin(base, uint32_t(rate) * uint32_t(secs));
  l.sent = paced(s, base, rate, secs);
  r.waitIdle(l.sent.at.size(), 1.5, 10);
  l.got = r.end();
  for (size_t k = 0; k < l.sent.at.size(); ++k)
    if (l.got.arrival[k] != Clock::time_point{})
      l.latency.samples.push_back(seconds(l.got.arrival[k] - l.sent.at[k]));
  return l;
}

// --- the run
// ----------------------------------------------------------------------------------------

struct Options {
  uint32_t flood = 100000;  // attempts per flood round
  int rounds = 2;           // flood rounds per side
  int rate = 1000;          // latency phase: events per second
  int seconds = 5;          // latency phase: duration
  bool ulogd = true;
};

Options parseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto num = [&](const char* prefix) { return positiveFlag(a, prefix); };
    if (auto v = num("--flood=")) {
      o.flood = uint32_t(*v);
    } else if (auto v2 = num("--rounds=")) {
      o.rounds = *v2;
    } else if (auto v3 = num("--rate=")) {
      o.rate = *v3;
    } else if (auto v4 = num("--seconds=")) {
      o.seconds = *v4;
    } else if (a == "--no-ulogd") {
      o.ulogd = false;
    } else {
      throw Failure(
          "usage: bench_flows [--flood=N] [--rounds=N] [--rate=N] [--seconds=N] [--no-ulogd]");
    }
  }
  if (uint64_t(o.flood) * uint64_t(o.rounds) + uint64_t(o.rate) * uint64_t(o.seconds) + 2000 >
      kMaxIndex)
    throw Failure("--flood x --rounds + --rate x --seconds too large for the address plan");
  return o;
}

std::string causes(const FlowCounters& after, const FlowCounters& before) {
  std::string out;
  for (const auto& [cause, n] : after.byCause) {
    const uint64_t d = n - (before.byCause.count(cause) ? before.byCause.at(cause) : 0);
    if (d) out += (out.empty() ? "" : ", ") + cause + " " + count(d);
  }
  return out.empty() ? "none" : out;
}

int run(int argc, char** argv) {
  report().init("bench_flows", argc, argv);
  const Options opt = parseOptions(argc, argv);
  if (!testing::havePrivileges())
    throw Failure("must run as root with `ip` and `nft`: sudo build/tests/bench/bench_flows");
  for (const char* b : {"/bulkhead-agent", "/bulkhead"})
    if (access((kBin + b).c_str(), X_OK) != 0)
      throw Failure(kBin + b + " not found: cmake --build build -j2 --target bench_flows");
  if (opt.ulogd && (access(kUlogd, X_OK) != 0 ||
                    access((std::string(kUlogdPlugins) + "/ulogd_output_JSON.so").c_str(), R_OK)))
    throw Failure("ulogd2 and ulogd2-json are needed (packaging/install-deps.sh), or --no-ulogd");
  testing::sweepStaleNamespaces();
  const auto started = Clock::now();

  printBanner("bench_flows", opt.ulogd ? ", " + ulogdVersion() : "");

  ScratchDir dir("bench_flows");
  Topology topo;
  topo.addHost(kWorkloadIface, kWorkloadAddr, "");
  routeFloodDestinations(topo.hv());
  Receiver receiver(topo.hv(), kReceiverPort);
  UdpSender sender(*topo.host(kWorkloadIface).ns, &target);

  const uint32_t latencyBase = opt.flood * uint32_t(opt.rounds);
  const uint32_t warmBase = latencyBase + uint32_t(opt.rate) * uint32_t(opt.seconds);

  // --- bulkhead-agent ---
  std::vector<FloodResult> ours, theirs;
  FlowCounters before, after;
  uint64_t receiverDropsOurs = 0;
  LatencyResult ourLatency, theirLatency;
  int agentExit = -1;
  {
    Agent agent(topo.hv(), dir.path());
    warmUp(sender, receiver, warmBase, [&] { return agent.logTail(); });
    before = agent.settled(5);
    const uint64_t drops0 = receiver.socketDrops();
    for (int r = 0; r < opt.rounds; ++r) {
      ours.push_back(runFlood(sender, receiver, topo.hv(), opt.flood * uint32_t(r), opt.flood));
      std::printf("  bulkhead-agent flood %d: %s lines in %s\n", r + 1,
                  count(ours.back().got.matched).c_str(),
                  dur(seconds(ours.back().got.last - ours.back().sent.start)).c_str());
      std::fflush(stdout);
    }
    after = agent.settled(10);
    receiverDropsOurs = receiver.socketDrops() - drops0;
    ourLatency = runLatency(sender, receiver, latencyBase, opt.rate, opt.seconds);
    agentExit = agent.stop();
  }

  // --- ulogd2, on the table the agent left, the same flood ---
  int lossNotices = 0;
  uint64_t receiverDropsTheirs = 0;
  if (opt.ulogd) {
    Ulogd ulogd(topo.hv(), dir.path());
    warmUp(sender, receiver, warmBase + 1000, [&] { return ulogd.logTail(); });
    const uint64_t drops0 = receiver.socketDrops();
    for (int r = 0; r < opt.rounds; ++r) {
      theirs.push_back(runFlood(sender, receiver, topo.hv(), opt.flood * uint32_t(r), opt.flood));
      std::printf("  ulogd2 flood %d: %s lines in %s\n", r + 1,
                  count(theirs.back().got.matched).c_str(),
                  dur(seconds(theirs.back().got.last - theirs.back().sent.start)).c_str());
      std::fflush(stdout);
      if (!ulogd.running()) throw Failure("ulogd exited during the flood" + ulogd.logTail());
    }
    receiverDropsTheirs = receiver.socketDrops() - drops0;
    theirLatency = runLatency(sender, receiver, latencyBase, opt.rate, opt.seconds);
    lossNotices = ulogd.lossNotices();
  }

  // --- the report ---
  auto sum = [](const std::vector<FloodResult>& v, auto field) {
    uint64_t s = 0;
    for (const auto& f : v)
      s += field(f);
    return s;
  };
  auto best = [](const std::vector<FloodResult>& v) {
    double r = 0;
    for (const auto& f : v)
      r = std::max(r, f.rate());
    return r;
  };
  auto rates = [](const std::vector<FloodResult>& v) {
    std::string s;
    for (const auto& f : v)
      s += (s.empty() ? "" : ", ") + fmt("%.0f", f.rate());
    return s;
  };
  auto sendRate = [](const std::vector<FloodResult>& v) {
    std::string s;
    for (const auto& f : v)
      s += (s.empty() ? "" : ", ") +
           fmt("%.0f", double(f.sent.ok) / seconds(f.sent.end - f.sent.start));
    return s;
  };
  const uint64_t ourLines = sum(ours, [](const FloodResult& f) { return f.got.matched; });
  const uint64_t ourReached = sum(ours, [](const FloodResult& f) { return f.reached; });
  const uint64_t theirLines = sum(theirs, [](const FloodResult& f) { return f.got.matched; });
  const uint64_t theirReached = sum(theirs, [](const FloodResult& f) { return f.reached; });
  const uint64_t dSeen = after.seen - before.seen, dExported = after.exported - before.exported,
                 dSuppressed = after.suppressed - before.suppressed;
  // Lost without a count: attempts the kernel counted that are neither a line
  // at the receiver nor in the agent's suppressed counters.
  const int64_t ourUnaccounted = int64_t(dSeen) - int64_t(ourLines) - int64_t(dSuppressed);
  const int64_t agentIdentity = int64_t(dSeen) - int64_t(dExported) - int64_t(dSuppressed);
  const uint64_t ourDuplicates = sum(ours, [](const FloodResult& f) { return f.got.duplicates; });
  const uint64_t theirDuplicates =
      sum(theirs, [](const FloodResult& f) { return f.got.duplicates; });

  std::printf(
      "\nFlood: %d round(s) of %s distinct denied UDP attempts (198.51.100.1-250 x ports), one "
      "sender thread in the workload namespace, as fast as it goes; kernel log limit and agent "
      "per-workload limit %s/s. Receiver: one UDP socket on 127.0.0.1 in the hypervisor "
      "namespace (64 MiB buffer).\n",
      opt.rounds, count(opt.flood).c_str(), count(kLogRate).c_str());
  std::printf("  %s %s%s\n", pad("", 44).c_str(), pad("bulkhead-agent", 26).c_str(),
              opt.ulogd ? "ulogd2" : "");
  row("format, transport", "RFC 5424 over UDP", opt.ulogd ? "JSON over UDP" : "");
  row("attempts sent", count(sum(ours, [](const FloodResult& f) { return f.sent.ok; })),
      opt.ulogd ? count(sum(theirs, [](const FloodResult& f) { return f.sent.ok; })) : "");
  row("  sender rate per round (/s)", sendRate(ours), opt.ulogd ? sendRate(theirs) : "");
  row("reached the deny rule (kernel counter)", count(ourReached),
      opt.ulogd ? count(theirReached) : "");
  row("lines at the receiver", count(ourLines), opt.ulogd ? count(theirLines) : "");
  row("events/s per round (first send to last line)", rates(ours), opt.ulogd ? rates(theirs) : "");
  row("events/s, best round", fmt("%.0f", best(ours)), opt.ulogd ? fmt("%.0f", best(theirs)) : "");
  row("lost (reached the rule, no line)", count(ourReached - std::min(ourReached, ourLines)),
      opt.ulogd ? count(theirReached - std::min(theirReached, theirLines)) : "");
  row("  of which counted by the daemon", count(dSuppressed),
      opt.ulogd ? "0 (no counter; " + std::to_string(lossNotices) + " \"losing events\" notices)"
                : "");
  row("duplicate lines", count(ourDuplicates), opt.ulogd ? count(theirDuplicates) : "");
  row("scan anomaly events (not attempts)",
      count(sum(ours, [](const FloodResult& f) { return f.got.anomalies; })), opt.ulogd ? "-" : "");
  row("receiver socket drops (SO_RXQ_OVFL)", count(receiverDropsOurs),
      opt.ulogd ? count(receiverDropsTheirs) : "");

  std::printf("\nbulkhead-agent accounting over the flood (status --json, deltas)\n");
  row("seen / exported / suppressed",
      count(dSeen) + " / " + count(dExported) + " / " + count(dSuppressed));
  row("suppressed by cause", causes(after, before));
  row("seen - exported - suppressed", std::to_string(agentIdentity));
  row("seen - lines at receiver - suppressed", std::to_string(ourUnaccounted));
  row("sent - seen (dropped before the rule)",
      std::to_string(int64_t(sum(ours, [](const FloodResult& f) { return f.sent.ok; })) -
                     int64_t(dSeen)));
  row("agent exit on SIGTERM", std::to_string(agentExit));

  std::printf("\nLatency at %s events/s for %d s: denied packet sent -> its line at the receiver\n",
              count(uint64_t(opt.rate)).c_str(), opt.seconds);
  row("lines / attempts", count(ourLatency.got.matched) + " / " + count(ourLatency.sent.at.size()),
      opt.ulogd ? count(theirLatency.got.matched) + " / " + count(theirLatency.sent.at.size())
                : "");
  row("p50 / p99 / max", pct(ourLatency.latency), opt.ulogd ? pct(theirLatency.latency) : "");

  const double ratio = best(theirs) > 0 ? best(ours) / best(theirs) : 0;
  std::printf("\nGoals (informational; timings never fail the run)\n");
  if (opt.ulogd)
    std::printf("  %s\n", goalLine(ratio >= 2, "flood rate bulkhead/ulogd2 = " +
                                                   fmt("%.2f", ratio) + " (best rounds; goal >= 2)")
                              .c_str());
  std::printf("  %s\n", goalLine(ourUnaccounted == 0 && agentIdentity == 0,
                                 "bulkhead unaccounted loss: " + std::to_string(ourUnaccounted) +
                                     " of " + count(dSeen) + " (goal 0)")
                            .c_str());
  if (opt.ulogd)
    std::printf("  info  ulogd2 lost %s of %s without a count\n",
                count(theirReached - std::min(theirReached, theirLines)).c_str(),
                count(theirReached).c_str());
  std::printf("  %s\n",
              goalLine(!ourLatency.latency.empty() && ourLatency.latency.quantile(0.99) <= 0.050 &&
                           ourLatency.got.matched == ourLatency.sent.at.size(),
                       "latency p99 at " + count(uint64_t(opt.rate)) +
                           "/s: " + dur(ourLatency.latency.quantile(0.99)) + ", " +
                           count(ourLatency.got.matched) + "/" + count(ourLatency.sent.at.size()) +
                           " lines (goal <= 50 ms)")
                  .c_str());
  std::printf("\nBench wall time %s\n", dur(secondsSince(started)).c_str());
  std::fflush(stdout);
  if (ourLines == 0 || (opt.ulogd && theirLines == 0)) throw Failure("no line from a flood");

  auto& r = report();
  const double size = double(opt.flood);
  const double p99 = ourLatency.latency.quantile(0.99);
  r.figure("flood events/s, best round", "bulkhead-agent", size, best(ours), "1/s");
  r.figure("lost without a count", "bulkhead-agent", size, double(ourUnaccounted), "count");
  r.figure("latency p50", "bulkhead-agent", opt.rate, ourLatency.latency.median(), "s");
  r.figure("latency p99", "bulkhead-agent", opt.rate, p99, "s");
  if (opt.ulogd) {
    r.figure("flood events/s, best round", "ulogd2", size, best(theirs), "1/s");
    r.figure("lost without a count", "ulogd2", size,
             double(theirReached - std::min(theirReached, theirLines)), "count");
    r.figure("latency p50", "ulogd2", opt.rate, theirLatency.latency.median(), "s");
    r.figure("latency p99", "ulogd2", opt.rate, theirLatency.latency.quantile(0.99), "s");
    r.goal("flood rate bulkhead/ulogd2", ratio >= 2, ratio, 2,
           "flood rate bulkhead/ulogd2 = " + fmt("%.2f", ratio) + " (best rounds; goal >= 2)");
  }
  r.goal("bulkhead unaccounted loss", ourUnaccounted == 0 && agentIdentity == 0,
         double(ourUnaccounted), 0, "bulkhead unaccounted loss (goal 0)");
  r.goal("latency p99", !ourLatency.latency.empty() && p99 <= 0.050, p99, 0.050,
         "latency p99 at " + count(uint64_t(opt.rate)) + "/s: " + dur(p99) + " (goal <= 50 ms)");
  r.write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_flows", bulkhead::bench::run, argc, argv);
}
