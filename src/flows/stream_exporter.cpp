// tcp://HOST:PORT and tls://HOST:PORT: an octet-counted stream (RFC 6587,
// RFC 5425; docs/flows.md). Reconnects with jittered exponential backoff,
// and uses the kernel's acknowledged byte count to tell which written
// events the peer never received: those go back to the front of the queue
// instead of being lost silently.
#include <linux/sockios.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked (glibc's lacks it)
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <deque>
#include <random>

#include "bulkhead/common/deadline.h"
#include "bulkhead/common/fd.h"
#include "queued_exporter.h"

namespace bulkhead::flows {

namespace {

using std::chrono::milliseconds;
using SslPtr = Owned<SSL, SSL_free>;

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

class StreamExporter final : public QueuedExporter {
 public:
  StreamExporter(std::string name, common::Endpoint target, const ExporterOptions& o, SslCtxPtr ctx)
      : QueuedExporter(std::move(name), o),
        target_(std::move(target)),
        ctx_(std::move(ctx)),
        rng_(std::random_device{}()) {
    backoffMs_ = std::max(options_.backoffInitialMs, 1);
    nextAttempt_ = SteadyClock::now();
    start();
  }
  ~StreamExporter() override { stop(); }

 private:
  struct Written {
    uint64_t endOffset;  // stream offset (acked + unacked bytes) after its frame
    FlowEvent event;
  };

  void run() override {
    for (;;) {
      if (!fd_) {
        if (stopping()) break;
        if (!waitedForRetry()) continue;
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
      if (e) writeEvent(std::move(*e));
    }
    // Whatever is still unacknowledged at shutdown is lost.
    for (auto& w : written_)
      resolved(w.event, false);
    written_.clear();
  }

  // True when the next connection attempt is due; else sleeps a little.
  bool waitedForRetry() {
    const auto now = SteadyClock::now();
    if (now >= nextAttempt_) return true;
    sleepUnlessStopped(std::min(common::msUntil(nextAttempt_, now), 100));
    return false;
  }

  void writeEvent(FlowEvent e) {
    const std::string frame = octetFrame(formatEvent(e, options_.format, options_.formatOptions));
    std::string error;
    if (!writeAll(frame, error)) {
      written_.push_back({UINT64_MAX, std::move(e)});
      fail(error);
      return;
    }
    uint64_t offset = 0;
    if (streamOffset(offset))
      written_.push_back({offset, std::move(e)});
    else
      resolved(e, true);  // no TCP_INFO: count it delivered once written
  }

  bool ackedBytes(uint64_t& acked) const {
    struct tcp_info ti;
    std::memset(&ti, 0, sizeof ti);
    socklen_t len = sizeof ti;
    if (getsockopt(fd_.get(), IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
    if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked)
      return false;
    acked = ti.tcpi_bytes_acked;
    return true;
  }
  // Everything handed to the kernel so far, in the units of ackedBytes().
  bool streamOffset(uint64_t& offset) const {
    uint64_t acked;
    int outq = 0;
    if (!ackedBytes(acked) || ioctl(fd_.get(), SIOCOUTQ, &outq) != 0) return false;
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
    const bool haveAcked = fd_ && ackedBytes(acked);
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

  // The TLS session before the socket under it.
  void closeConnection() {
    ssl_.reset();
    fd_.reset();
  }

  // Waits for fd to be ready for `events` until deadline (or shutdown);
  // false on timeout.
  bool waitFd(int fd, short events, SteadyClock::time_point deadline) {
    for (;;) {
      const auto now = SteadyClock::now();
      if (now >= deadline || pastStopDeadline()) return false;
      pollfd p{fd, events, 0};
      // At most 100 ms at a time, to see a shutdown.
      const int rc = ::poll(&p, 1, std::min(common::msUntil(deadline, now), 100));
      if (rc > 0) return true;
      if (rc < 0 && errno != EINTR) return false;
    }
  }

  // A non-blocking connect to one address, waiting until the deadline.
  Fd connectTo(const addrinfo* ai, SteadyClock::time_point deadline, std::string& error) {
    Fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      error = errnoText("socket", errno);
      return fd;
    }
    int err = 0;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        socklen_t len = sizeof err;
        if (waitFd(fd.get(), POLLOUT, deadline))
          getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        else
          err = ETIMEDOUT;
      }
    }
    if (err == 0) return fd;
    error = errnoText("connect " + name_, err);
    return Fd();
  }

