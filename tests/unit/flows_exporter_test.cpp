// Exporters against in-test receivers on loopback and in a temp dir (no
// root): UDP, TCP (framing, reconnect, loss accounting, offer() never
// blocks), queue-full accounting, unix datagram, journald native protocol,
// TLS with a test CA made by the openssl CLI.
#include "bulkhead/flows/exporter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace bulkhead::flows {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

FlowEvent event(uint16_t sport, uint64_t count = 1) {
  FlowEvent e;
  e.time = WallClock::now();
  e.host = "hv01";
  e.action = FlowAction::kDeny;
  e.app = "billing";
  e.workload = "billing-7f9c";
  e.src = *policy::IpAddr::parse("192.0.2.10");
  e.dst = *policy::IpAddr::parse("198.51.100.10");
  e.sport = sport;
  e.dport = 22;
  e.proto = "tcp";
  e.reason = "default";
  e.count = count;
  return e;
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/bhflowsXXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A stream receiver: accepts connections (plain or TLS), splits each into
// octet-counted frames. stop() closes the listener and every connection.
class StreamReceiver {
 public:
  explicit StreamReceiver(uint16_t port = 0, SSL_CTX* tls = nullptr) : tls_(tls) {
    listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listenFd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(listenFd_, 16) != 0) {
      ::close(listenFd_);
      listenFd_ = -1;
      return;
    }
    socklen_t len = sizeof sa;
    getsockname(listenFd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~StreamReceiver() { stop(); }

  bool ok() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  void stop() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : conns_)
      t.join();
    conns_.clear();
    if (listenFd_ >= 0) ::close(listenFd_);
    listenFd_ = -1;
  }
  std::vector<std::string> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  bool badFraming() const { return badFraming_; }
  int connections() const { return accepted_; }
  bool waitFor(size_t n, int ms) {
    const auto end = SteadyClock::now() + milliseconds(ms);
    while (SteadyClock::now() < end) {
      if (messages().size() >= n) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return messages().size() >= n;
  }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{listenFd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      conns_.emplace_back([this, fd] { serve(fd); });
    }
  }
  void serve(int fd) {
    timeval tv{0, 20000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = nullptr;
    if (tls_ != nullptr) {
      ssl = SSL_new(tls_);
      SSL_set_fd(ssl, fd);
      for (;;) {
        const int r = SSL_accept(ssl);
        if (r == 1) break;
        const int err = SSL_get_error(ssl, r);
        if (!stop_ && (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)) continue;
        SSL_free(ssl);
        ::close(fd);
        return;
      }
    }
    std::string buf;
    char chunk[4096];
    while (!stop_) {
      int n;
      if (ssl != nullptr) {
        n = SSL_read(ssl, chunk, sizeof chunk);
        if (n <= 0) {
          const int err = SSL_get_error(ssl, n);
          if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) continue;
          break;
        }
      } else {
        n = static_cast<int>(::recv(fd, chunk, sizeof chunk, 0));
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) break;
      }
      buf.append(chunk, static_cast<size_t>(n));
      for (;;) {
        const auto sp = buf.find(' ');
        if (sp == std::string::npos) break;
        size_t len = 0;
        for (size_t i = 0; i < sp; ++i) {
          if (buf[i] < '0' || buf[i] > '9') badFraming_ = true;
          len = len * 10 + static_cast<size_t>(buf[i] - '0');
        }
        if (buf.size() < sp + 1 + len) break;
        {
          std::lock_guard lock(mu_);
          messages_.push_back(buf.substr(sp + 1, len));
        }
        buf.erase(0, sp + 1 + len);
      }
    }
    if (ssl != nullptr) SSL_free(ssl);
    ::close(fd);
  }

  SSL_CTX* tls_;
  int listenFd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> badFraming_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::vector<std::thread> conns_;
  std::mutex mu_;
  std::vector<std::string> messages_;
};

