#include "bulkhead/hooks/h2_unary.h"

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "bulkhead/common/deadline.h"

namespace bulkhead::hooks {

namespace {

Error unavailable(const std::string& why, int err = 0) {
  return makeError(ErrorCode::kUnavailable, err ? why + ": " + std::strerror(err) : why, err);
}

Error protocol(const std::string& why) {
  return makeError(ErrorCode::kInternal, "not gRPC over HTTP/2: " + why);
}

Error deadlinePassed() {
  return unavailable("no answer within the hook's deadline");
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

uint32_t getBe32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i)
    v = (v << 8) | uint8_t(in[at + i]);
  return v;
}

}  // namespace

struct UnaryConnection::Call {
  int32_t stream = -1;
  size_t maxReply = 0;
  std::string pending;  // request bytes (gRPC-framed) not yet handed to nghttp2
  std::string httpStatus;
  std::optional<int> grpcStatus;
  std::string grpcMessage;
  std::string body;
  bool closed = false;
  uint32_t resetCode = 0;        // RST_STREAM (or GOAWAY) before the trailers
  std::optional<Error> failure;  // set by a callback that refused the reply
  std::string libError;          // nghttp2's words for a broken session
};

namespace {

using Call = UnaryConnection::Call;

Call& callOf(void* userData) {
  return *static_cast<Call*>(userData);
}

int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t nameLen,
             const uint8_t* value, size_t valueLen, uint8_t, void* userData) {
  if (!userData) return 0;  // between calls
  Call& call = callOf(userData);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != call.stream) return 0;
  const std::string_view n(reinterpret_cast<const char*>(name), nameLen);
  const std::string_view v(reinterpret_cast<const char*>(value), valueLen);
  if (n == ":status") {
    call.httpStatus = v;
  } else if (n == "grpc-status") {
    int code = 0;
    for (char c : v)
      code = (c >= '0' && c <= '9' && code < 1000) ? code * 10 + (c - '0') : 1000;
    if (v.empty() || code >= 1000) {
      call.failure = protocol("grpc-status \"" + std::string(v) + "\"");
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    call.grpcStatus = code;
  } else if (n == "grpc-message") {
    call.grpcMessage = percentDecode(v);
  } else if (n == "grpc-encoding" && v != "identity") {
    call.failure = protocol("a compressed reply (" + std::string(v) + ")");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int onData(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len,
           void* userData) {
  if (!userData) return 0;  // between calls
  Call& call = callOf(userData);
  if (stream != call.stream) return 0;
  if (call.body.size() + len > call.maxReply + 5) {
    call.failure = makeError(ErrorCode::kInternal, "the agent's reply is larger than " +
                                                       std::to_string(call.maxReply) + " bytes");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  call.body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int onClose(nghttp2_session*, int32_t stream, uint32_t errorCode, void* userData) {
  if (!userData) return 0;  // between calls
  Call& call = callOf(userData);
  if (stream != call.stream) return 0;
  call.closed = true;
  // GOAWAY below our stream reaches us here too, as REFUSED_STREAM.
  if (errorCode != NGHTTP2_NO_ERROR && !call.grpcStatus) call.resetCode = errorCode;
  return 0;
}

int onError(nghttp2_session*, int, const char* msg, size_t len, void* userData) {
  if (!userData) return 0;
  callOf(userData).libError.assign(msg, len);
  return 0;
}

// The request's DATA: nghttp2 asks for as much as the windows allow.
ssize_t readRequest(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                    nghttp2_data_source* source, void*) {
  Call& call = *static_cast<Call*>(source->ptr);
  const size_t n = std::min(length, call.pending.size());
  std::memcpy(buf, call.pending.data(), n);
  call.pending.erase(0, n);
  if (call.pending.empty()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return ssize_t(n);
}

nghttp2_session* newSession() {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return nullptr;
  nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, onClose);
  nghttp2_session_callbacks_set_error_callback2(cb, onError);
  nghttp2_session* s = nullptr;
  const int rv = nghttp2_session_client_new(&s, cb, nullptr);
  nghttp2_session_callbacks_del(cb);
  return rv == 0 ? s : nullptr;
}

nghttp2_nv header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

void UnaryConnection::SessionFree::operator()(nghttp2_session* s) const {
  nghttp2_session_del(s);
}

UnaryConnection::UnaryConnection(std::string socketPath, common::SteadyClock::time_point deadline,
                                 size_t maxReplyBytes)
    : path_(std::move(socketPath)), deadline_(deadline), maxReply_(maxReplyBytes) {}

UnaryConnection::~UnaryConnection() = default;

int UnaryConnection::remainingMs() const {
  return common::msUntil(deadline_);
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
    if (err == EAGAIN) return deadlinePassed();
    return unavailable("unreachable (is bulkhead-agent running?): connect " + path_, err);
  }
  session_.reset(newSession());
  if (!session_) return makeError(ErrorCode::kInternal, "nghttp2: out of memory");
  // No push; stream and connection windows as large as HTTP/2 allows, so a
  // long reply needs no WINDOW_UPDATE from us. nghttp2 sends the preface
  // first and these with the first call.
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, NGHTTP2_MAX_WINDOW_SIZE}};
  if (nghttp2_submit_settings(session_.get(), NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
      nghttp2_session_set_local_window_size(session_.get(), NGHTTP2_FLAG_NONE, 0,
                                            NGHTTP2_MAX_WINDOW_SIZE) != 0)
    return makeError(ErrorCode::kInternal, "nghttp2: cannot set up the session");
  return {};
}

// Everything nghttp2 has queued, written in one go where the socket takes it.
Status UnaryConnection::flush() {
  std::string out;
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_.get(), &data);
    if (n < 0) return protocol(nghttp2_strerror(int(n)));
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), size_t(n));
  }
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::send(fd_.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += size_t(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return unavailable("the connection broke", errno);
    pollfd p{fd_.get(), POLLOUT, 0};
    const int ms = remainingMs();
    if (ms == 0 || ::poll(&p, 1, ms) == 0) return deadlinePassed();
  }
  return {};
}

