// bench_scan: what scan detection costs the agent's flow throughput.
//
// The goal's figure, end to end (root): two real bulkhead-agents, one with
// detection and one with `--scan-detection false`, each in a namespace of
// its own with one workload, get the same denied UDP flood in turns; an
// agent's throughput is attempts per second of its CPU time (every thread:
// NFLOG reads, decoding, the pipeline, the detector, formatting, sending),
// and, beside it, its flow thread's alone. scan_agents.h has the rig.
//
// Beside it, in-process (no kernel, no I/O): the same logged packets go
// through flows::Pipeline (decode, attribution, folding, the per-workload
// rate limit, hand-off to an exporter) with the ScanDetector hooked in as
// FlowFeed hooks it, and without it. Each round warms both pipelines to a
// long-running agent's steady state (open folds and the detector's tables
// at their bounds), then feeds both the same new packets in turns of
// --slice packets; rates are per second of the thread's own CPU time, and
// the cost is the median of the rounds' paired ratios. Beside that, the
// detector's own CPU time per attempt fed straight to it, back to back.
//
// Two traffic shapes in both parts: every attempt a new (destination,
// port) — a scan, the detector's worst case — and 1,000 flows repeated.
//
//   sudo build/tests/bench/bench_scan [--agent-rounds=N] [--agent-slice=N]
//                                     [--packets=N] [--rounds=N] [--slice=N]
//                                     [--max-entries=N] [--hosts=N] [--ports=N]
//
// --agent-rounds: turns per agent (default 15; 0: the in-process part
// alone, no root); --agent-slice: attempts per turn (default 40,000).
// In-process: --packets per configuration and round (default 1,000,000);
// --slice: packets per turn (default 5,000); --max-entries: the detector's
// bound (the agent's default: 131,072); --hosts, --ports: its thresholds
// (the agent's defaults: 20 and 15; 0 turns that kind off, to see what
// each kind costs).
#include <arpa/inet.h>

#include <cstring>
#include <ctime>

#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/agent/scan_detector.h"
#include "bulkhead/flows/exporter.h"
#include "bulkhead/flows/pipeline.h"
#include "scan_agents.h"

namespace bulkhead::bench {
namespace {

// Takes events as a queue would (a copy), counts them.
class CountingExporter : public flows::Exporter {
 public:
  bool offer(const flows::FlowEvent& e) override {
    last_ = e;
    ++stats_.delivered;
    stats_.deliveredAttempts += e.count;
    return true;
  }
  flows::ExporterStats stats() const override { return stats_; }
  std::string name() const override { return "count"; }
  bool flush(int) override { return true; }

 private:
  flows::FlowEvent last_;
  flows::ExporterStats stats_;
};

flows::LoggedPacket packet(uint32_t workload, uint32_t dst, uint16_t dport) {
  uint8_t p[40] = {};
  p[0] = 0x45;
  p[3] = 40;
  p[8] = 64;
  p[9] = 6;                                                     // tcp
  const uint32_t src = htonl(0xc0000200u + (workload & 0xff));  // 192.0.2.x
  const uint32_t d = htonl(dst);
  std::memcpy(p + 12, &src, 4);
  std::memcpy(p + 16, &d, 4);
  const uint16_t sport = htons(40000), dp = htons(dport);
  std::memcpy(p + 20, &sport, 2);
  std::memcpy(p + 22, &dp, 2);
  p[32] = 0x50;
  p[33] = 0x02;  // SYN
  flows::LoggedPacket lp;
  lp.prefix = "bh:deny:default";
  lp.inIfindex = 100 + workload;
  lp.family = 2;
  lp.hwProtocol = 0x0800;
  lp.payload.assign(reinterpret_cast<const char*>(p), sizeof p);
  return lp;
}

// One pipeline as the agent runs it, with or without the detector hooked
// in, and its own clock: packet times 2 us apart (500,000 a second), fold
// windows closed every 20 ms of that time, as the agent's flow thread ticks.
class Rig {
 public:
  Rig(const agent::ScanOptions& scan, bool detect) : detector_(scan) {
    flows::PipelineOptions o;
    o.host = "bench";
    o.workloadRate = 1e9;  // the limit is not what is measured
    o.workloadBurst = 1e9;
    if (detect)
      o.observe = [this](const flows::FlowEvent& e, bool repeat) {
        if (detector_.observe(e, repeat)) ++findings_;
      };
    std::vector<std::unique_ptr<flows::Exporter>> exporters;
    exporters.push_back(std::make_unique<CountingExporter>());
    pipeline_ = std::make_unique<flows::Pipeline>(
        o,
        [](uint32_t ifindex) {
          return flows::Attribution{"web-" + std::to_string(ifindex - 100), "web"};
        },
        nullptr, std::move(exporters));
  }

