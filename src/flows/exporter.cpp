// Exporters of the denied-flow feed (docs/flows.md). Each owns a bounded
// queue and a worker thread: offer() only takes a short lock to append (or
// count a drop), the worker formats and writes. Datagram targets (unix, udp,
// journald) deliver one event per datagram; stream targets (tcp, tls) frame
// with octet counting, reconnect with jittered exponential backoff, and use
// the kernel's acknowledged byte count to tell which written events the peer
// never received: those go back to the front of the queue instead of being
// lost silently.
#include "bulkhead/flows/exporter.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked (glibc's lacks it)
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

namespace bulkhead::flows {
namespace {

// Attempts an event stands for in the accounting. A summary event reports
// attempts that were not delivered; delivering it delivers none of them.
// Events with evidence fields (anomaly, automatic quarantine) are the
// agent's own findings, not attempts.
uint64_t attempts(const FlowEvent& e) {
  return e.action == "summary" || !e.fields.empty() ? 0 : e.count;
}

}  // namespace

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Largest datagram we send: below UDP's 65507 over IPv4 (and well below a
// unix socket's default send buffer).
constexpr size_t kMaxDatagram = 65000;
// How long a datagram send may wait for room (receiver's queue full).
constexpr int kDatagramWaitMs = 1000;

std::string errnoText(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

std::string sslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// Cuts s to at most max octets without splitting a UTF-8 sequence.
std::string truncateUtf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80)
    --cut;
  s.resize(cut);
  return s;
}

struct Target {
  enum class Kind { kUnix, kUdp, kTcp, kTls, kJournald } kind = Kind::kUnix;
  std::string path;  // unix, journald
  std::string host;  // udp, tcp, tls (without brackets)
  std::string port;
};

struct AddrInfoFree {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;

// The addresses of a host:port target for one socket type; null, with
// *error set, when the name does not resolve.
AddrInfoPtr resolve(const Target& t, int socktype, std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &res);
  if (rc != 0) {
    *error = "resolve " + t.host + ": " + gai_strerror(rc);
    return nullptr;
  }
  return AddrInfoPtr(res);
}

Result<Target> parseTarget(const std::string& target) {
  Target t;
  if (target == "journald" || target == "journald://") {
    t.kind = Target::Kind::kJournald;
    return t;
  }
  const auto sep = target.find("://");
  if (sep == std::string::npos)
    return makeError(ErrorCode::kInvalidInput, "flow target \"" + target +
                                                   "\": expected unix://PATH, udp://HOST:PORT, "
                                                   "tcp://HOST:PORT, tls://HOST:PORT or journald");
  const std::string scheme = target.substr(0, sep);
  const std::string rest = target.substr(sep + 3);
  if (scheme == "unix") {
    if (rest.empty() || rest[0] != '/')
      return makeError(ErrorCode::kInvalidInput,
                       "flow target \"" + target + "\": unix:// needs an absolute path");
    if (rest.size() >= sizeof(sockaddr_un{}.sun_path))
      return makeError(ErrorCode::kInvalidInput, "flow target \"" + target + "\": path too long");
    t.kind = Target::Kind::kUnix;
    t.path = rest;
    return t;
  }
  if (scheme == "udp")
    t.kind = Target::Kind::kUdp;
  else if (scheme == "tcp")
    t.kind = Target::Kind::kTcp;
  else if (scheme == "tls")
    t.kind = Target::Kind::kTls;
  else
    return makeError(ErrorCode::kInvalidInput,
                     "flow target \"" + target + "\": unknown scheme \"" + scheme + "\"");
  std::string hostPart, portPart;
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return makeError(ErrorCode::kInvalidInput,
                       "flow target \"" + target + "\": expected [IPv6]:PORT");
    hostPart = rest.substr(1, close - 1);
    portPart = rest.substr(close + 2);
    if (!policy::IpAddr::parse(hostPart) ||
        policy::IpAddr::parse(hostPart)->family != policy::Family::kIpv6)
      return makeError(ErrorCode::kInvalidInput,
                       "flow target \"" + target + "\": not an IPv6 address in brackets");
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || rest.find(':') != colon)
      return makeError(ErrorCode::kInvalidInput,
                       "flow target \"" + target + "\": expected HOST:PORT (IPv6 as [addr]:port)");
    hostPart = rest.substr(0, colon);
    portPart = rest.substr(colon + 1);
  }
  if (hostPart.empty() || hostPart.find('/') != std::string::npos)
    return makeError(ErrorCode::kInvalidInput, "flow target \"" + target + "\": missing host");
  if (portPart.empty() || portPart.size() > 5 ||
      !std::all_of(portPart.begin(), portPart.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(portPart) < 1 || std::stoi(portPart) > 65535)
    return makeError(ErrorCode::kInvalidInput,
                     "flow target \"" + target + "\": port must be 1-65535");
  t.host = hostPart;
  t.port = portPart;
  return t;
}

