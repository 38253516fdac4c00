#include "bulkhead/hooks/h2_unary.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

namespace bulkhead::hooks {

namespace {

// RFC 9113 section 6: frame types, flags and settings used here.
enum FrameType : uint8_t {
  kData = 0x0,
  kHeaders = 0x1,
  kRstStream = 0x3,
  kSettings = 0x4,
  kPushPromise = 0x5,
  kPing = 0x6,
  kGoaway = 0x7,
  kWindowUpdate = 0x8,
  kContinuation = 0x9,
};
constexpr uint8_t kEndStream = 0x1;
constexpr uint8_t kAck = 0x1;
constexpr uint8_t kEndHeaders = 0x4;
constexpr uint8_t kPadded = 0x8;
constexpr uint8_t kPriority = 0x20;
constexpr uint16_t kSettingsEnablePush = 0x2;
constexpr uint16_t kSettingsInitialWindow = 0x4;
constexpr uint16_t kSettingsMaxFrame = 0x5;

constexpr size_t kFrameHeaderBytes = 9;
constexpr uint32_t kOurMaxFrame = 16384;  // the default: we never raise it
constexpr int64_t kMaxWindow = 0x7fffffff;
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

void putBe(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out += char((v >> (8 * i)) & 0xff);
}

uint64_t getBe(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = (v << 8) | uint8_t(in[at + size_t(i)]);
  return v;
}

void putFrame(std::string& out, uint8_t type, uint8_t flags, uint32_t stream,
              std::string_view payload) {
  putBe(out, payload.size(), 3);
  out += char(type);
  out += char(flags);
  putBe(out, stream & 0x7fffffffu, 4);
  out.append(payload);
}

Error unavailable(const std::string& why, int err = 0) {
  return makeError(ErrorCode::kUnavailable, err ? why + ": " + std::strerror(err) : why, err);
}

Error protocol(const std::string& why) {
  return makeError(ErrorCode::kInternal, "not gRPC over HTTP/2: " + why);
}

// grpc-message is percent-encoded (gRPC's PROTOCOL-HTTP2 spec).
std::string percentDecode(std::string_view in) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += char(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += in[i];
  }
  return out;
}

// Strips the padding (and priority fields) a DATA or HEADERS frame may
// carry; false when they do not fit.
bool unpad(std::string& payload, uint8_t flags, bool headers) {
  size_t start = 0, pad = 0;
  if (flags & kPadded) {
    if (payload.empty()) return false;
    pad = uint8_t(payload[0]);
    start = 1;
  }
  if (headers && (flags & kPriority)) start += 5;
  if (start + pad > payload.size()) return false;
  payload = payload.substr(start, payload.size() - start - pad);
  return true;
}

}  // namespace

struct UnaryConnection::Call {
  uint32_t stream = 0;
  std::string pending;  // request bytes (gRPC-framed) not yet sent
  int64_t window = 0;   // the peer's window for this stream
  std::string block;    // a header block waiting for its CONTINUATION
  bool blockEndsStream = false;
  uint32_t blockStream = 0;
  std::string httpStatus;
  std::optional<int> grpcStatus;
  std::string grpcMessage;
  std::string body;
  bool done = false;
};

int UnaryConnection::remainingMs() const {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
  return left <= 0 ? 0 : int(std::min<int64_t>(left, 1 << 30));
}

Status UnaryConnection::connect() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof(addr.sun_path))
    return makeError(ErrorCode::kInvalidInput, "socket path " + path_ + " is too long");
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_) return unavailable("socket", errno);
  for (;;) {
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) break;
    // A full listen backlog: the agent is busy, try again until the deadline.
    if (errno == EAGAIN && remainingMs() > 0) {
      ::poll(nullptr, 0, 1);
      continue;
    }
    if (errno == EINTR) continue;
    const int err = errno;
    fd_.reset();
    if (err == EAGAIN) return unavailable("no answer within the hook's deadline");
    return unavailable("unreachable (is bulkhead-agent running?): connect " + path_, err);
  }
  // The client's preface, our settings (no push; a stream window as large
  // as HTTP/2 allows, so a long reply needs no WINDOW_UPDATE from us) and
  // the connection's window raised to match. Sent with the first call.
  std::string out(kPreface);
  std::string settings;
  putBe(settings, kSettingsEnablePush, 2);
  putBe(settings, 0, 4);
  putBe(settings, kSettingsInitialWindow, 2);
  putBe(settings, kMaxWindow, 4);
  putFrame(out, kSettings, 0, 0, settings);
  std::string increment;
  putBe(increment, kMaxWindow - 65535, 4);
  putFrame(out, kWindowUpdate, 0, 0, increment);
  return send(out);
}

Status UnaryConnection::send(std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += size_t(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return unavailable("the connection broke", errno);
    pollfd p{fd_.get(), POLLOUT, 0};
    const int ms = remainingMs();
    if (ms == 0 || ::poll(&p, 1, ms) == 0)
      return unavailable("no answer within the hook's deadline");
  }
  return {};
}