  // A peer that vanishes without a RST (host down) is noticed through
  // keepalives and the user timeout on unacknowledged data.
  void setKeepalive() {
    const int on = 1, idle = 30, intvl = 10, cnt = 3;
    const unsigned userTimeout = static_cast<unsigned>(std::max(options_.writeTimeoutMs, 1000));
    setsockopt(fd_.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd_.get(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd_.get(), IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd_.get(), IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd_.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &userTimeout, sizeof userTimeout);
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
    for (const addrinfo* ai = res.get(); ai != nullptr && !fd_; ai = ai->ai_next)
      fd_ = connectTo(ai, deadline, error);
    if (!fd_) {
      noteError(error);
      return false;
    }
    setKeepalive();
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

  // Verifies the collector's certificate against the host it was named by:
  // an IP address as an IP SAN, a name as a DNS SAN (and sent as SNI).
  void setPeerName() {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    if (policy::IpAddr::parse(target_.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, target_.host.c_str());
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, target_.host.c_str(), 0);
      SSL_set_tlsext_host_name(ssl_.get(), target_.host.c_str());
    }
  }

  bool handshake(SteadyClock::time_point deadline) {
    ERR_clear_error();
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_) {
      noteError("TLS: " + sslErrors());
      return false;
    }
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_fd(ssl_.get(), fd_.get());
    setPeerName();
    for (;;) {
      const int r = SSL_connect(ssl_.get());
      if (r == 1) return true;
      const int err = SSL_get_error(ssl_.get(), r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (waitFd(fd_.get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) continue;
        noteError("TLS handshake with " + name_ + ": timed out");
        return false;
      }
      const long verify = SSL_get_verify_result(ssl_.get());
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
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    if (p.revents & (POLLERR | POLLNVAL)) return false;
    char buf[4096];
    for (int i = 0; i < 16; ++i) {
      if (ssl_) {
        ERR_clear_error();
        const int r = SSL_read(ssl_.get(), buf, sizeof buf);
        if (r > 0) continue;
        const int err = SSL_get_error(ssl_.get(), r);
        return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
      }
      const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n == 0) return false;
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
    return true;
  }

  // One TLS write step: +1 progress (off advanced), 0 wait and retry, -1
  // failed (error set).
  int tlsWrite(const std::string& frame, size_t& off, SteadyClock::time_point deadline,
               std::string& error) {
    ERR_clear_error();
    const int n = SSL_write(ssl_.get(), frame.data() + off, static_cast<int>(frame.size() - off));
    if (n > 0) {
      off += static_cast<size_t>(n);
      return 1;
    }
    const int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      if (waitFd(fd_.get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) return 0;
      error = "write to " + name_ + ": timed out";
      return -1;
    }
    error = "TLS write to " + name_ + ": " +
            (err == SSL_ERROR_SYSCALL ? std::string(std::strerror(errno)) : sslErrors());
    return -1;
  }

  // The same for plain TCP.
  int tcpWrite(const std::string& frame, size_t& off, SteadyClock::time_point deadline,
               std::string& error) {
    const ssize_t n =
        ::send(fd_.get(), frame.data() + off, frame.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (waitFd(fd_.get(), POLLOUT, deadline)) return 0;
      error = "write to " + name_ + ": timed out";
      return -1;
    }
    error = errnoText("write to " + name_, n < 0 ? errno : EPIPE);
    return -1;
  }

  bool writeAll(const std::string& frame, std::string& error) {
    const auto deadline = SteadyClock::now() + milliseconds(std::max(options_.writeTimeoutMs, 1));
    size_t off = 0;
    while (off < frame.size()) {
      const int step =
          ssl_ ? tlsWrite(frame, off, deadline, error) : tcpWrite(frame, off, deadline, error);
      if (step < 0) return false;
    }
    return true;
  }

  common::Endpoint target_;
  SslCtxPtr ctx_;
  Fd fd_;
  SslPtr ssl_;  // declared after fd_: destroyed first, while its socket is open
  bool everConnected_ = false;
  int backoffMs_;
  SteadyClock::time_point nextAttempt_;
  std::deque<Written> written_;  // written, not yet acknowledged by the peer
  std::mt19937 rng_;
};

}  // namespace

Result<SslCtxPtr> makeTlsContext(const ExporterOptions& o) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
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
  if (o.tlsCert.empty()) return ctx;
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), o.tlsCert.c_str()) != 1)
    return makeError(ErrorCode::kInvalidInput,
                     "TLS client certificate " + o.tlsCert + ": " + sslErrors());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), o.tlsKey.c_str(), SSL_FILETYPE_PEM) != 1)
    return makeError(ErrorCode::kInvalidInput, "TLS client key " + o.tlsKey + ": " + sslErrors());
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return makeError(ErrorCode::kInvalidInput,
                     "TLS client key does not match the certificate: " + sslErrors());
  return ctx;
}

std::unique_ptr<Exporter> makeStreamExporter(std::string name, common::Endpoint target,
                                             const ExporterOptions& o, SslCtxPtr tls) {
  return std::make_unique<StreamExporter>(std::move(name), std::move(target), o, std::move(tls));
}

}  // namespace bulkhead::flows
