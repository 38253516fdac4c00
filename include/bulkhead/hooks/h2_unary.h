// A gRPC unary call over HTTP/2 on a unix socket, for the hooks: a CNI
// plugin or libvirt hook is a process that makes one call and exits, and
// gRPC's client library spends more on starting (its threads, its channel
// stack, its connection state machine) than the call itself costs.
// libnghttp2 does the HTTP/2 framing, flow control and HPACK; this file
// adds what gRPC puts on top (the request headers, the 5-byte message
// prefix, grpc-status and grpc-message in the trailers) and a poll loop
// that holds every read and write to the hook's deadline. Unary calls
// only, no compression, no TLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "bulkhead/common/fd.h"
#include "bulkhead/common/result.h"
#include "bulkhead/common/time_format.h"

struct nghttp2_session;

namespace bulkhead::hooks {

struct UnaryReply {
  int grpcStatus = 0;   // grpc::StatusCode's numbers: 0 OK, 5 NOT_FOUND, ...
  std::string message;  // grpc-message, percent-decoded
  std::string body;     // the response message (grpcStatus 0)
};

// One connection, opened on the first call; calls run one after another on
// it (streams 1, 3, ...). Every read and write ends by `deadline`.
// call() fails with kUnavailable when the socket cannot be reached, the
// connection breaks, or the deadline passes (message "deadline"), and with
// kInternal when the peer does not speak gRPC over HTTP/2; the gRPC status
// of an answered call is in the reply, not an error.
class UnaryConnection {
 public:
  UnaryConnection(std::string socketPath, common::SteadyClock::time_point deadline,
                  size_t maxReplyBytes);
  ~UnaryConnection();
  UnaryConnection(const UnaryConnection&) = delete;
  UnaryConnection& operator=(const UnaryConnection&) = delete;

  // `method`: "/package.Service/Method".
  Result<UnaryReply> call(std::string_view method, std::string_view request);

  struct Call;  // one call's state, in h2_unary.cpp (its callbacks fill it)

 private:
  struct SessionFree {
    void operator()(nghttp2_session* s) const;
  };

  Status connect();
  Status flush();
  Status receive();
  Status exchange(Call& call);
  int remainingMs() const;

  std::string path_;
  common::SteadyClock::time_point deadline_;
  size_t maxReply_;
  Fd fd_;
  bool broken_ = false;
  std::unique_ptr<nghttp2_session, SessionFree> session_;
};

}  // namespace bulkhead::hooks
