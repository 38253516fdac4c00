// bench_apply: what a full apply and a one-workload change cost, ours against
// `nft` and against iptables-restore + ipset, measured in the same run on the
// same machine. A benchmark, not a
// test: it prints figures and never judges a timing by failing. It exits 1
// only when something fails functionally (a transaction refused, a listing
// that differs, a namespace that cannot be made).
//
// Needs root, `ip` and `nft`; the iptables baseline also needs the legacy
// iptables tools and ipset (packaging/install-deps.sh), or --no-iptables.
// Everything happens in throwaway network namespaces
// (tests/support Netns, removed by RAII, also on error); the root namespace's
// ruleset is never touched. No packet is ever sent: the addresses below are
// set data only.
//
//   sudo build/tests/bench/bench_apply [--runs=N] [--adds=N] [--nft-adds=N] [--no-verify]
//        [--sizes=N,N...] [--inc-sizes=N,N...] [--no-iptables] [--json=FILE]
//
// docs/benchmarks.md explains each figure.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
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
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_policy.h"
#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/compiler/incremental.h"
#include "bulkhead/compiler/render.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/nft/kernel.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/writer.h"
#include "bulkhead/policy/loader.h"
#include "bulkhead/policy/model.h"
#include "iptables_apply.h"
#include "support/netns.h"

extern char** environ;

namespace bulkhead::bench {
namespace {

using Clock = std::chrono::steady_clock;
using compiler::Ruleset;
using compiler::RulesetDiff;
using testing::Netns;

void check(const Status& s, const std::string& what) {
  if (!s) throw Failure(what + ": " + s.error().describe());
}

template <class T>
T take(Result<T> r, const std::string& what) {
  if (!r) throw Failure(what + ": " + r.error().describe());
  return std::move(*r);
}

double toSeconds(const timeval& tv) {
  return double(tv.tv_sec) + double(tv.tv_usec) / 1e6;
}

// --- statistics and formatting ---------------------------------------------------

std::string pad(std::string s, size_t width, bool right = false) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

// "412 ms (min 398 ms)" for a Stats.
std::string medMin(const Stats& s) {
  if (s.empty()) return "-";
  return dur(s.median()) + " (min " + dur(s.min()) + ")";
}

// Workloads the iptables side adds (ours and nft's: bench_policy.h).
inline constexpr uint32_t kIptAddBase = 0x64780000u;  // 100.120.0.0

// A workload the bench adds at run time (the k-th of a series).
policy::Workload newWorkload(const std::string& prefix, int k, int apps, uint32_t v4Base,
                             uint16_t v6Group) {
  policy::Workload w;
  w.name = prefix + std::to_string(k);
  w.app = appName((k * 37 + 11) % apps);
  w.interfaces = {prefix + std::to_string(k)};
  w.addresses = {v4(v4Base + uint32_t(k) * 4), v6(v6Group, 0, uint32_t(k) * 4)};
  std::vector<policy::Diagnostic> errors;
  policy::validateWorkload(w, errors);
  if (!errors.empty()) throw Failure("generated workload invalid: " + errors.front().toString());
  return w;
}

struct Shape {
  size_t sets = 0, chains = 0, rules = 0, elements = 0;
  size_t workloadElements = 0, appElements = 0, globalElements = 0;
};

Shape shapeOf(const Ruleset& rs) {
  Shape s;
  s.sets = rs.sets.size();
  s.chains = rs.chains.size();
  for (const auto& c : rs.chains)
    s.rules += c.rules.size();
  for (const auto& set : rs.sets) {
    const size_t n = set.elements.size();
    s.elements += n;
    if (set.name.rfind("a4_", 0) == 0 || set.name.rfind("a6_", 0) == 0) {
      s.appElements += n;
    } else if (set.name.rfind("g4_", 0) == 0 || set.name.rfind("g6_", 0) == 0) {
      s.globalElements += n;
    } else {
      s.workloadElements += n;
    }
  }
  return s;
}

// --- kernel and process helpers ---------------------------------------------------

// After a loaded namespace is deleted, the kernel tears it down in a
// workqueue: give that a moment so it does not run during the next figure.
void settle() {
  usleep(500 * 1000);
}

// The objects of an `nft list table` listing (each set, map or chain with
// everything in it, exactly as listed), in name order: the kernel lists them
// in creation order, which our writer chooses (most referenced sets first).
std::vector<std::string> objectsOf(const std::string& listing) {
  std::vector<std::string> out;
  std::istringstream in(listing);
  std::string block;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("\t", 0) == 0 && line.rfind("\t\t", 0) != 0 && line != "\t}") {
      block = line + "\n";  // "\tset a4_x {", "\tchain forward {", ...
      continue;
    }
    if (block.empty()) continue;
    block += line + "\n";
    if (line == "\t}") {
      out.push_back(std::move(block));
      block.clear();
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The real kernel, with the time of each commit (sendmsg + ACK wait) taken:
// the kernel's share of a transaction, which no userspace can go below.
class TimedKernel : public nft::NftKernel {
 public:
  explicit TimedKernel(nft::NftKernel& inner) : inner_(inner) {}

  Status commit(const nft::Batch& batch) override {
    const auto t0 = Clock::now();
    Status s = inner_.commit(batch);
    lastCommit = secondsSince(t0);
    lastBytes = batch.bytes.size();
    lastMessages = batch.messageCount();
    return s;
  }
  Result<bool> tableExists(const std::string& name) override { return inner_.tableExists(name); }
  Result<uint32_t> generation() override { return inner_.generation(); }
  uint32_t nextSeq(uint32_t n) override { return inner_.nextSeq(n); }

  double lastCommit = 0;
  size_t lastBytes = 0, lastMessages = 0;

 private:
  nft::NftKernel& inner_;
};

struct SpawnResult {
  double wall = 0;           // spawn to reaped
  double user = 0, sys = 0;  // the child's CPU time
  long maxRssKb = 0;
};

// Legacy iptables and ipset act on the namespace of the process that runs
// them: they are spawned only from a thread that entered a bench namespace,
// never from one still in the namespace the bench started in (the main
// thread's; checked, not assumed).
void requireBenchNamespace() {
  struct stat thread {
  }, process{};
  if (stat("/proc/thread-self/ns/net", &thread) != 0 || stat("/proc/self/ns/net", &process) != 0)
    throw Failure(std::string("stat of a network namespace: ") + std::strerror(errno));
  if (thread.st_ino == process.st_ino && thread.st_dev == process.st_dev)
    throw Failure("refusing to run iptables or ipset outside a bench namespace");
}

// Runs `prog args...` as a child of the calling thread, so in the network
// namespace that thread has entered (call it inside Netns::run). The wall
// time includes the process spawn, as an operator or script pays it.
// stdin comes from `inPath`; stdout and stderr go to `outPath`; a non-zero
// exit is a Failure.
SpawnResult runTool(const char* prog, const std::vector<std::string>& args,
                    const std::string& outPath, const std::string& inPath = "/dev/null") {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(prog));
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, inPath.c_str(), O_RDONLY, 0);

