// The one mapping from bulkhead's errors to gRPC status codes, for every
// gRPC server of the project (the agent's API, the controller's). Header-only
// like grpc_channel.h: it compiles into whichever gRPC its includer links,
// and bulkhead_common itself stays free of gRPC.
#pragma once

#include <grpcpp/grpcpp.h>

#include "bulkhead/common/result.h"

namespace bulkhead::common {

// What the client did wrong (or asked in the wrong state) carries the
// message alone; what failed on the server side also carries the errno.
inline grpc::Status grpcStatus(const Error& e) {
  switch (e.code) {
    case ErrorCode::kInvalidInput:
      return {grpc::StatusCode::INVALID_ARGUMENT, e.message};
    case ErrorCode::kTooLarge:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, e.message};
    case ErrorCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, e.message};
    case ErrorCode::kFailedPrecondition:
      return {grpc::StatusCode::FAILED_PRECONDITION, e.message};
    // The kernel or a peer cannot be reached: a state of the host the
    // client may wait out and try again.
    case ErrorCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, e.describe()};
    // The kernel refused a transaction; nf_tables takes one whole or not at
    // all, so the client may try again too.
    case ErrorCode::kKernel:
      return {grpc::StatusCode::UNAVAILABLE,
              "the kernel refused the change, nothing was applied: " + e.describe()};
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return {grpc::StatusCode::INTERNAL, e.describe()};
  }
  return {grpc::StatusCode::UNKNOWN, e.describe()};
}

inline grpc::Status grpcStatus(const Status& st) {
  return st ? grpc::Status::OK : grpcStatus(st.error());
}

}  // namespace bulkhead::common
