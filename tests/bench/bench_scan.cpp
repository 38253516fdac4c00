// bench_scan: what scan detection costs the agent's flow thread. The same
// logged packets (NFLOG's view: prefix, interface, IPv4+TCP headers) go
// through the agent's flows::Pipeline (decode, attribution, folding, the
// per-workload rate limit, hand-off to an exporter) with the ScanDetector
// hooked in as the agent hooks it (FlowFeed: PipelineOptions::observe),
// and without it. Each round warms both pipelines to a long-running
// agent's steady state (open folds and the detector's tables at their
// bounds), then feeds both the same new packets in turns of --slice
// packets, so that the two see the same machine; rates are per second of
// the thread's own CPU time (not wall time: the machine is shared), and
// the cost is the median of the rounds' paired ratios. Two traffic shapes:
// every attempt a new (destination, port) — a scan, the detector's worst
// case — and 1,000 flows repeated (folding). Each shape gets its own
// PASS/MISS line against the goal (under 5% lower). Beside it, the
// detector's own CPU time per attempt fed straight to it, back to back (no
// pipeline between two attempts).
// In-process, no root needed: the kernel's side (NFLOG delivery) is the same
// in both and is measured by bench_flows.
//
//   build/tests/bench/bench_scan [--packets=N] [--rounds=N] [--slice=N] [--max-entries=N]
//                                [--hosts=N] [--ports=N]
//
// --packets: measured per configuration and round (default 1,000,000);
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

// CPU time of this thread: on a machine shared with compilers, wall time
// mostly measures who else ran; the flow thread's own CPU time is its cost.
double threadSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
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
    const double t0 = threadSeconds();
    for (const auto& p : packets) {
      now_ += std::chrono::microseconds(2);
      if (now_ >= nextTick_) {
        nextTick_ = now_ + std::chrono::milliseconds(20);
        pipeline_->tick(now_);
      }
      pipeline_->onPacket(p, now_);
    }
    return threadSeconds() - t0;
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
  const double t0 = threadSeconds();
  for (size_t i = warmup; i < events.size(); ++i)
    (void)detector.observe(events[i]);
  return (threadSeconds() - t0) / double(timed) * 1e9;
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

int benchRun(int argc, char** argv) {
  report().init("bench_scan", argc, argv);
  size_t n = 1000000, slice = 5000;
  int rounds = 5;
  agent::ScanOptions options;  // the agent's defaults
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (auto v = positiveFlag(a, "--packets=")) {
      n = size_t(*v);
    } else if (auto r = positiveFlag(a, "--rounds=")) {
      rounds = *r;
    } else if (auto t = positiveFlag(a, "--slice=")) {
      slice = size_t(*t);
    } else if (auto m = positiveFlag(a, "--max-entries=")) {
      options.maxEntries = size_t(*m);
    } else if (auto h = countFlag(a, "--hosts=")) {
      options.hosts = uint32_t(*h);  // 0: sweeps off
    } else if (auto p = countFlag(a, "--ports=")) {
      options.ports = uint32_t(*p);  // 0: port scans off
    } else {
      throw Failure("unknown argument " + a);
    }
  }
  // Warm: the pipeline's open folds (65,536 at most) and the detector's
  // members (maxEntries, half to each kind) both at their bounds.
  const size_t warmup = std::max<size_t>(2 * 65536, options.maxEntries);
  printBanner("bench_scan");
  std::printf("%s packets a round after %s of warm-up, %d rounds, in turns of %s packets\n\n",
              count(uint64_t(n)).c_str(), count(uint64_t(warmup)).c_str(), rounds,
              count(uint64_t(slice)).c_str());
  std::printf("%-34s %14s %14s %9s\n", "traffic", "off (pkt/s)", "on (pkt/s)", "cost");
  std::vector<std::string> goals;
  for (const auto& [name, shape] : {std::pair{"distinct (a scan, worst case)", &scanShape},
                                    std::pair{"1,000 flows repeated", &repeatShape}}) {
    Stats off, on, costs;
    uint64_t findings = 0;
    size_t bytes = 0;
    for (int r = 0; r < rounds; ++r) {
      checkInterrupted();
      const Round round = measureRound(shape, options, warmup, n, slice);
      off.add(round.off);
      on.add(round.on);
      costs.add(1 - round.on / round.off);  // paired: measured in the same turns
      findings += round.findings;
      bytes = std::max(bytes, round.detectorBytes);
    }
    Stats alone;
    for (int r = 0; r < 3; ++r)
      alone.add(detectorAlone(shape, options, warmup, n));
    const double cost = costs.median();
    std::printf(
        "%-34s %14s %14s %8.1f%%   (rounds: %.1f%% to %.1f%%, middle half %.1f%% to %.1f%%; "
        "%s findings a round; detector %.1f MiB; %.0f ns an attempt alone)\n",
        name, count(uint64_t(off.median())).c_str(), count(uint64_t(on.median())).c_str(),
        cost * 100, costs.min() * 100, costs.max() * 100, costs.quantile(0.25) * 100,
        costs.quantile(0.75) * 100, count(findings / uint64_t(rounds)).c_str(),
        double(bytes) / (1 << 20), alone.median());
    char line[160];
    std::snprintf(line, sizeof line,
                  "%s: flow throughput with detection on is %.1f%% lower (goal: under 5%%)", name,
                  cost * 100);
    goals.push_back(goalLine(cost < 0.05, line));
    report().figure(std::string(name) + ", detection off", "bulkhead", double(n), off.median(),
                    "1/s");
    report().figure(std::string(name) + ", detection on", "bulkhead", double(n), on.median(),
                    "1/s");
    report().goal(std::string(name) + ": cost of detection", cost < 0.05, cost, 0.05, line);
  }
  std::printf("\n");
  for (const auto& g : goals)
    std::printf("%s\n", g.c_str());
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_scan", bulkhead::bench::benchRun, argc, argv);
}