  SpawnResult r;
  pid_t pid = -1;
  const auto t0 = Clock::now();
  const int err = posix_spawnp(&pid, prog, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) throw Failure(std::string("cannot run ") + prog + ": " + std::strerror(err));
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) throw Failure(std::string("wait4 ") + prog + ": " + std::strerror(errno));
  }
  r.wall = secondsSince(t0);
  r.user = toSeconds(ru.ru_utime);
  r.sys = toSeconds(ru.ru_stime);
  r.maxRssKb = ru.ru_maxrss;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd = prog;
    for (const auto& a : args)
      cmd += " " + (a.size() > 80 ? a.substr(0, 80) + "..." : a);
    std::string out = readFile(outPath);
    if (out.size() > 2000) out = out.substr(0, 2000) + "...";
    throw Failure("`" + cmd + "` failed (status " + std::to_string(status) + "): " + out);
  }
  return r;
}

SpawnResult runNft(const std::vector<std::string>& args, const std::string& outPath) {
  return runTool("nft", args, outPath);
}

// The legacy iptables tools (x_tables, not iptables-nft: the point is the
// other datapath's tooling). `-w`: wait for the xtables lock, which is one
// file for every namespace on the host.
constexpr const char* kIptablesRestore = "iptables-legacy-restore";

// Loads ipset entries, then iptables rules (either may be empty), from
// files in `scratch`, as one measured step: the two spawns' wall times and
// CPU added up.
SpawnResult runIptables(const ScratchDir& scratch, const std::string& ipsetFile,
                        const std::string& iptablesFile, bool noflush,
                        const std::string& ipsetAfterFile = "") {
  requireBenchNamespace();
  SpawnResult total;
  auto add = [&](const SpawnResult& r) {
    total.wall += r.wall;
    total.user += r.user;
    total.sys += r.sys;
    total.maxRssKb = std::max(total.maxRssKb, r.maxRssKb);
  };
  const std::string out = scratch.file("ipt.out");
  if (!ipsetFile.empty()) add(runTool("ipset", {"restore"}, out, scratch.file(ipsetFile)));
  if (!iptablesFile.empty()) {
    std::vector<std::string> args{"-w"};
    if (noflush) args.push_back("--noflush");
    add(runTool(kIptablesRestore, args, out, scratch.file(iptablesFile)));
  }
  if (!ipsetAfterFile.empty())
    add(runTool("ipset", {"restore"}, out, scratch.file(ipsetAfterFile)));
  return total;
}

