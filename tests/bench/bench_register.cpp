// bench_register: what one durable registration costs as a user runs it,
// `bulkhead workload add` from spawn to exit (CLI start, one RPC, the
// kernel transaction, the journal's fdatasync), against the real agent
// holding --workloads registrations (10,000), next to `ip netns exec NS nft
// add element` of one entry into a set of ~120,000 elements in the same
// namespace, measured interleaved in the same run. Also: nft spawned in the
// namespace without `ip netns exec`, the CLI's start alone (--version),
// and registrations per second from 1 and from 16 concurrent clients (the
// journal's group commit: concurrent changes share one fdatasync). And the
// disk's own part: one record written and flushed through the agent's
// journal code (agent::StateJournal) in a journal of its own beside the
// agent's, interleaved too, so a registration's tail can be set against the
// disk's in the same run.
//
//   sudo build/tests/bench/bench_register [--workloads=10000] [--runs=200] [--state-in=DIR]
//
// --state-in puts the agent's state directory under DIR (default: the
// temporary directory, on disk), e.g. /dev/shm to take the disk out.
#include <fcntl.h>
#include <spawn.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "agent_rig.h"
#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/agent/state_journal.h"
#include "bulkhead/hooks/agent_link.h"
#include "support/netns.h"

extern char** environ;

namespace bulkhead::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBin = BULKHEAD_BINARY_DIR;
constexpr int kBaselineElements = 120320;  // 256 addresses x 470 ports

// Seconds from spawn to exit of argv (stdout and stderr to `scratch`); a
// non-zero exit is a Failure with its output.
double timedSpawn(const std::vector<std::string>& argv, const std::string& scratch) {
  std::vector<char*> av;
  for (const auto& a : argv)
    av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, scratch.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const auto t0 = Clock::now();
  const int rc = posix_spawn(&pid, av[0], &fa, nullptr, av.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw Failure(std::string("spawn ") + av[0] + ": " + std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const double s = secondsSince(t0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Failure(argv[0] + " " + (argv.size() > 1 ? argv[1] : "") +
                  " failed: " + readFile(scratch));
  return s;
}

// Workload <prefix><i>: interface of the same name, address
// 2001:db8:b<group>::<i> (one group per prefix).
v1::Workload workload(const std::string& prefix, int group, int i) {
  v1::Workload w;
  w.set_name(prefix + std::to_string(i));
  w.set_app("billing");
  w.add_interfaces(prefix + std::to_string(i));
  char addr[64];
  std::snprintf(addr, sizeof addr, "2001:db8:b%x:%x::%x", group, i >> 16, i & 0xffff);
  w.add_addresses(addr);
  return w;
}

// Registers workloads prefix0..prefix<n-1> from `clients` concurrent links;
// registrations per second.
double registerConcurrently(const std::string& socket, const std::string& prefix, int group, int n,
                            int clients) {
  std::atomic<int> next{0};
  std::string error;
  std::mutex mu;
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      auto link = hooks::grpcConnector(std::chrono::hours(1))(socket);
      for (int i = next++; link && i < n && !gInterrupted; i = next++)
        if (auto st = (*link)->upsert(workload(prefix, group, i)); !st) {
          std::lock_guard lock(mu);
          error = st.error().message;
          return;
        }
      if (!link) {
        std::lock_guard lock(mu);
        error = link.error().message;
      }
    });
  for (auto& t : threads)
    t.join();
  checkInterrupted();
  if (!error.empty()) throw Failure("registering: " + error);
  return n / secondsSince(t0);
}

void row(const std::string& what, const Stats& s) {
  std::printf("  %-62s p50 %9s  p99 %9s  max %9s\n", what.c_str(), dur(s.quantile(0.5)).c_str(),
              dur(s.quantile(0.99)).c_str(), dur(s.max()).c_str());
}

std::string fsType(const fs::path& p) {
  struct statfs st {};
  if (statfs(p.c_str(), &st) != 0) return "?";
  switch (st.f_type) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x01021994:
      return "tmpfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    default:
      return fmt("0x%.0f", double(st.f_type));
  }
}