// The journald native protocol: KEY=VALUE\n, or for values holding a
// newline (or NUL) KEY\n + little-endian u64 length + bytes + \n.
void journalField(std::string& out, const char* key, const std::string& value) {
  out += key;
  if (value.find('\n') == std::string::npos && value.find('\0') == std::string::npos) {
    out += "=";
    out += value;
    out += "\n";
    return;
  }
  out += "\n";
  uint64_t len = value.size();
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += value;
  out += "\n";
}

std::string journalPayload(const FlowEvent& e, const FormatOptions& o) {
  std::string out;
  out.reserve(512);
  journalField(out, "MESSAGE", flowMessage(e));
  journalField(out, "PRIORITY", std::to_string(syslogSeverity(e.action)));
  journalField(out, "SYSLOG_FACILITY", std::to_string(std::clamp(o.facility, 0, 23)));
  journalField(out, "SYSLOG_IDENTIFIER", o.appName.empty() ? "bulkhead-agent" : o.appName);
  journalField(out, "BULKHEAD_TIME", rfc3339Micros(e.time));
  journalField(out, "BULKHEAD_ACTION", e.action);
  journalField(out, "BULKHEAD_APP", e.app);
  journalField(out, "BULKHEAD_WORKLOAD", e.workload);
  journalField(out, "BULKHEAD_SRC", e.src.toString());
  journalField(out, "BULKHEAD_SPORT", std::to_string(e.sport));
  journalField(out, "BULKHEAD_DST", e.dst.toString());
  journalField(out, "BULKHEAD_DPORT", std::to_string(e.dport));
  journalField(out, "BULKHEAD_PROTO", e.proto);
  journalField(out, "BULKHEAD_REASON", e.reason);
  journalField(out, "BULKHEAD_COUNT", std::to_string(e.count));
  return out;
}

// Blocks SIGPIPE on the calling (worker) thread: OpenSSL writes with
// write(2), which would raise it when a peer goes away.
void blockSigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// ---------------------------------------------------------------------------
// The queue, the worker thread and the counters every exporter shares.
class QueuedExporter : public Exporter {
 public:
  bool offer(const FlowEvent& e) override {
    FlowEvent copy = e;  // outside the lock
    {
      std::lock_guard lock(mu_);
      if (stopping_ || queue_.size() >= capacity_) {
        stats_.droppedQueueFull += attempts(e);
        return false;
      }
      queue_.push_back(std::move(copy));
    }
    cv_.notify_one();
    return true;
  }

  ExporterStats stats() const override {
    std::lock_guard lock(mu_);
    ExporterStats s = stats_;
    s.queued = queue_.size();
    return s;
  }

  std::string name() const override { return name_; }

  bool flush(int ms) override {
    std::unique_lock lock(mu_);
    return idleCv_.wait_for(lock, milliseconds(std::max(ms, 0)),
                            [&] { return queue_.empty() && taken_ == 0; });
  }

 protected:
  QueuedExporter(std::string name, const ExporterOptions& o)
      : name_(std::move(name)), options_(o), capacity_(std::max<size_t>(o.queueCapacity, 1)) {}