// Writes the element changes of a diff as nft commands (one `nft -f` file, so
// one transaction): what a tool that shells out to nft would send for the
// same change.
std::string renderElementChanges(const RulesetDiff& diff, const Ruleset& target) {
  if (diff.createTable || !diff.addSets.empty() || !diff.deleteSets.empty() ||
      !diff.addChains.empty() || !diff.replaceChains.empty() || !diff.deleteChains.empty())
    throw Failure("adding a workload changed more than set elements: " + diff.summary());
  std::string out;
  auto list = [&](const char* verb, const compiler::Set& set,
                  const std::vector<compiler::Element>& els) {
    if (els.empty()) return;
    out += std::string(verb) + " element inet " + diff.table + " " + set.name + " { ";
    for (size_t i = 0; i < els.size(); ++i)
      out += (i ? ", " : "") + compiler::renderElement(set, els[i]);
    out += " }\n";
  };
  for (const auto& ch : diff.elements) {
    const compiler::Set* set = target.findSet(ch.set);
    if (!set) throw Failure("diff names unknown set " + ch.set);
    list("delete", *set, ch.remove);
    list("add", *set, ch.add);
  }
  return out;
}

// --- the measurements ----------------------------------------------------------------

struct Options {
  int runs = 5;                            // full applies, each of ours and nft's
  int adds = 50;                           // incremental adds, ours
  int nftAdds = 20;                        // incremental adds, nft (and iptables-restore + ipset)
  bool verify = true;                      // compare `nft list table` of ours and nft's full apply
  bool iptables = true;                    // the iptables-restore + ipset baseline
  std::vector<int> sizes{10000};           // workloads, full apply
  std::vector<int> incSizes{1000, 10000};  // workloads, one-workload change
};

struct FullApply {
  Stats compile, render, buildBatch;
  Stats oursTotal, oursCommit, oursUser, oursSys;
  Stats nftWall, nftUser, nftSys;
  long nftMaxRssKb = 0;
  size_t batchBytes = 0, batchMessages = 0, textBytes = 0;
  std::string verify = "skipped";
  // iptables-restore + ipset: both spawns, and each alone.
  Stats iptWall, iptIpset, iptRestore, iptUser, iptSys;
  long iptMaxRssKb = 0;
  size_t iptRules = 0, iptEntries = 0, iptLeftOut = 0, iptBytes = 0;
  std::string iptVerify = "skipped";
};

// The iptables + ipset equivalent of `rs`, as bench_apply loads it.
iptables::Restore iptablesOf(const Ruleset& rs, size_t* leftOut = nullptr) {
  auto adapted = iptables::adaptForApply(rs);
  if (leftOut) *leftOut = adapted.leftOut;
  return iptables::translate(adapted.ruleset);
}

// The rules and set entries the kernel holds in a namespace, as the legacy
// tools list them: the translation must have loaded in full.
void verifyIptables(const Netns& ns, const iptables::Restore& r) {
  const auto rules = ns.exec("iptables-legacy-save | grep -c '^-A '");
  const auto entries =
      ns.exec("ipset list -t | awk '/^Number of entries/ { n += $4 } END { print n + 0 }'");
  if (!rules.ok() || !entries.ok())
    throw Failure("listing iptables/ipset: " + rules.out.substr(0, 500) +
                  entries.out.substr(0, 500));
  if (std::stoul(rules.out) != r.rules || std::stoul(entries.out) != r.setEntries)
    throw Failure("iptables-restore + ipset loaded " + trimmed(rules.out) + " rules and " +
                  trimmed(entries.out) + " set entries, the translation has " +
                  std::to_string(r.rules) + " and " + std::to_string(r.setEntries));
}

