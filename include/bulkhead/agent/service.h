// The gRPC face of AgentCore: translates requests and maps errors to precise
// status codes (common::grpcStatus); logs each failure once, with the call and the peer.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "bulkhead/agent/config.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/v1/agent.grpc.pb.h"

namespace bulkhead::agent {

class AgentService final : public v1::Agent::Service {
 public:
  explicit AgentService(AgentCore& core) : core_(core) {}
  void shutdown() { stopping_ = true; }

  grpc::Status ApplyPolicy(grpc::ServerContext* ctx, const v1::ApplyPolicyRequest* req,
                           v1::ApplyPolicyResponse* resp) override;
  grpc::Status UpsertWorkload(grpc::ServerContext* ctx, const v1::UpsertWorkloadRequest* req,
                              v1::UpsertWorkloadResponse* resp) override;
  grpc::Status DeleteWorkload(grpc::ServerContext* ctx, const v1::DeleteWorkloadRequest* req,
                              v1::DeleteWorkloadResponse* resp) override;
  grpc::Status ListWorkloads(grpc::ServerContext* ctx, const v1::ListWorkloadsRequest* req,
                             v1::ListWorkloadsResponse* resp) override;
  grpc::Status Quarantine(grpc::ServerContext* ctx, const v1::QuarantineRequest* req,
                          v1::QuarantineResponse* resp) override;
  grpc::Status ListQuarantines(grpc::ServerContext* ctx, const v1::ListQuarantinesRequest* req,
                               v1::ListQuarantinesResponse* resp) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::GetStatusRequest* req,
                         v1::AgentStatus* resp) override;
  grpc::Status WatchFlows(grpc::ServerContext* ctx, const v1::WatchFlowsRequest* req,
                          grpc::ServerWriter<v1::FlowEvent>* writer) override;

 private:
  AgentCore& core_;
  std::atomic<bool> stopping_{false};
};

// Builds and starts the server on every --listen address. unix:// sockets:
// a stale socket file is replaced (one another process still answers on is
// an error), and the socket is made mode 0660 (with --socket-group, owned
// by that group, in a directory the group can traverse). tcp:// needs --tls-cert,
// --tls-key and --tls-client-ca: clients must present a certificate the CA
// signed, and with --tls-allowed-names one that carries a listed name (DNS
// or URI subjectAltName, or CN); other clients get PERMISSION_DENIED on
// every call. `maxMessageBytes` bounds a request.
Result<std::unique_ptr<grpc::Server>> startServer(AgentService& service, const AgentConfig& config,
                                                  size_t maxMessageBytes);

}  // namespace bulkhead::agent