  // Derived constructors call start() last, derived destructors stop() first.
  void start() {
    thread_ = std::thread([this] {
      blockSigpipe();
      run();
    });
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      stopDeadline_ = SteadyClock::now() + milliseconds(std::max(options_.shutdownMs, 0));
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    for (const auto& e : queue_)
      stats_.droppedTargetDown += attempts(e);
    queue_.clear();
  }

  virtual void run() = 0;

  // Worker side. take() hands out the oldest event (waiting up to ms); every
  // taken event is later resolved() or requeue()d.
  std::optional<FlowEvent> take(int ms) {
    std::unique_lock lock(mu_);
    if (queue_.empty()) {
      if (stopping_)
        cv_.wait_for(lock, milliseconds(ms), [&] { return !queue_.empty(); });
      else
        cv_.wait_for(lock, milliseconds(ms), [&] { return !queue_.empty() || stopping_; });
    }
    if (queue_.empty()) return std::nullopt;
    FlowEvent e = std::move(queue_.front());
    queue_.pop_front();
    ++taken_;
    return e;
  }
  // Up to `max` events at once: one lock and one wake-up per batch, not per
  // event, when a flood keeps the queue full.
  std::vector<FlowEvent> takeBatch(int ms, size_t max) {
    std::vector<FlowEvent> out;
    std::unique_lock lock(mu_);
    if (queue_.empty()) {
      if (stopping_)
        cv_.wait_for(lock, milliseconds(ms), [&] { return !queue_.empty(); });
      else
        cv_.wait_for(lock, milliseconds(ms), [&] { return !queue_.empty() || stopping_; });
    }
    while (!queue_.empty() && out.size() < max) {
      out.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    taken_ += out.size();
    return out;
  }
  void resolvedBatch(const std::vector<FlowEvent>& events, const std::vector<bool>& delivered) {
    {
      std::lock_guard lock(mu_);
      taken_ -= events.size();
      for (size_t i = 0; i < events.size(); ++i) {
        if (delivered[i]) {
          ++stats_.delivered;
          stats_.deliveredAttempts += attempts(events[i]);
        } else {
          stats_.droppedTargetDown += attempts(events[i]);
        }
      }
    }
    idleCv_.notify_all();
  }
  void resolved(const FlowEvent& e, bool delivered) {
    {
      std::lock_guard lock(mu_);
      --taken_;
      if (delivered) {
        ++stats_.delivered;
        stats_.deliveredAttempts += attempts(e);
      } else {
        stats_.droppedTargetDown += attempts(e);
      }
    }
    idleCv_.notify_all();
  }
  // Puts taken events back at the front, in order; those that no longer fit
  // are lost to the target's failure.
  void requeue(std::vector<FlowEvent>&& events) {
    {
      std::lock_guard lock(mu_);
      taken_ -= events.size();
      for (auto it = events.rbegin(); it != events.rend(); ++it) {
        if (queue_.size() < capacity_)
          queue_.push_front(std::move(*it));
        else
          stats_.droppedTargetDown += attempts(*it);
      }
    }
    idleCv_.notify_all();
  }
  bool stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
  }
  // After stop(): past the time allowed to keep delivering?
  bool pastStopDeadline() const {
    std::lock_guard lock(mu_);
    return stopping_ && SteadyClock::now() >= stopDeadline_;
  }
  bool queueEmpty() const {
    std::lock_guard lock(mu_);
    return queue_.empty();
  }
  // Sleeps up to ms unless stop() is called; true when stopping.
  bool sleepUnlessStopped(int ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, milliseconds(std::max(ms, 0)), [&] { return stopping_; });
  }
  void setConnected(bool connected) {
    std::lock_guard lock(mu_);
    stats_.connected = connected;
  }
  void countReconnect() {
    std::lock_guard lock(mu_);
    ++stats_.reconnects;
  }
  void noteError(const std::string& error) {
    std::lock_guard lock(mu_);
    ++stats_.sendErrors;
    stats_.lastError = error;
  }

  const std::string name_;
  const ExporterOptions options_;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;      // worker: work arrived or stopping
  std::condition_variable idleCv_;  // flush(): progress
  std::deque<FlowEvent> queue_;
  size_t taken_ = 0;  // handed to the worker, not yet resolved
  bool stopping_ = false;
  SteadyClock::time_point stopDeadline_;
  ExporterStats stats_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// unix://PATH, udp://HOST:PORT, journald: one event per datagram.
