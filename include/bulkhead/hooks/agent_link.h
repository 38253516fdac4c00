// The hooks' connection to the local agent: the few calls a registration
// needs, each bounded by one deadline shared by the whole hook run, so that
// a hook never outlives its budget (a libvirt hook must not hang libvirtd,
// a CNI plugin must not stall the runtime). gRPC stays in agent_link.cpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::hooks {

// A network configuration or a domain XML is a few KB: stdin is read up to
// this (and one byte more, so that a larger input is refused, not cut).
inline constexpr size_t kMaxInputBytes = 16u << 20;

// Read in 64 KiB steps: a buffer of the whole bound up front would be 16 MB
// zeroed (and faulted in) on every run, most of a hook's start-up.
inline std::string readBounded(std::istream& in) {
  std::string out;
  char chunk[64 * 1024];
  while (out.size() <= kMaxInputBytes && in) {
    const size_t want = std::min(sizeof(chunk), kMaxInputBytes + 1 - out.size());
    in.read(chunk, std::streamsize(want));
    out.append(chunk, size_t(in.gcount()));
  }
  return out;
}

// Every hook run finishes within this, whatever the agent does.
inline constexpr std::chrono::milliseconds kDefaultBudget{5000};

// Errors: kUnavailable (agent not reached, or no answer before the
// deadline), kNotFound, kInvalidInput (the agent refused the request), else
// kInternal; the message names the agent address.
class AgentLink {
 public:
  virtual ~AgentLink() = default;
  virtual Status upsert(const v1::Workload& workload) = 0;
  // `owner` non-empty: only if the registration is that owner's.
  virtual Status remove(const std::string& name, const std::string& owner) = 0;
  // `name` empty: every workload.
  virtual Result<std::vector<v1::Workload>> list(const std::string& name) = 0;
  virtual Status ping() = 0;
};

// Opens a link to the agent at `address` (unix:///path; a hook talks to the
// local agent only, so tcp:// is refused). kInvalidInput for a bad address.
using AgentConnector =
    std::function<Result<std::unique_ptr<AgentLink>>(const std::string& address)>;

// The agent's gRPC service as request paths name it: "/bulkhead.v1.Agent/"
// followed by the method.
inline constexpr const char* kAgentService = "/bulkhead.v1.Agent/";

// The real connector: gRPC over the agent's unix socket, every call of the
// link ending by `start + budget`.
AgentConnector grpcConnector(std::chrono::milliseconds budget = kDefaultBudget);

}  // namespace bulkhead::hooks
