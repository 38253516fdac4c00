// The connection to an agent: the agent flags read once per command
// (--agent, --tls-*, --timeout), the gRPC channel made from a parsed address,
// and failed calls turned into messages and exit codes (docs/cli.md).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "bulkhead/cli/commands.h"
#include "bulkhead/v1/agent.grpc.pb.h"

namespace bulkhead::cli {

inline constexpr int kDefaultTimeoutSeconds = 30;
inline constexpr int kMaxTimeoutSeconds = 24 * 3600;

struct AgentOptions {
  std::vector<std::string> addresses;
  std::string caPem, certPem, keyPem, serverName;
  std::chrono::milliseconds timeout{kDefaultTimeoutSeconds * 1000};
};

struct AgentConnection {
  std::string address;  // as the user wrote it, for messages
  bool tcp = false;     // TLS over TCP
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Agent::Stub> stub;
};

// The agent flags of `args` (`envAgent`: $BULKHEAD_AGENT, "" when unset):
// addresses checked, PEM files read. False with a message on `err`.
bool readAgentOptions(const Args& args, const std::string& envAgent, const std::string& command,
                      AgentOptions* o, std::ostream& err);

// Commands other than push talk to exactly one agent.
bool oneAgent(const AgentOptions& o, const std::string& command, std::ostream& err);

// A channel and stub for `address` (checked by readAgentOptions).
AgentConnection connectAgent(const std::string& address, const AgentOptions& o);

void setDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout);

const char* statusCodeName(grpc::StatusCode code);

// Whether the channel ever got through to the agent: a failed call on a
// channel that is not READY never reached it.
bool reachedAgent(const AgentConnection& c);

// Prints a failed call to `err`, every line prefixed with the agent address;
// returns the exit code.
int reportFailure(const AgentConnection& c, const grpc::Status& s, std::ostream& err);

}  // namespace bulkhead::cli
