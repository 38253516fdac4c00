// bench_agent: the real bulkhead-agent at scale, driven through its gRPC API
// as a controller would: push a 1,000-app / 2,000-service policy as YAML,
// register 10,000 workloads, then measure one-workload changes and the
// agent's memory. A benchmark, not a test: it prints figures and never judges
// a timing by failing. It exits 1 only when something fails functionally (the
// agent does not start, a call is refused, the kernel table is not what the
// agent says).
//
// Needs root. The agent runs in a throwaway network namespace (tests/support
// Netns + Process), listening on a unix socket in a temporary directory with
// its --state-dir next to it; all of it is removed on exit, also on an error
// or Ctrl-C. The root namespace's ruleset is never touched and no packet is
// sent: the addresses are set data only (100.64.0.0/10, 2001:db8::/32).
//
//   sudo build/tests/bench/bench_agent [--workloads=N] [--changes=N] [--trickle=N] [--nft-adds=N]
//
// docs/benchmarks.md explains each figure.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/policy/loader.h"
#include "bulkhead/v1/agent.grpc.pb.h"
#include "support/netns.h"

extern char** environ;

namespace bulkhead::bench {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Netns;
using testing::Process;

const std::string kAgentBinary = BULKHEAD_BINARY_DIR "/bulkhead-agent";
constexpr int kMaxMessageBytes = 256 << 20;

// --- statistics and formatting ---------------------------------------------------

std::string mib(size_t kb) {
  return fmt("%.1f MiB", double(kb) / 1024.0);
}

std::string pad(std::string s, size_t width) {
  if (s.size() >= width) return s;
  return s + std::string(width - s.size(), ' ');
}

// "3.21 ms / 4.50 ms / 7.00 ms" (p50 / p99 / max) of a Stats.
std::string pct(const Stats& s) {
  if (s.empty()) return "-";
  return dur(s.median()) + " / " + dur(s.quantile(0.99)) + " / " + dur(s.max());
}

std::string pct(const v1::Latency& l) {
  return dur(l.p50_ms() / 1e3) + " / " + dur(l.p99_ms() / 1e3) + " / " + dur(l.max_ms() / 1e3);
}

void row(const std::string& label, const std::string& value) {
  std::printf("  %s %s\n", pad(label, 50).c_str(), value.c_str());
}

// --- the generated policy, as YAML ------------------------------------------------
//
// The same shape as bench_apply's generateBundle (docs/benchmarks.md, "The
// generated policy"), written as the YAML a controller would push, with the
// workloads registered through the API instead of as documents. Address plan
// (set data only, never routed):
//   services              100.64.0.0/14   one /24 each: a /28 and a /27; 2001:db8:5:<s>::/64
//   registered workloads  100.96.0.0/16   every 4th address; 2001:db8:1::<4w>
//   churn workloads       100.112.0.0/16  every 4th address; 2001:db8:2::<4k>
// Spacing by 4 keeps adjacent addresses from merging into ranges.
constexpr uint32_t kServiceBase = 0x64400000u;   // 100.64.0.0
constexpr uint32_t kWorkloadBase = 0x64600000u;  // 100.96.0.0
constexpr uint32_t kChurnBase = 0x64700000u;     // 100.112.0.0
constexpr uint32_t kTrickleBase = 0x64780000u;   // 100.120.0.0

std::string v4(uint32_t n) {
  return std::to_string(n >> 24) + "." + std::to_string((n >> 16) & 255) + "." +
         std::to_string((n >> 8) & 255) + "." + std::to_string(n & 255);
}

std::string hex(uint32_t n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%x", n);
  return buf;
}

// 2001:db8:<group>::<low 32 bits>
std::string v6(uint16_t group, uint32_t low) {
  return "2001:db8:" + hex(group) + "::" + hex(low >> 16) + ":" + hex(low & 0xffff);
}

std::string appName(int i) {
  return "app" + std::to_string(i);
}

struct Generated {
  std::vector<v1::PolicyFile> files;
  size_t bytes = 0;
  int apps = 0, services = 0;
};

Generated generatePolicy(int workloads) {
  Generated g;
  const int apps = std::max(1, workloads / 10);
  g.apps = apps;
  g.services = 2 * apps;
  std::string services, appsText, globals;
  auto doc = [](std::string& out, const std::string& kind, const std::string& metadata) {
    if (!out.empty()) out += "---\n";
    out += "apiVersion: bulkhead/v1\nkind: " + kind + "\nmetadata: " + metadata + "\nspec:\n";
  };

  // CIDR services: a /28 and a /27 (IPv4) and a /64 (IPv6) each, tcp/443 and
  // a tcp port of their own, every third a udp port too.
  for (int s = 0; s < apps; ++s) {
    std::string labels;
    if (s % 10 == 0) labels = ", labels: {zone: pci}";
    if (s % 20 == 5) labels = ", labels: {shared: \"true\"}";
    doc(services, "Service", "{name: svc" + std::to_string(s) + labels + "}");
    const uint32_t base = kServiceBase + uint32_t(s) * 256;
    services += "  endpoints:\n    - cidrs: [" + v4(base) + "/28, " + v4(base + 128) +
                "/27, \"2001:db8:5:" + hex(uint32_t(s)) + "::/64\"]\n";
    services += "      ports: [tcp/443, tcp/" + std::to_string(10000 + s) +
                (s % 3 == 0 ? ", udp/" + std::to_string(20000 + s) : "") + "]\n";
  }
  // App-backed services: api<a> selects the workloads of app<a>.
  for (int a = 0; a < apps; ++a) {
    doc(services, "Service", "{name: api" + std::to_string(a) + "}");
    services += "  appSelector: {app: " + appName(a) + "}\n  ports: [tcp/8443]\n";
  }
  // Apps: 10 CIDR services and the next app's api each.
  const int stride = apps / 10 + 1;
  for (int i = 0; i < apps; ++i) {
    doc(appsText, "App",
        "{name: " + appName(i) + ", labels: {env: " + (i % 2 ? "prod" : "dev") + ", team: t" +
            std::to_string(i % 50) + "}}");
    if (i % 10 == 9) appsText += "  mode: audit\n";
    if (i % 7 == 3) appsText += "  denyAction: drop\n";
    appsText += "  egress:\n    - to: [";
    for (int k = 0; k < std::min(10, apps); ++k)
      appsText += "svc" + std::to_string((i * 7 + k * stride) % apps) + ", ";
    appsText += "api" + std::to_string((i + 1) % apps) + "]\n";
  }
  doc(globals, "GlobalPolicy", "{name: pci-isolation}");
  globals +=
      "  order: 100\n"
      "  rules:\n"
      "    - action: deny\n"
      "      from: {env: dev}\n"
      "      toSelector: {zone: pci}\n";
  doc(globals, "GlobalPolicy", "{name: shared-infra}");
  globals +=
      "  order: 200\n"
      "  rules:\n"
      "    - action: allow\n"
      "      from: {}\n"
      "      toSelector: {shared: \"true\"}\n"
      "    - action: allow\n"
      "      from: {}\n"
      "      toCIDRs: [100.100.100.53/32, \"2001:db8:53::53/128\"]\n"
      "      ports: [udp/53, tcp/53]\n"
      "    - action: log\n"
      "      from: {team: t7}\n"
      "      toCIDRs: [198.51.100.0/24]\n";

  for (auto [name, text] :
       {std::pair{"bench/services.yaml", &services}, std::pair{"bench/apps.yaml", &appsText},
        std::pair{"bench/global.yaml", &globals}}) {
    v1::PolicyFile f;
    f.set_name(name);
    f.set_content(*text);
    g.bytes += f.name().size() + f.content().size();
    g.files.push_back(std::move(f));
  }
  return g;
}

v1::Workload workload(const std::string& prefix, int k, const std::string& app, uint32_t v4Base,
                      uint16_t v6Group) {
  v1::Workload w;
  w.set_name(prefix + std::to_string(k));
  w.set_app(app);
  w.add_interfaces(prefix + std::to_string(k));
  w.add_addresses(v4(v4Base + uint32_t(k) * 4));
  w.add_addresses(v6(v6Group, uint32_t(k) * 4));
  return w;
}

v1::Workload registered(int w, int apps) {
  return workload("w", w, appName(w % apps), kWorkloadBase, 1);
}

v1::Workload churn(int k, int apps) {
  return workload("c", k, appName((k * 37 + 11) % apps), kChurnBase, 2);
}

v1::Workload trickle(int k, int apps) {
  return workload("t", k, appName((k * 53 + 7) % apps), kTrickleBase, 3);
}

// What the agent should report: the same files and workloads, loaded and
// compiled in this process. Also checks the YAML before the agent sees it.
size_t expectedElements(const Generated& g, int workloads) {
  std::vector<policy::SourceFile> sources;
  for (const auto& f : g.files)
    sources.push_back({f.name(), f.content()});
  auto loaded = policy::loadFiles(sources);
  if (!loaded.ok())
    throw Failure("generated policy is invalid: " + loaded.errors.front().toString() + " (and " +
                  std::to_string(loaded.errors.size() - 1) + " more)");
  std::vector<policy::Workload> extra;
  for (int w = 0; w < workloads; ++w) {
    const v1::Workload api = registered(w, g.apps);
    policy::Workload pw;
    pw.name = api.name();
    pw.app = api.app();
    pw.interfaces = {api.interfaces(0)};
    for (const auto& a : api.addresses())
      pw.addresses.push_back(*policy::IpAddr::parse(a));
    extra.push_back(std::move(pw));
  }
  auto rs = compiler::compile(loaded.bundle, extra);
  if (!rs) throw Failure("compiling the generated policy: " + rs.error().describe());
  return rs->elementCount();
}

// --- the agent process ----------------------------------------------------------

// "tmpfs", "ext4", ... of the filesystem holding `path`.
std::string filesystemOf(const std::string& path) {
  return trimmed(testing::sh("stat -f -c %T " + path).out);
}

std::string comm(pid_t pid) {
  return trimmed(readFile("/proc/" + std::to_string(pid) + "/comm"));
}

// The agent's pid. Process runs `ip netns exec NS sh -c 'exec bulkhead-agent
// ...'`; both ip and sh exec, so the pid becomes the agent's. Checked by
// name; should ip ever fork instead, the agent is found among descendants.
std::optional<pid_t> findAgent(pid_t root) {
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    if (comm(p) == "bulkhead-agent") return p;
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(p) + "/task", ec)) {
      std::istringstream children(readFile(task.path().string() + "/children"));
      pid_t c;
      while (children >> c)
        todo.push_back(c);
    }
  }
  return std::nullopt;
}