class DatagramExporter final : public QueuedExporter {
 public:
  DatagramExporter(std::string name, Target target, const ExporterOptions& o)
      : QueuedExporter(std::move(name), o), target_(std::move(target)) {
    if (target_.kind == Target::Kind::kJournald) target_.path = o.journaldSocket;
    start();
  }
  ~DatagramExporter() override {
    stop();
    closeSocket();
  }

 private:
  void run() override {
    constexpr size_t kBatch = 64;
    std::vector<std::string> payloads;
    std::vector<bool> sent;
    for (;;) {
      if (stopping() && (queueEmpty() || pastStopDeadline())) break;
      auto batch = takeBatch(100, kBatch);
      if (batch.empty()) continue;
      payloads.clear();
      for (const auto& e : batch)
        payloads.push_back(
            target_.kind == Target::Kind::kJournald
                ? journalPayload(e, options_.formatOptions)
                : truncateUtf8(formatEvent(e, options_.format, options_.formatOptions),
                               kMaxDatagram));
      sent.assign(batch.size(), false);
      sendMany(payloads, sent);
      resolvedBatch(batch, sent);
    }
  }

  // One sendmmsg for the batch while the socket takes it; whatever it did
  // not take goes one by one through sendOne (which waits and reconnects).
  void sendMany(const std::vector<std::string>& payloads, std::vector<bool>& sent) {
    size_t done = 0;
    if (fd_ >= 0 || open()) {
      std::vector<mmsghdr> msgs(payloads.size());
      std::vector<iovec> iov(payloads.size());
      for (size_t i = 0; i < payloads.size(); ++i) {
        iov[i] = iovec{const_cast<char*>(payloads[i].data()), payloads[i].size()};
        msgs[i] = mmsghdr{};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n =
          ::sendmmsg(fd_, msgs.data(), unsigned(msgs.size()), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        done = size_t(n);
        for (size_t i = 0; i < done; ++i)
          sent[i] = true;
      }
    }
    for (size_t i = done; i < payloads.size(); ++i)
      sent[i] = sendOne(payloads[i]);
  }

  bool open() {
    if (target_.kind == Target::Kind::kUdp) {
      std::string error;
      const AddrInfoPtr res = resolve(target_, SOCK_DGRAM, &error);
      if (!res) {
        noteError(error);
        return false;
      }
      int lastErr = 0;
      for (addrinfo* ai = res.get(); ai != nullptr; ai = ai->ai_next) {
        const int fd = ::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
          lastErr = errno;
          continue;
        }
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
          fd_ = fd;
          break;
        }
        lastErr = errno;
        ::close(fd);
      }
      if (fd_ < 0) {
        noteError(errnoText("udp connect " + name_, lastErr));
        return false;
      }
    } else {
      const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        noteError(errnoText("socket", errno));
        return false;
      }
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      std::strncpy(sa.sun_path, target_.path.c_str(), sizeof sa.sun_path - 1);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        noteError(errnoText("connect " + target_.path, errno));
        ::close(fd);
        return false;
      }
      const int sndbuf = 1 << 20;
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
      fd_ = fd;
    }
    if (everOpened_) countReconnect();
    everOpened_ = true;
    setConnected(true);
    return true;
  }

  void closeSocket() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // One send; on a connection-level error (the receiver restarted: its
  // socket is gone or refuses) reopen once and retry.
  bool sendOne(const std::string& payload) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0 && !open()) {
        setConnected(false);
        return false;
      }
      const auto deadline = SteadyClock::now() + milliseconds(kDatagramWaitMs);
      for (;;) {
        if (::send(fd_, payload.data(), payload.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
          return true;
        const int err = errno;
        if ((err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR) &&
            SteadyClock::now() < deadline && !pastStopDeadline()) {
          pollfd p{fd_, POLLOUT, 0};
          ::poll(&p, 1, 50);
          continue;
        }
        noteError(errnoText("send " + name_, err));
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EMSGSIZE)
          return false;  // receiver too slow / too big: this one is lost, socket is fine
        break;
      }
      closeSocket();
      setConnected(false);
    }
    return false;
  }

  Target target_;
  int fd_ = -1;
  bool everOpened_ = false;
};