// A datagram socket bound to 127.0.0.1:0, [::1]:0 or a unix path.
class DatagramReceiver {
 public:
  static std::unique_ptr<DatagramReceiver> udp(bool v6) {
    auto r = std::unique_ptr<DatagramReceiver>(new DatagramReceiver);
    r->fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
      sa->sin6_family = AF_INET6;
      sa->sin6_addr = in6addr_loopback;
      len = sizeof *sa;
    } else {
      auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
      sa->sin_family = AF_INET;
      sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *sa;
    }
    if (::bind(r->fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) return nullptr;
    getsockname(r->fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    r->port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return r;
  }
  static std::unique_ptr<DatagramReceiver> unixPath(const std::string& path) {
    auto r = std::unique_ptr<DatagramReceiver>(new DatagramReceiver);
    r->fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    ::unlink(path.c_str());
    if (::bind(r->fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return nullptr;
    r->path_ = path;
    return r;
  }
  ~DatagramReceiver() {
    ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  uint16_t port() const { return port_; }
  std::optional<std::string> recv(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return std::nullopt;
    std::string buf(70000, '\0');
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

 private:
  DatagramReceiver() = default;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string path_;
};

ExporterOptions fastOptions() {
  ExporterOptions o;
  o.formatOptions.procId = 4711;
  o.backoffInitialMs = 50;
  o.backoffMaxMs = 200;
  o.connectTimeoutMs = 1000;
  return o;
}

TEST(FlowsExporter, RejectsBadTargets) {
  for (const char* t : {"", "syslog", "udp://127.0.0.1", "udp://127.0.0.1:0", "tcp://:514",
                        "tcp://127.0.0.1:99999", "unix://relative", "udp://::1:514",
                        "udp://[127.0.0.1]:514", "ftp://x:1", "tcp://[::1:514"}) {
    auto r = makeExporter(t, {});
    EXPECT_FALSE(r.ok()) << t;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput) << t;
    }
  }
  ExporterOptions o;
  o.tlsCa = "/nonexistent/ca.pem";
  EXPECT_FALSE(makeExporter("tls://127.0.0.1:6514", o).ok());
}

TEST(FlowsExporter, UdpOneDatagramPerEvent) {
  auto rx = DatagramReceiver::udp(false);
  ASSERT_TRUE(rx);
  ExporterOptions o = fastOptions();
  o.format = Format::kJson;
  auto ex = makeExporter("udp://127.0.0.1:" + std::to_string(rx->port()), o);
  ASSERT_TRUE(ex.ok()) << ex.error().describe();
  std::vector<FlowEvent> sent;
  for (uint16_t i = 0; i < 3; ++i) {
    sent.push_back(event(1000 + i, i + 1));
    EXPECT_TRUE((*ex)->offer(sent.back()));
  }
  for (const auto& e : sent) {
    auto got = rx->recv(2000);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, formatJson(e));
  }
  EXPECT_TRUE((*ex)->flush(2000));
  const auto s = (*ex)->stats();
  EXPECT_EQ(s.delivered, 3u);
  EXPECT_EQ(s.deliveredAttempts, 6u);
  EXPECT_EQ((*ex)->name(), "udp://127.0.0.1:" + std::to_string(rx->port()));
}

TEST(FlowsExporter, UdpIpv6AndTruncation) {
  auto rx = DatagramReceiver::udp(true);
  if (!rx) GTEST_SKIP() << "no IPv6 loopback";
  auto ex = makeExporter("udp://[::1]:" + std::to_string(rx->port()), fastOptions());
  ASSERT_TRUE(ex.ok()) << ex.error().describe();
  FlowEvent e = event(1);
  e.workload = std::string(70000, 'w');
  EXPECT_TRUE((*ex)->offer(e));
  auto got = rx->recv(2000);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 65000u);
  EXPECT_EQ(got->substr(0, 5), "<132>");
}

TEST(FlowsExporter, TcpFramedAndIntact) {
  StreamReceiver rx;
  ASSERT_TRUE(rx.ok());
  auto ex = makeExporter("tcp://127.0.0.1:" + std::to_string(rx.port()), fastOptions());
  ASSERT_TRUE(ex.ok());
  std::vector<std::string> expected;
  for (uint16_t i = 0; i < 50; ++i) {
    FlowEvent e = event(2000 + i);
    e.workload = i % 2 ? "multi\nline \"w\" 12 " : "plain";
    expected.push_back(formatRfc5424(e, fastOptions().formatOptions));
    EXPECT_TRUE((*ex)->offer(e));
  }
  EXPECT_TRUE((*ex)->flush(5000));
  ASSERT_TRUE(rx.waitFor(50, 3000));
  EXPECT_EQ(rx.messages(), expected);
  EXPECT_FALSE(rx.badFraming());
  const auto s = (*ex)->stats();
  EXPECT_EQ(s.delivered, 50u);
  EXPECT_TRUE(s.connected);
  EXPECT_EQ(s.reconnects, 0u);
}

TEST(FlowsExporter, TcpReconnectsCountsLossesAndNeverBlocks) {
  auto rx1 = std::make_unique<StreamReceiver>();
  ASSERT_TRUE(rx1->ok());
  const uint16_t port = rx1->port();
  ExporterOptions o = fastOptions();
  o.queueCapacity = 8;
  auto ex = makeExporter("tcp://127.0.0.1:" + std::to_string(port), o);
  ASSERT_TRUE(ex.ok());
  uint16_t next = 1;
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE((*ex)->offer(event(next++)));
  ASSERT_TRUE((*ex)->flush(5000));
  ASSERT_TRUE(rx1->waitFor(5, 2000));
  const auto before = rx1->messages();
  rx1->stop();  // the collector goes away

  // While it is down: offers stay fast; beyond the queue they are refused.
  auto maxOffer = SteadyClock::duration::zero();
  int refused = 0;
  for (int i = 0; i < 30; ++i) {
    const auto t0 = SteadyClock::now();
    if (!(*ex)->offer(event(next++))) ++refused;
    maxOffer = std::max(maxOffer, SteadyClock::now() - t0);
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(maxOffer).count(), 20);
  EXPECT_GT(refused, 0);
  EXPECT_FALSE((*ex)->stats().connected);
  std::this_thread::sleep_for(milliseconds(300));

  StreamReceiver rx2(port);  // restarted on the same port
  ASSERT_TRUE(rx2.ok());
  EXPECT_TRUE((*ex)->flush(5000));
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE((*ex)->offer(event(next++)));
  EXPECT_TRUE((*ex)->flush(5000));
  const auto s = (*ex)->stats();
  const uint64_t sent = next - 1;
  std::this_thread::sleep_for(milliseconds(100));
  const auto after = rx2.messages();
  EXPECT_GE(s.reconnects, 1u);
  EXPECT_TRUE(s.connected);
  EXPECT_EQ(s.droppedQueueFull, static_cast<uint64_t>(refused));
  // Every event is either received or counted, nothing twice.
  EXPECT_EQ(before.size() + after.size() + s.droppedQueueFull + s.droppedTargetDown, sent);
  EXPECT_EQ(s.delivered, before.size() + after.size());
  std::map<std::string, int> seen;
  for (const auto& m : before)
    ++seen[m];
  for (const auto& m : after)
    ++seen[m];
  for (const auto& [m, n] : seen)
    EXPECT_EQ(n, 1) << m;
  EXPECT_FALSE(rx2.badFraming());
  EXPECT_FALSE(s.lastError.empty());
}

TEST(FlowsExporter, QueueFullAccountingAndBoundedShutdown) {
  // A port nobody listens on: the exporter never connects.
  StreamReceiver probe;
  ASSERT_TRUE(probe.ok());
  const uint16_t port = probe.port();
  probe.stop();
  ExporterOptions o = fastOptions();
  o.queueCapacity = 4;
  auto ex = makeExporter("tcp://127.0.0.1:" + std::to_string(port), o);
  ASSERT_TRUE(ex.ok());
  int accepted = 0;
  for (int i = 0; i < 10; ++i)
    accepted += (*ex)->offer(event(i, 3)) ? 1 : 0;
  EXPECT_EQ(accepted, 4);
  // The exporter's thread tries to connect on its own time: wait for its
  // first refusal (a loaded machine can take longer than a fixed sleep).
  for (int i = 0; i < 300 && (*ex)->stats().sendErrors == 0; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  const auto s = (*ex)->stats();
  EXPECT_EQ(s.droppedQueueFull, 18u);
  EXPECT_EQ(s.queued, 4u);
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_FALSE(s.connected);
  EXPECT_GT(s.sendErrors, 0u);
  EXPECT_NE(s.lastError.find("refused"), std::string::npos) << s.lastError;
  EXPECT_FALSE((*ex)->flush(50));
  const auto t0 = SteadyClock::now();
  ex->reset();
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count(), 1500);
}

TEST(FlowsExporter, UnixDatagramAndReceiverRestart) {
  TempDir dir;
  const std::string path = (dir.path / "log.sock").string();
  auto rx = DatagramReceiver::unixPath(path);
  ASSERT_TRUE(rx);
  ExporterOptions o = fastOptions();
  o.format = Format::kCef;
  auto ex = makeExporter("unix://" + path, o);
  ASSERT_TRUE(ex.ok());
  const FlowEvent first = event(1);
  EXPECT_TRUE((*ex)->offer(first));
  auto got = rx->recv(2000);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, formatCef(first, o.formatOptions));
  EXPECT_EQ(got->substr(0, 13), "CEF:0|bulkhea");