// One read, handed to nghttp2 at once: a peer that never stops sending
// costs this buffer, not one that grows until the deadline.
Status UnaryConnection::receive() {
  char buf[64 * 1024];
  ssize_t n = -1;
  while (n < 0) {
    pollfd p{fd_.get(), POLLIN, 0};
    const int ms = remainingMs();
    const int ready = ms == 0 ? 0 : ::poll(&p, 1, ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return deadlinePassed();
    n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && errno != EINTR && errno != EAGAIN)
      return unavailable("the connection broke", errno);
  }
  if (n == 0) return unavailable("the agent closed the connection before answering");
  const ssize_t rv =
      nghttp2_session_mem_recv(session_.get(), reinterpret_cast<const uint8_t*>(buf), size_t(n));
  if (rv < 0) return protocol(nghttp2_strerror(int(rv)));
  return {};
}

// Writes and reads until the call's stream closes.
Status UnaryConnection::exchange(Call& call) {
  while (!call.closed) {
    if (auto st = flush(); !st) return st;
    // nghttp2 ends a session that met a protocol error (a first frame that
    // is not SETTINGS, a frame over the size we allow, ...) with GOAWAY.
    if (!nghttp2_session_want_read(session_.get()) && !nghttp2_session_want_write(session_.get()))
      return protocol(call.libError.empty() ? "the session ended" : call.libError);
    Status st = receive();
    if (call.failure) return std::move(*call.failure);
    if (!st) return st;
  }
  if (call.resetCode != 0)
    return unavailable("the agent reset the call (HTTP/2 error " + std::to_string(call.resetCode) +
                       ")");
  return flush();  // WINDOW_UPDATE and the like, so the next call starts clean
}

Result<UnaryReply> UnaryConnection::call(std::string_view method, std::string_view request) {
  if (broken_) return unavailable("the connection broke in an earlier call");
  if (!fd_)
    if (auto st = connect(); !st) {
      session_.reset();
      fd_.reset();
      return st.takeError();
    }
  Call call;
  call.maxReply = maxReply_;
  // The gRPC message: uncompressed flag, u32 length, the message.
  call.pending += char(0);
  for (int i = 3; i >= 0; --i)
    call.pending += char((request.size() >> (8 * i)) & 0xff);
  call.pending.append(request);
  const std::string timeout = std::to_string(std::clamp(remainingMs(), 1, 99999999)) + "m";
  const nghttp2_nv headers[] = {header(":method", "POST"),
                                header(":scheme", "http"),
                                header(":path", method),
                                header(":authority", "localhost"),
                                header("content-type", "application/grpc"),
                                header("te", "trailers"),
                                header("grpc-timeout", timeout),
                                header("user-agent", "bulkhead-hook")};
  nghttp2_data_provider body{};
  body.source.ptr = &call;
  body.read_callback = readRequest;
  nghttp2_session_set_user_data(session_.get(), &call);
  call.stream = nghttp2_submit_request(session_.get(), nullptr, headers,
                                       sizeof(headers) / sizeof(headers[0]), &body, &call);
  if (call.stream < 0)
    return makeError(ErrorCode::kInvalidInput,
                     std::string("cannot send the request: ") + nghttp2_strerror(call.stream));
  Status st = exchange(call);
  nghttp2_session_set_user_data(session_.get(), nullptr);
  if (!st) {
    broken_ = true;
    session_.reset();
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
  if (b.size() < 5 || b[0] != 0 || getBe32(b, 1) != b.size() - 5)
    return protocol("a reply that is not one uncompressed gRPC message");
  reply.body = b.substr(5);
  return reply;
}

}  // namespace bulkhead::hooks