// ---------------------------------------------------------------------------
// tcp://HOST:PORT and tls://HOST:PORT: octet-counted stream.
using SslCtxPtr = std::shared_ptr<SSL_CTX>;

class StreamExporter final : public QueuedExporter {
 public:
  StreamExporter(std::string name, Target target, const ExporterOptions& o, SslCtxPtr ctx)
      : QueuedExporter(std::move(name), o),
        target_(std::move(target)),
        ctx_(std::move(ctx)),
        rng_(std::random_device{}()) {
    backoffMs_ = std::max(options_.backoffInitialMs, 1);
    nextAttempt_ = SteadyClock::now();
    start();
  }
  ~StreamExporter() override {
    stop();
    closeConnection();
  }

 private:
  struct Written {
    uint64_t endOffset;  // stream offset (acked + unacked bytes) after its frame
    FlowEvent event;
  };

  void run() override {
    for (;;) {
      if (fd_ < 0) {
        if (stopping()) break;
        const auto now = SteadyClock::now();
        if (now < nextAttempt_) {
          const auto wait =
              std::chrono::duration_cast<milliseconds>(nextAttempt_ - now).count() + 1;
          sleepUnlessStopped(static_cast<int>(std::min<int64_t>(wait, 100)));
          continue;
        }
        if (!connectNow()) {
          scheduleRetry();
          continue;
        }
      }
      if (!peerAlive()) {
        fail("connection closed by " + name_);
        continue;
      }
      pruneAcked();
      if (stopping() && ((queueEmpty() && written_.empty()) || pastStopDeadline())) break;
      auto e = take(written_.empty() ? 100 : 5);
      if (!e) continue;
      const std::string frame =
          octetFrame(formatEvent(*e, options_.format, options_.formatOptions));
      std::string error;
      if (!writeAll(frame, error)) {
        written_.push_back({UINT64_MAX, std::move(*e)});
        fail(error);
        continue;
      }
      uint64_t offset = 0;
      if (streamOffset(offset)) {
        written_.push_back({offset, std::move(*e)});
      } else {
        resolved(*e, true);  // no TCP_INFO: count it delivered once written
      }
    }
    // Whatever is still unacknowledged at shutdown is lost.
    for (auto& w : written_)
      resolved(w.event, false);
    written_.clear();
  }

  bool ackedBytes(uint64_t& acked) const {
    struct tcp_info ti;
    std::memset(&ti, 0, sizeof ti);
    socklen_t len = sizeof ti;
    if (getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
    if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked)
      return false;
    acked = ti.tcpi_bytes_acked;
    return true;
  }
  // Everything handed to the kernel so far, in the units of ackedBytes().
  bool streamOffset(uint64_t& offset) const {
    uint64_t acked;
    int outq = 0;
    if (!ackedBytes(acked) || ioctl(fd_, SIOCOUTQ, &outq) != 0) return false;
    offset = acked + static_cast<uint64_t>(outq);
    return true;
  }

  void pruneAcked() {
    if (written_.empty()) return;
    uint64_t acked;
    if (!ackedBytes(acked)) return;
    while (!written_.empty() && written_.front().endOffset <= acked) {
      resolved(written_.front().event, true);
      written_.pop_front();
    }
  }

  // The connection failed: what the peer acknowledged counts as delivered,
  // the rest goes back to the front of the queue for the next connection.
  void fail(const std::string& why) {
    uint64_t acked = 0;
    const bool haveAcked = fd_ >= 0 && ackedBytes(acked);
    std::vector<FlowEvent> back;
    for (auto& w : written_) {
      if (haveAcked && w.endOffset <= acked)
        resolved(w.event, true);
      else
        back.push_back(std::move(w.event));
    }
    written_.clear();
    requeue(std::move(back));
    closeConnection();
    setConnected(false);
    noteError(why);
    scheduleRetry();
  }