FullApply measureFullApply(const policy::Bundle& bundle, const Ruleset& rs, const Options& opt,
                           const ScratchDir& scratch) {
  FullApply f;
  for (int i = 0; i < 3; ++i) {
    checkInterrupted();
    const auto t0 = Clock::now();
    auto again = take(compiler::compile(bundle, {}), "compile");
    f.compile.add(secondsSince(t0));
  }
  std::string text;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    text = compiler::renderRuleset(rs);
    f.render.add(secondsSince(t0));
  }
  f.textBytes = text.size();
  scratch.write("full.nft", text);
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    auto batch = take(nft::buildBatch(compiler::fullRuleset(rs), 1, true, &rs), "buildBatch");
    f.buildBatch.add(secondsSince(t0));
    f.batchBytes = batch.bytes.size();
    f.batchMessages = batch.messageCount();
  }

  iptables::Restore ipt;
  if (opt.iptables) {
    ipt = iptablesOf(rs, &f.iptLeftOut);
    scratch.write("full.ipset", ipt.ipset);
    scratch.write("full.iptables", ipt.iptables);
    f.iptRules = ipt.rules;
    f.iptEntries = ipt.setEntries;
    f.iptBytes = ipt.ipset.size() + ipt.iptables.size();
  }

  // Interleaved, a fresh namespace for every run: noise from the machine's
  // other tenants hits both sides alike. Each namespace is deleted right
  // after its run, then the kernel gets a moment for its asynchronous
  // teardown. Keeping loaded namespaces instead made every later commit
  // slower (1.0 s -> 2.0 s by the fifth), most of it in clear_page: memory
  // this VM had never touched costs more the first time.
  for (int i = 0; i < opt.runs; ++i) {
    checkInterrupted();
    {
      Netns ns;
      ns.run([&] {
        auto kernel = take(nft::MnlKernel::open(), "open netlink socket");
        TimedKernel timed(*kernel);
        nft::Writer writer(timed);
        rusage r0{}, r1{};
        getrusage(RUSAGE_THREAD, &r0);
        const auto t0 = Clock::now();
        check(writer.replace(rs), "Writer::replace");
        f.oursTotal.add(secondsSince(t0));
        getrusage(RUSAGE_THREAD, &r1);
        f.oursCommit.add(timed.lastCommit);
        f.oursUser.add(toSeconds(r1.ru_utime) - toSeconds(r0.ru_utime));
        f.oursSys.add(toSeconds(r1.ru_stime) - toSeconds(r0.ru_stime));
      });
    }
    settle();

    checkInterrupted();
    {
      Netns ns;
      ns.run([&] {
        const SpawnResult r = runNft({"-f", scratch.file("full.nft")}, scratch.file("nft.out"));
        f.nftWall.add(r.wall);
        f.nftUser.add(r.user);
        f.nftSys.add(r.sys);
        f.nftMaxRssKb = std::max(f.nftMaxRssKb, r.maxRssKb);
      });
    }
    settle();

    if (!opt.iptables) continue;
    checkInterrupted();
    {
      Netns ns;
      ns.run([&] {
        const SpawnResult a = runIptables(scratch, "full.ipset", "", false);
        const SpawnResult b = runIptables(scratch, "", "full.iptables", false);
        f.iptIpset.add(a.wall);
        f.iptRestore.add(b.wall);
        f.iptWall.add(a.wall + b.wall);
        f.iptUser.add(a.user + b.user);
        f.iptSys.add(a.sys + b.sys);
        f.iptMaxRssKb = std::max({f.iptMaxRssKb, a.maxRssKb, b.maxRssKb});
      });
      if (i == 0) {
        verifyIptables(ns, ipt);
        f.iptVerify =
            count(ipt.rules) + " rules and " + count(ipt.setEntries) + " set entries listed back";
      }
    }
    settle();
  }

  // Functional check, untimed: both ways of loading give the same table.
  if (opt.verify) {
    checkInterrupted();
    Netns ours, theirs;
    ours.run([&] {
      auto kernel = take(nft::MnlKernel::open(), "open netlink socket");
      check(nft::Writer(*kernel).replace(rs), "Writer::replace");
    });
    theirs.run([&] { runNft({"-f", scratch.file("full.nft")}, scratch.file("nft.out")); });
    const auto t0 = Clock::now();
    const auto a = ours.exec("nft list table inet bulkhead");
    const auto b = theirs.exec("nft list table inet bulkhead");
    if (!a.ok() || !b.ok())
      throw Failure("nft list table: " + a.out.substr(0, 500) + b.out.substr(0, 500));
    const auto objects = objectsOf(a.out);
    if (objects.size() != rs.sets.size() + rs.chains.size())
      throw Failure("nft list table shows " + std::to_string(objects.size()) +
                    " sets and chains, the ruleset has " +
                    std::to_string(rs.sets.size() + rs.chains.size()));
    if (objects != objectsOf(b.out)) {
      const std::string keepOurs = "/tmp/bench_apply.ours.list";
      const std::string keepNft = "/tmp/bench_apply.nft.list";
      std::ofstream(keepOurs, std::ios::trunc) << a.out;
      std::ofstream(keepNft, std::ios::trunc) << b.out;
      throw Failure(
          "the table our writer loaded lists differently from nft -f of the same ruleset: diff " +
          keepOurs + " " + keepNft);
    }
    const size_t lines = size_t(std::count(a.out.begin(), a.out.end(), '\n'));
    f.verify = "identical `nft list table` (" + count(lines) + " lines, listed in " +
               dur(secondsSince(t0)) + ")";
  }
  settle();
  return f;
}

