// bench_push: a whole `bulkhead push` as a user runs it (the CLI reading and
// checking the YAML, gRPC, the agent parsing, compiling and writing) to a
// freshly started agent, against `nft -f` of the same table (`bulkhead plan`
// output); and the agent's own compile-to-ACK against nft::Writer::replace
// alone. Every sample gets a fresh network namespace; the three kinds of run
// are interleaved (their order rotates) so that the machine's noise hits
// them alike. A benchmark, not a test: it prints PASS/MISS against the goals
// and exits 1 only when something fails functionally.
//
//   sudo build/tests/bench/bench_push [--workloads=N] [--runs=N] [--tmp=DIR]
//   build/tests/bench/bench_push --write-yaml=DIR   (only writes the bundle, to profile
//                                                    `bulkhead validate DIR` and the like)
//
// The bundle is bench_policy.h's (at 10,000 workloads: 1,000 apps, 2,000
// services, ~111,000 set elements), written as YAML with the workloads as
// Workload documents.
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "bench_policy.h"
#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/writer.h"
#include "support/netns.h"

extern char** environ;

namespace bulkhead::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Netns;
using testing::Process;

const std::string kBin = BULKHEAD_BINARY_DIR;
const std::string kAgentBinary = kBin + "/bulkhead-agent";
const std::string kCliBinary = kBin + "/bulkhead";

// --- the bundle as YAML ---------------------------------------------------------------

std::string flow(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i)
    out += (i ? ", \"" : "\"") + items[i] + "\"";
  return out + "]";
}

std::string flow(const policy::Labels& labels) {
  std::string out = "{";
  for (const auto& [k, v] : labels)
    out += (out.size() > 1 ? ", " : "") + k + ": \"" + v + "\"";
  return out + "}";
}

template <class T>
std::vector<std::string> texts(const std::vector<T>& values) {
  std::vector<std::string> out;
  for (const auto& v : values)
    out.push_back(v.toString());
  return out;
}

std::vector<std::string> names(const std::vector<policy::NameRef>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs)
    out.push_back(r.name);
  return out;
}

std::string header(const std::string& kind, const std::string& name, const policy::Labels& labels) {
  return "---\napiVersion: bulkhead/v1\nkind: " + kind + "\nmetadata: {name: " + name +
         (labels.empty() ? "" : ", labels: " + flow(labels)) + "}\nspec:\n";
}

std::string servicesYaml(const policy::Bundle& b) {
  std::string out;
  for (const auto& s : b.services) {
    out += header("Service", s.name, s.labels);
    if (s.appSelector) {
      out += "  appSelector: " + flow(s.appSelector->matchLabels) + "\n";
      out += "  ports: " + flow(texts(s.ports)) + "\n";
      continue;
    }
    out += "  endpoints:\n";
    for (const auto& ep : s.endpoints)
      out += "    - cidrs: " + flow(texts(ep.cidrs)) + "\n      ports: " + flow(texts(ep.ports)) +
             "\n";
  }
  return out;
}

std::string appsYaml(const policy::Bundle& b) {
  std::string out;
  for (const auto& a : b.apps) {
    out += header("App", a.name, a.labels);
    if (a.mode == policy::Mode::kAudit) out += "  mode: audit\n";
    if (a.denyAction == policy::DenyAction::kDrop) out += "  denyAction: drop\n";
    out += "  egress:\n";
    for (const auto& r : a.egress)
      out += "    - to: " + flow(names(r.to)) + "\n";
  }
  return out;
}

std::string globalsYaml(const policy::Bundle& b) {
  static const char* kActions[] = {"deny", "allow", "log"};
  std::string out;
  for (const auto& g : b.globalPolicies) {
    out += header("GlobalPolicy", g.name, g.labels);
    out += "  order: " + std::to_string(g.order) + "\n  rules:\n";
    for (const auto& r : g.rules) {
      out += std::string("    - action: ") + kActions[int(r.action)] + "\n";
      out += "      from: " + flow(r.from.matchLabels) + "\n";
      if (r.toSelector) out += "      toSelector: " + flow(r.toSelector->matchLabels) + "\n";
      if (!r.to.empty()) out += "      to: " + flow(names(r.to)) + "\n";
      if (!r.toCIDRs.empty()) out += "      toCIDRs: " + flow(texts(r.toCIDRs)) + "\n";
      if (!r.ports.empty()) out += "      ports: " + flow(texts(r.ports)) + "\n";
    }
  }
  return out;
}

std::string workloadsYaml(const policy::Bundle& b) {
  std::string out;
  for (const auto& w : b.workloads) {
    out += header("Workload", w.name, w.labels);
    out += "  app: " + w.app + "\n  interfaces: " + flow(w.interfaces) +
           "\n  addresses: " + flow(texts(w.addresses)) + "\n";
  }
  return out;
}