  void scheduleRetry() {
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    nextAttempt_ =
        SteadyClock::now() + milliseconds(static_cast<int64_t>(backoffMs_ * jitter(rng_)));
    backoffMs_ = std::min(backoffMs_ * 2, std::max(options_.backoffMaxMs, 1));
  }

  void closeConnection() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Waits for fd to be ready for `events` until deadline (or shutdown);
  // false on timeout.
  bool waitFd(short events, SteadyClock::time_point deadline) {
    for (;;) {
      const auto now = SteadyClock::now();
      if (now >= deadline || pastStopDeadline()) return false;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - now).count();
      pollfd p{fd_, events, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)) + 1);
      if (rc > 0) return true;
      if (rc < 0 && errno != EINTR) return false;
    }
  }

  bool connectNow() {
    std::string error;
    const AddrInfoPtr res = resolve(target_, SOCK_STREAM, &error);
    if (!res) {
      noteError(error);
      return false;
    }
    const auto deadline = SteadyClock::now() + milliseconds(std::max(options_.connectTimeoutMs, 1));
    error = "connect " + name_ + ": no address";
    for (addrinfo* ai = res.get(); ai != nullptr && fd_ < 0; ai = ai->ai_next) {
      fd_ = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd_ < 0) {
        error = errnoText("socket", errno);
        continue;
      }
      int err = 0;
      if (::connect(fd_, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
          if (waitFd(POLLOUT, deadline)) {
            socklen_t len = sizeof err;
            getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
          } else {
            err = ETIMEDOUT;
          }
        }
      }
      if (err != 0) {
        error = errnoText("connect " + name_, err);
        ::close(fd_);
        fd_ = -1;
      }
    }
    if (fd_ < 0) {
      noteError(error);
      return false;
    }
    // A peer that vanishes without a RST (host down) is noticed through
    // keepalives and the user timeout on unacknowledged data.
    const int on = 1, idle = 30, intvl = 10, cnt = 3;
    const unsigned userTimeout = static_cast<unsigned>(std::max(options_.writeTimeoutMs, 1000));
    setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &userTimeout, sizeof userTimeout);
    if (ctx_ && !handshake(deadline)) {
      closeConnection();
      return false;
    }
    if (everConnected_) countReconnect();
    everConnected_ = true;
    backoffMs_ = std::max(options_.backoffInitialMs, 1);
    setConnected(true);
    return true;
  }

  bool handshake(SteadyClock::time_point deadline) {
    ERR_clear_error();
    ssl_ = SSL_new(ctx_.get());
    if (ssl_ == nullptr) {
      noteError("TLS: " + sslErrors());
      return false;
    }
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_fd(ssl_, fd_);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    if (policy::IpAddr::parse(target_.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, target_.host.c_str());
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, target_.host.c_str(), 0);
      SSL_set_tlsext_host_name(ssl_, target_.host.c_str());
    }
    for (;;) {
      const int r = SSL_connect(ssl_);
      if (r == 1) return true;
      const int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (waitFd(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) continue;
        noteError("TLS handshake with " + name_ + ": timed out");
        return false;
      }
      const long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK)
        noteError("TLS handshake with " + name_ +
                  ": certificate verification failed: " + X509_verify_cert_error_string(verify));
      else
        noteError("TLS handshake with " + name_ + ": " + sslErrors());
      return false;
    }
  }

  // The collector never sends us anything but TLS records (session tickets,
  // close_notify): readable means EOF, an error, or something to discard.
  bool peerAlive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    if (p.revents & (POLLERR | POLLNVAL)) return false;
    char buf[4096];
    for (int i = 0; i < 16; ++i) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int r = SSL_read(ssl_, buf, sizeof buf);
        if (r > 0) continue;
        const int err = SSL_get_error(ssl_, r);
        return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n == 0) return false;
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
    return true;
  }

  bool writeAll(const std::string& frame, std::string& error) {
    const auto deadline = SteadyClock::now() + milliseconds(std::max(options_.writeTimeoutMs, 1));
    size_t off = 0;
    while (off < frame.size()) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int n = SSL_write(ssl_, frame.data() + off, static_cast<int>(frame.size() - off));
        if (n > 0) {
          off += static_cast<size_t>(n);
          continue;
        }
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
          if (waitFd(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) continue;
          error = "write to " + name_ + ": timed out";
          return false;
        }
        error = "TLS write to " + name_ + ": " +
                (err == SSL_ERROR_SYSCALL ? std::string(std::strerror(errno)) : sslErrors());
        return false;
      }
      const ssize_t n =
          ::send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (waitFd(POLLOUT, deadline)) continue;
        error = "write to " + name_ + ": timed out";
        return false;
      }
      error = errnoText("write to " + name_, n < 0 ? errno : EPIPE);
      return false;
    }
    return true;
  }

  Target target_;
  SslCtxPtr ctx_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool everConnected_ = false;
  int backoffMs_;
  SteadyClock::time_point nextAttempt_;
  std::deque<Written> written_;  // written, not yet acknowledged by the peer
  std::mt19937 rng_;
};