  rx.reset();  // rsyslog restarts: the socket goes away ...
  EXPECT_TRUE((*ex)->offer(event(2)));
  EXPECT_TRUE((*ex)->flush(3000));
  EXPECT_EQ((*ex)->stats().droppedTargetDown, 1u);
  rx = DatagramReceiver::unixPath(path);  // ... and comes back
  ASSERT_TRUE(rx);
  EXPECT_TRUE((*ex)->offer(event(3)));
  got = rx->recv(2000);
  ASSERT_TRUE(got);
  EXPECT_NE(got->find("spt=3 "), std::string::npos);
  // The receiver can hold the datagram before the exporter's thread has
  // counted it: wait until the exporter has resolved everything.
  EXPECT_TRUE((*ex)->flush(3000));
  const auto s = (*ex)->stats();
  EXPECT_EQ(s.delivered, 2u);
  EXPECT_GE(s.reconnects, 1u);
}

std::map<std::string, std::string> parseJournal(const std::string& p) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < p.size()) {
    const auto nl = p.find('\n', i);
    const auto eq = p.find('=', i);
    if (eq != std::string::npos && eq < nl) {
      out[p.substr(i, eq - i)] = p.substr(eq + 1, nl - eq - 1);
      i = nl + 1;
      continue;
    }
    const std::string key = p.substr(i, nl - i);
    uint64_t len = 0;
    for (int b = 0; b < 8; ++b)
      len |= uint64_t(static_cast<unsigned char>(p[nl + 1 + b])) << (8 * b);
    out[key] = p.substr(nl + 9, len);
    EXPECT_EQ(p[nl + 9 + len], '\n');
    i = nl + 10 + len;
  }
  return out;
}