// --- processes ---------------------------------------------------------------------------

// The agent's own account of the push (its log line "push ...: parse N ms,
// compile and commit N ms, save N ms"): milliseconds of each phase.
struct Phases {
  double parse = 0, compileCommit = 0, save = 0;
};

Phases phasesFromLog(const std::string& log) {
  static const std::regex kLine(
      R"(parse ([0-9.]+) ms, compile and commit ([0-9.]+) ms, save ([0-9.]+) ms)");
  std::smatch m;
  if (!std::regex_search(log, m, kLine))
    throw Failure("no push phases in the agent's log:\n" + log);
  return {std::stod(m[1]), std::stod(m[2]), std::stod(m[3])};
}

struct PushSample {
  double wall = 0;
  Phases phases;
};

// A fresh agent in a fresh namespace; `bulkhead push` timed from the CLI's
// start to its exit.
PushSample pushOnce(const std::string& tmp, const std::string& policyDir) {
  Netns ns;
  ScratchDir dir("bench_push", tmp);
  const std::string sock = dir.file("agent.sock"), log = dir.file("agent.log");
  Process agent(ns, "exec " + kAgentBinary + " --listen unix://" + sock + " --state-dir " +
                        dir.file("state") + " 2>>" + log);
  const auto t0 = Clock::now();
  while (!socketAccepts(sock)) {
    checkInterrupted();
    if (!agent.running()) throw Failure("bulkhead-agent exited at start:\n" + readFile(log));
    if (secondsSince(t0) > 30) throw Failure("the agent does not listen:\n" + readFile(log));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  PushSample s;
  s.wall = spawn({kCliBinary, "push", policyDir, "--agent", "unix://" + sock}, dir.file("cli.out"));
  s.phases = phasesFromLog(readFile(log));
  agent.kill(SIGTERM);
  if (agent.wait(10000) != 0) throw Failure("the agent did not stop cleanly:\n" + readFile(log));
  return s;
}

double nftOnce(const std::string& planPath, const std::string& outPath) {
  Netns ns;
  double wall = 0;
  ns.run([&] { wall = spawn({"nft", "-f", planPath}, outPath); });
  return wall;
}

double replaceOnce(const compiler::Ruleset& ruleset) {
  Netns ns;
  double wall = 0;
  ns.run([&] {
    auto kernel = nft::MnlKernel::open();
    if (!kernel) throw Failure("open netlink socket: " + kernel.error().describe());
    const auto t0 = Clock::now();
    if (Status st = nft::Writer(**kernel).replace(ruleset); !st)
      throw Failure("Writer::replace: " + st.error().describe());
    wall = secondsSince(t0);
  });
  return wall;
}

// --- the run --------------------------------------------------------------------------------

struct Options {
  int workloads = 10000;
  int runs = 3;
  std::string tmp;
  std::string writeYaml;
};

Options parseOptions(int argc, char** argv) {
  Options o;
  o.tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (auto v = positiveFlag(a, "--workloads=")) {
      o.workloads = std::max(*v, 10);
    } else if (auto r = positiveFlag(a, "--runs=")) {
      o.runs = *r;
    } else if (a.rfind("--tmp=", 0) == 0) {
      o.tmp = a.substr(6);
    } else if (a.rfind("--write-yaml=", 0) == 0) {
      o.writeYaml = a.substr(13);
    } else {
      throw Failure("usage: bench_push [--workloads=N] [--runs=N] [--tmp=DIR] [--write-yaml=DIR]");
    }
  }
  return o;
}

std::string seconds(const Stats& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.3f s (%.3f-%.3f)", s.median(), s.min(), s.max());
  return buf;
}

std::string ratios(const Stats& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2fx (runs %.2f-%.2f)", s.median(), s.min(), s.max());
  return buf;
}

// The bundle as four files in `dir` (created); their size in bytes.
size_t writeYaml(const policy::Bundle& bundle, const std::string& dir) {
  std::filesystem::create_directories(dir);
  size_t bytes = 0;
  for (const auto& [name, text] :
       {std::pair{"services.yaml", servicesYaml(bundle)}, std::pair{"apps.yaml", appsYaml(bundle)},
        std::pair{"global.yaml", globalsYaml(bundle)},
        std::pair{"workloads.yaml", workloadsYaml(bundle)}}) {
    std::ofstream(dir + "/" + name) << text;
    bytes += text.size();
  }
  return bytes;
}

