// bench_controller: the real bulkhead-controller binary with N simulated
// agents in this process, each on its own gRPC channel and stream (the
// callback API, as the controller's side), each reporting 10 local
// workloads and acking every revision as an agent does. A bundle of 100
// apps; each app reaches the next one through an appSelector service, so a
// host needs the workloads of the ~10 apps its own apps select and nothing
// else (span filtering).
//
//   build/tests/bench/bench_controller [--agents=100,1000] [--runs=N]
//   build/tests/bench/bench_controller --etcd [--agents=1000] [--runs=N]
//
// Figures, per N:
//   - a policy change: push -> each host has the revision (p50/p99/max), and
//     push -> every host acked (WatchRollout done);
//   - one workload registered on one host -> every interested host has it
//     (p99), and the bytes the controller sent per host for it;
//   - the controller's RSS with N agents connected;
//   - reconnect storm: controller stopped and started from its state, until
//     every agent has its snapshot again.
// Goals at 1,000 agents (the issue's): policy p99 <= 1 s, workload p99 <=
// 1 s, RSS <= 200 MiB, reconnect storm <= 10 s.
//
// --etcd: a real etcd (/usr/bin/etcd on loopback, tests/support's launcher)
// and two controllers on it (--etcd URL), the agents half on each (even
// hosts on A, odd on B). The policy change is pushed to A; the workload is
// registered on a host of A and reaches interested hosts on both. Instead
// of the storm, failover: A is SIGKILLed, its agents dial B with the
// revision they hold (as the agent's ControllerLink moves to the next
// controller), until each has B's snapshot at the current revision (goal
// <= 10 s); then a push to B reaches everyone. Also the RSS of each
// controller and etcd's database size with the fleet's 10 workloads per
// host registered. Reported as bench_controller_etcd.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "bench_report.h"
#include "bench_util.h"
#include "bulkhead/v1/controller.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "support/etcd_server.h"

#ifndef BULKHEAD_BINARY_DIR
#error "BULKHEAD_BINARY_DIR must be defined"
#endif

namespace bulkhead::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kApps = 100;
constexpr int kWorkloadsPerHost = 10;

std::string appName(int i) {
  return "app" + std::to_string(((i % kApps) + kApps) % kApps);
}

// 100 apps; app i egresses to api-(i+1) = the workloads of app i+1, and to
// one CIDR service; a GlobalPolicy denies dev -> pci.
std::string bundleYaml(int revision) {
  std::string y = "# revision " + std::to_string(revision) + "\n";
  for (int i = 0; i < kApps; ++i) {
    y += "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: " + appName(i) +
         ", labels: {env: " + (i % 2 ? "prod" : "dev") + "}}\nspec:\n  egress:\n    - to: [api-" +
         appName(i + 1) + ", ext" + std::to_string(i) + "]\n---\n";
    y += "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: api-" + appName(i) +
         "}\nspec:\n  appSelector: {app: " + appName(i) + "}\n  ports: [tcp/8443]\n---\n";
    y += "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: ext" + std::to_string(i) +
         ", labels: {zone: " + (i % 10 ? "std" : "pci") +
         "}}\nspec:\n  endpoints:\n    - cidrs: [100.64." + std::to_string(i) +
         ".0/24]\n      ports: [tcp/443]\n---\n";
  }
  y += "apiVersion: bulkhead/v1\nkind: GlobalPolicy\nmetadata: {name: pci}\nspec:\n  rules:\n"
       "    - action: deny\n      from: {env: dev}\n      toSelector: {zone: pci}\n";
  return y;
}

v1::Workload makeWorkload(int host, int k, const std::string& name, int app) {
  v1::Workload w;
  w.set_name(name);
  w.set_app(appName(app));
  const uint32_t a = 0x64600000u + uint32_t(host) * 32 + uint32_t(k);  // 100.96.0.0/12
  w.add_addresses(std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
                  std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255));
  (*w.mutable_labels())["tier"] = "t" + std::to_string(app % 5);
  return w;
}

// What every simulated agent records, for the main thread to wait on.
struct Fleet {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> snapshots;  // per agent: snapshots received
  std::vector<uint64_t> revision;   // per agent: the last policy revision received
  std::vector<double> revisionAt;   // per agent: when it arrived
  std::vector<double> upsertAt;     // per agent: when `watchName` arrived
  std::string watchName;
  Clock::time_point t0;
  std::atomic<uint64_t> bytes{0};  // of every message but keepalives
  std::atomic<int> live{0};

  explicit Fleet(int n) : snapshots(n, 0), revision(n, 0), revisionAt(n, -1), upsertAt(n, -1) {}

