// Internal to src/etcd: the gRPC side of the client. One channel per
// endpoint (each with its own authority, so https endpoints are verified
// and sent SNI for their own host name); calls start on the endpoint that
// last answered and move on to the next one when an endpoint is
// unavailable.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/etcd/client.h"
#include "endpoints.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace bulkhead::etcd {

struct EndpointChannel {
  EtcdEndpoint endpoint;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
};

class ClientImpl {
 public:
  static Result<std::unique_ptr<ClientImpl>> create(const ClientOptions& options);

  const ClientOptions& options() const { return options_; }
  size_t size() const { return channels_.size(); }
  // The endpoint calls start on; the watcher's streams too.
  size_t current() const { return current_.load(); }
  EndpointChannel& channel(size_t index) { return channels_[index % channels_.size()]; }
  // After `index` failed: the next call starts on the endpoint after it
  // (unless another caller moved on already).
  void failedOn(size_t index);

  // Runs `call` with a deadline of requestTimeout on the current endpoint,
  // then on the others in turn while they answer UNAVAILABLE (refused,
  // unreachable, or a member without a leader).
  using Call = std::function<grpc::Status(EndpointChannel&, grpc::ClientContext&)>;
  // When every endpoint answered UNAVAILABLE, waits (within that same
  // requestTimeout) for a channel to be ready and sends with wait_for_ready.
  grpc::Status invoke(const Call& call);

  // A gRPC failure as bulkhead's error, naming the operation and endpoints.
  Error toError(const grpc::Status& status, const std::string& what) const;
  std::string endpointList() const;

 private:
  ClientImpl() = default;
  // The first channel READY before `deadline`, or nullopt.
  std::optional<size_t> readyChannel(std::chrono::system_clock::time_point deadline);
  ClientOptions options_;
  std::vector<EndpointChannel> channels_;
  std::atomic<size_t> current_{0};
};

// [prefixRangeStart, prefixRangeEnd) is every key starting with prefix. etcd
// refuses an empty key: the empty prefix is ["\0", "\0"), all keys.
inline std::string prefixRangeStart(const std::string& prefix) {
  return prefix.empty() ? std::string(1, '\0') : prefix;
}
std::string prefixRangeEnd(const std::string& prefix);

}  // namespace bulkhead::etcd
