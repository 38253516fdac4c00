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
// any such check needs costs by itself, before a rule runs. Two designs the
// agent does not load are measured at 10,000 too, to know what they would
// gain: the same checks at ingress on the client's interface, and
// per-interface checks (datapath_tables.h).
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
// The rig and the client's traffic are in datapath_rig.h, the tables in
// datapath_tables.h, the SYN floods in syn_flood.h.
//
// A benchmark, not a test: it prints figures and PASS/MISS against its goals
// and exits 1 only on a functional failure (a connection that should work
// does not, a namespace that cannot be made).
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
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

#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/compiler/render.h"
#include "datapath_rig.h"
#include "datapath_tables.h"
#include "support/apply.h"
#include "support/netns.h"
#include "syn_flood.h"

namespace bulkhead::bench {
namespace {

using namespace datapath;

// --phase=conns|stream|denied|flood: measure only that figure (the others
// stay unmeasured), so that `perf record -a` during the run profiles one kind of traffic.
std::string gPhase;
bool phase(const char* name) {
  return gPhase.empty() || gPhase == name;
}

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
constexpr const char* kPerInterface = "bulkhead 10,000, per-interface checks";

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
  if (samples.count(kPerInterface)) {
    printInfo(pairedRatios(samples, kPerInterface, "conntrack only", &Sample::conns),
              "per-interface checks instead, new connections vs conntrack only");
    printInfo(pairedRatios(samples, kPerInterface, "no table", &Sample::stream),
              "per-interface checks instead, established stream vs no table");
    printInfo(pairedRatios(samples, kPerInterface, kBig, &Sample::conns),
              "per-interface checks vs the table as it is, new connections");
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
    configs.push_back({kPerInterface,
                       loadText("per-interface",
                                [&] {
                                  return checksPerInterface(tables.at(10000), kClientIface,
                                                            {*policy::IpAddr::parse(kClientV4)});
                                }),
                       true, nullptr, /*dropsSpoofs=*/true});
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