struct Memory {
  size_t rssKb = 0, hwmKb = 0, anonKb = 0, fileKb = 0;
  int threads = 0;
};

Memory memoryOf(pid_t pid) {
  std::istringstream in(readFile("/proc/" + std::to_string(pid) + "/status"));
  Memory m;
  std::string line;
  while (std::getline(in, line)) {
    auto field = [&](const char* name, size_t* out) {
      if (line.rfind(name, 0) == 0) *out = std::strtoull(line.c_str() + std::strlen(name), 0, 10);
    };
    field("VmRSS:", &m.rssKb);
    field("VmHWM:", &m.hwmKb);
    field("RssAnon:", &m.anonKb);
    field("RssFile:", &m.fileKb);
    if (line.rfind("Threads:", 0) == 0) m.threads = std::atoi(line.c_str() + 8);
  }
  if (m.rssKb == 0) throw Failure("cannot read /proc/" + std::to_string(pid) + "/status");
  return m;
}

// CPU time the process's threads have run, from each one's schedstat (ns).
double cpuSeconds(pid_t pid) {
  uint64_t ns = 0;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(tasks)) {
    std::ifstream in(t.path() / "schedstat");
    uint64_t ran = 0;
    if (in >> ran) ns += ran;
  }
  return double(ns) / 1e9;
}

