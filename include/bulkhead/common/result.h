// Result<T>: the one error style of bulkhead's libraries. No exceptions cross
// a layer boundary; a failure carries a category, the errno the kernel (or
// libc) gave, and a message with enough context to be logged once at the top.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace bulkhead {

enum class ErrorCode {
  kInvalidInput,        // bad policy, flag or request: exit 2 / INVALID_ARGUMENT
  kTooLarge,            // over a configured limit: RESOURCE_EXHAUSTED
  kNotFound,            // named thing does not exist
  kKernel,              // the kernel refused (errno set)
  kUnavailable,         // cannot reach the kernel / a peer at all
  kIo,                  // file system errors (errno set)
  kInternal,            // a bug: an invariant did not hold
  kFailedPrecondition,  // not in this state (a push to an agent led by a controller)
};

const char* errorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  int sysErrno = 0;  // 0 when not from a system call
  std::string message;

  // "message (errno N: strerror)" when sysErrno is set.
  std::string describe() const;
};

inline Error makeError(ErrorCode code, std::string message, int sysErrno = 0) {
  return Error{code, sysErrno, std::move(message)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& takeError() {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }
  Error&& takeError() {
    assert(!ok_);
    return std::move(error_);
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace bulkhead