struct Incremental {
  int workloads = 0;
  Shape shape;
  double reset = 0, initialLoad = 0;
  Stats upsert, apply, commit, total;
  Stats nftAdd, nftAddUser, nftAddSys;
  Stats nftDelta;
  size_t deltaElements = 0;  // element changes per add (the last one)
  size_t dispatchAfter = 0;
  size_t promoted = 0;  // staged interfaces moved into @dispatch at the end
  double promote = 0;   // that promotion: compile + one transaction
  // iptables-restore --noflush + ipset of the same kind of change.
  double iptInitial = 0;
  Stats iptDelta, iptUser, iptSys;
  size_t iptChains = 0, iptRules = 0, iptIpsetLines = 0;  // the last delta
};

// The iptables + ipset side of the incremental figures: its own namespace
// and compiler, loaded with the same table; each add is a new workload
// translated and sent as a delta (only the chains and entries that changed),
// as Calico's Felix sends one. Staged interfaces are promoted at once:
// iptables has no staging, the dispatch tree takes the interface directly.
class IptablesSide {
 public:
  IptablesSide(const policy::Bundle& bundle, const ScratchDir& scratch) : scratch_(scratch) {
    take(inc_.reset(bundle, {}), "IncrementalCompiler::reset (iptables side)");
    loaded_ = iptablesOf(inc_.ruleset());
    scratch_.write("inc.ipset", loaded_.ipset);
    scratch_.write("inc.iptables", loaded_.iptables);
  }

  double load() {
    double wall = 0;
    ns_.run([&] { wall = runIptables(scratch_, "inc.ipset", "inc.iptables", false).wall; });
    return wall;
  }

  // Adds workload `w`; returns what the tools cost, spawns included.
  SpawnResult add(const policy::Workload& w, Incremental& m) {
    take(inc_.upsertWorkload(w), "upsertWorkload " + w.name + " (iptables side)");
    (void)inc_.promoteStaged();
    iptables::Restore next = iptablesOf(inc_.ruleset());
    const auto d = iptables::delta(loaded_, next);
    scratch_.write("d.ipset", d.ipsetBefore);
    scratch_.write("d.iptables", d.iptables);
    scratch_.write("d.ipset2", d.ipsetAfter);
    m.iptChains = d.chains;
    m.iptRules = d.rules;
    m.iptIpsetLines = d.ipsetLines;
    SpawnResult r;
    ns_.run([&] {
      r = runIptables(scratch_, d.ipsetBefore.empty() ? "" : "d.ipset",
                      d.iptables.empty() ? "" : "d.iptables", true,
                      d.ipsetAfter.empty() ? "" : "d.ipset2");
    });
    loaded_ = std::move(next);
    return r;
  }

  // What the namespace holds matches the last translation.
  void verify() const { verifyIptables(ns_, loaded_); }

 private:
  const ScratchDir& scratch_;
  compiler::IncrementalCompiler inc_;
  iptables::Restore loaded_;
  Netns ns_;
};

Incremental measureIncremental(const policy::Bundle& bundle, int workloads, const Options& opt,
                               const ScratchDir& scratch) {
  Incremental m;
  m.workloads = workloads;
  const int apps = int(bundle.apps.size());
  compiler::IncrementalCompiler inc;
  {
    const auto t0 = Clock::now();
    auto full = take(inc.reset(bundle, {}), "IncrementalCompiler::reset");
    m.reset = secondsSince(t0);
  }
  m.shape = shapeOf(inc.ruleset());
  std::optional<IptablesSide> ipt;
  if (opt.iptables) {
    ipt.emplace(bundle, scratch);
    m.iptInitial = ipt->load();
  }
  Netns ns;

  ns.run([&] {
    auto kernel = take(nft::MnlKernel::open(), "open netlink socket");
    TimedKernel timed(*kernel);
    nft::Writer writer(timed);
    {
      const auto t0 = Clock::now();
      check(writer.replace(inc.ruleset()), "initial Writer::replace");
      m.initialLoad = secondsSince(t0);
    }

    // Interleaved, so noise from other tenants hits every side alike.
    for (int k = 0; k < std::max(opt.adds, opt.nftAdds); ++k) {
      checkInterrupted();
      if (k < opt.nftAdds) {
        // nft, the bar: one dispatch entry per command, spawn included.
        const std::string elem = "{ \"x" + std::to_string(k) + "\" : goto " +
                                 compiler::appChainName(appName((k * 37 + 5) % apps)) + " }";
        const SpawnResult r = runNft({"add", "element", "inet", "bulkhead", "dispatch", elem},
                                     scratch.file("nft.out"));
        m.nftAdd.add(r.wall);
        m.nftAddUser.add(r.user);
        m.nftAddSys.add(r.sys);

        // nft -f of exactly the change we make (every set it touches), for a
        // like-for-like figure. The compile is not timed here.
        const auto w = newWorkload("m", k, apps, kNftAddBase, 3);
        const auto diff = take(inc.upsertWorkload(w), "upsertWorkload " + w.name);
        scratch.write("delta.nft", renderElementChanges(diff, inc.ruleset()));
        m.nftDelta.add(runNft({"-f", scratch.file("delta.nft")}, scratch.file("nft.out")).wall);

        // iptables-restore + ipset: one new workload, its own namespace.
        if (ipt) {
          const SpawnResult r = ipt->add(newWorkload("p", k, apps, kIptAddBase, 4), m);
          m.iptDelta.add(r.wall);
          m.iptUser.add(r.user);
          m.iptSys.add(r.sys);
        }
      }
      if (k < opt.adds) {
        // Ours: compile the delta, apply it as one transaction.
        const auto w = newWorkload("n", k, apps, kOursAddBase, 2);
        const auto t0 = Clock::now();
        auto diff = take(inc.upsertWorkload(w), "upsertWorkload " + w.name);
        const double upsert = secondsSince(t0);
        const auto t1 = Clock::now();
        check(writer.apply(diff, inc.ruleset()), "Writer::apply (workload " + w.name + ")");
        const double apply = secondsSince(t1);
        m.upsert.add(upsert);
        m.apply.add(apply);
        m.commit.add(timed.lastCommit);
        m.total.add(upsert + apply);
        m.deltaElements = diff.elementChangeCount();
      }
    }
    // New interfaces went into the staged sets; the agent moves them into
    // @dispatch later, in batches. Here: all at once, one transaction.
    m.promoted = inc.stagedCount();
    const auto t0 = Clock::now();
    const auto promotion = inc.promoteStaged();
    check(writer.apply(promotion, inc.ruleset()), "Writer::apply (promotion)");
    m.promote = secondsSince(t0);
  });

  // Functional check: every add is in the kernel.
  const size_t expected = size_t(workloads) + size_t(opt.nftAdds) * 2 + size_t(opt.adds);
  m.dispatchAfter = dispatchEntries(ns);
  if (ipt) ipt->verify();
  if (m.dispatchAfter != expected)
    throw Failure("dispatch map of the " + std::to_string(workloads) + "-workload table holds " +
                  std::to_string(m.dispatchAfter) + " entries, expected " +
                  std::to_string(expected));
  return m;
}