// Seconds to append one record to `journal` and have it on disk: what a
// registration's durability costs on this filesystem, with no RPC around it.
double timedJournalRecord(agent::StateJournal& journal) {
  static const std::string kRecord(128, 'r');  // about one registration's record
  const auto t0 = Clock::now();
  auto ticket = journal.write(kRecord);
  if (!ticket) throw Failure("journal write: " + ticket.error().describe());
  if (auto s = journal.sync(*ticket); !s) throw Failure("journal sync: " + s.error().describe());
  return secondsSince(t0);
}

void loadBaselineSet(const testing::Netns& hv, const fs::path& dir) {
  std::string nft =
      "add table inet bhbench\n"
      "add set inet bhbench s { type ipv4_addr . inet_proto . inet_service; flags interval; }\n";
  for (int a = 0; a < 256; ++a) {
    nft += "add element inet bhbench s {";
    for (int p = 0; p < kBaselineElements / 256; ++p)
      nft += (p ? ", " : " ") + std::string("198.51.100.") + std::to_string(a) + " . tcp . " +
             std::to_string(1000 + p);
    nft += " }\n";
  }
  std::ofstream(dir / "set.nft") << nft;
  if (auto r = hv.exec("nft -f " + (dir / "set.nft").string()); !r.ok())
    throw Failure("nft -f: " + r.out.substr(0, 2000));
}