  // The flow thread's CPU seconds for these packets.
  double feed(const std::vector<flows::LoggedPacket>& packets) {
    const double t0 = cpuSecondsOf();
    for (const auto& p : packets) {
      now_ += std::chrono::microseconds(2);
      if (now_ >= nextTick_) {
        nextTick_ = now_ + std::chrono::milliseconds(20);
        pipeline_->tick(now_);
      }
      pipeline_->onPacket(p, now_);
    }
    return cpuSecondsOf() - t0;
  }
  uint64_t findings() const { return findings_; }
  size_t detectorBytes() const { return detector_.bytes(); }

 private:
  agent::ScanDetector detector_;
  uint64_t findings_ = 0;
  std::unique_ptr<flows::Pipeline> pipeline_;
  flows::WallClock::time_point now_ = flows::WallClock::now(), nextTick_ = now_;
};

// The i-th attempt of a traffic shape.
using Shape = flows::LoggedPacket (*)(uint64_t i);

std::vector<flows::LoggedPacket> packetsOf(Shape shape, uint64_t from, size_t n) {
  std::vector<flows::LoggedPacket> out;
  out.reserve(n);
  for (uint64_t i = from; i < from + n; ++i)
    out.push_back(shape(i));
  return out;
}

struct Round {
  double off = 0, on = 0;  // packets per CPU second
  uint64_t findings = 0;
  size_t detectorBytes = 0;
};

// One round: a pipeline with detection and one without, both first warmed
// to the steady state of a long-running agent (open folds and the
// detector's tables at their bounds), then fed the same packets in turns
// of `slice` (which goes first alternates), so that the machine's speed,
// which moves from one second to the next on a shared host, is the same
// for both. Every packet is new to both: the shape goes on from where the
// warm-up stopped.
Round measureRound(Shape shape, const agent::ScanOptions& scan, size_t warmup, size_t timed,
                   size_t slice) {
  Rig off(scan, false), on(scan, true);
  uint64_t next = 0;
  for (size_t done = 0; done < warmup; done += slice, next += slice) {
    const auto packets = packetsOf(shape, next, std::min(slice, warmup - done));
    off.feed(packets);
    on.feed(packets);
  }
  double offCpu = 0, onCpu = 0;
  size_t turn = 0;
  for (size_t done = 0; done < timed; done += slice, next += slice, ++turn) {
    const auto packets = packetsOf(shape, next, std::min(slice, timed - done));
    if (turn % 2) {
      onCpu += on.feed(packets);
      offCpu += off.feed(packets);
    } else {
      offCpu += off.feed(packets);
      onCpu += on.feed(packets);
    }
  }
  return {double(timed) / offCpu, double(timed) / onCpu, on.findings(), on.detectorBytes()};
}

// Nanoseconds of the thread's CPU time per attempt fed straight to a
// detector (no pipeline around it), after the same warm-up: the detector's
// own cost, for the report.
double detectorAlone(Shape shape, const agent::ScanOptions& scan, size_t warmup, size_t timed) {
  std::vector<flows::FlowEvent> events;
  events.reserve(warmup + timed);
  auto now = flows::WallClock::now();
  for (const auto& p : packetsOf(shape, 0, warmup + timed)) {
    const auto d = flows::decodePacket(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(p.payload.data()), p.payload.size()));
    flows::FlowEvent e;
    now += std::chrono::microseconds(2);
    e.time = now;
    e.action = flows::FlowAction::kDeny;
    e.reason = "default";
    e.workload = "web-" + std::to_string(p.inIfindex - 100);
    e.app = "web";
    e.src = d->src;
    e.dst = d->dst;
    e.sport = d->sport;
    e.dport = d->dport;
    e.proto = flows::protoName(d->proto);
    events.push_back(std::move(e));
  }
  agent::ScanDetector detector(scan);
  for (size_t i = 0; i < warmup; ++i)
    (void)detector.observe(events[i]);
  const double t0 = cpuSecondsOf();
  for (size_t i = warmup; i < events.size(); ++i)
    (void)detector.observe(events[i]);
  return (cpuSecondsOf() - t0) / double(timed) * 1e9;
}

// 16 workloads; every attempt a distinct (destination, port): a scan that
// crosses neither threshold for most of its sets.
flows::LoggedPacket scanShape(uint64_t i) {
  return packet(uint32_t(i % 16), 0xc6336400u + uint32_t(i % 250),
                uint16_t(1024 + (i / 250) % 60000));
}

// 16 workloads, 1,000 (destination, port) tuples over and over.
flows::LoggedPacket repeatShape(uint64_t i) {
  return packet(uint32_t(i % 16), 0xc6336400u + uint32_t(i % 50), uint16_t(5000 + i % 20));
}

// The two shapes, in the order both parts measure them.
const char* const kShapeNames[] = {"distinct (a scan, worst case)", "1,000 flows repeated"};

struct Options {
  size_t packets = 1000000, slice = 5000;
  int rounds = 5;
  int agentRounds = 10;
  uint32_t agentSlice = 40000;
  agent::ScanOptions scan;  // the agent's defaults
};

// What the two parts measured for one traffic shape.
struct ShapeResult {
  // In-process: detection's extra CPU seconds an attempt inside the
  // pipeline (the median of the rounds' pairs) and what that is of the
  // pipeline's own cost.
  double extra = 0, pipelineCost = 0;
  // End to end (when the agent part ran): the agent's CPU seconds an
  // attempt with detection off, all threads; the cost of detection
  // measured directly, on all threads and on the flow thread.
  std::optional<double> agent;
  Stats directCosts;
  double flowThreadExtra = 0;  // on - off, the flow thread's CPU seconds an attempt
};

// --- the flow pipeline in-process ----------------------------------------------

void pipelinePart(const Options& o, std::vector<ShapeResult>& results) {
  // Warm: the pipeline's open folds (65,536 at most) and the detector's
  // members (maxEntries, half to each kind) both at their bounds.
  const size_t warmup = std::max<size_t>(2 * 65536, o.scan.maxEntries);
  std::printf(
      "The flow pipeline in-process (no kernel, no I/O): %s packets a round after %s of "
      "warm-up, %d rounds, in turns of %s packets\n",
      count(uint64_t(o.packets)).c_str(), count(uint64_t(warmup)).c_str(), o.rounds,
      count(uint64_t(o.slice)).c_str());
  std::printf("%-34s %14s %14s %9s %9s\n", "traffic", "off (pkt/s)", "on (pkt/s)", "cost", "extra");
  size_t k = 0;
  for (const auto& [name, shape] :
       {std::pair{kShapeNames[0], &scanShape}, std::pair{kShapeNames[1], &repeatShape}}) {
    Stats off, on, costs, extra;
    uint64_t findings = 0;
    size_t bytes = 0;
    for (int r = 0; r < o.rounds; ++r) {
      checkInterrupted();
      const Round round = measureRound(shape, o.scan, warmup, o.packets, o.slice);
      off.add(round.off);
      on.add(round.on);
      costs.add(1 - round.on / round.off);  // paired: measured in the same turns
      extra.add(1 / round.on - 1 / round.off);
      findings += round.findings;
      bytes = std::max(bytes, round.detectorBytes);
    }
    Stats alone;
    for (int r = 0; r < 3; ++r)
      alone.add(detectorAlone(shape, o.scan, warmup, o.packets));
    ShapeResult& res = results[k++];
    res.extra = extra.median();
    res.pipelineCost = costs.median();
    std::printf(
        "%-34s %14s %14s %8.1f%% %6.0f ns   (rounds: %.1f%% to %.1f%%, middle half %.1f%% to "
        "%.1f%%; %s findings a round; detector %.1f MiB; %.0f ns an attempt alone)\n",
        name, count(uint64_t(off.median())).c_str(), count(uint64_t(on.median())).c_str(),
        res.pipelineCost * 100, res.extra * 1e9, costs.min() * 100, costs.max() * 100,
        costs.quantile(0.25) * 100, costs.quantile(0.75) * 100,
        count(findings / uint64_t(o.rounds)).c_str(), double(bytes) / (1 << 20), alone.median());
    std::fflush(stdout);
    report().figure(std::string(name) + ", detection off", "bulkhead", double(o.packets),
                    off.median(), "1/s");
    report().figure(std::string(name) + ", detection on", "bulkhead", double(o.packets),
                    on.median(), "1/s");
  }
}

// --- the agent end to end --------------------------------------------------------

// Attempt i of the agent's flood: 198.51.100.(1 + i % 250), port 1024 +
// i / 16. Every attempt is a new (destination, port); each port gets 16
// destinations, under the sweep threshold, so a sweep set opens every 16
// attempts, as in scanShape.
sockaddr_in agentScanTarget(uint32_t i) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(0xc6336400u + 1 + i % 250);
  sa.sin_port = htons(uint16_t(1024 + i / 16));
  return sa;
}
constexpr uint32_t kAgentScanAttempts = (65535 - 1024) * 16;