  template <class Pred>
  bool waitFor(Pred pred, double seconds) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::duration<double>(seconds), pred);
  }
};

class SimAgent : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ControllerMessage> {
 public:
  SimAgent(Fleet& fleet, int index, const std::string& host, std::vector<v1::Workload> workloads)
      : fleet_(fleet), index_(index), host_(host), workloads_(std::move(workloads)) {}

  void start(v1::Controller::Stub& stub, uint64_t applied) {
    context_ = std::make_unique<grpc::ClientContext>();
    stub.async()->Connect(context_.get(), this);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_host(host_);
    hello.mutable_hello()->set_agent_version("bench");
    hello.mutable_hello()->set_applied_revision(applied);
    hello.mutable_hello()->set_remote_batches(true);
    for (const auto& w : workloads_)
      *hello.mutable_hello()->add_workloads() = w;
    send(std::move(hello));
    StartRead(&in_);
    StartCall();
    fleet_.live++;
  }

  void send(v1::AgentMessage m) {
    bool write = false;
    {
      std::lock_guard lock(mu_);
      if (done_) return;
      queue_.push_back(std::move(m));
      if (!writing_) {
        writing_ = write = true;
        current_ = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (write) StartWrite(&current_);
  }

  void OnWriteDone(bool ok) override {
    bool write = false;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (ok && !queue_.empty()) {
        writing_ = write = true;
        current_ = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (write) StartWrite(&current_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    const double at = secondsSince(fleet_.t0);
    if (!in_.has_keepalive()) fleet_.bytes += in_.ByteSizeLong();
    uint64_t revision = 0;
    if (in_.has_snapshot() && in_.snapshot().has_policy())
      revision = in_.snapshot().policy().revision();
    if (in_.has_policy()) revision = in_.policy().revision();
    if (revision) {
      applied_ = revision;
      v1::AgentMessage ack;
      ack.mutable_ack()->set_revision(revision);
      ack.mutable_ack()->set_applied(true);
      send(std::move(ack));
    }
    // The main thread is woken only by what it waits for: with 1,000
    // agents, waking it for every remote change costs more than the changes.
    bool notify = false;
    {
      std::lock_guard lock(fleet_.mu);
      if (in_.has_snapshot()) {
        fleet_.snapshots[index_]++;
        notify = true;
      }
      if (revision) {
        fleet_.revision[index_] = revision;
        fleet_.revisionAt[index_] = at;
        notify = true;
      }
      if (!fleet_.watchName.empty() && upserts(in_, fleet_.watchName)) {
        fleet_.upsertAt[index_] = at;
        notify = true;
      }
    }
    if (notify) fleet_.cv.notify_all();
    StartRead(&in_);
  }

  void OnDone(const grpc::Status&) override {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    fleet_.live--;
    std::lock_guard lock(fleet_.mu);
    finished_ = true;
    fleet_.cv.notify_all();
  }

  static bool upserts(const v1::ControllerMessage& m, const std::string& name) {
    if (m.has_remote_upsert()) return m.remote_upsert().name() == name;
    for (const auto& w : m.remote_batch().upserts())
      if (w.name() == name) return true;
    return false;
  }

  bool finished() const { return finished_; }
  void cancel() {
    if (context_) context_->TryCancel();
  }
  uint64_t applied() const { return applied_; }

 private:
  Fleet& fleet_;
  int index_;
  std::string host_;
  std::vector<v1::Workload> workloads_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::ControllerMessage in_;
  std::mutex mu_;
  std::deque<v1::AgentMessage> queue_;
  v1::AgentMessage current_;
  bool writing_ = false;
  bool done_ = false;
  bool finished_ = false;  // under fleet_.mu
  std::atomic<uint64_t> applied_{0};
};

// The controller binary, stopped with SIGTERM on destruction. Its store:
// `storeArgs` (--etcd URL), or DIR/state.
class ControllerProcess {
 public:
  ControllerProcess(const std::string& dir, std::vector<std::string> storeArgs = {}) : dir_(dir) {
    const std::string log = dir + "/controller.log";
    if (storeArgs.empty()) storeArgs = {"--state-dir", dir + "/state"};
    // Everything allocated before fork: this process has gRPC's threads.
    std::vector<std::string> args = {std::string(BULKHEAD_BINARY_DIR) + "/bulkhead-controller",
                                     "--listen", "unix://" + socket()};
    args.insert(args.end(), storeArgs.begin(), storeArgs.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // gone with the bench, whatever happens to it
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fd);
    if (pid_ < 0) throw Failure("fork");
    // Serving once the socket accepts.
    for (int i = 0; i < 500; ++i) {
      if (accepts()) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw Failure("bulkhead-controller exited at start: " + readFile(log));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw Failure("bulkhead-controller did not start serving in 5 s");
  }
  ~ControllerProcess() { stop(); }
  void stop() { signal(SIGTERM); }
  void kill() { signal(SIGKILL); }
  std::string socket() const { return dir_ + "/controller.sock"; }
  // The controller's warnings, for a failure's message.
  std::string warnings() const {
    std::istringstream in(readFile(dir_ + "/controller.log"));
    std::deque<std::string> last;
    for (std::string line; std::getline(in, line);)
      if (line.find(" warning ") != std::string::npos ||
          line.find(" error ") != std::string::npos) {
        last.push_back(line);
        if (last.size() > 8) last.pop_front();
      }
    std::string out;
    for (const auto& l : last)
      out += "\n  " + l;
    return out;
  }
  // User + system CPU seconds the controller used so far.
  double cpuSeconds() const {
    const std::string s = readFile("/proc/" + std::to_string(pid_) + "/stat");
    const auto close = s.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream in(s.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && in >> field; ++i)
      if (i == 14 || i == 15) ticks += std::atof(field.c_str());
    return ticks / double(::sysconf(_SC_CLK_TCK));
  }
  // VmRSS and VmHWM in MiB.
  std::pair<double, double> rss() const {
    const std::string s = readFile("/proc/" + std::to_string(pid_) + "/status");
    auto field = [&](const char* name) {
      const auto at = s.find(name);
      return at == std::string::npos ? 0.0 : std::atof(s.c_str() + at + std::strlen(name)) / 1024;
    };
    return {field("VmRSS:"), field("VmHWM:")};
  }

 private:
  void signal(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  bool accepts() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socket().copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
  }
  std::string dir_;
  pid_t pid_ = -1;
};

struct Options {
  std::vector<int> agents{100, 1000};
  int runs = 5;
  bool etcd = false;  // two controllers on a real etcd
};

Options parse(int argc, char** argv) {
  Options o;
  bool agentsSet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--etcd") {
      o.etcd = true;
    } else if (a.rfind("--agents=", 0) == 0) {
      agentsSet = true;
      o.agents.clear();
      std::stringstream s(a.substr(9));
      std::string n;
      while (std::getline(s, n, ','))
        if (auto v = positiveFlag("--agents=" + n, "--agents=")) o.agents.push_back(*v);
    } else if (auto v = positiveFlag(a, "--runs=")) {
      o.runs = *v;
    } else {
      throw Failure("usage: bench_controller [--etcd] [--agents=100,1000] [--runs=N]");
    }
  }
  if (o.etcd && !agentsSet) o.agents = {1000};
  return o;
}

// One fleet of n agents against one controller, or, with an etcd
// endpoint, against two controllers on it (agent h on controller h % 2).
class Rig {
 public:
  Rig(int n, const std::string& dir, const std::string& etcd = {})
      : n_(n), dir_(dir), etcd_(etcd), fleet_(n), stubs_(n), at_(n, 0), agents_(n) {
    fleet_.t0 = Clock::now();
    const int controllers = etcd.empty() ? 1 : 2;
    for (int c = 0; c < controllers; ++c) {
      controllers_.push_back(startController(c));
      operators_.push_back(stub(c));
    }
    if (controllers == 2)
      for (int h = 0; h < n_; ++h)
        at_[h] = h % 2;
    startKeepAlives();
  }
  ~Rig() {
    stopKeepAlives();
    for (auto& a : agents_)
      if (a) a->cancel();
    fleet_.waitFor([&] { return fleet_.live.load() == 0; }, 10);
    for (auto& c : controllers_)
      c->stop();
  }

  std::unique_ptr<ControllerProcess> startController(int c) const {
    if (etcd_.empty()) return std::make_unique<ControllerProcess>(dir_);
    const std::string dir = dir_ + "/" + char('a' + c);
    std::filesystem::create_directories(dir);
    return std::make_unique<ControllerProcess>(dir, std::vector<std::string>{"--etcd", etcd_});
  }

  std::unique_ptr<v1::Controller::Stub> stub(int c = 0) const {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    return v1::Controller::NewStub(grpc::CreateCustomChannel(
        "unix:" + controllers_[c]->socket(), grpc::InsecureChannelCredentials(), args));
  }

  uint64_t push(int revision, int c = 0) {
    grpc::ClientContext ctx;
    v1::PushPolicyRequest req;
    auto* f = req.add_files();
    f->set_name("fleet.yaml");
    f->set_content(bundleYaml(revision));
    v1::PushPolicyResponse resp;
    auto st = operators_[c]->PushPolicy(&ctx, req, &resp);
    if (!st.ok()) throw Failure("PushPolicy: " + st.error_message());
    return resp.revision();
  }

  std::vector<v1::Workload> workloadsOf(int h) const {
    std::vector<v1::Workload> out;
    for (int k = 0; k < kWorkloadsPerHost; ++k)
      out.push_back(makeWorkload(h, k, "w" + std::to_string(k), h * kWorkloadsPerHost + k));
    return out;
  }

  // A new stream for agent h to controller at_[h], saying it holds
  // `applied`. Under agentsMu_.
  void dialLocked(int h, uint64_t applied) {
    if (agents_[h]) graveyard_.push_back(std::move(agents_[h]));
    auto& stub = stubs_[h][size_t(at_[h])];
    if (!stub) stub = this->stub(at_[h]);
    agents_[h] = std::make_unique<SimAgent>(fleet_, h, "host-" + std::to_string(h), workloadsOf(h));
    agents_[h]->start(*stub, applied);
  }

  // Connects (or reconnects) every agent whose stream ended; waits until
  // each has `snapshots` snapshots.
  double connectAll(uint64_t snapshots, double timeout) {
    const auto start = Clock::now();
    std::mt19937 rng(7);
    while (secondsSince(start) < timeout) {
      for (int h = 0; h < n_; ++h) {
        {
          std::lock_guard lock(fleet_.mu);
          if (fleet_.snapshots[h] >= snapshots) continue;
          if (agents_[h] && !agents_[h]->finished()) continue;
        }
        // An agent whose stream ended dials again (every agent, at once:
        // the storm), on a channel of its own.
        std::lock_guard lock(agentsMu_);
        dialLocked(h, agents_[h] ? lastApplied_ : 0);
      }
      if (fleet_.waitFor(
              [&] {
                for (int h = 0; h < n_; ++h)
                  if (fleet_.snapshots[h] < snapshots) return false;
                return true;
              },
              0.1 + std::uniform_real_distribution<double>(0, 0.1)(rng)))
        return secondsSince(start);
      checkInterrupted();
    }
    throw Failure("not every agent got its snapshot within " + dur(timeout));
  }

  void startKeepAlives() {
    keepAlive_ = std::thread([this] {
      std::unique_lock lock(kaMu_);
      while (!kaStop_) {
        kaCv_.wait_for(lock, std::chrono::seconds(4));
        if (kaStop_) break;
        std::lock_guard agentsLock(agentsMu_);
        for (auto& a : agents_) {
          v1::AgentMessage m;
          m.mutable_keepalive()->set_sent_unix_ms(1);
          if (a) a->send(std::move(m));
        }
      }
    });
  }
  void stopKeepAlives() {
    {
      std::lock_guard lock(kaMu_);
      kaStop_ = true;
    }
    kaCv_.notify_all();
    if (keepAlive_.joinable()) keepAlive_.join();
  }

  // Push to controller c -> each host got the revision; push -> rollout
  // done (as controller c sees the fleet).
  void policyChange(int revisionSeed, Stats& perHost, Stats& allAcked, int c = 0) {
    const double t0 = secondsSince(fleet_.t0);
    const uint64_t revision = push(revisionSeed, c);
    // On etcd the revision is etcd's: higher, not necessarily by one.
    if (revision <= controllerRevision_ || (etcd_.empty() && revision != controllerRevision_ + 1))
      throw Failure("push did not make a new revision");
    controllerRevision_ = lastApplied_ = revision;
    grpc::ClientContext ctx;
    v1::WatchRolloutRequest req;
    req.set_revision(revision);
    req.set_timeout_seconds(60);
    auto reader = operators_[c]->WatchRollout(&ctx, req);
    v1::RolloutProgress p;
    bool done = false;
    while (reader->Read(&p))
      done = p.done() && p.acked() == p.total();
    if (!reader->Finish().ok() || !done)
      throw Failure("rollout did not finish with every host acked; controller:" +
                    controllers_[c]->warnings());
    allAcked.add(secondsSince(fleet_.t0) - t0);
    if (!fleet_.waitFor(
            [&] {
              return std::all_of(fleet_.revision.begin(), fleet_.revision.end(),
                                 [&](uint64_t v) { return v >= revision; });
            },
            30))
      throw Failure("not every agent got revision " + std::to_string(revision) + "; " +
                    std::to_string(fleet_.live.load()) +
                    " streams live; controller:" + controllers_[c]->warnings());
    std::lock_guard lock(fleet_.mu);
    for (int h = 0; h < n_; ++h)
      if (fleet_.revision[h] == revision) perHost.add(fleet_.revisionAt[h] - t0);
  }

  // One workload on one host (of controller A) -> every host whose apps
  // select its app.
  void workloadChange(int run, Stats& perHost, Stats& bytesPerHost, Stats& bytesPerInterested,
                      int* interestedElsewhere) {
    int h = (run * 37 + 11) % n_;
    if (at_[h] != 0) h = (h + 1) % n_;
    const int app = run * 13 + 5;
    const std::string name = "new-" + std::to_string(run);
    // Interested: hosts with a workload of app-1 (it egresses to api-app).
    std::vector<int> interested;
    for (int g = 0; g < n_; ++g) {
      if (g == h) continue;
      for (int k = 0; k < kWorkloadsPerHost; ++k)
        if (appName(g * kWorkloadsPerHost + k) == appName(app - 1)) {
          interested.push_back(g);
          if (at_[g] != at_[h]) ++*interestedElsewhere;
          break;
        }
    }
    if (interested.empty()) throw Failure("no host is interested: the bench's layout is wrong");
    {
      std::lock_guard lock(fleet_.mu);
      std::fill(fleet_.upsertAt.begin(), fleet_.upsertAt.end(), -1);
      fleet_.watchName = name;
    }
    const uint64_t bytes0 = fleet_.bytes;
    const double t0 = secondsSince(fleet_.t0);
    v1::AgentMessage m;
    *m.mutable_workload()->mutable_upsert() = makeWorkload(h, 10 + run % 22, name, app);
    agents_[h]->send(std::move(m));
    if (!fleet_.waitFor(
            [&] {
              for (int g : interested)
                if (fleet_.upsertAt[g] < 0) return false;
              return true;
            },
            30))
      throw Failure("not every interested host got " + name);
    // Anything else it caused arrives meanwhile (nothing, with span filtering).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const double sent = double(fleet_.bytes - bytes0);
    bytesPerHost.add(sent / n_);
    bytesPerInterested.add(sent / double(interested.size()));
    std::lock_guard lock(fleet_.mu);
    for (int g : interested)
      perHost.add(fleet_.upsertAt[g] - t0);
    for (int g = 0; g < n_; ++g)
      if (fleet_.upsertAt[g] >= 0 &&
          std::find(interested.begin(), interested.end(), g) == interested.end())
        throw Failure("host-" + std::to_string(g) + " got " + name + " without selecting it");
  }

  double storm(double* cpu) {
    controllers_[0]->stop();
    // Every stream ends; the agents notice.
    fleet_.waitFor([&] { return fleet_.live.load() == 0; }, 20);
    uint64_t target = 0;
    {
      std::lock_guard lock(fleet_.mu);
      target = *std::max_element(fleet_.snapshots.begin(), fleet_.snapshots.end()) + 1;
    }
    const auto start = Clock::now();
    controllers_[0] = startController(0);
    operators_[0] = stub(0);
    {
      std::lock_guard lock(agentsMu_);
      for (auto& s : stubs_)
        s = {};
    }
    connectAll(target, 300);
    *cpu = controllers_[0]->cpuSeconds();
    return secondsSince(start);
  }

  struct Failover {
    int moved = 0;        // agents that were on A
    double total = 0;     // kill -> every one of them in sync on B
    double lastDial = 0;  // kill -> the last of them dialled B (its stream ended)
    Stats dialToSync;     // per agent: dialled B -> B's snapshot
  };

  // SIGKILL controller A; each of its agents, once its stream has ended,
  // dials B with the revision it holds. Until every one of them has B's
  // snapshot at the current revision.
  Failover failover() {
    Failover out;
    std::vector<int> onA;
    std::vector<uint64_t> before(n_);
    {
      std::lock_guard lock(fleet_.mu);
      for (int h = 0; h < n_; ++h)
        if (at_[h] == 0) onA.push_back(h);
      before = fleet_.snapshots;
    }
    out.moved = int(onA.size());
    const uint64_t current = controllerRevision_;
    std::vector<double> dialAt(n_, -1);
    const auto start = Clock::now();
    const double start0 = secondsSince(fleet_.t0);
    controllers_[0]->kill();
    while (secondsSince(start) < 60) {
      for (int h : onA) {
        if (at_[h] == 1) continue;
        {
          std::lock_guard lock(fleet_.mu);
          if (!agents_[h]->finished()) continue;
        }
        std::lock_guard lock(agentsMu_);
        at_[h] = 1;
        dialAt[h] = secondsSince(fleet_.t0);
        dialLocked(h, agents_[h]->applied());
      }
      if (fleet_.waitFor(
              [&] {
                for (int h : onA)
                  if (fleet_.snapshots[h] <= before[h] || fleet_.revision[h] < current)
                    return false;
                return true;
              },
              0.02)) {
        out.total = secondsSince(start);
        std::lock_guard lock(fleet_.mu);
        for (int h : onA) {
          out.lastDial = std::max(out.lastDial, dialAt[h] - start0);
          out.dialToSync.add(fleet_.revisionAt[h] - dialAt[h]);
        }
        return out;
      }
      checkInterrupted();
    }
    throw Failure("the agents of the killed controller were not back in sync within 60 s; B:" +
                  controllers_[1]->warnings());
  }

  ControllerProcess& controller(int c = 0) { return *controllers_[c]; }
  int controllers() const { return int(controllers_.size()); }
  uint64_t controllerRevision_ = 0;
  uint64_t lastApplied_ = 0;

 private:
  int n_;
  std::string dir_;
  std::string etcd_;  // empty: one controller on its state directory
  Fleet fleet_;
  std::vector<std::unique_ptr<ControllerProcess>> controllers_;
  std::vector<std::unique_ptr<v1::Controller::Stub>> operators_;
  // Per agent, a channel to each controller it has dialled.
  std::vector<std::array<std::unique_ptr<v1::Controller::Stub>, 2>> stubs_;
  std::vector<int> at_;  // per agent: the controller it dials
  std::vector<std::unique_ptr<SimAgent>> agents_;
  std::vector<std::unique_ptr<SimAgent>> graveyard_;
  std::mutex agentsMu_;  // agents_ and stubs_, between connectAll and keepalives
  std::thread keepAlive_;
  std::mutex kaMu_;
  std::condition_variable kaCv_;
  bool kaStop_ = false;
};

void goal(const std::string& name, bool judged, double value, double bound,
          const std::string& text) {
  if (judged) {
    std::printf("%s\n", goalLine(value <= bound, text).c_str());
    report().goal(name, value <= bound, value, bound, text);
  } else {
    std::printf("info  %s (the goal is judged at 1,000 agents)\n", text.c_str());
  }
}

// etcd's own view of its store: Maintenance.Status of the member and the
// number of keys (a count-only range over all of them).
struct EtcdFigures {
  int64_t dbSize = 0, dbSizeInUse = 0, keys = 0;
};

EtcdFigures etcdFigures(const std::string& endpoint) {
  const std::string target = endpoint.substr(endpoint.find("://") + 3);
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  EtcdFigures out;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    etcdserverpb::StatusResponse status;
    auto st = etcdserverpb::Maintenance::NewStub(channel)->Status(&ctx, {}, &status);
    if (!st.ok()) throw Failure("etcd Maintenance.Status: " + st.error_message());
    out.dbSize = status.dbsize();
    out.dbSizeInUse = status.dbsizeinuse();
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  etcdserverpb::RangeRequest all;
  all.set_key(std::string(1, '\0'));
  all.set_range_end(std::string(1, '\0'));
  all.set_count_only(true);
  etcdserverpb::RangeResponse range;
  auto st = etcdserverpb::KV::NewStub(channel)->Range(&ctx, all, &range);
  if (!st.ok()) throw Failure("etcd count of keys: " + st.error_message());
  out.keys = range.count();
  return out;
}

// etcd's WAL fsyncs so far (count, seconds), from its /metrics: what an
// etcd write waits for.
std::pair<double, double> etcdFsyncs(const std::string& endpoint) {
  const auto out = testing::sh("curl -s --max-time 5 " + endpoint + "/metrics").out;
  auto value = [&](const std::string& name) {
    const auto at = out.find("\n" + name + " ");
    return at == std::string::npos ? 0.0 : std::atof(out.c_str() + at + name.size() + 2);
  };
  return {value("etcd_disk_wal_fsync_duration_seconds_count"),
          value("etcd_disk_wal_fsync_duration_seconds_sum")};
}

std::string fsyncsSince(const std::string& endpoint, std::pair<double, double> before) {
  const auto now = etcdFsyncs(endpoint);
  const double n = now.first - before.first;
  return fmt("%.0f etcd WAL fsyncs", n) +
         (n > 0 ? ", mean " + dur((now.second - before.second) / n) : std::string());
}

void reportPolicy(const std::string& config, int n, bool judged, const Stats& perHost,
                  const Stats& allAcked, const std::string& what) {
  std::printf(
      "%s, push -> host has it: p50 %s  p99 %s  max %s (%zu samples); push -> all "
      "acked: median %s, max %s\n",
      what.c_str(), dur(perHost.quantile(0.5)).c_str(), dur(perHost.quantile(0.99)).c_str(),
      dur(perHost.max()).c_str(), perHost.samples.size(), dur(allAcked.median()).c_str(),
      dur(allAcked.max()).c_str());
  report().figure(what + " to host p50", config, n, perHost.quantile(0.5), "s");
  report().figure(what + " to host p99", config, n, perHost.quantile(0.99), "s");
  report().figure(what + " to host max", config, n, perHost.max(), "s");
  report().figure(what + " acked by all", config, n, allAcked.median(), "s");
  goal(what + " p99", judged, perHost.quantile(0.99), 1.0,
       what + " acked by all " + std::to_string(n) + ": p99 " + dur(perHost.quantile(0.99)) +
           " (goal <= 1 s at 1,000)");
}

void reportRss(Rig& rig, const std::string& config, int n, bool judged) {
  for (int c = 0; c < rig.controllers(); ++c) {
    const std::string who = rig.controllers() > 1 ? std::string("controller ") + char('A' + c)
                                                  : std::string("controller");
    const std::string suffix = rig.controllers() > 1 ? std::string(" ") + char('A' + c) : "";
    const auto [rss, hwm] = rig.controller(c).rss();
    std::printf("%s RSS with %d agents: %.1f MiB (peak %.1f MiB)\n", who.c_str(), n, rss, hwm);
    report().figure("controller RSS" + suffix, config, n, rss, "MiB");
    report().figure("controller peak RSS" + suffix, config, n, hwm, "MiB");
    goal("controller RSS" + suffix, judged, rss, 200,
         who + " RSS at " + std::to_string(n) + " agents: " + fmt("%.1f MiB", rss) +
             " (goal <= 200 MiB at 1,000)");
  }
}

void runFleet(int n, const Options& opt) {
  char tmpl[] = "/tmp/bh-bench-ctl-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  const std::string config =
      opt.etcd ? "2 bulkhead-controllers on etcd" : std::string("bulkhead-controller");
  std::printf("\n== %d agents, %d workloads each, %d apps%s ==\n", n, kWorkloadsPerHost, kApps,
              opt.etcd ? "; two controllers on one etcd, half the agents on each" : "");
  // Declared before the rig: etcd outlives the controllers.
  std::unique_ptr<testing::EtcdServer> etcd;
  if (opt.etcd) {
    etcd = std::make_unique<testing::EtcdServer>();
    if (!etcd->ok()) throw Failure("etcd did not start: " + etcd->log());
    std::printf("%s serving at %s\n",
                trimmed(testing::sh("/usr/bin/etcd --version | head -n 1").out).c_str(),
                etcd->endpoint().c_str());
  }
  Rig rig(n, dir, etcd ? etcd->endpoint() : std::string());
  rig.controllerRevision_ = rig.lastApplied_ = rig.push(1);
  const double cpu0 = rig.controller().cpuSeconds();
  const double connect = rig.connectAll(1, 300);
  const double connectCpu = rig.controller().cpuSeconds() - cpu0;
  std::printf("all %d agents connected with their snapshots in %s (controller%s CPU %s; load %s)\n",
              n, dur(connect).c_str(), opt.etcd ? " A" : "", dur(connectCpu).c_str(),
              trimmed(readFile("/proc/loadavg")).c_str());
  report().figure("connect all, controller CPU", config, n, connectCpu, "s");
  report().figure("connect all (snapshot each)", config, n, connect, "s");
  const bool judged = n >= 1000;

  if (opt.etcd) {
    // Every host's inventory written: etcd holds the fleet's workloads.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto e = etcdFigures(etcd->endpoint());
    std::printf(
        "etcd with %d workloads (%d hosts x %d): database %.2f MiB (%.2f MiB in use), %lld keys\n",
        n * kWorkloadsPerHost, n, kWorkloadsPerHost, double(e.dbSize) / (1 << 20),
        double(e.dbSizeInUse) / (1 << 20), static_cast<long long>(e.keys));
    report().figure("etcd database size", "etcd", n * kWorkloadsPerHost,
                    double(e.dbSize) / (1 << 20), "MiB");
    report().figure("etcd database size in use", "etcd", n * kWorkloadsPerHost,
                    double(e.dbSizeInUse) / (1 << 20), "MiB");
    report().figure("etcd keys", "etcd", n * kWorkloadsPerHost, double(e.keys), "keys");
  }

  Stats perHost, allAcked;
  const auto fsyncs0 = etcd ? etcdFsyncs(etcd->endpoint()) : std::pair<double, double>{};
  for (int r = 0; r < opt.runs; ++r)
    rig.policyChange(100 + r, perHost, allAcked);
  if (etcd)
    std::printf("%d policy changes acked by all: %s\n", opt.runs,
                fsyncsSince(etcd->endpoint(), fsyncs0).c_str());
  reportPolicy(config, n, judged, perHost, allAcked,
               opt.etcd ? "policy change pushed to A" : "policy change");

  Stats reach, bytesPerHost, bytesPerInterested;
  int elsewhere = 0;
  for (int r = 0; r < opt.runs * 2; ++r)
    rig.workloadChange(r, reach, bytesPerHost, bytesPerInterested, &elsewhere);
  std::printf(
      "workload registered -> every interested host: p50 %s  p99 %s  max %s (%zu samples%s)\n",
      dur(reach.quantile(0.5)).c_str(), dur(reach.quantile(0.99)).c_str(), dur(reach.max()).c_str(),
      reach.samples.size(),
      opt.etcd ? (", " + std::to_string(elsewhere) + " of them on controller B").c_str() : "");
  std::printf(
      "bytes sent per workload change: %.1f per host of the fleet, %.0f per interested host\n",
      bytesPerHost.median(), bytesPerInterested.median());
  report().figure("workload to interested hosts p99", config, n, reach.quantile(0.99), "s");
  report().figure("bytes per host per workload change", config, n, bytesPerHost.median(), "B");
  goal("workload reach p99", judged, reach.quantile(0.99), 1.0,
       std::string("workload registered") + (opt.etcd ? " on A" : "") +
           " reaching every interested host: p99 " + dur(reach.quantile(0.99)) +
           " (goal <= 1 s at 1,000)");

  reportRss(rig, config, n, judged);

  if (opt.etcd) {
    const auto fsyncs1 = etcdFsyncs(etcd->endpoint());
    const auto f = rig.failover();
    std::printf("failover: %s\n", fsyncsSince(etcd->endpoint(), fsyncs1).c_str());
    const int moved = f.moved;
    const double failover = f.total;
    std::printf(
        "failover: controller A SIGKILLed, its %d agents on B in sync at revision %llu in %s "
        "(the last dialled B after %s; dial -> B's snapshot p50 %s, p99 %s; controller B CPU "
        "%s so far)\n",
        moved, static_cast<unsigned long long>(rig.controllerRevision_), dur(failover).c_str(),
        dur(f.lastDial).c_str(), dur(f.dialToSync.quantile(0.5)).c_str(),
        dur(f.dialToSync.quantile(0.99)).c_str(), dur(rig.controller(1).cpuSeconds()).c_str());
    report().figure("failover, agents of A in sync on B", config, n, failover, "s");
    report().figure("failover, dial to snapshot p99", config, n, f.dialToSync.quantile(0.99), "s");
    goal("failover", judged, failover, 10.0,
         "failover, " + std::to_string(moved) + " agents of the killed controller in sync on B: " +
             dur(failover) + " (goal <= 10 s at 1,000)");
    Stats after, afterAcked;
    rig.policyChange(200, after, afterAcked, 1);
    std::printf("push to B after the kill: all %zu hosts have it, p99 %s, all acked in %s\n",
                after.samples.size(), dur(after.quantile(0.99)).c_str(),
                dur(afterAcked.median()).c_str());
    report().figure("push after failover to host p99", config, n, after.quantile(0.99), "s");
    return;
  }

  double stormCpu = 0;
  const double storm = rig.storm(&stormCpu);
  std::printf(
      "reconnect storm: controller restarted from its state, %d agents back in sync in %s "
      "(controller CPU %s)\n",
      n, dur(storm).c_str(), dur(stormCpu).c_str());
  report().figure("reconnect storm, controller CPU", config, n, stormCpu, "s");
  report().figure("reconnect storm", config, n, storm, "s");
  goal("reconnect storm", judged, storm, 10.0,
       "reconnect storm, " + std::to_string(n) + " agents back in sync: " + dur(storm) +
           " (goal <= 10 s at 1,000)");
}

int run(int argc, char** argv) {
  bool etcd = false;
  for (int i = 1; i < argc; ++i)
    etcd = etcd || std::string(argv[i]) == "--etcd";
  // On etcd, a bench of its own in run-all's report.
  const char* name = etcd ? "bench_controller_etcd" : "bench_controller";
  report().init(name, argc, argv);
  const Options opt = parse(argc, argv);
  rlimit limit{65536, 65536};
  ::setrlimit(RLIMIT_NOFILE, &limit);  // a socket per agent on each side
  ::signal(SIGPIPE, SIG_IGN);
  printBanner(name);
  for (int n : opt.agents)
    runFleet(n, opt);
  report().write();
  return 0;
}

}  // namespace
}  // namespace bulkhead::bench

int main(int argc, char** argv) {
  return bulkhead::bench::benchMain("bench_controller", bulkhead::bench::run, argc, argv);
}