int run(int argc, char** argv) {
  report().init("bench_register", argc, argv);
  const RigArgs args = parseRigArgs(argc, argv);
  const int workloads = args.workloads, runs = args.runs;
  if (runs > 4000) throw Failure("--runs: at most 4000");
  if (!testing::havePrivileges()) throw Failure("needs root, ip and nft");
  printBanner("bench_register");
  testing::sweepStaleNamespaces();

  AgentRig rig(args.base, "bench-register", kBin);
  const fs::path& dir = rig.dir;
  testing::Netns& hv = rig.hv;
  const std::string& socket = rig.socket;
  const std::string& cli = rig.cli;

  // Group commit: the same number of registrations from one client, then
  // from 16 at once (the first 1,000 of the load).
  const int sample = std::min(workloads / 2, 500);
  const double oneRate = registerConcurrently(socket, "s", 1, sample, 1);
  const double manyRate = registerConcurrently(socket, "m", 2, sample, 16);
  const auto loadStart = Clock::now();
  registerConcurrently(socket, "bk", 3, workloads - 2 * sample, 16);
  std::printf("agent holds %s workloads (the last %s registered in %s; state on %s, %s)\n",
              count(size_t(workloads)).c_str(), count(size_t(workloads - 2 * sample)).c_str(),
              dur(secondsSince(loadStart)).c_str(), (dir / "state").c_str(), fsType(dir).c_str());
  std::printf("registrations/s (RPC, durable): 1 client %.0f, 16 clients %.0f (%.1fx)\n", oneRate,
              manyRate, manyRate / oneRate);
  loadBaselineSet(hv, dir);
  std::printf(
      "baseline set: inet bhbench s, %s elements (ipv4_addr . inet_proto . "
      "inet_service, interval)\n",
      count(size_t(kBaselineElements)).c_str());
  std::fflush(stdout);

  // Beside the agent's state directory, on the same filesystem.
  agent::StateJournal diskProbe((dir / "probe").string(), (dir / "probe" / "journal.pb").string());
  if (auto s = diskProbe.open([](v1::StateJournalEntry&) {}); !s)
    throw Failure("journal open: " + s.error().describe());
  timedJournalRecord(diskProbe);  // the first creates and preallocates the file
  Stats add, ipNetnsNft, nftInNs, cliStart, journalRecord;
  const std::string scratch = (dir / "run.out").string();
  const std::string nftBin = trimmed(testing::sh("command -v nft").out);
  const std::string ipBin = trimmed(testing::sh("command -v ip").out);
  for (int i = 0; i < runs; ++i) {
    checkInterrupted();
    const v1::Workload w = workload("reg", 4, i);
    add.add(timedSpawn({kBin + "/bulkhead", "--agent", socket, "workload", "add", w.name(), "--app",
                        "billing", "--iface", w.interfaces(0), "--addr", w.addresses(0)},
                       scratch));
    const std::string a = "192.0.2." + std::to_string(i % 256);
    const std::string p = std::to_string(2000 + i / 256);
    ipNetnsNft.add(timedSpawn({ipBin, "netns", "exec", hv.name(), nftBin, "add", "element", "inet",
                               "bhbench", "s", "{ " + a + " . tcp . " + p + " }"},
                              scratch));
    hv.run([&] {
      nftInNs.add(timedSpawn(
          {nftBin, "add", "element", "inet", "bhbench", "s", "{ " + a + " . udp . " + p + " }"},
          scratch));
    });
    cliStart.add(timedSpawn({kBin + "/bulkhead", "--version"}, scratch));
    journalRecord.add(timedJournalRecord(diskProbe));
  }
  const std::string status = testing::sh(cli + "status --json").out;
  const uint64_t held = testing::jsonInt(status, "workloads");
  if (held != uint64_t(workloads + runs))
    throw Failure("agent holds " + std::to_string(held) + " workloads, not " +
                  std::to_string(workloads + runs));

  std::printf("\n%d runs each, interleaved, spawn to exit, agent at %s workloads:\n", runs,
              count(size_t(workloads)).c_str());
  row("bulkhead workload add (durable)", add);
  row("ip netns exec NS nft add element (set of " + count(size_t(kBaselineElements)) + ")",
      ipNetnsNft);
  row("nft add element, spawned in NS (same set)", nftInNs);
  row("bulkhead --version (CLI start and exit)", cliStart);
  row("one journal record written and flushed (the disk's part)", journalRecord);
  const auto ratio = [](const Stats& a, const Stats& b, double q) {
    return a.quantile(q) / b.quantile(q);
  };
  const double r50 = ratio(add, ipNetnsNft, 0.5), r99 = ratio(add, ipNetnsNft, 0.99);
  std::printf(
      "\n%s\n%s\n%s\n",
      goalLine(r50 <= 1.5, "workload add p50 " + dur(add.quantile(0.5)) +
                               " <= 1.5 x ip netns exec nft add element p50 " +
                               dur(ipNetnsNft.quantile(0.5)) + " (" + fmt("%.2f", r50) + "x)")
          .c_str(),
      goalLine(r99 <= 1.5, "workload add p99 " + dur(add.quantile(0.99)) +
                               " <= 1.5 x ip netns exec nft add element p99 " +
                               dur(ipNetnsNft.quantile(0.99)) + " (" + fmt("%.2f", r99) + "x)")
          .c_str(),
      ("      against nft spawned in the namespace: p50 " + fmt("%.2f", ratio(add, nftInNs, 0.5)) +
       "x, p99 " + fmt("%.2f", ratio(add, nftInNs, 0.99)) + "x")
          .c_str());
  hv.exec("nft delete table inet bhbench");
  for (const auto& [name, stats] : {std::pair{"bulkhead workload add (durable)", &add},
                                    std::pair{"ip netns exec nft add element", &ipNetnsNft},
                                    std::pair{"bulkhead --version", &cliStart},
                                    std::pair{"journal record flushed", &journalRecord}}) {
    report().figure(std::string(name) + " p50", "bulkhead", workloads, stats->quantile(0.5), "s");
    report().figure(std::string(name) + " p99", "bulkhead", workloads, stats->quantile(0.99), "s");
  }
  report().goal("workload add p50 / nft add element p50", r50 <= 1.5, r50, 1.5,
                "workload add p50 / ip netns exec nft add element p50: " + fmt("%.2f", r50) + "x");
  report().goal("workload add p99 / nft add element p99", r99 <= 1.5, r99, 1.5,
                "workload add p99 / ip netns exec nft add element p99: " + fmt("%.2f", r99) + "x");
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_register", bulkhead::bench::run, argc, argv);
}
