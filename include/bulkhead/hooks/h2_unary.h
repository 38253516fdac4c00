// A gRPC unary call over HTTP/2 on a unix socket, written out by hand for
// the hooks: a CNI plugin or libvirt hook is a process that makes one call
// and exits, and gRPC's client library spends more on starting (its
// threads, its channel stack, its connection state machine) than the call
// itself costs. The wire is the same gRPC the agent serves: the connection
// preface, SETTINGS, one HEADERS and DATA per call, the reply's HEADERS,
// DATA and trailers (grpc-status, grpc-message), HPACK with Huffman and the
// dynamic table on the way in. Unary calls only, no compression, no TLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "bulkhead/common/fd.h"
#include "bulkhead/common/result.h"
#include "bulkhead/hooks/hpack.h"

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
  using Clock = std::chrono::system_clock;

  UnaryConnection(std::string socketPath, Clock::time_point deadline, size_t maxReplyBytes)
      : path_(std::move(socketPath)), deadline_(deadline), maxReply_(maxReplyBytes) {}

  // `method`: "/package.Service/Method".
  Result<UnaryReply> call(std::string_view method, std::string_view request);

 private:
  struct Frame {
    uint8_t type = 0;
    uint8_t flags = 0;
    uint32_t stream = 0;
    std::string payload;
  };
  struct Call;  // one call's state, in h2_unary.cpp

  Status connect();
  Status send(std::string_view bytes);
  Result<Frame> readFrame();
  Status fill(size_t want);
  Status onFrame(Frame& frame, Call& call);
  Status onSettings(const Frame& frame, Call& call);
  Status onHeaders(Frame& frame, Call& call);
  Status sendData(Call& call);
  int remainingMs() const;

  std::string path_;
  Clock::time_point deadline_;
  size_t maxReply_;
  Fd fd_;
  bool broken_ = false;
  std::string in_;  // read, not yet parsed
  size_t inAt_ = 0;
  hpack::Decoder decoder_;
  uint32_t nextStream_ = 1;
  int64_t sendWindow_ = 65535;         // connection, the peer's
  int64_t peerInitialWindow_ = 65535;  // per stream, the peer's
  uint32_t peerMaxFrame_ = 16384;
  uint64_t receivedSinceUpdate_ = 0;
};

}  // namespace bulkhead::hooks