// --- the report ------------------------------------------------------------------------

std::vector<int> sizeList(const std::string& arg, const char* prefix) {
  std::vector<int> out;
  std::istringstream in(arg.substr(std::strlen(prefix)));
  for (std::string item; std::getline(in, item, ',');) {
    const int v = std::atoi(item.c_str());
    if (v < 10 || v > 50000) throw Failure("bad size in " + arg + " (10 to 50,000 workloads)");
    out.push_back(v);
  }
  if (out.empty()) throw Failure("no size in " + arg);
  return out;
}

Options parseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto num = [&](const char* prefix) { return positiveFlag(a, prefix); };
    if (auto v = num("--runs=")) {
      o.runs = *v;
    } else if (auto v2 = num("--adds=")) {
      o.adds = *v2;
    } else if (auto v3 = num("--nft-adds=")) {
      o.nftAdds = *v3;
    } else if (a == "--no-verify") {
      o.verify = false;
    } else if (a == "--no-iptables") {
      o.iptables = false;
    } else if (a.rfind("--sizes=", 0) == 0) {
      o.sizes = sizeList(a, "--sizes=");
    } else if (a.rfind("--inc-sizes=", 0) == 0) {
      o.incSizes = sizeList(a, "--inc-sizes=");
    } else {
      throw Failure(
          "usage: bench_apply [--runs=N] [--adds=N] [--nft-adds=N] [--no-verify] "
          "[--sizes=N,N...] [--inc-sizes=N,N...] [--no-iptables] [--json=FILE]");
    }
  }
  return o;
}

const int kLabelWidth = 46;

void row(const std::string& label, const std::string& value) {
  std::printf("  %s %s\n", pad(label, kLabelWidth).c_str(), value.c_str());
}

void goal(const std::string& name, bool pass, double value, double bound, const std::string& text) {
  std::printf("  %s\n", goalLine(pass, text).c_str());
  report().figure(name, "ratio", 0, value, "ratio");
  report().goal(name, pass, value, bound, text);
}

