// One Connect stream of the controller link (controller_link.h): dialled,
// run until it ends, never reused. A reader thread applies what the
// controller sends through FleetMember, a writer thread writes the outbox
// (hello, local changes, acks, keepalives), and the caller's thread watches
// both for stop(), silence, overflow and failures, and cancels the call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

#include "bulkhead/agent/controller_link.h"
#include "bulkhead/v1/controller.grpc.pb.h"

namespace bulkhead::agent {

using LinkClock = std::chrono::steady_clock;

// What the link's thread, its sessions and the local change listener
// share; every field under `mu`.
struct ControllerLink::Shared {
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  // A stream is open: local changes are queued for it. Otherwise they are
  // dropped, as the next hello carries every local workload.
  bool live = false;
  bool overflow = false;
  std::deque<v1::AgentMessage> outbox;
  ControllerLinkStatus status;
  std::string host;
  size_t maxQueued = 0;

  // The member's listener: called after each local change is applied.
  void localChange(const LocalWorkloadChange& change);
};

class ControllerSession {
 public:
  ControllerSession(FleetMember& member, const ControllerLinkOptions& options,
                    ControllerLink::Shared& shared, std::string url);

  // Dials and runs the stream to its end. True when it was established (its
  // snapshot applied); error() says why it ended.
  bool run();
  const std::string& error() const { return error_; }

 private:
  using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>;

  bool dial(grpc::Channel& channel);
  void open();
  void supervise();
  void readLoop(Stream& stream);
  void writeLoop(Stream& stream);

  void handle(const v1::ControllerMessage& m);
  void onSnapshot(const v1::Snapshot& snapshot);
  void onPolicy(const v1::PolicyRevision& policy);
  void onRemoteUpsert(const v1::Workload& w);
  void onRemoteDelete(const v1::RemoteWorkloadKey& key);
  void onRemoteBatch(const v1::RemoteBatch& batch);
  std::vector<RemoteWorkload> remotesOf(const v1::Snapshot& snapshot);

  // Queues a message for the writer (acks); dropped once the stream is over.
  void send(v1::AgentMessage m);
  // Ends the stream with `why` (kept when it is the first reason).
  void fail(const std::string& why);
  void noteErrorLocked(const std::string& why);

  FleetMember& member_;
  const ControllerLinkOptions& options_;
  ControllerLink::Shared& shared_;
  const std::string url_;
  grpc::ClientContext ctx_;
  // Under shared_.mu:
  bool over_ = false;
  bool readerDone_ = false;
  bool writerDone_ = false;
  bool failed_ = false;
  bool applying_ = false;  // silence is not counted while a change is applied
  bool established_ = false;
  LinkClock::time_point lastHeard_;
  std::string error_;
};

}  // namespace bulkhead::agent