// What the loaded agent costs with nothing happening: its threads' CPU time
// over `seconds` at rest, as a share of one CPU.
double idleCpuShare(pid_t pid, int seconds) {
  const double before = cpuSeconds(pid);
  for (int i = 0; i < seconds * 10; ++i) {
    checkInterrupted();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return (cpuSeconds(pid) - before) / seconds;
}

std::string describe(const Memory& m) {
  return "RSS " + mib(m.rssKb) + " (anon " + mib(m.anonKb) + ", file " + mib(m.fileKb) + "), HWM " +
         mib(m.hwmKb) + ", " + std::to_string(m.threads) + " threads";
}

class Agent {
 public:
  // `wrap`: a command line to run the agent under (heaptrack, valgrind ...).
  Agent(const Netns& ns, const ScratchDir& dir, const std::string& wrap)
      : log_(dir.file("agent.log")) {
    socket_ = dir.file("agent.sock");
    process_ = std::make_unique<Process>(
        ns, "exec " + (wrap.empty() ? "" : wrap + " ") + kAgentBinary + " --listen unix://" +
                socket_ + " --state-dir " + dir.file("state") + " 2>>" + log_);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (true) {
      checkInterrupted();
      if (!process_->running()) throw Failure("bulkhead-agent exited at start" + logTail());
      if (auto p = findAgent(process_->pid())) {
        pid_ = *p;
        pidIsProcess_ = pid_ == process_->pid();
        break;
      }
      if (Clock::now() > deadline) throw Failure("no bulkhead-agent process" + logTail());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  pid_t pid() const { return pid_; }
  bool pidIsProcess() const { return pidIsProcess_; }
  const std::string& socket() const { return socket_; }
  bool running() { return process_->running(); }

  // SIGTERM: the agent stops serving and leaves its table in the kernel.
  int stop() {
    process_->kill(SIGTERM);
    return process_->wait(10000);
  }

  std::string logTail() const {
    std::string log = readFile(log_);
    if (log.size() > 3000) log = "..." + log.substr(log.size() - 3000);
    return log.empty() ? "" : "; agent log:\n" + log;
  }

 private:
  std::string log_, socket_;
  std::unique_ptr<Process> process_;
  pid_t pid_ = -1;
  bool pidIsProcess_ = false;
};

// --- gRPC --------------------------------------------------------------------------

template <class Call>
double timedCall(const std::string& what, Agent& agent, int timeoutSeconds, Call call) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeoutSeconds));
  const auto t0 = Clock::now();
  const grpc::Status st = call(&ctx);
  const double s = secondsSince(t0);
  if (!st.ok())
    throw Failure(what + ": " + std::to_string(int(st.error_code())) + " " +
                  st.error_message().substr(0, 2000) + agent.logTail());
  return s;
}