// 1,000 (destination, port) tuples over and over, as repeatShape.
sockaddr_in agentRepeatTarget(uint32_t i) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(0xc6336400u + 1 + i % 50);
  sa.sin_port = htons(uint16_t(5000 + (i / 50) % 20));
  return sa;
}

// Two real agents, detection on and off, get the same flood in turns; per
// side, the agent's CPU an attempt (all threads, and by thread), and the
// cost of detection measured directly from each round's pair.
void agentPart(const Options& o, std::vector<ShapeResult>& results) {
  if (!testing::havePrivileges())
    throw Failure(
        "the agent part needs root (namespaces): sudo build/tests/bench/bench_scan, or "
        "--agent-rounds=0 for the in-process part alone");
  for (const char* b : {"/bulkhead-agent", "/bulkhead"})
    if (access((testing::binaryDir() + b).c_str(), X_OK) != 0)
      throw Failure(testing::binaryDir() + b +
                    " not found: cmake --build build -j2 --target bench_scan");
  testing::sweepStaleNamespaces();
  const uint32_t warmup = 131072;  // the detector's members at their bound
  if (uint64_t(warmup) + uint64_t(o.agentRounds) * o.agentSlice > kAgentScanAttempts)
    throw Failure("--agent-rounds x --agent-slice too large for the flood's address plan");
  std::printf(
      "\nThe agent end to end: two bulkhead-agents (one with --scan-detection false), one "
      "workload each, the same denied UDP flood sent to each in turns of %s attempts after %s "
      "of warm-up, %d rounds; CPU time an attempt from /proc\n",
      count(o.agentSlice).c_str(), count(warmup).c_str(), o.agentRounds);
  std::printf("%-34s %-30s %-30s %s\n", "traffic (us of CPU an attempt)",
              "all threads: off, on, cost", "bh-flows: off, on, cost", "bh-export: off, on");
  size_t k = 0;
  for (const auto& [name, target] : {std::pair{kShapeNames[0], &agentScanTarget},
                                     std::pair{kShapeNames[1], &agentRepeatTarget}}) {
    ScratchDir dir("bench_scan");
    FloodedAgent off(dir.path() + "/off", false, target), on(dir.path() + "/on", true, target);
    off.warm(0, warmup);
    on.warm(0, warmup);
    uint32_t next = warmup;
    off.drain();
    on.drain();
    const uint64_t offLines0 = off.lines(), onLines0 = on.lines() - on.anomalies();
    struct Side {
      Stats all, flows, exporter;  // us an attempt, per round
    } offUs, onUs;
    ShapeResult& res = results[k++];
    Stats flowCosts;
    for (int r = 0; r < o.agentRounds; ++r, next += o.agentSlice) {
      ProcessCpu a, b;
      if (r % 2) {
        b = on.turn(next, o.agentSlice);
        a = off.turn(next, o.agentSlice);
      } else {
        a = off.turn(next, o.agentSlice);
        b = on.turn(next, o.agentSlice);
      }
      res.directCosts.add(1 - a.total / b.total);  // throughput = attempts / CPU time
      flowCosts.add(1 - a.of("bh-flows") / b.of("bh-flows"));
      const double perAttempt = 1e6 / o.agentSlice;
      for (auto [side, cpu] : {std::pair{&offUs, &a}, std::pair{&onUs, &b}}) {
        side->all.add(cpu->total * perAttempt);
        side->flows.add(cpu->of("bh-flows") * perAttempt);
        side->exporter.add(cpu->of("bh-export") * perAttempt);
      }
    }
    if (!off.running() || !on.running()) throw Failure("an agent exited during the flood");
    off.drain();
    on.drain();
    if (off.sinkDrops() || on.sinkDrops())
      throw Failure("the bench's syslog socket overflowed: a smaller --agent-slice");
    // Detection changes no line: the two exporters did the same work.
    const uint64_t offLines = off.lines() - offLines0,
                   onLines = on.lines() - on.anomalies() - onLines0;
    if (offLines == 0 || offLines != onLines)
      throw Failure(std::string("the two agents sent different lines (") + name + "): " +
                    std::to_string(offLines) + " and " + std::to_string(onLines) + on.log());
    if (offUs.flows.median() <= 0 || offUs.exporter.median() <= 0)
      throw Failure("no CPU time on the agent's threads named bh-flows and bh-export");
    res.agent = offUs.all.median() * 1e-6;
    res.flowThreadExtra = (onUs.flows.median() - offUs.flows.median()) * 1e-6;
    const Stats& d = res.directCosts;
    auto cell = [](double off, double on, const std::string& cost) {
      return fmt("%.2f, ", off) + fmt("%.2f", on) + cost;
    };
    std::printf(
        "%-34s %-30s %-30s %s\n%-34s (all threads, rounds: %.1f%% to %.1f%%, middle half %.1f%% "
        "to %.1f%%; lines at the targets %s each for %s attempts, and %s anomaly events)\n",
        name,
        cell(offUs.all.median(), onUs.all.median(), fmt(", %.1f%%", d.median() * 100)).c_str(),
        cell(offUs.flows.median(), onUs.flows.median(), fmt(", %.1f%%", flowCosts.median() * 100))
            .c_str(),
        cell(offUs.exporter.median(), onUs.exporter.median(), "").c_str(), "", d.min() * 100,
        d.max() * 100, d.quantile(0.25) * 100, d.quantile(0.75) * 100, count(offLines).c_str(),
        count(uint64_t(o.agentRounds) * o.agentSlice).c_str(), count(on.anomalies()).c_str());
    std::fflush(stdout);
    const std::string key = std::string("agent, ") + name;
    report().figure(key + ", detection off", "bulkhead-agent", double(o.agentSlice),
                    offUs.all.median() * 1e-6, "s");
    report().figure(key + ", detection on", "bulkhead-agent", double(o.agentSlice),
                    onUs.all.median() * 1e-6, "s");
  }
}