int run(int argc, char** argv) {
  report().init("bench_push", argc, argv);
  const Options opt = parseOptions(argc, argv);
  if (!opt.writeYaml.empty()) {
    const size_t bytes = writeYaml(generateBundle(opt.workloads), opt.writeYaml);
    std::printf("%zu bytes of YAML in %s\n", bytes, opt.writeYaml.c_str());
    return 0;
  }
  if (!testing::havePrivileges())
    throw Failure("must run as root with `ip` and `nft`: sudo build/tests/bench/bench_push");
  for (const auto& b : {kAgentBinary, kCliBinary})
    if (access(b.c_str(), X_OK) != 0) throw Failure(b + " not found: cmake --build build");
  testing::sweepStaleNamespaces();
  printBanner("bench_push");

  const policy::Bundle bundle = generateBundle(opt.workloads);
  ScratchDir scratch("bench_push", opt.tmp);
  const std::string policyDir = scratch.file("policy");
  const size_t yamlBytes = writeYaml(bundle, policyDir);
  const std::string plan = scratch.file("plan.nft");
  spawn({kCliBinary, "plan", policyDir}, plan);
  auto ruleset = compiler::compile(bundle, {});
  if (!ruleset) throw Failure("compile: " + ruleset.error().describe());
  std::printf("bundle: %zu apps, %zu services, %zu workloads; %s set elements; %.1f MB of YAML\n",
              bundle.apps.size(), bundle.services.size(), bundle.workloads.size(),
              count(ruleset->elementCount()).c_str(), double(yamlBytes) / 1e6);
  std::fflush(stdout);

  Stats push, nft, replace, parse, compileCommit, save, pushRatio, applyRatio;
  for (int i = 0; i < opt.runs; ++i) {
    PushSample p;
    double n = 0, r = 0;
    // Rotate the order: whatever runs first in a round meets the machine
    // as the previous round left it.
    for (int k = 0; k < 3; ++k) {
      checkInterrupted();
      switch ((i + k) % 3) {
        case 0:
          p = pushOnce(opt.tmp, policyDir);
          break;
        case 1:
          n = nftOnce(plan, scratch.file("nft.out"));
          break;
        default:
          r = replaceOnce(*ruleset);
          break;
      }
      // The kernel tears a namespace down asynchronously; let it finish.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    push.add(p.wall);
    nft.add(n);
    replace.add(r);
    parse.add(p.phases.parse / 1000);
    compileCommit.add(p.phases.compileCommit / 1000);
    save.add(p.phases.save / 1000);
    pushRatio.add(p.wall / n);
    applyRatio.add(p.phases.compileCommit / 1000 / r);
    std::printf(
        "run %d: push %.3f s (agent: parse %.3f, compile+commit %.3f, save %.3f), "
        "nft -f %.3f s, Writer::replace %.3f s\n",
        i + 1, p.wall, p.phases.parse / 1000, p.phases.compileCommit / 1000, p.phases.save / 1000,
        n, r);
    std::fflush(stdout);
  }

  std::printf("\nmedian (min-max) over %d runs, each in a fresh namespace:\n", opt.runs);
  std::printf("  bulkhead push, CLI start to exit       %s\n", seconds(push).c_str());
  std::printf("    agent: parse                         %s\n", seconds(parse).c_str());
  std::printf("    agent: compile and commit (to ACK)   %s\n", seconds(compileCommit).c_str());
  std::printf("    agent: save state                    %s\n", seconds(save).c_str());
  std::printf("  nft -f of bulkhead plan                %s\n", seconds(nft).c_str());
  std::printf("  nft::Writer::replace alone             %s\n", seconds(replace).c_str());
  const size_t elements = ruleset->elementCount();
  for (const auto& [name, stats] :
       {std::pair{"bulkhead push, CLI start to exit", &push},
        std::pair{"nft -f of bulkhead plan", &nft}, std::pair{"Writer::replace alone", &replace},
        std::pair{"agent parse", &parse}, std::pair{"agent compile and commit", &compileCommit}})
    report().figure(name, std::to_string(opt.workloads) + " workloads", double(elements),
                    stats->median(), "s");
  report().goal("push end to end / nft -f", pushRatio.median() <= 0.75, pushRatio.median(), 0.75,
                "push end to end / nft -f: " + ratios(pushRatio));
  report().goal("in-agent compile+commit / Writer::replace", applyRatio.median() <= 1.2,
                applyRatio.median(), 1.2,
                "in-agent compile+commit / Writer::replace: " + ratios(applyRatio));
  report().write();
  std::printf("\n%s\n",
              goalLine(pushRatio.median() <= 0.75,
                       "push end to end / nft -f: " + ratios(pushRatio) + " (goal <= 0.75)")
                  .c_str());
  std::printf("%s\n", goalLine(applyRatio.median() <= 1.2,
                               "in-agent compile+commit / Writer::replace: " + ratios(applyRatio) +
                                   " (goal <= 1.2)")
                          .c_str());
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_push", bulkhead::bench::run, argc, argv);
}
