// bench_scan: what scan detection costs the agent's flow throughput. The
// same logged packets (NFLOG's view: prefix, interface, IPv4+TCP headers)
// go through the agent's flows::Pipeline (decode, attribution, folding,
// the per-workload rate limit, hand-off to an exporter) with scan
// detection hooked in as the agent hooks it (FlowFeed: the pipeline's
// observe hands each attempt to a ScanDetectorThread, which detects on a
// thread of its own), and without it.
//
// Measured end to end: wall-clock packets per second from the first packet
// until the flow thread has handled the last one and the detector's thread
// has looked at every attempt handed to it (both threads running on this
// machine's CPUs). Also printed: the flow thread's own CPU time per packet
// (what detection costs it), attempts the detector dropped (ring full) and
// findings. Rounds interleaved, medians compared, the spread of each
// round's on/off pair printed. Two traffic shapes: every attempt a new
// (destination, port) — a scan, the detector's worst case — and 1,000
// flows repeated (folding). Each shape gets a PASS/MISS line against the
// goal (end-to-end throughput under 5% lower). In-process, no root
// needed: the kernel's side (NFLOG delivery) is bench_flows' subject.
//
//   build/tests/bench/bench_scan [--packets=N] [--rounds=N]
#include <arpa/inet.h>

#include <cstring>
#include <ctime>

#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/agent/scan_detector_thread.h"
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

double wallSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

struct Rates {
  double wall = 0;  // packets per second, end to end
  double cpu = 0;   // packets per second of the flow thread's CPU time
};

struct Seen {
  uint64_t findings = 0, dropped = 0;
  size_t bytes = 0;
};

// One pipeline over the packets, with or without detection.
Rates run(const std::vector<flows::LoggedPacket>& packets, bool detect, Seen* seen) {
  std::unique_ptr<agent::ScanDetectorThread> detector;
  if (detect)
    detector = std::make_unique<agent::ScanDetectorThread>(agent::ScanOptions{}, "bench", nullptr);
  flows::PipelineOptions o;
  o.host = "bench";
  o.workloadRate = 1e9;  // the limit is not what is measured
  o.workloadBurst = 1e9;
  if (detect) o.observe = [&](const flows::FlowEvent& e) { detector->offer(e); };
  std::vector<std::unique_ptr<flows::Exporter>> exporters;
  exporters.push_back(std::make_unique<CountingExporter>());
  flows::Pipeline pipeline(
      o,
      [](uint32_t ifindex) {
        return flows::Attribution{"web-" + std::to_string(ifindex - 100), "web"};
      },
      nullptr, std::move(exporters));
  // Packet times 2 us apart (500,000 a second); the fold windows close
  // every 20 ms of that time, as the agent's flow thread ticks.
  auto now = flows::Clock::now();
  auto nextTick = now;
  const double w0 = wallSeconds();
  const double t0 = threadSeconds();
  for (size_t i = 0; i < packets.size(); ++i) {
    now += std::chrono::microseconds(2);
    if (now >= nextTick) {
      nextTick = now + std::chrono::milliseconds(20);
      pipeline.tick(now);
    }
    pipeline.onPacket(packets[i], now);
  }
  Rates r;
  r.cpu = double(packets.size()) / (threadSeconds() - t0);
  if (detector) detector->drain();
  r.wall = double(packets.size()) / (wallSeconds() - w0);
  if (detector) {
    seen->findings += detector->findings();
    seen->dropped += detector->dropped();
    seen->bytes = std::max(seen->bytes, detector->bytes());
  }
  return r;
}

int benchRun(int argc, char** argv) {
  report().init("bench_scan", argc, argv);
  int n = 1000000, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (auto v = positiveFlag(a, "--packets=")) {
      n = *v;
    } else if (auto r = positiveFlag(a, "--rounds=")) {
      rounds = *r;
    } else {
      throw Failure("unknown argument " + a);
    }
  }
  printBanner("bench_scan");
  std::vector<flows::LoggedPacket> scan, repeat;
  for (int i = 0; i < n; ++i) {
    // 16 workloads; every attempt a distinct (destination, port).
    scan.push_back(
        packet(i % 16, 0xc6336400u + uint32_t(i % 250), uint16_t(1024 + (i / 250) % 60000)));
    repeat.push_back(packet(i % 16, 0xc6336400u + uint32_t(i % 50), uint16_t(5000 + i % 20)));
  }
  std::printf("%s packets a round, %d rounds, interleaved\n\n", count(uint64_t(n)).c_str(), rounds);
  std::printf("%-34s %14s %14s %9s\n", "traffic (end to end, wall clock)", "off (pkt/s)",
              "on (pkt/s)", "cost");
  std::vector<std::string> goals;
  for (const auto& [name, packets] : {std::pair{"distinct (a scan, worst case)", &scan},
                                      std::pair{"1,000 flows repeated", &repeat}}) {
    Stats off, on, costs, cpuOff, cpuOn;
    Seen seen;
    for (int r = 0; r < rounds; ++r) {
      checkInterrupted();
      const Rates a = run(*packets, false, &seen);
      const Rates b = run(*packets, true, &seen);
      off.add(a.wall);
      on.add(b.wall);
      costs.add(1 - b.wall / a.wall);  // this round's pair, run back to back
      cpuOff.add(a.cpu);
      cpuOn.add(b.cpu);
    }
    const double cost = 1 - on.median() / off.median();
    const double cpuCost = 1 - cpuOn.median() / cpuOff.median();
    std::printf(
        "%-34s %14s %14s %8.1f%%   (pairs: %.1f%% to %.1f%%; flow thread CPU: %.1f%%; "
        "%s findings and %s dropped a round; detector %.1f MiB)\n",
        name, count(uint64_t(off.median())).c_str(), count(uint64_t(on.median())).c_str(),
        cost * 100, costs.min() * 100, costs.max() * 100, cpuCost * 100,
        count(seen.findings / uint64_t(rounds)).c_str(),
        count(seen.dropped / uint64_t(rounds)).c_str(), double(seen.bytes) / (1 << 20));
    char line[160];
    std::snprintf(line, sizeof line,
                  "%s: flow throughput with detection on is %.1f%% lower (goal: under 5%%)", name,
                  cost * 100);
    goals.push_back(goalLine(cost < 0.05, line));
    report().figure(std::string(name) + ", detection off", "bulkhead", n, off.median(), "1/s");
    report().figure(std::string(name) + ", detection on", "bulkhead", n, on.median(), "1/s");
    report().figure(std::string(name) + ", flow thread CPU, detection off", "bulkhead", n,
                    cpuOff.median(), "1/s");
    report().figure(std::string(name) + ", flow thread CPU, detection on", "bulkhead", n,
                    cpuOn.median(), "1/s");
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