TEST(FlowsExporter, JournaldNativeProtocol) {
  TempDir dir;
  const std::string path = (dir.path / "journal.sock").string();
  auto rx = DatagramReceiver::unixPath(path);
  ASSERT_TRUE(rx);
  ExporterOptions o = fastOptions();
  o.journaldSocket = path;
  auto ex = makeExporter("journald", o);
  ASSERT_TRUE(ex.ok());
  FlowEvent e = event(43910, 7);
  e.reason = "globalpolicy/two\nlines/0";
  EXPECT_TRUE((*ex)->offer(e));
  auto got = rx->recv(2000);
  ASSERT_TRUE(got);
  EXPECT_NE(got->find("BULKHEAD_REASON\n" + std::string("\x18\0\0\0\0\0\0\0", 8) +
                      "globalpolicy/two\nlines/0\n"),
            std::string::npos);
  auto f = parseJournal(*got);
  EXPECT_EQ(f["MESSAGE"], "billing-7f9c -> 198.51.100.10:22/tcp denied");
  EXPECT_EQ(f["PRIORITY"], "4");
  EXPECT_EQ(f["SYSLOG_IDENTIFIER"], "bulkhead-agent");
  EXPECT_EQ(f["BULKHEAD_ACTION"], "deny");
  EXPECT_EQ(f["BULKHEAD_APP"], "billing");
  EXPECT_EQ(f["BULKHEAD_WORKLOAD"], "billing-7f9c");
  EXPECT_EQ(f["BULKHEAD_SRC"], "192.0.2.10");
  EXPECT_EQ(f["BULKHEAD_SPORT"], "43910");
  EXPECT_EQ(f["BULKHEAD_DST"], "198.51.100.10");
  EXPECT_EQ(f["BULKHEAD_DPORT"], "22");
  EXPECT_EQ(f["BULKHEAD_PROTO"], "tcp");
  EXPECT_EQ(f["BULKHEAD_REASON"], "globalpolicy/two\nlines/0");
  EXPECT_EQ(f["BULKHEAD_COUNT"], "7");
  EXPECT_TRUE((*ex)->flush(1000));
  EXPECT_EQ((*ex)->stats().deliveredAttempts, 7u);
}

