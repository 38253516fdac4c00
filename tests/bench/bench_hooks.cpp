// bench_hooks: what a container or VM start pays for bulkhead's hooks. ADD
// and DEL of bulkhead-cni and the `started` call of bulkhead-libvirt-hook,
// each a whole process from spawn to exit (as a runtime or libvirtd runs
// them), against the real agent holding --workloads registrations (10,000);
// next to the baseline a runtime would otherwise pay: one `nft add element`
// of an interface into a set of that size, also spawn to exit, measured in
// the same run and namespace.
//
//   sudo build/tests/bench/bench_hooks [--workloads=10000] [--runs=200] [--state-in=DIR]
//
// --state-in puts the agent's state directory (and socket) under DIR, e.g.
// /dev/shm, to separate the journal's fdatasync from the rest.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "agent_rig.h"
#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/hooks/agent_link.h"
#include "support/netns.h"

extern char** environ;

namespace bulkhead::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBin = BULKHEAD_BINARY_DIR;

// Runs argv with `env` added and `input` on stdin; seconds from spawn to
// exit. A non-zero exit is a Failure (with its output).
double timedSpawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  const std::string& input, const std::string& scratch) {
  std::ofstream(scratch + ".in") << input;
  std::vector<std::string> envs = env;
  for (char** e = environ; *e; ++e)
    envs.push_back(*e);
  std::vector<char*> av, ev;
  for (const auto& a : argv)
    av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : envs)
    ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, (scratch + ".in").c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, (scratch + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&fa, 2, (scratch + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  const auto t0 = Clock::now();
  const int rc = posix_spawn(&pid, av[0], &fa, nullptr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw Failure(std::string("spawn ") + av[0] + ": " + std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const double s = secondsSince(t0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Failure(argv[0] + " failed: " + readFile(scratch + ".out") + readFile(scratch + ".err"));
  return s;
}

std::string prevResult(int i) {
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      R"({"cniVersion":"1.0.0","interfaces":[{"name":"vethb%05d","mac":"aa:bb:cc:00:00:01"},{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"interface":1,"address":"192.0.2.%d/24","gateway":"192.0.2.1"}]})",
      i, 10 + i % 200);
  return buf;
}

std::string domainXml(int i) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                R"(<domain type='kvm'><name>vm-%d</name><uuid>6a1d9e2c-3b4f-4c5d-8e9f-%012d</uuid>
<metadata><bulkhead:workload xmlns:bulkhead="urn:bulkhead:workload:1" app="billing"/></metadata>
<devices><interface type='ethernet'><mac address='52:54:00:12:34:56'/><target dev='vnetb%05d' managed='no'/>
<ip address='192.0.2.1' prefix='32' peer='198.51.100.%d'/><model type='virtio'/></interface></devices></domain>
)",
                i, i, i, 20 + i % 200);
  return buf;
}

void row(const char* what, const Stats& s) {
  std::printf("  %-58s p50 %9s  p99 %9s  max %9s\n", what, dur(s.quantile(0.5)).c_str(),
              dur(s.quantile(0.99)).c_str(), dur(s.max()).c_str());
}