// The goal: the agent's flow throughput with detection on, against off.
// The agent CPU-bound (every thread sharing the CPUs it has), its
// throughput is attempts per second of its CPU time, T an attempt off and
// T + D on, so the cost is D / (T + D). T is measured end to end on the
// real agent; D, a tenth of a microsecond against T's several, is far
// below the noise of the agents' turns, so it is taken from the in-process
// pipeline, where hundreds of paired turns measure it to a few
// nanoseconds. The direct measurement is printed beside it.
void judge(const std::vector<ShapeResult>& results) {
  std::printf("\n");
  for (size_t k = 0; k < results.size(); ++k) {
    const ShapeResult& r = results[k];
    const std::string name = kShapeNames[k];
    if (r.agent) {
      const double cost = r.extra / (*r.agent + r.extra);
      const std::string text = fmt("%.1f%% lower", cost * 100) + " (detection's " +
                               fmt("%.0f ns", r.extra * 1e9) + " over the agent's " +
                               fmt("%.2f us", *r.agent * 1e6) +
                               " of CPU an attempt; measured directly on the agents: " +
                               fmt("%.1f%%", r.directCosts.median() * 100) + ", rounds " +
                               fmt("%.1f%%", r.directCosts.min() * 100) + " to " +
                               fmt("%.1f%%", r.directCosts.max() * 100) + ", the flow thread " +
                               fmt("%+.0f ns", r.flowThreadExtra * 1e9) + "; goal: under 5%)";
      std::printf(
          "%s\n",
          goalLine(cost < 0.05, name + ": the agent's flow throughput with detection on is " + text)
              .c_str());
      report().goal("agent, " + name + ": cost of detection", cost < 0.05, cost, 0.05,
                    name + ": " + text);
    } else {
      std::printf("info  %s: not judged without the agent part (root)\n", name.c_str());
    }
    std::printf(
        "info  %s: the pipeline in-process is %.1f%% slower with detection (%.0f ns an "
        "attempt)\n",
        name.c_str(), r.pipelineCost * 100, r.extra * 1e9);
  }
}

