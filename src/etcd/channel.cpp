// The client's gRPC channels: TLS, failover across endpoints, error mapping.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "bulkhead/common/file.h"
#include "client_impl.h"

namespace bulkhead::etcd {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;
// etcd answers a range of the whole fleet in one message: allow large
// responses. Requests above etcd's own limit (1.5 MiB by default) are
// refused by etcd; anything far beyond it is refused here before sending.
constexpr int kMaxReceiveBytes = 256 << 20;
constexpr int kMaxSendBytes = 16 << 20;
// Between two looks at the channels while every endpoint is unavailable.
constexpr auto kRetryPause = std::chrono::milliseconds(20);

grpc::ChannelArguments channelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  args.SetMaxSendMessageSize(kMaxSendBytes);
  // A private subchannel pool: two clients never share a connection's
  // back-off state.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // gRPC's default back-off after a failed connect grows to two minutes;
  // an etcd that restarts is back within a second or two, and calls made
  // during a back-off fail at once without trying.
  // (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is left alone: gRPC also takes it
  // as the time a connect attempt may last.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Finds a dead peer under a long watch stream. etcd refuses pings more
  // often than every 5 s (--grpc-keepalive-min-time) with a GOAWAY.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  return args;
}

Result<std::string> readPem(const std::string& path, const char* what) {
  if (path.empty()) return std::string();
  auto text = common::readFileBounded(path, kMaxPemBytes);
  if (!text)
    return makeError(ErrorCode::kInvalidInput,
                     std::string("etcd ") + what + " '" + path + "': " + text.error().describe());
  return text;
}

Result<std::shared_ptr<grpc::ChannelCredentials>> credentials(const ClientOptions& options,
                                                              bool tls) {
  if (!tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  auto ca = readPem(options.caFile, "CA file");
  auto cert = readPem(options.certFile, "certificate file");
  auto key = readPem(options.keyFile, "key file");
  for (auto* r : {&ca, &cert, &key})
    if (!*r) return r->takeError();
  // Empty: gRPC's default roots (the system's).
  ssl.pem_root_certs = *ca;
  ssl.pem_cert_chain = *cert;
  ssl.pem_private_key = *key;
  return grpc::SslCredentials(ssl);
}

bool isTooLarge(const grpc::Status& status) {
  const std::string& m = status.error_message();
  return status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         m.find("too large") != std::string::npos;
}

// gRPC's words for a connection that never got as far as a call (a
// refused port, a failed handshake), as opposed to etcd's own answers.
bool connectFailed(const std::string& message) {
  for (const char* word : {"connect", "handshake", "Handshake", "SSL", "ssl", "Socket closed"})
    if (message.find(word) != std::string::npos) return true;
  return false;
}

ErrorCode codeFor(const grpc::Status& status) {
  if (isTooLarge(status)) return ErrorCode::kTooLarge;
  switch (status.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      return ErrorCode::kNotFound;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return ErrorCode::kInvalidInput;
    case grpc::StatusCode::OUT_OF_RANGE:  // a compacted revision
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return ErrorCode::kFailedPrecondition;
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNIMPLEMENTED:
      return ErrorCode::kInternal;
    default:  // UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, UNKNOWN...
      return ErrorCode::kUnavailable;
  }
}

}  // namespace

Result<std::unique_ptr<ClientImpl>> ClientImpl::create(const ClientOptions& options) {
  if (auto st = validateOptions(options); !st) return st.takeError();
  std::unique_ptr<ClientImpl> impl(new ClientImpl());
  impl->options_ = options;
  for (const auto& text : options.endpoints) {
    auto endpoint = parseEndpointUrl(text);
    if (!endpoint) return endpoint.takeError();
    auto creds = credentials(options, endpoint->tls);
    if (!creds) return creds.takeError();
    EndpointChannel ch;
    ch.endpoint = *endpoint;
    ch.channel = grpc::CreateCustomChannel(endpoint->hostPort(), *creds, channelArguments());
    ch.kv = etcdserverpb::KV::NewStub(ch.channel);
    ch.lease = etcdserverpb::Lease::NewStub(ch.channel);
    ch.watch = etcdserverpb::Watch::NewStub(ch.channel);
    impl->channels_.push_back(std::move(ch));
  }
  return impl;
}

void ClientImpl::failedOn(size_t index) {
  size_t expected = index % channels_.size();
  current_.compare_exchange_strong(expected, (expected + 1) % channels_.size());
}

// First a round over the endpoints that fails fast on each (a dead member
// costs nothing when another answers). When every one was unavailable --
// etcd restarting, a channel still in its reconnect back-off -- the call
// waits for a channel to become ready, until requestTimeout from the start,
// and is sent there with wait_for_ready: a put during a short restart
// succeeds once etcd is back. wait_for_ready only delays the sending; a
// call that failed after being sent is not repeated by gRPC.
grpc::Status ClientImpl::invoke(const Call& call) {
  const auto deadline = std::chrono::system_clock::now() + options_.requestTimeout;
  grpc::Status status;
  const size_t start = current();
  for (size_t i = 0; i < channels_.size(); ++i) {
    const size_t index = (start + i) % channels_.size();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.requestTimeout);
    status = call(channels_[index], context);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return status;
    failedOn(index);
  }
  const grpc::Status firstRound = status;
  while (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    const auto index = readyChannel(deadline);
    if (!index) return firstRound;
    grpc::ClientContext context;
    context.set_deadline(deadline);
    context.set_wait_for_ready(true);
    status = call(channels_[*index], context);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      current_ = *index;
      break;
    }
    // Ready but refused (a member without a leader): again a little later.
    std::this_thread::sleep_for(kRetryPause);
  }
  return status;
}

// gRPC moves a channel out of TRANSIENT_FAILURE when its back-off ends
// (GetState(true) asks it to connect). The states are polled rather than
// the call left to wait_for_ready alone: with several endpoints the first
// to come back wins, and when none does the caller reports the first
// round's error (a refused port, a TLS handshake that failed), not a bare
// deadline.
std::optional<size_t> ClientImpl::readyChannel(std::chrono::system_clock::time_point deadline) {
  for (;;) {
    for (size_t i = 0; i < channels_.size(); ++i) {
      const size_t index = (current() + i) % channels_.size();
      if (channels_[index].channel->GetState(true) == GRPC_CHANNEL_READY) return index;
    }
    if (std::chrono::system_clock::now() + kRetryPause >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kRetryPause);
  }
}

std::string ClientImpl::endpointList() const {
  std::string out;
  for (const auto& ch : channels_)
    out += (out.empty() ? "" : ",") + ch.endpoint.url();
  return out;
}

Error ClientImpl::toError(const grpc::Status& status, const std::string& what) const {
  std::string detail = status.error_message();
  const bool tls = !channels_.empty() && channels_.front().endpoint.tls;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    detail = "timed out after " + std::to_string(options_.requestTimeout.count()) + " ms";
  else if (tls && status.error_code() == grpc::StatusCode::UNAVAILABLE && connectFailed(detail))
    detail += " (TLS: is etcd serving https, with a certificate the CA signs for that host?)";
  std::string message = "etcd " + what + ": " + detail;
  if (codeFor(status) == ErrorCode::kUnavailable) message += " [endpoints " + endpointList() + "]";
  return makeError(codeFor(status), message);
}

std::string prefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (uint8_t(end.back()) < 0xff) {
      end.back() = char(uint8_t(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  // Every byte 0xff (or empty): to the end of the key space.
  return std::string(1, '\0');
}

}  // namespace bulkhead::etcd