Result<SslCtxPtr> makeTlsContext(const ExporterOptions& o) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return makeError(ErrorCode::kInternal, "TLS context: " + sslErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (o.tlsCa.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1)
      return makeError(ErrorCode::kInvalidInput, "TLS: system CA store: " + sslErrors());
  } else {
    const bool isDir = access((o.tlsCa + "/.").c_str(), F_OK) == 0;
    const int ok = isDir ? SSL_CTX_load_verify_locations(ctx.get(), nullptr, o.tlsCa.c_str())
                         : SSL_CTX_load_verify_locations(ctx.get(), o.tlsCa.c_str(), nullptr);
    if (ok != 1)
      return makeError(ErrorCode::kInvalidInput, "TLS CA " + o.tlsCa + ": " + sslErrors());
  }
  if (o.tlsCert.empty() != o.tlsKey.empty())
    return makeError(ErrorCode::kInvalidInput,
                     "TLS client certificate and key must be given together");
  if (!o.tlsCert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), o.tlsCert.c_str()) != 1)
      return makeError(ErrorCode::kInvalidInput,
                       "TLS client certificate " + o.tlsCert + ": " + sslErrors());
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), o.tlsKey.c_str(), SSL_FILETYPE_PEM) != 1)
      return makeError(ErrorCode::kInvalidInput, "TLS client key " + o.tlsKey + ": " + sslErrors());
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      return makeError(ErrorCode::kInvalidInput,
                       "TLS client key does not match the certificate: " + sslErrors());
  }
  return ctx;
}

}  // namespace

Result<std::unique_ptr<Exporter>> makeExporter(const std::string& target,
                                               const ExporterOptions& options) {
  auto parsed = parseTarget(target);
  if (!parsed) return parsed.takeError();
  Target t = std::move(parsed.value());
  switch (t.kind) {
    case Target::Kind::kUnix:
    case Target::Kind::kUdp:
    case Target::Kind::kJournald: {
      if (t.kind == Target::Kind::kJournald &&
          (options.journaldSocket.empty() ||
           options.journaldSocket.size() >= sizeof(sockaddr_un{}.sun_path)))
        return makeError(ErrorCode::kInvalidInput, "journald socket path is empty or too long");
      return std::unique_ptr<Exporter>(new DatagramExporter(target, std::move(t), options));
    }
    case Target::Kind::kTcp:
      return std::unique_ptr<Exporter>(new StreamExporter(target, std::move(t), options, nullptr));
    case Target::Kind::kTls: {
      auto ctx = makeTlsContext(options);
      if (!ctx) return ctx.takeError();
      return std::unique_ptr<Exporter>(
          new StreamExporter(target, std::move(t), options, std::move(ctx.value())));
    }
  }
  return makeError(ErrorCode::kInternal, "unreachable");
}

}  // namespace bulkhead::flows