// One size's full apply, printed and reported; returns ours / nft.
double printFullApply(int n, const Shape& shape, const FullApply& f, const Options& opt) {
  const double ours = f.oursTotal.median(), theirs = f.nftWall.median();
  const double commit = f.oursCommit.median();
  std::printf(
      "\nFull apply of the whole table at %s workloads, fresh namespace per run "
      "(median of %d, min)\n",
      count(size_t(n)).c_str(), opt.runs);
  row("table", count(shape.elements) + " set elements in " + count(shape.sets) + " sets, " +
                   count(shape.chains) + " chains, " + count(shape.rules) + " rules");
  row("compile (policy -> Ruleset), not in totals", medMin(f.compile));
  row("render as nft text (nft path's input)",
      medMin(f.render) + ", " + count(f.textBytes) + " bytes");
  row("ours: Writer::replace, one transaction", medMin(f.oursTotal));
  row("  buildBatch (run alone)", medMin(f.buildBatch) + ", " + count(f.batchMessages) +
                                      " messages, " + count(f.batchBytes) + " bytes");
  row("  kernel commit (sendmsg + ACK)", medMin(f.oursCommit));
  row("  userspace (replace - commit)", dur(ours - commit));
  row("  thread CPU user / sys", dur(f.oursUser.median()) + " / " + dur(f.oursSys.median()));
  row("nft -f (same ruleset as text)", medMin(f.nftWall));
  row("  nft CPU user / sys (getrusage)", dur(f.nftUser.median()) + " / " + dur(f.nftSys.median()) +
                                              ", max RSS " + count(size_t(f.nftMaxRssKb / 1024)) +
                                              " MB");
  if (opt.iptables) {
    row("iptables-restore + ipset (IPv4 only)", medMin(f.iptWall));
    row("  ipset restore / iptables-legacy-restore",
        dur(f.iptIpset.median()) + " / " + dur(f.iptRestore.median()));
    row("  CPU user / sys, max RSS", dur(f.iptUser.median()) + " / " + dur(f.iptSys.median()) +
                                         ", " + count(size_t(f.iptMaxRssKb / 1024)) + " MB");
    row("  what it loads", count(f.iptRules) + " rules, " + count(f.iptEntries) + " set entries, " +
                               count(f.iptBytes) + " bytes; " + count(f.iptLeftOut) +
                               " IPv4 rule(s) left out");
    row("  verify", f.iptVerify);
  }
  row("ratio ours / nft", fmt("%.2f", ours / theirs) + "  (compile + replace vs nft -f: " +
                              fmt("%.2f", (ours + f.compile.median()) / theirs) + ")");
  if (opt.iptables)
    row("ratio ours / iptables-restore + ipset", fmt("%.2f", ours / f.iptWall.median()));
  row("ours / kernel commit (1.00 = the floor)", fmt("%.2f", ours / commit));
  row("verify", f.verify);

  auto& r = report();
  r.figure("full apply", "bulkhead", n, ours, "s");
  r.figure("full apply kernel commit", "bulkhead", n, commit, "s");
  r.figure("full apply", "nft -f", n, theirs, "s");
  r.figure("compile", "bulkhead", n, f.compile.median(), "s");
  r.figure("set elements", "bulkhead", n, double(shape.elements), "count");
  if (opt.iptables) {
    r.figure("full apply", "iptables-restore + ipset", n, f.iptWall.median(), "s");
    r.figure("full apply rules", "iptables-restore + ipset", n, double(f.iptRules), "count");
    r.figure("full apply set entries", "iptables-restore + ipset", n, double(f.iptEntries),
             "count");
  }
  return ours / theirs;
}

void printIncremental(const std::vector<Incremental>& inc, const Options& opt) {
  std::printf("\nIncremental: add one workload to a loaded table (median, min)\n");
  const int w2 = 42, wc = 26;
  auto row3 = [&](const std::string& label,
                  const std::function<std::string(const Incremental&)>& f2) {
    std::string line = "  " + pad(label, w2) + " ";
    for (size_t i = 0; i < inc.size(); ++i)
      line += i + 1 < inc.size() ? pad(f2(inc[i]), wc) + " " : f2(inc[i]);
    std::printf("%s\n", line.c_str());
  };
  row3("table", [](const Incremental& m) {
    return count(size_t(m.workloads)) + " workloads, " + count(m.shape.elements) + " el.";
  });
  row3("  (full compile / initial load)",
       [](const Incremental& m) { return dur(m.reset) + " / " + dur(m.initialLoad); });
  row3("ours: upsertWorkload (delta compile)",
       [](const Incremental& m) { return medMin(m.upsert); });
  row3("ours: Writer::apply (one transaction)",
       [](const Incremental& m) { return medMin(m.apply); });
  row3("  of which kernel commit", [](const Incremental& m) { return medMin(m.commit); });
  row3("ours: total", [](const Incremental& m) { return medMin(m.total); });
  row3("  element changes per add", [](const Incremental& m) { return count(m.deltaElements); });
  row3("  later: promotion of the staged ones",
       [](const Incremental& m) { return count(m.promoted) + " in " + dur(m.promote); });
  row3("nft add element (1 dispatch entry, spawn)",
       [](const Incremental& m) { return medMin(m.nftAdd); });
  row3("  nft CPU user / sys", [](const Incremental& m) {
    return dur(m.nftAddUser.median()) + " / " + dur(m.nftAddSys.median());
  });
  row3("nft -f of our exact delta", [](const Incremental& m) { return medMin(m.nftDelta); });
  if (opt.iptables) {
    row3("iptables-restore --noflush + ipset delta",
         [](const Incremental& m) { return medMin(m.iptDelta); });
    row3("  CPU user / sys", [](const Incremental& m) {
      return dur(m.iptUser.median()) + " / " + dur(m.iptSys.median());
    });
    row3("  chains / rules / ipset lines sent", [](const Incremental& m) {
      return count(m.iptChains) + " / " + count(m.iptRules) + " / " + count(m.iptIpsetLines);
    });
    row3("  (initial load)", [](const Incremental& m) { return dur(m.iptInitial); });
  }
  row3("ratio ours / nft add element",
       [](const Incremental& m) { return fmt("%.3f", m.total.median() / m.nftAdd.median()); });
  if (opt.iptables)
    row3("ratio ours / iptables delta",
         [](const Incremental& m) { return fmt("%.3f", m.total.median() / m.iptDelta.median()); });
  row3("runs (ours / nft)", [&](const Incremental&) {
    return std::to_string(opt.adds) + " / " + std::to_string(opt.nftAdds);
  });

  auto& r = report();
  for (const auto& m : inc) {
    r.figure("one-workload change", "bulkhead", m.workloads, m.total.median(), "s");
    r.figure("one-workload change kernel commit", "bulkhead", m.workloads, m.commit.median(), "s");
    r.figure("one-workload change", "nft add element", m.workloads, m.nftAdd.median(), "s");
    r.figure("one-workload change", "nft -f delta", m.workloads, m.nftDelta.median(), "s");
    if (opt.iptables)
      r.figure("one-workload change", "iptables-restore + ipset", m.workloads, m.iptDelta.median(),
               "s");
  }
}