v1::AgentStatus status(v1::Agent::Stub& stub, Agent& agent) {
  v1::AgentStatus s;
  timedCall("GetStatus", agent, 30,
            [&](grpc::ClientContext* c) { return stub.GetStatus(c, {}, &s); });
  return s;
}

// The agent gives freed heap back (malloc_trim) once no change has come for
// a second, never in the middle of a burst: memory is sampled at rest.
void atRest() {
  checkInterrupted();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
}

// Seconds until the agent has moved every staged interface into the
// dispatch map (it does so on its own, in batches).
double waitPromoted(v1::Agent::Stub& stub, Agent& agent) {
  const auto start = Clock::now();
  while (status(stub, agent).staged_interfaces() != 0) {
    checkInterrupted();
    if (secondsSince(start) > 30) throw Failure("staged interfaces not promoted within 30 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return secondsSince(start);
}

// --- the nft baseline --------------------------------------------------------------

// --- the run ----------------------------------------------------------------------------

struct Options {
  int workloads = 10000;  // registered through UpsertWorkload
  int changes = 200;      // one-workload changes: upsert and delete, alternately
  int trickle = 200;      // new workloads kept, 0-40 ms apart, while promotions run
  int nftAdds = 20;       // nft add element baseline
  std::string tmp;        // parent of the scratch directory (socket, state, log)
  std::string wrap;       // run the agent under this command (heaptrack ...)
  int hold = 0;           // seconds to pause once loaded, to inspect the agent
  // Seconds the loaded agent is watched at rest for its CPU time: 30 holds
  // a periodic drift check and one of the flow feed's idle counter reads.
  int idle = 30;
};

Options parseOptions(int argc, char** argv) {
  Options o;
  o.tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto num = [&](const char* prefix) { return positiveFlag(a, prefix); };
    if (auto v = num("--workloads=")) {
      o.workloads = std::max(*v, 10);
    } else if (auto v2 = num("--changes=")) {
      o.changes = *v2;
    } else if (auto v5 = num("--trickle=")) {
      o.trickle = *v5;
    } else if (auto v3 = num("--nft-adds=")) {
      o.nftAdds = *v3;
    } else if (auto v4 = num("--hold=")) {
      o.hold = *v4;
    } else if (auto v6 = num("--idle=")) {
      o.idle = *v6;
    } else if (a.rfind("--tmp=", 0) == 0) {
      o.tmp = a.substr(6);
    } else if (a.rfind("--wrap=", 0) == 0) {
      o.wrap = a.substr(7);
    } else {
      throw Failure(
          "usage: bench_agent [--workloads=N] [--changes=N] [--trickle=N] [--nft-adds=N] "
          "[--tmp=DIR] "
          "[--wrap=CMD] [--hold=SECONDS] [--idle=SECONDS]");
    }
  }
  return o;
}

// A started agent and a client connected to it.
struct Connection {
  std::unique_ptr<Agent> agent;
  std::unique_ptr<v1::Agent::Stub> stub;
  double ready = 0;  // start to the first GetStatus answer
};

// Starts the agent and waits until it accepts on its socket, then for its
// first answer. The channel is made only once the socket accepts: one made
// earlier sits in gRPC's reconnect backoff for seconds.
Connection connect(const Netns& ns, const ScratchDir& dir, const Options& opt) {
  Connection c;
  const auto t0 = Clock::now();
  c.agent = std::make_unique<Agent>(ns, dir, opt.wrap);
  while (!socketAccepts(c.agent->socket())) {
    checkInterrupted();
    if (!c.agent->running()) throw Failure("bulkhead-agent exited" + c.agent->logTail());
    if (secondsSince(t0) > 60) throw Failure("the agent does not listen" + c.agent->logTail());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  c.stub = v1::Agent::NewStub(grpc::CreateCustomChannel("unix:" + c.agent->socket(),
                                                        grpc::InsecureChannelCredentials(), args));
  (void)status(*c.stub, *c.agent);
  c.ready = secondsSince(t0);
  return c;
}

// SIGTERM: the agent stops serving and leaves its table in the kernel.
void stop(Connection& c) {
  c.stub.reset();
  const int code = c.agent->stop();
  if (code != 0)
    throw Failure("the agent exited with " + std::to_string(code) + " on SIGTERM" +
                  c.agent->logTail());
}

int run(int argc, char** argv) {
  report().init("bench_agent", argc, argv);
  const Options opt = parseOptions(argc, argv);
  if (!testing::havePrivileges())
    throw Failure(
        "must run as root with `ip` and `nft` installed: sudo build/tests/bench/bench_agent");
  if (access(kAgentBinary.c_str(), X_OK) != 0)
    throw Failure(kAgentBinary + " not found: cmake --build build -j2 --target bulkhead-agent");
  testing::sweepStaleNamespaces();
  const auto started = Clock::now();

  printBanner("bench_agent");

  const Generated policy = generatePolicy(opt.workloads);
  const size_t expected = expectedElements(policy, opt.workloads);
  const int apps = policy.apps;

  ScratchDir dir("bench_agent", opt.tmp);
  Netns ns;

  // 1. Start (empty).
  Connection c = connect(ns, dir, opt);
  const double firstReady = c.ready;
  const pid_t firstPid = c.agent->pid();
  const bool pidIsProcess = c.agent->pidIsProcess();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it settle
  const Memory empty = memoryOf(c.agent->pid());

  // 2. Push the policy.
  checkInterrupted();
  v1::ApplyPolicyRequest push;
  for (const auto& f : policy.files)
    *push.add_files() = f;
  v1::ApplyPolicyResponse pushed;
  const double pushTime = timedCall("ApplyPolicy", *c.agent, 120, [&](grpc::ClientContext* ctx) {
    return c.stub->ApplyPolicy(ctx, push, &pushed);
  });
  if (!pushed.changed()) throw Failure("ApplyPolicy changed nothing");
  const v1::AgentStatus afterPush = status(*c.stub, *c.agent);
  const Memory policyOnly = memoryOf(c.agent->pid());

  // 3. Register the workloads, one call each, as a controller would.
  Stats registration;
  const auto regStart = Clock::now();
  for (int w = 0; w < opt.workloads; ++w) {
    checkInterrupted();
    v1::UpsertWorkloadRequest req;
    *req.mutable_workload() = registered(w, apps);
    v1::UpsertWorkloadResponse resp;
    registration.add(timedCall(
        "UpsertWorkload " + req.workload().name(), *c.agent, 30,
        [&](grpc::ClientContext* ctx) { return c.stub->UpsertWorkload(ctx, req, &resp); }));
  }
  const double regTotal = secondsSince(regStart);
  const double promotedAfter = waitPromoted(*c.stub, *c.agent);
  const v1::AgentStatus loaded = status(*c.stub, *c.agent);
  atRest();
  const Memory full = memoryOf(c.agent->pid());
  const double idleCpu = idleCpuShare(c.agent->pid(), opt.idle);
  if (loaded.workloads() != uint32_t(opt.workloads))
    throw Failure("the agent reports " + std::to_string(loaded.workloads()) + " workloads, " +
                  std::to_string(opt.workloads) + " registered");
  if (loaded.set_elements() != expected)
    throw Failure("the agent reports " + std::to_string(loaded.set_elements()) +
                  " set elements; the same input compiled here gives " + std::to_string(expected));
  struct stat stateFile {};
  stat(dir.file("state/state.pb").c_str(), &stateFile);
  if (opt.hold > 0) {
    std::printf("holding %d s: agent pid %d in namespace %s\n", opt.hold, int(c.agent->pid()),
                ns.name().c_str());
    std::fflush(stdout);
    for (int i = 0; i < opt.hold * 10; ++i) {
      checkInterrupted();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // 4. Restart: the agent's latency window (its last 1,024 changes) would
  // otherwise hold mostly registrations. The new agent restores the table
  // from its state file, no push.
  stop(c);
  c = connect(ns, dir, opt);
  const v1::AgentStatus restored = status(*c.stub, *c.agent);
  if (restored.pushes() != 0 || restored.workloads() != loaded.workloads() ||
      restored.set_elements() != loaded.set_elements() || restored.version() != loaded.version())
    throw Failure("after a restart the agent reports version " + restored.version() + ", " +
                  std::to_string(restored.workloads()) + " workloads, " +
                  std::to_string(restored.set_elements()) + " set elements, " +
                  std::to_string(restored.pushes()) + " pushes");
  const double restartReady = c.ready;
  const pid_t secondPid = c.agent->pid();
  atRest();
  const Memory afterRestart = memoryOf(c.agent->pid());

  // 5. One-workload changes at that size: a new workload, then its removal.
  Stats upserts, deletes, changes;
  size_t deltaElements = 0;
  for (int k = 0; k < opt.changes; ++k) {
    checkInterrupted();
    const int n = k / 2;
    if (k % 2 == 0) {
      v1::UpsertWorkloadRequest req;
      *req.mutable_workload() = churn(n, apps);
      v1::UpsertWorkloadResponse resp;
      const double s = timedCall(
          "UpsertWorkload c" + std::to_string(n), *c.agent, 30,
          [&](grpc::ClientContext* ctx) { return c.stub->UpsertWorkload(ctx, req, &resp); });
      upserts.add(s);
      changes.add(s);
      deltaElements = resp.change().element_adds() + resp.change().element_removes();
    } else {
      v1::DeleteWorkloadRequest req;
      req.set_name("c" + std::to_string(n));
      v1::DeleteWorkloadResponse resp;
      const double s = timedCall(
          "DeleteWorkload " + req.name(), *c.agent, 30,
          [&](grpc::ClientContext* ctx) { return c.stub->DeleteWorkload(ctx, req, &resp); });
      deletes.add(s);
      changes.add(s);
    }
  }
  const v1::AgentStatus afterPairs = status(*c.stub, *c.agent);

  // 5b. New workloads that stay, arriving 0-40 ms apart: the agent promotes
  // staged interfaces in batches meanwhile, so some changes wait for a
  // promotion's transaction; their in-agent latency counts that wait.
  Stats trickles;
  std::mt19937 gaps(42);
  for (int k = 0; k < opt.trickle; ++k) {
    checkInterrupted();
    std::this_thread::sleep_for(std::chrono::milliseconds(gaps() % 41));
    v1::UpsertWorkloadRequest req;
    *req.mutable_workload() = trickle(k, apps);
    v1::UpsertWorkloadResponse resp;
    trickles.add(timedCall(
        "UpsertWorkload t" + std::to_string(k), *c.agent, 30,
        [&](grpc::ClientContext* ctx) { return c.stub->UpsertWorkload(ctx, req, &resp); }));
  }
  const double trickleSettled = waitPromoted(*c.stub, *c.agent);
  const v1::AgentStatus after = status(*c.stub, *c.agent);
  atRest();
  const Memory afterChanges = memoryOf(c.agent->pid());
  const uint64_t changesMade = uint64_t(opt.changes) + uint64_t(opt.trickle);
  if (after.workload_latency().count() != changesMade)
    throw Failure("the agent counted " + std::to_string(after.workload_latency().count()) +
                  " workload changes since its restart, " + std::to_string(changesMade) + " made");

  // 6. Stop the agent (its table stays in the kernel), check the table, then
  // the nft baseline on that same table, with no agent to repair the drift.
  stop(c);
  const size_t dispatch = dispatchEntries(ns);
  const size_t expectedDispatch =
      size_t(opt.workloads) + size_t(opt.changes % 2) + size_t(opt.trickle);
  if (dispatch != expectedDispatch)
    throw Failure("the kernel's dispatch map holds " + std::to_string(dispatch) +
                  " entries, expected " + std::to_string(expectedDispatch));
  Stats nftViaIp, nftInNs;
  for (int k = 0; k < opt.nftAdds; ++k) {
    checkInterrupted();
    auto elem = [&](int i) {
      return "{ \"x" + std::to_string(i) + "\" : goto " +
             compiler::appChainName(appName((i * 37 + 5) % apps)) + " }";
    };
    // As an operator types it: ip netns exec, then nft.
    nftViaIp.add(spawn({"ip", "netns", "exec", ns.name(), "nft", "add", "element", "inet",
                        "bulkhead", "dispatch", elem(2 * k)},
                       dir.file("nft.out")));
    // nft alone, spawned from a thread inside the namespace (as bench_apply does).
    ns.run([&] {
      nftInNs.add(spawn({"nft", "add", "element", "inet", "bulkhead", "dispatch", elem(2 * k + 1)},
                        dir.file("nft.out")));
    });
  }

  // --- the report -----------------------------------------------------------------------
  std::printf(
      "\nPolicy: %d apps, %d services, 2 GlobalPolicies as YAML (%zu files, %s bytes); "
      "%s workloads registered through the API\n",
      apps, policy.services, policy.files.size(), count(policy.bytes).c_str(),
      count(size_t(opt.workloads)).c_str());
  std::printf("Agent: %s%s, namespace %s, socket and --state-dir on %s (%s)\n",
              opt.wrap.empty() ? "" : ("under `" + opt.wrap + "`, ").c_str(),
              pidIsProcess ? "pid is the Process pid (ip and sh exec)"
                           : "pid found among the Process's descendants",
              ns.name().c_str(), opt.tmp.c_str(), filesystemOf(dir.path()).c_str());

  std::printf("\nLoading (agent pid %d)\n", int(firstPid));
  row("agent start to first answer (empty)", dur(firstReady));
  row("ApplyPolicy (client round trip)", dur(pushTime));
  row("  in the agent: compile to kernel ACK", dur(afterPush.apply_latency().max_ms() / 1e3));
  row("  change", pushed.change().summary());
  row("UpsertWorkload x " + count(size_t(opt.workloads)) + ", one after another",
      dur(regTotal) + " total, " + fmt("%.0f", double(opt.workloads) / regTotal) + " per second");
  row("  client round trip p50 / p99 / max", pct(registration));
  row("  then until all staged interfaces are in @dispatch", dur(promotedAfter));
  row("  promotions (batches) / p50 / p99 / max",
      count(loaded.promotions()) + " / " + pct(loaded.promotion_latency()));
  row("set elements (GetStatus)", count(loaded.set_elements()) + " (" +
                                      count(afterPush.set_elements()) +
                                      " after the push); in-process compile: " + count(expected));
  row("chains", std::to_string(loaded.chains()));
  row("drift repairs / last error while loading",
      std::to_string(loaded.drift_repairs()) + " / " +
          (loaded.last_error().empty() ? "none" : loaded.last_error()));
  row("state snapshot (changes append to its journal)",
      count(size_t(stateFile.st_size)) + " bytes");
  row("restart: start to first answer (restore)", dur(restartReady));

  std::printf(
      "\nMemory of the agent (/proc/<pid>/status; loaded figures at rest, 1.5 s after the last "
      "change)\n");
  row("started, empty", describe(empty));
  row("after the push (no workloads)", describe(policyOnly));
  row("after " + count(size_t(opt.workloads)) + " registrations", describe(full));
  row("restarted, restored from state (pid " + std::to_string(secondPid) + ")",
      describe(afterRestart));
  row("after the changes", describe(afterChanges));
  char cpu[64];
  std::snprintf(cpu, sizeof cpu, "%.2f%% of one CPU (%.1f ms a second)", 100 * idleCpu,
                1000 * idleCpu);
  row("CPU at rest, loaded (" + std::to_string(opt.idle) + " s after the registrations)", cpu);

  std::printf("\nOne-workload changes at %s workloads, after the restart (p50 / p99 / max)\n",
              count(size_t(opt.workloads)).c_str());
  row("client round trip, all " + std::to_string(changes.samples.size()), pct(changes));
  row("  UpsertWorkload (new workload)", pct(upserts));
  row("  DeleteWorkload (that workload)", pct(deletes));
  row("  element changes per upsert", count(deltaElements));
  row("  in the agent: compile to kernel ACK", pct(afterPairs.workload_latency()) + " (" +
                                                   count(afterPairs.workload_latency().count()) +
                                                   " changes)");
  row("new workloads kept, 0-40 ms apart: client", pct(trickles));
  row("  promotions meanwhile / p50 / p99 / max",
      count(after.promotions() - afterPairs.promotions()) + " / " + pct(after.promotion_latency()));
  row("  all staged interfaces in @dispatch after", dur(trickleSettled));
  row("in the agent, all " + count(after.workload_latency().count()) + " changes above",
      pct(after.workload_latency()));
  row("ip netns exec NS nft add element (1 entry)", pct(nftViaIp));
  row("nft add element, spawned in the namespace", pct(nftInNs));
  row("ratio client round trip / ip netns exec nft",
      fmt("%.3f", changes.median() / nftViaIp.median()) + " (p50)");
  row("ratio in the agent / ip netns exec nft",
      fmt("%.3f", after.workload_latency().p50_ms() / 1e3 / nftViaIp.median()) + " (p50)");
  row("drift repairs / last error", std::to_string(after.drift_repairs()) + " / " +
                                        (after.last_error().empty() ? "none" : after.last_error()));

  const std::string rssGoal = "agent RSS loaded: " + mib(full.rssKb) + " (goal <= 64 MiB)";
  const double p99 = after.workload_latency().p99_ms();
  const std::string p99Goal =
      "one-workload change in the agent p99 (all changes): " + fmt("%.2f ms", p99) +
      " (goal <= 5 ms)";
  std::printf("\nGoals (informational; timings never fail the run)\n");
  std::printf("  %s\n", goalLine(full.rssKb <= 64 * 1024, rssGoal).c_str());
  std::printf("  %s\n", goalLine(p99 <= 5.0, p99Goal).c_str());
  std::printf("  info  set elements: %s (goal context: ~120,000)\n",
              count(loaded.set_elements()).c_str());
  std::printf("\nBench wall time %s\n", dur(secondsSince(started)).c_str());
  std::fflush(stdout);

  auto& r = report();
  const double n = opt.workloads;
  r.figure("ApplyPolicy round trip", "bulkhead-agent", n, pushTime, "s");
  r.figure("registrations per second", "bulkhead-agent", n, double(opt.workloads) / regTotal,
           "1/s");
  r.figure("registration round trip p50", "bulkhead-agent", n, registration.median(), "s");
  r.figure("CPU at rest, loaded", "bulkhead-agent", n, idleCpu, "CPU");
  r.figure("registration round trip p99", "bulkhead-agent", n, registration.quantile(0.99), "s");
  r.figure("one-workload change p50", "bulkhead-agent client", n, changes.median(), "s");
  r.figure("one-workload change p50", "bulkhead-agent in agent", n,
           after.workload_latency().p50_ms() / 1e3, "s");
  r.figure("one-workload change p99", "bulkhead-agent in agent", n, p99 / 1e3, "s");
  r.figure("one-workload change p50", "ip netns exec nft add element", n, nftViaIp.median(), "s");
  r.figure("restart to first answer", "bulkhead-agent", n, restartReady, "s");
  r.figure("RSS loaded", "bulkhead-agent", n, full.rssKb / 1024.0, "MiB");
  r.goal("agent RSS loaded", full.rssKb <= 64 * 1024, full.rssKb / 1024.0, 64, rssGoal);
  r.goal("one-workload change in the agent p99", p99 <= 5.0, p99, 5.0, p99Goal);
  r.write();
  return 0;
}
}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_agent", bulkhead::bench::run, argc, argv);
}