Status UnaryConnection::fill(size_t want) {
  // Drop what was parsed, so a peer that never stops sending costs a
  // bounded buffer, not one that grows until the deadline.
  if (inAt_ > 0 && (inAt_ == in_.size() || inAt_ > 64 * 1024)) {
    in_.erase(0, inAt_);
    inAt_ = 0;
  }
  while (in_.size() - inAt_ < want) {
    pollfd p{fd_.get(), POLLIN, 0};
    const int ms = remainingMs();
    const int ready = ms == 0 ? 0 : ::poll(&p, 1, ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return unavailable("no answer within the hook's deadline");
    char buf[64 * 1024];
    const ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return unavailable("the connection broke", errno);
    if (n == 0) return unavailable("the agent closed the connection before answering");
    in_.append(buf, size_t(n));
  }
  return {};
}

Result<UnaryConnection::Frame> UnaryConnection::readFrame() {
  if (auto st = fill(kFrameHeaderBytes); !st) return st.takeError();
  const std::string_view h(in_.data() + inAt_, kFrameHeaderBytes);
  const size_t len = size_t(getBe(h, 0, 3));
  if (len > kOurMaxFrame) return protocol("a frame of " + std::to_string(len) + " bytes");
  Frame f;
  f.type = uint8_t(h[3]);
  f.flags = uint8_t(h[4]);
  f.stream = uint32_t(getBe(h, 5, 4)) & 0x7fffffffu;
  if (auto st = fill(kFrameHeaderBytes + len); !st) return st.takeError();
  f.payload.assign(in_, inAt_ + kFrameHeaderBytes, len);
  inAt_ += kFrameHeaderBytes + len;
  return f;
}

// As much of the request as both windows and the peer's frame size allow.
Status UnaryConnection::sendData(Call& call) {
  std::string out;
  while (!call.pending.empty() && sendWindow_ > 0 && call.window > 0) {
    const size_t n = size_t(std::min<int64_t>(
        {int64_t(call.pending.size()), sendWindow_, call.window, int64_t(peerMaxFrame_)}));
    const bool last = n == call.pending.size();
    putFrame(out, kData, last ? kEndStream : 0, call.stream,
             std::string_view(call.pending).substr(0, n));
    call.pending.erase(0, n);
    sendWindow_ -= int64_t(n);
    call.window -= int64_t(n);
  }
  return out.empty() ? Status{} : send(out);
}

Status UnaryConnection::onSettings(const Frame& f, Call& call) {
  if (f.flags & kAck) return {};
  if (f.stream != 0 || f.payload.size() % 6 != 0) return protocol("a malformed SETTINGS frame");
  for (size_t at = 0; at < f.payload.size(); at += 6) {
    const auto id = uint16_t(getBe(f.payload, at, 2));
    const auto value = int64_t(getBe(f.payload, at + 2, 4));
    if (id == kSettingsInitialWindow) {
      // Section 6.9.2: the change applies to the open stream's window too.
      call.window += value - peerInitialWindow_;
      peerInitialWindow_ = value;
    } else if (id == kSettingsMaxFrame) {
      peerMaxFrame_ = uint32_t(std::clamp<int64_t>(value, 16384, 16777215));
    }
  }
  std::string ack;
  putFrame(ack, kSettings, kAck, 0, "");
  if (auto st = send(ack); !st) return st;
  return sendData(call);
}

// HEADERS and CONTINUATION: every block goes through the decoder (its
// table follows the connection); the call's own blocks are read.
Status UnaryConnection::onHeaders(Frame& f, Call& call) {
  if (f.type == kHeaders) {
    if (!call.block.empty() || call.blockStream != 0)
      return protocol("HEADERS inside a header block");
    if (!unpad(f.payload, f.flags, true)) return protocol("a malformed HEADERS frame");
    call.blockStream = f.stream;
    call.blockEndsStream = (f.flags & kEndStream) != 0;
  } else if (call.blockStream == 0 || f.stream != call.blockStream) {
    return protocol("CONTINUATION outside a header block");
  }
  call.block += f.payload;
  if (call.block.size() > 1u << 20) return protocol("a header block over 1 MiB");
  if ((f.flags & kEndHeaders) == 0) return {};
  auto headers = decoder_.decode(call.block);
  const uint32_t stream = call.blockStream;
  call.block.clear();
  call.blockStream = 0;
  if (!headers) return protocol(headers.error().message);
  if (stream != call.stream) return {};
  for (const auto& h : *headers) {
    if (h.name == ":status") {
      call.httpStatus = h.value;
    } else if (h.name == "grpc-status") {
      int v = 0;
      for (char c : h.value)
        v = (c >= '0' && c <= '9' && v < 1000) ? v * 10 + (c - '0') : 1000;
      if (h.value.empty() || v >= 1000) return protocol("grpc-status \"" + h.value + "\"");
      call.grpcStatus = v;
    } else if (h.name == "grpc-message") {
      call.grpcMessage = percentDecode(h.value);
    } else if (h.name == "grpc-encoding" && h.value != "identity") {
      return protocol("a compressed reply (" + h.value + ")");
    }
  }
  if (call.blockEndsStream) call.done = true;
  return {};
}

Status UnaryConnection::onFrame(Frame& f, Call& call) {
  if (call.blockStream != 0 && f.type != kContinuation)
    return protocol("a frame inside a header block");
  switch (f.type) {
    case kData: {
      receivedSinceUpdate_ += f.payload.size();
      if (receivedSinceUpdate_ > (1u << 30)) {  // keep the connection's window open
        std::string inc, out;
        putBe(inc, receivedSinceUpdate_, 4);
        putFrame(out, kWindowUpdate, 0, 0, inc);
        receivedSinceUpdate_ = 0;
        if (auto st = send(out); !st) return st;
      }
      if (f.stream != call.stream) return {};
      if (!unpad(f.payload, f.flags, false)) return protocol("a malformed DATA frame");
      if (call.body.size() + f.payload.size() > maxReply_ + 5)
        return makeError(ErrorCode::kInternal, "the agent's reply is larger than " +
                                                   std::to_string(maxReply_) + " bytes");
      call.body += f.payload;
      if (f.flags & kEndStream) call.done = true;
      return {};
    }
    case kHeaders:
    case kContinuation:
      return onHeaders(f, call);
    case kSettings:
      return onSettings(f, call);
    case kPing: {
      if (f.flags & kAck) return {};
      std::string out;
      putFrame(out, kPing, kAck, 0, f.payload);
      return send(out);
    }
    case kWindowUpdate: {
      if (f.payload.size() != 4) return protocol("a malformed WINDOW_UPDATE frame");
      const auto inc = int64_t(getBe(f.payload, 0, 4) & 0x7fffffffu);
      if (f.stream == 0) sendWindow_ += inc;
      if (f.stream == call.stream) call.window += inc;
      return sendData(call);
    }
    case kRstStream:
      if (f.stream != call.stream) return {};
      return unavailable("the agent reset the call (HTTP/2 error " +
                         std::to_string(f.payload.size() == 4 ? getBe(f.payload, 0, 4) : 0) + ")");
    case kGoaway: {
      // Streams up to the last one it names are still answered.
      const uint32_t last =
          f.payload.size() >= 4 ? uint32_t(getBe(f.payload, 0, 4)) & 0x7fffffffu : 0;
      if (last < call.stream) return unavailable("the agent is closing the connection (GOAWAY)");
      return {};
    }
    case kPushPromise:
      return protocol("PUSH_PROMISE, though push is off");
    default:
      return {};  // PRIORITY, and unknown types are ignored
  }
}

Result<UnaryReply> UnaryConnection::call(std::string_view method, std::string_view request) {
  if (broken_) return unavailable("the connection broke in an earlier call");
  if (!fd_)
    if (auto st = connect(); !st) {
      fd_.reset();
      return st.takeError();
    }
  Call call;
  call.stream = nextStream_;
  nextStream_ += 2;
  call.window = peerInitialWindow_;
  std::string block;
  block += char(0x83);  // :method POST (static index 3)
  block += char(0x86);  // :scheme http (static index 6)
  hpack::encodeLiteral(block, 4, ":path", method);
  hpack::encodeLiteral(block, 1, ":authority", "localhost");
  hpack::encodeLiteral(block, 31, "content-type", "application/grpc");
  hpack::encodeLiteral(block, 0, "te", "trailers");
  hpack::encodeLiteral(block, 0, "grpc-timeout",
                       std::to_string(std::clamp(remainingMs(), 1, 99999999)) + "m");
  hpack::encodeLiteral(block, 58, "user-agent", "bulkhead-hook");
  if (block.size() > kOurMaxFrame)
    return makeError(ErrorCode::kInvalidInput, "method name too long");
  std::string out;
  putFrame(out, kHeaders, kEndHeaders, call.stream, block);
  // The gRPC message: uncompressed flag, u32 length, the message.
  call.pending += char(0);
  putBe(call.pending, request.size(), 4);
  call.pending.append(request);
  Status st = send(out);
  if (st) st = sendData(call);
  while (st && !call.done) {
    auto frame = readFrame();
    if (!frame) {
      st = frame.takeError();
      break;
    }
    st = onFrame(*frame, call);
  }
  if (!st) {
    broken_ = true;
    fd_.reset();
    return st.takeError();
  }
  if (call.httpStatus != "200") return protocol("HTTP status \"" + call.httpStatus + "\"");
  if (!call.grpcStatus) return protocol("a reply without grpc-status");
  UnaryReply reply;
  reply.grpcStatus = *call.grpcStatus;
  reply.message = std::move(call.grpcMessage);
  if (reply.grpcStatus != 0) return reply;
  const std::string& b = call.body;
  if (b.size() < 5 || b[0] != 0 || getBe(b, 1, 4) != b.size() - 5)
    return protocol("a reply that is not one uncompressed gRPC message");
  reply.body = b.substr(5);
  return reply;
}

}  // namespace bulkhead::hooks