Options parseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (auto v = positiveFlag(a, "--packets=")) {
      o.packets = size_t(*v);
    } else if (auto r = positiveFlag(a, "--rounds=")) {
      o.rounds = *r;
    } else if (auto t = positiveFlag(a, "--slice=")) {
      o.slice = size_t(*t);
    } else if (auto ar = countFlag(a, "--agent-rounds=")) {
      o.agentRounds = *ar;  // 0: the in-process part alone, no root
    } else if (auto as = positiveFlag(a, "--agent-slice=")) {
      o.agentSlice = uint32_t(*as);
    } else if (auto m = positiveFlag(a, "--max-entries=")) {
      o.scan.maxEntries = size_t(*m);
    } else if (auto h = countFlag(a, "--hosts=")) {
      o.scan.hosts = uint32_t(*h);  // 0: sweeps off
    } else if (auto p = countFlag(a, "--ports=")) {
      o.scan.ports = uint32_t(*p);  // 0: port scans off
    } else {
      throw Failure("unknown argument " + a);
    }
  }
  return o;
}

int benchRun(int argc, char** argv) {
  report().init("bench_scan", argc, argv);
  const Options o = parseOptions(argc, argv);
  printBanner("bench_scan");
  std::vector<ShapeResult> results(2);
  pipelinePart(o, results);
  if (o.agentRounds > 0) agentPart(o, results);
  judge(results);
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_scan", bulkhead::bench::benchRun, argc, argv);
}
