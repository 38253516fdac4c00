// The Controller gRPC service (proto/bulkhead/v1/controller.proto) over a
// ControllerCore. Connect is a callback (reactor) stream: no thread per
// agent, and each stream has its own bounded outbound queue, so a slow
// agent never holds up the others; one that falls too far behind has its
// stream closed (RESOURCE_EXHAUSTED) and comes back for a snapshot.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "bulkhead/common/result.h"
#include "bulkhead/controller/core.h"
#include "bulkhead/v1/controller.grpc.pb.h"

namespace bulkhead::controller {

struct ServiceOptions {
  // Per stream: messages queued beyond these close the stream.
  size_t maxQueuedMessages = 16384;
  size_t maxQueuedBytes = 64u << 20;
};

grpc::Status toGrpcStatus(const Error& e);

// Remote changes (remote_upsert, remote_delete, remote_batch messages)
// folded, in order, into one RemoteBatch: the last state of each (host,
// name) wins, so each key appears once. What a stream sends an agent that
// takes batches when several changes wait for it.
v1::ControllerMessage foldRemoteChanges(std::vector<v1::ControllerMessage> changes);

// Starts the streams' writes off the core's lock (service.cpp). Shared by
// the service and its streams: a stream may outlive the service.
class WriteStarter;

class ControllerService
    : public v1::Controller::WithRawCallbackMethod_Connect<v1::Controller::Service> {
 public:
  ControllerService(ControllerCore& core, ServiceOptions options = {});

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Connect(
      grpc::CallbackServerContext* context) override;
  grpc::Status PushPolicy(grpc::ServerContext* context, const v1::PushPolicyRequest* request,
                          v1::PushPolicyResponse* response) override;
  grpc::Status WatchRollout(grpc::ServerContext* context, const v1::WatchRolloutRequest* request,
                            grpc::ServerWriter<v1::RolloutProgress>* writer) override;
  grpc::Status GetFleetStatus(grpc::ServerContext* context,
                              const v1::GetFleetStatusRequest* request,
                              v1::FleetStatus* response) override;
  grpc::Status ListFleetWorkloads(grpc::ServerContext* context,
                                  const v1::ListFleetWorkloadsRequest* request,
                                  v1::ListWorkloadsResponse* response) override;

  // Ends WatchRollout streams (at shutdown).
  void shutdown() { stopping_ = true; }

 private:
  ControllerCore& core_;
  ServiceOptions options_;
  std::atomic<bool> stopping_{false};
  // One thread per service; it waits while no stream has anything new.
  std::shared_ptr<WriteStarter> starter_;
};

// The names a verified client certificate carries: its DNS SANs, else its
// CN; empty for a connection without one (a unix socket).
std::vector<std::string> peerHostNames(const grpc::AuthContext& context);

}  // namespace bulkhead::controller