int run(int argc, char** argv) {
  report().init("bench_hooks", argc, argv);
  const RigArgs args = parseRigArgs(argc, argv);
  const int workloads = args.workloads, runs = args.runs;
  if (runs > 200) throw Failure("--runs: at most 200 (addresses of one /24)");
  if (!testing::havePrivileges()) throw Failure("needs root, ip and nft");
  printBanner("bench_hooks");
  testing::sweepStaleNamespaces();

  AgentRig rig(args.base, "bench-hooks", kBin);
  const fs::path& dir = rig.dir;
  testing::Netns& hv = rig.hv;
  const std::string& socket = rig.socket;
  const std::string& cli = rig.cli;

  // The agent's load: --workloads registrations through the API.
  const auto regStart = Clock::now();
  auto link = hooks::grpcConnector(std::chrono::hours(1))(socket);
  if (!link) throw Failure(link.error().message);
  for (int i = 0; i < workloads; ++i) {
    checkInterrupted();
    v1::Workload w;
    w.set_name("bulk-" + std::to_string(i));
    w.set_app("billing");
    w.add_interfaces("bk" + std::to_string(i));
    char addr[64];
    std::snprintf(addr, sizeof addr, "2001:db8:b::%x:%x", i >> 16, i & 0xffff);
    w.add_addresses(addr);
    if (auto st = (*link)->upsert(w); !st) throw Failure(st.error().message);
  }
  std::printf("agent holds %s workloads (registered in %s; state on %s)\n",
              count(size_t(workloads)).c_str(), dur(secondsSince(regStart)).c_str(),
              dir.string().c_str());

  // The baseline: a set of as many interfaces in a table of our own.
  {
    std::string nft = "add table inet bhbench\nadd set inet bhbench ifs { type ifname; }\n";
    for (int i = 0; i < workloads; ++i)
      nft += "add element inet bhbench ifs { \"bs" + std::to_string(i) + "\" }\n";
    std::ofstream(dir / "set.nft") << nft;
    if (auto r = hv.exec("nft -f " + (dir / "set.nft").string()); !r.ok())
      throw Failure("nft -f: " + r.out);
  }

  Stats add, del, started, stopped, nftAdd;
  const std::string scratch = (dir / "run").string();
  const std::vector<std::string> cniEnv = {"CNI_NETNS=/run/netns/x", "CNI_IFNAME=eth0",
                                           "CNI_ARGS=IgnoreUnknown=1", "CNI_PATH=/usr/lib/cni"};
  const std::string nftBin = testing::sh("command -v nft").out;
  // Every child starts in the hypervisor namespace, as the runtime's would.
  std::exception_ptr failed;
  hv.run([&] {
    try {
      for (int i = 0; i < runs; ++i) {
        checkInterrupted();
        char id[80];
        std::snprintf(id, sizeof id, "b%011d%052d", i, 0);
        const std::string conf =
            R"({"cniVersion":"1.0.0","name":"benchnet","type":"bulkhead-cni","app":"billing","agent":")" +
            socket + R"(","prevResult":)" + prevResult(i) + "}";
        std::vector<std::string> env = cniEnv;
        env.push_back(std::string("CNI_CONTAINERID=") + id);
        env.push_back("CNI_COMMAND=ADD");
        add.add(timedSpawn({kBin + "/bulkhead-cni"}, env, conf, scratch));
        env.back() = "CNI_COMMAND=DEL";
        del.add(timedSpawn({kBin + "/bulkhead-cni"}, env, conf, scratch));

        const std::vector<std::string> virtEnv = {"BULKHEAD_AGENT=" + socket};
        const std::string xml = domainXml(i);
        const std::string vm = "vm-" + std::to_string(i);
        started.add(timedSpawn({kBin + "/bulkhead-libvirt-hook", vm, "started", "begin", "-"},
                               virtEnv, xml, scratch));
        stopped.add(timedSpawn({kBin + "/bulkhead-libvirt-hook", vm, "stopped", "end", "-"},
                               virtEnv, xml, scratch));

        const std::string element = "{ \"vethn" + std::to_string(i) + "\" }";
        nftAdd.add(
            timedSpawn({trimmed(nftBin), "add", "element", "inet", "bhbench", "ifs", element}, {},
                       "", scratch));
        timedSpawn({trimmed(nftBin), "delete", "element", "inet", "bhbench", "ifs", element}, {},
                   "", scratch);
      }
    } catch (...) {
      failed = std::current_exception();
    }
  });
  if (failed) std::rethrow_exception(failed);
  const auto listed = testing::sh(cli + "status --json");
  const uint64_t held = testing::jsonInt(listed.out, "workloads");
  if (held != uint64_t(workloads))
    throw Failure("agent holds " + std::to_string(held) + " workloads after the runs, not " +
                  std::to_string(workloads));

  std::printf("\n%d runs each, spawn to exit, agent at %s workloads:\n", runs,
              count(size_t(workloads)).c_str());
  row("bulkhead-cni ADD (registration committed)", add);
  row("bulkhead-cni DEL", del);
  row("bulkhead-libvirt-hook started begin", started);
  row("bulkhead-libvirt-hook stopped end", stopped);
  row(("nft add element (set of " + count(size_t(workloads)) + " ifnames)").c_str(), nftAdd);
  const double p99 = add.quantile(0.99), nftP99 = nftAdd.quantile(0.99);
  std::printf(
      "\n%s\n%s\n", goalLine(p99 <= 0.020, "ADD p99 " + dur(p99) + " <= 20 ms").c_str(),
      goalLine(p99 <= 1.5 * nftP99, "ADD p99 " + dur(p99) + " <= 1.5 x nft p99 " + dur(nftP99) +
                                        " (" + fmt("%.2f", p99 / nftP99) + "x)")
          .c_str());
  testing::sh("ip netns exec " + hv.name() + " nft delete table inet bhbench");
  const std::vector<std::pair<const char*, const Stats*>> figures{
      {"bulkhead-cni ADD", &add},
      {"bulkhead-cni DEL", &del},
      {"libvirt-hook started begin", &started},
      {"libvirt-hook stopped end", &stopped},
      {"nft add element", &nftAdd}};
  for (const auto& [what, s] : figures) {
    report().figure(std::string(what) + " p50", "spawn to exit", workloads, s->quantile(0.5), "s");
    report().figure(std::string(what) + " p99", "spawn to exit", workloads, s->quantile(0.99), "s");
  }
  report().goal("ADD p99 <= 20 ms", p99 <= 0.020, p99, 0.020, "ADD p99 " + dur(p99) + " <= 20 ms");
  report().goal("ADD p99 <= 1.5 x nft p99", p99 <= 1.5 * nftP99, p99 / nftP99, 1.5,
                "ADD p99 " + dur(p99) + " <= 1.5 x nft p99 " + dur(nftP99));
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_hooks", bulkhead::bench::run, argc, argv);
}
