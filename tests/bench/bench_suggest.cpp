// bench_suggest: `bulkhead suggest` on 1,000,000 generated flow events (the
// agent's json format): wall time and peak memory of the command, run in a
// child process (its own peak RSS from wait4). Events: 40 apps in audit
// mode, 4 workloads each, each app talking to 50 addresses on 3 of 12 ports
// (6,000 distinct flows: what apps' dependencies look like), a tenth of the
// lines with unknown keys; the demo policy as --policies. --distinct: every
// app to any of 2,000 addresses on any port (about 900,000 distinct flows,
// the worst case). No root needed.
//
//   build/tests/bench/bench_suggest [--events=N] [--rounds=N] [--distinct]
#include <sys/resource.h>
#include <sys/wait.h>

#include <random>

#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/cli/commands.h"

namespace bulkhead::bench {
namespace {

std::string generate(const std::string& path, int n, bool distinct) {
  std::ofstream f(path, std::ios::binary);
  std::mt19937 rng(42);
  const int ports[] = {22, 53, 80, 443, 5432, 6379, 8080, 8443, 9000, 9092, 11211, 27017};
  for (int i = 0; i < n; ++i) {
    const int app = int(rng() % 40), w = int(rng() % 4);
    const int dst = distinct ? int(rng() % 2000) : app * 50 + int(rng() % 50);
    const int port = distinct ? ports[rng() % 12] : ports[(app + rng() % 3) % 12];
    char line[512];
    std::snprintf(line, sizeof line,
                  "{\"time\":\"2026-11-28T09:%02d:%02d.%06dZ\",\"host\":\"h\",\"action\":\"audit\","
                  "\"app\":\"app%d\",\"workload\":\"app%d-%d\",\"src\":\"192.0.2.%d\",\"sport\":%d,"
                  "\"dst\":\"198.51.%d.%d\",\"dport\":%d,\"proto\":\"%s\",\"reason\":\"default\","
                  "\"count\":%d%s}\n",
                  (i / 60000) % 60, (i / 1000) % 60, i % 1000000, app, app, w, 1 + app * 4 + w,
                  1024 + i % 60000, 100 + dst / 250, dst % 250, port, rng() % 5 ? "tcp" : "udp",
                  1 + int(rng() % 3), i % 10 ? "" : ",\"future\":{\"k\":[1,2]}");
    f << line;
  }
  return path;
}

int benchRun(int argc, char** argv) {
  report().init("bench_suggest", argc, argv);
  int n = 1000000, rounds = 3;
  bool distinct = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--distinct") {
      distinct = true;
    } else if (auto v = positiveFlag(a, "--events=")) {
      n = *v;
    } else if (auto r = positiveFlag(a, "--rounds=")) {
      rounds = *r;
    } else {
      throw Failure("unknown argument " + a);
    }
  }
  printBanner("bench_suggest");
  const std::string dir = "/tmp/bh-bench-suggest-" + std::to_string(getpid());
  testing::sh("mkdir -p " + dir);
  struct Cleanup {
    std::string d;
    ~Cleanup() { testing::sh("rm -rf " + d); }
  } cleanup{dir};
  const std::string flows = generate(dir + "/flows.jsonl", n, distinct);
  std::printf("%s events (%s), %.0f MB of JSON lines\n", count(uint64_t(n)).c_str(),
              distinct ? "worst case: ~900,000 distinct flows" : "6,000 distinct flows",
              double(std::ifstream(flows, std::ios::ate | std::ios::binary).tellg()) / 1e6);
  Stats wall, rss, cpu;
  for (int r = 0; r < rounds; ++r) {
    checkInterrupted();
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      std::ostringstream out, err;
      const int rc = cli::run({"suggest", flows, "--policies", BULKHEAD_SOURCE_DIR "/policies/demo",
                               "-o", dir + "/suggested.yaml"},
                              out, err);
      if (rc != 0) std::fprintf(stderr, "%s", err.str().c_str());
      _exit(rc);
    }
    int status = 0;
    rusage ru{};
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw Failure("bulkhead suggest failed");
    wall.add(secondsSince(t0));
    rss.add(double(ru.ru_maxrss) / 1024.0);
    cpu.add(double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
            double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
  }
  const std::string yaml = readFile(dir + "/suggested.yaml");
  size_t rules = 0;
  for (size_t p = 0; (p = yaml.find("# suggested:", p)) != std::string::npos; ++p)
    ++rules;
  std::printf(
      "suggest: median %s (min %s, max %s) over %d runs, CPU time median %s; peak RSS %.0f MiB; "
      "%zu rules\n",
      dur(wall.median()).c_str(), dur(wall.min()).c_str(), dur(wall.max()).c_str(), rounds,
      dur(cpu.median()).c_str(), rss.max(), rules);
  char line[160];
  std::snprintf(line, sizeof line, "time: median %.2f s for %s events (goal: under 5 s)",
                wall.median(), count(uint64_t(n)).c_str());
  std::printf("%s\n", goalLine(wall.median() < 5, line).c_str());
  std::snprintf(line, sizeof line,
                "peak memory: %.0f MiB, the largest of %d runs (goal: under 256 MiB)", rss.max(),
                rounds);
  std::printf("%s\n", goalLine(rss.max() < 256, line).c_str());
  auto& rep = report();
  const std::string shape = distinct ? "bulkhead suggest, distinct" : "bulkhead suggest";
  rep.figure("suggest wall time", shape, n, wall.median(), "s");
  rep.figure("suggest CPU time", shape, n, cpu.median(), "s");
  rep.figure("suggest peak RSS", shape, n, rss.max(), "MiB");
  rep.goal("suggest under 5 s", wall.median() < 5, wall.median(), 5,
           count(uint64_t(n)) + " events: " + dur(wall.median()) + " (goal: under 5 s)");
  rep.goal(
      "suggest under 256 MiB", rss.max() < 256, rss.max(), 256,
      count(uint64_t(n)) + " events: " + fmt("%.0f MiB", rss.max()) + " (goal: under 256 MiB)");
  rep.write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_suggest", bulkhead::bench::benchRun, argc, argv);
}
