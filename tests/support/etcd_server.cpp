#include "support/etcd_server.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "support/certs.h"
#include "support/netns.h"
#include "support/scratch.h"

namespace bulkhead::testing {
namespace {

constexpr int kServeTimeoutMs = 20000;
constexpr auto kRestartRetryFor = std::chrono::seconds(10);

bool bindable(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A free port below the kernel's ephemeral range (ip_local_port_range):
// while an etcd is down for a restart, its port cannot be handed to an
// outgoing connection or to another process's bind(0). Another test
// process drawing the same port in that window is left to restart()'s
// retries.
uint16_t freePort() {
  int low = 32768, high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  static std::mt19937 random(std::random_device{}());
  // bindable() holds nothing: without this, two draws of one process (a
  // member's client and peer ports) could return the same port.
  static std::set<uint16_t> handedOut;
  const int first = 10000, last = std::max(first + 1000, low - 1);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = uint16_t(std::uniform_int_distribution<int>(first, last)(random));
    if (!handedOut.count(port) && bindable(port)) {
      handedOut.insert(port);
      return port;
    }
  }
  return 0;
}

std::string clientUrl(const EtcdMember& m, bool tls) {
  return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(m.clientPort);
}
std::string peerUrl(const EtcdMember& m) {
  return "http://127.0.0.1:" + std::to_string(m.peerPort);
}

std::vector<std::string> memberArgs(const EtcdMember& m, const EtcdTls& tls,
                                    const std::filesystem::path& certDir,
                                    const std::string& initialCluster) {
  std::vector<std::string> args = {"/usr/bin/etcd",
                                   "--name",
                                   m.name,
                                   "--data-dir",
                                   m.dataDir.string(),
                                   "--listen-client-urls",
                                   clientUrl(m, tls.enabled),
                                   "--advertise-client-urls",
                                   clientUrl(m, tls.enabled),
                                   "--listen-peer-urls",
                                   peerUrl(m),
                                   "--initial-advertise-peer-urls",
                                   peerUrl(m),
                                   "--initial-cluster",
                                   initialCluster,
                                   "--initial-cluster-token",
                                   m.dataDir.parent_path().filename().string(),
                                   "--initial-cluster-state",
                                   "new",
                                   "--log-level",
                                   "warn",
                                   "--logger",
                                   "zap"};
  if (tls.enabled) {
    for (const std::string& a : {"--cert-file=" + (certDir / "server.crt").string(),
                                 "--key-file=" + (certDir / "server.key").string(),
                                 "--trusted-ca-file=" + (certDir / "ca.crt").string()})
      args.push_back(a);
    if (tls.clientCertAuth) args.push_back("--client-cert-auth");
  }
  return args;
}

pid_t spawn(const std::vector<std::string>& args, const std::filesystem::path& logFile) {
  // Everything allocated before fork: the test process has gRPC's threads,
  // and the child may only make system calls.
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int fd = ::open(logFile.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t pid = ::fork();
  if (pid != 0) {
    ::close(fd);
    return pid;
  }
  // The child: dies with the test process, whatever happens to it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

void signalAndReap(EtcdMember& m, int sig) {
  if (m.pid <= 0) return;
  ::kill(m.pid, sig);
  ::waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

bool alive(EtcdMember& m) {
  if (m.pid <= 0) return false;
  if (::waitpid(m.pid, nullptr, WNOHANG) == m.pid) {
    m.pid = -1;
    return false;
  }
  return true;
}

// True once a get through `options` succeeds (a leader exists). A fresh
// client per attempt: a connection made while etcd is still starting can
// hang for seconds before etcd answers its HTTP/2 handshake.
bool waitServing(EtcdMember& m, etcd::ClientOptions options) {
  options.requestTimeout = std::chrono::milliseconds(300);
  std::string lastError;
  const bool serving = waitFor(
      [&] {
        if (!alive(m)) return true;
        auto client = etcd::Client::connect(options);
        if (!client) {
          lastError = client.error().describe();
          return false;
        }
        auto r = (*client)->get("/health-probe");
        if (!r) lastError = r.error().describe();
        return r.ok();
      },
      kServeTimeoutMs);
  if (serving && alive(m)) return true;
  std::ofstream(m.logFile, std::ios::app) << "[test] not serving: " << lastError << "\n";
  return false;
}

// Starts m and waits until it serves. etcd exits at once when its port is
// taken: by another process that probes a port (a bind without listen),
// or, rarely, by another test's etcd. It is started again on the same
// ports for a while: a probe closes within moments.
bool startServing(EtcdMember& m, const std::vector<std::string>& args,
                  const etcd::ClientOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    m.pid = spawn(args, m.logFile);
    if (waitServing(m, options)) return true;
    if (alive(m) || std::chrono::steady_clock::now() - start > kRestartRetryFor) return false;
    std::ofstream(m.logFile, std::ios::app) << "[test] etcd exited; starting it again\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

EtcdMember makeMember(const std::filesystem::path& dir, int index) {
  EtcdMember m;
  m.name = "m" + std::to_string(index);
  m.clientPort = freePort();
  m.peerPort = freePort();
  m.dataDir = dir / (m.name + ".data");
  m.logFile = dir / (m.name + ".log");
  return m;
}

bool makeCerts(const std::filesystem::path& dir) {
  return makeTestCa(dir).ok() &&
         makeSignedCert(dir, "server", "/CN=etcd-test",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                        "extendedKeyUsage=serverAuth,clientAuth")
             .ok() &&
         makeSignedCert(dir, "client", "/CN=bulkhead-controller", "extendedKeyUsage=clientAuth")
             .ok();
}

}  // namespace

EtcdServer::EtcdServer(EtcdTls tls) : tls_(tls), dir_(scratchPath("bulkhead-etcd")) {
  std::filesystem::create_directories(dir_);
  if (tls_.enabled && !makeCerts(dir_)) {
    ADD_FAILURE() << "cannot make test certificates in " << dir_;
    return;
  }
  member_ = makeMember(dir_, 0);
  ok_ = restart();
  if (!ok_) ADD_FAILURE() << "etcd did not start:\n" << log();
}

EtcdServer::~EtcdServer() {
  signalAndReap(member_, SIGKILL);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string EtcdServer::endpoint() const {
  return clientUrl(member_, tls_.enabled);
}

etcd::ClientOptions EtcdServer::clientOptions() const {
  etcd::ClientOptions options;
  options.endpoints = {endpoint()};
  if (tls_.enabled) {
    options.caFile = (dir_ / "ca.crt").string();
    options.certFile = (dir_ / "client.crt").string();
    options.keyFile = (dir_ / "client.key").string();
  }
  return options;
}

void EtcdServer::stop() {
  signalAndReap(member_, SIGTERM);
}
void EtcdServer::kill() {
  signalAndReap(member_, SIGKILL);
}

bool EtcdServer::restart() {
  signalAndReap(member_, SIGKILL);
  const std::string cluster = member_.name + "=" + peerUrl(member_);
  return startServing(member_, memberArgs(member_, tls_, dir_, cluster), clientOptions());
}

Status EtcdServer::compact(int64_t revision) {
  auto client = etcd::Client::connect(clientOptions());
  if (!client) return client.takeError();
  return (*client)->compact(revision);
}

std::string EtcdServer::log() const {
  return readAll(member_.logFile.string());
}

EtcdCluster::EtcdCluster(int members) : dir_(scratchPath("bulkhead-etcd-cluster")) {
  // A member that exits at once found one of its ports taken (by another
  // process's probe or etcd): the whole cluster starts again on new ports,
  // since every member's peer URL is in every member's initial cluster.
  for (int attempt = 0; attempt < 3 && !ok_; ++attempt) {
    for (auto& m : members_)
      signalAndReap(m, SIGKILL);
    ok_ = start(members);
  }
  if (!ok_) {
    for (size_t i = 0; i < members_.size(); ++i)
      ADD_FAILURE() << "etcd member " << i << ":\n" << log(int(i));
  }
}

bool EtcdCluster::start(int members) {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  std::filesystem::create_directories(dir_);
  members_.clear();
  initialCluster_.clear();
  for (int i = 0; i < members; ++i) {
    members_.push_back(makeMember(dir_, i));
    initialCluster_ += (i ? "," : "") + members_[i].name + "=" + peerUrl(members_[i]);
  }
  for (auto& m : members_)
    m.pid = spawn(memberArgs(m, {}, dir_, initialCluster_), m.logFile);
  bool all = true;
  for (size_t i = 0; i < members_.size(); ++i) {
    etcd::ClientOptions options;
    options.endpoints = {clientUrl(members_[i], false)};
    all = waitServing(members_[i], options) && all;
  }
  return all;
}

EtcdCluster::~EtcdCluster() {
  for (auto& m : members_)
    signalAndReap(m, SIGKILL);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (const auto& m : members_)
    out.push_back(clientUrl(m, false));
  return out;
}

etcd::ClientOptions EtcdCluster::clientOptions() const {
  etcd::ClientOptions options;
  options.endpoints = endpoints();
  return options;
}

void EtcdCluster::killMember(int i) {
  signalAndReap(members_.at(size_t(i)), SIGKILL);
}

bool EtcdCluster::restartMember(int i) {
  auto& m = members_.at(size_t(i));
  signalAndReap(m, SIGKILL);
  etcd::ClientOptions options;
  options.endpoints = {clientUrl(m, false)};
  return startServing(m, memberArgs(m, {}, dir_, initialCluster_), options);
}

std::string EtcdCluster::log(int i) const {
  return readAll(members_.at(size_t(i)).logFile.string());
}

}  // namespace bulkhead::testing
