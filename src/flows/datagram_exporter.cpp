// unix://PATH, udp://HOST:PORT and journald: one event per datagram
// (docs/flows.md). A batch goes out in one sendmmsg while the socket takes
// it; the rest one by one, waiting briefly for room and reopening the
// socket once when the receiver went away (journald or rsyslog restarting).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bulkhead/common/fd.h"
#include "queued_exporter.h"

namespace bulkhead::flows {

namespace {

using std::chrono::milliseconds;

// Largest datagram we send: below UDP's 65507 over IPv4 (and well below a
// unix socket's default send buffer).
constexpr size_t kMaxDatagram = 65000;
// How long a datagram send may wait for room (receiver's queue full).
constexpr int kDatagramWaitMs = 1000;

// Cuts s to at most max octets without splitting a UTF-8 sequence.
std::string truncateUtf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80)
    --cut;
  s.resize(cut);
  return s;
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
  journalField(out, "BULKHEAD_ACTION", flowActionName(e.action));
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

class DatagramExporter final : public QueuedExporter {
 public:
  DatagramExporter(std::string name, common::Endpoint target, const ExporterOptions& o)
      : QueuedExporter(std::move(name), o), target_(std::move(target)) {
    if (target_.scheme == common::Scheme::kJournald) target_.path = o.journaldSocket;
    start();
  }
  ~DatagramExporter() override { stop(); }

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
        payloads.push_back(payload(e));
      sent.assign(batch.size(), false);
      sendMany(payloads, sent);
      resolvedBatch(batch, sent);
    }
  }

  std::string payload(const FlowEvent& e) const {
    if (target_.scheme == common::Scheme::kJournald)
      return journalPayload(e, options_.formatOptions);
    return truncateUtf8(formatEvent(e, options_.format, options_.formatOptions), kMaxDatagram);
  }

  // One sendmmsg for the batch while the socket takes it; whatever it did
  // not take goes one by one through sendOne (which waits and reconnects).
  void sendMany(const std::vector<std::string>& payloads, std::vector<bool>& sent) {
    size_t done = 0;
    if (fd_ || open()) {
      std::vector<mmsghdr> msgs(payloads.size());
      std::vector<iovec> iov(payloads.size());
      for (size_t i = 0; i < payloads.size(); ++i) {
        iov[i] = iovec{const_cast<char*>(payloads[i].data()), payloads[i].size()};
        msgs[i] = mmsghdr{};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n =
          ::sendmmsg(fd_.get(), msgs.data(), unsigned(msgs.size()), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        done = size_t(n);
        for (size_t i = 0; i < done; ++i)
          sent[i] = true;
      }
    }
    for (size_t i = done; i < payloads.size(); ++i)
      sent[i] = sendOne(payloads[i]);
  }

  Fd openUdp() {
    std::string error;
    const AddrInfoPtr res = resolve(target_, SOCK_DGRAM, &error);
    if (!res) {
      noteError(error);
      return Fd();
    }
    int lastErr = 0;
    for (addrinfo* ai = res.get(); ai != nullptr; ai = ai->ai_next) {
      Fd fd(::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      if (fd && ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
      lastErr = errno;
    }
    noteError(errnoText("udp connect " + name_, lastErr));
    return Fd();
  }

  Fd openUnix() {
    Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) {
      noteError(errnoText("socket", errno));
      return fd;
    }
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, target_.path.c_str(), sizeof sa.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      noteError(errnoText("connect " + target_.path, errno));
      return Fd();
    }
    const int sndbuf = 1 << 20;
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    return fd;
  }

  bool open() {
    fd_ = target_.scheme == common::Scheme::kUdp ? openUdp() : openUnix();
    if (!fd_) return false;
    if (everOpened_) countReconnect();
    everOpened_ = true;
    setConnected(true);
    return true;
  }

  // One send; on a connection-level error (the receiver restarted: its
  // socket is gone or refuses) reopen once and retry.
  bool sendOne(const std::string& payload) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!fd_ && !open()) {
        setConnected(false);
        return false;
      }
      const auto deadline = SteadyClock::now() + milliseconds(kDatagramWaitMs);
      for (;;) {
        if (::send(fd_.get(), payload.data(), payload.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
          return true;
        const int err = errno;
        if ((err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR) &&
            SteadyClock::now() < deadline && !pastStopDeadline()) {
          pollfd p{fd_.get(), POLLOUT, 0};
          ::poll(&p, 1, 50);
          continue;
        }
        noteError(errnoText("send " + name_, err));
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EMSGSIZE)
          return false;  // receiver too slow / too big: this one is lost, socket is fine
        break;
      }
      fd_.reset();
      setConnected(false);
    }
    return false;
  }

  common::Endpoint target_;
  Fd fd_;
  bool everOpened_ = false;
};

}  // namespace

std::unique_ptr<Exporter> makeDatagramExporter(std::string name, common::Endpoint target,
                                               const ExporterOptions& o) {
  return std::make_unique<DatagramExporter>(std::move(name), std::move(target), o);
}

}  // namespace bulkhead::flows