int run(int argc, char** argv) {
  report().init("bench_apply", argc, argv);
  const Options opt = parseOptions(argc, argv);
  if (!testing::havePrivileges())
    throw Failure(
        "must run as root with `ip` and `nft` installed: sudo build/tests/bench/bench_apply");
  testing::sweepStaleNamespaces();
  const auto started = Clock::now();

  printBanner("bench_apply");
  if (opt.iptables) {
    const auto v = testing::sh(std::string(kIptablesRestore) + " --version && ipset --version");
    if (!v.ok())
      throw Failure(std::string(kIptablesRestore) +
                    " and ipset are needed for the iptables baseline "
                    "(packaging/install-deps.sh), or --no-iptables: " +
                    trimmed(v.out));
    std::printf("baseline tools: %s\n", trimmed(v.out).c_str());
  }
  ScratchDir scratch("bench_apply");

  // 1. Full apply, at each size.
  double fullRatio = 0;
  for (int n : opt.sizes) {
    const policy::Bundle bundle = generateBundle(n);
    const Ruleset rs = take(compiler::compile(bundle, {}), "compile");
    std::printf("\nPolicy: %zu apps, %zu services, %d workloads, %zu GlobalPolicies\n",
                bundle.apps.size(), bundle.services.size(), n, bundle.globalPolicies.size());
    const FullApply f = measureFullApply(bundle, rs, opt, scratch);
    fullRatio = printFullApply(n, shapeOf(rs), f, opt);
    std::fflush(stdout);
  }

  // 2. Incremental, at each size.
  std::vector<Incremental> inc;
  for (int n : opt.incSizes) {
    inc.push_back(measureIncremental(generateBundle(n), n, opt, scratch));
    settle();
  }
  printIncremental(inc, opt);

  std::printf("\nGoals (informational; timings never fail the run)\n");
  const std::string largest = count(size_t(opt.sizes.back()));
  goal("full apply ours/nft at " + largest, fullRatio <= 0.6, fullRatio, 0.6,
       "full apply at " + largest + " workloads: ours/nft = " + fmt("%.2f", fullRatio) +
           " (goal <= 0.6)");
  for (const auto& m : inc) {
    const double r = m.total.median() / m.nftAdd.median();
    goal("incremental ours/nft add at " + count(size_t(m.workloads)), r <= 1.0, r, 1.0,
         "incremental at " + count(size_t(m.workloads)) +
             " workloads: ours/nft add = " + fmt("%.3f", r) + " (goal <= 1)");
  }
  if (inc.size() > 1) {
    const double growth = inc.back().total.median() / inc.front().total.median();
    const double scale = double(inc.back().workloads) / inc.front().workloads;
    goal("incremental growth", growth <= 2.0, growth, 2.0,
         "incremental cost flat in table size: " + fmt("%.2f", growth) + "x for a " +
             fmt("%.0f", scale) + "x table (goal <= 2)");
  }
  std::printf("\nBench wall time %s\n", dur(secondsSince(started)).c_str());
  std::fflush(stdout);
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_apply", bulkhead::bench::run, argc, argv);
}
