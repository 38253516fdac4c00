#include "bulkhead/common/result.h"

#include <cstring>

namespace bulkhead {

const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidInput:
      return "invalid input";
    case ErrorCode::kTooLarge:
      return "too large";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kKernel:
      return "kernel error";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kIo:
      return "i/o error";
    case ErrorCode::kInternal:
      return "internal error";
    case ErrorCode::kFailedPrecondition:
      return "failed precondition";
  }
  return "unknown error";
}

std::string Error::describe() const {
  if (sysErrno == 0) return message;
  return message + " (errno " + std::to_string(sysErrno) + ": " + std::strerror(sysErrno) + ")";
}

}  // namespace bulkhead
