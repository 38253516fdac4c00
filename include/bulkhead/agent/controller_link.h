// The agent's link to bulkhead-controller (proto/bulkhead/v1/controller.proto,
// docs/agent.md "Controller"): one long-lived Connect stream, dialled by the
// agent. It says hello (host, version, applied revision, local workloads),
// forwards each local workload change, applies what the controller sends
// (snapshot, revisions, remote workloads) through agent::FleetMember and
// acks every revision; keepalives both ways. When the stream breaks it dials
// the controllers again, in order, with capped, jittered backoff, forever.
// Fail-static: while away it changes nothing in the agent, which keeps
// enforcing its last revision and remote workloads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bulkhead/agent/core_types.h"
#include "bulkhead/agent/fleet.h"
#include "bulkhead/common/grpc_channel.h"

namespace bulkhead::agent {

// Either side sends a keepalive at least this often; a controller silent
// for kKeepAliveMissed periods is gone (the stream is cancelled and dialled
// again).
inline constexpr std::chrono::milliseconds kKeepAlivePeriod{5000};
inline constexpr int kKeepAliveMissed = 3;

struct ControllerLinkOptions {
  // unix:///path or tcp://HOST:PORT (TLS), tried in this order.
  std::vector<std::string> controllers;
  common::ClientTls tls;  // for tcp:// controllers: CA, client certificate and key
  std::string host;       // this agent's name in the fleet (--host)
  std::string agentVersion;
  int maxMessageBytes = 64 << 20;
  std::chrono::milliseconds keepAlive = kKeepAlivePeriod;  // tests lower it
  std::chrono::milliseconds backoffMin{200};
  std::chrono::milliseconds backoffMax{5000};
  // A dial that neither connects nor fails within this is abandoned.
  std::chrono::milliseconds dialTimeout{5000};
  // Local changes waiting to be written on the live stream; more than this
  // (a controller that stopped reading) drops the stream, and the next
  // hello carries the full list.
  size_t maxQueued = 4096;
};

class ControllerLink {
 public:
  // Starts dialling at once, on a thread of its own; registers the local
  // change listener of `member`, which must outlive the link.
  ControllerLink(FleetMember& member, ControllerLinkOptions options);
  ~ControllerLink();
  ControllerLink(const ControllerLink&) = delete;
  ControllerLink& operator=(const ControllerLink&) = delete;

  // Ends the stream (if any) and the thread; prompt: it waits at most for
  // a change being applied by the member.
  void stop();

  ControllerLinkStatus status() const;

  struct Shared;  // state shared with the listener and the session threads

 private:
  void run();

  FleetMember& member_;
  const ControllerLinkOptions options_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace bulkhead::agent