// TLS: a CA, a server certificate for IP 127.0.0.1, and an unrelated CA.
class FlowsExporterTls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl CLI";
    const std::string d = dir_.path.string();
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string cmd =
        "(cd " + d + " && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && " +
        "openssl req -x509 " + key + " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && " +
        "openssl req -x509 " + key + " -keyout ca2.key -out ca2.pem -days 2 -subj /CN=other && " +
        "openssl req " + key + " -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && " +
        "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem " +
        "-days 2 -extfile san.ext) >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ctx_ = SSL_CTX_new(TLS_server_method());
    ASSERT_EQ(SSL_CTX_use_certificate_file(ctx_, (d + "/srv.pem").c_str(), SSL_FILETYPE_PEM), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, (d + "/srv.key").c_str(), SSL_FILETYPE_PEM), 1);
  }
  void TearDown() override {
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }
  TempDir dir_;
  SSL_CTX* ctx_ = nullptr;
};

TEST_F(FlowsExporterTls, DeliversWithTheRightCa) {
  StreamReceiver rx(0, ctx_);
  ASSERT_TRUE(rx.ok());
  ExporterOptions o = fastOptions();
  o.tlsCa = (dir_.path / "ca.pem").string();
  auto ex = makeExporter("tls://127.0.0.1:" + std::to_string(rx.port()), o);
  ASSERT_TRUE(ex.ok()) << ex.error().describe();
  for (uint16_t i = 0; i < 20; ++i)
    EXPECT_TRUE((*ex)->offer(event(i)));
  EXPECT_TRUE((*ex)->flush(5000)) << (*ex)->stats().lastError;
  ASSERT_TRUE(rx.waitFor(20, 2000));
  EXPECT_EQ(rx.messages()[7],
            formatRfc5424(event(7), o.formatOptions).substr(0, 6) + rx.messages()[7].substr(6));
  EXPECT_NE(rx.messages()[7].find("sport=\"7\""), std::string::npos);
  EXPECT_EQ((*ex)->stats().delivered, 20u);
}

TEST_F(FlowsExporterTls, BadCaOrNameIsNotDelivered) {
  StreamReceiver rx(0, ctx_);
  ASSERT_TRUE(rx.ok());
  for (const auto& [target, ca] :
       {std::pair{"tls://127.0.0.1:" + std::to_string(rx.port()), std::string("ca2.pem")},
        std::pair{"tls://localhost:" + std::to_string(rx.port()), std::string("ca.pem")}}) {
    ExporterOptions o = fastOptions();
    o.tlsCa = (dir_.path / ca).string();
    o.queueCapacity = 2;
    auto ex = makeExporter(target, o);
    ASSERT_TRUE(ex.ok());
    EXPECT_TRUE((*ex)->offer(event(1)));
    EXPECT_TRUE((*ex)->offer(event(2)));
    EXPECT_FALSE((*ex)->offer(event(3)));
    EXPECT_FALSE((*ex)->flush(400));
    const auto s = (*ex)->stats();
    EXPECT_EQ(s.delivered, 0u) << target;
    EXPECT_EQ(s.droppedQueueFull, 1u);
    EXPECT_EQ(s.queued, 2u);
    EXPECT_GT(s.sendErrors, 0u);
    EXPECT_NE(s.lastError.find("certificate verification failed"), std::string::npos)
        << target << ": " << s.lastError;
  }
  EXPECT_TRUE(rx.messages().empty());
}

}  // namespace
}  // namespace bulkhead::flows
