// The connection to a daemon (an agent, or a controller): the client flags
// read once per command (--agent or --controller, --tls-*, --timeout), the
// gRPC channel made from a parsed address, one way to make a unary call
// with its deadline, and failed calls turned into messages and exit codes
// (docs/cli.md).
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

// Which daemon a command talks to: it names it in messages.
enum class Peer { kAgent, kController };

struct ClientOptions {
  Peer peer = Peer::kAgent;
  std::vector<std::string> addresses;
  std::string caPem, certPem, keyPem, serverName;
  std::chrono::milliseconds timeout{kDefaultTimeoutSeconds * 1000};
  bool timeoutGiven = false;  // --timeout was on the command line
};
using AgentOptions = ClientOptions;

// A channel to one daemon.
struct Connection {
  std::string address;  // as the user wrote it, for messages
  Peer peer = Peer::kAgent;
  bool tcp = false;  // TLS over TCP
  std::shared_ptr<grpc::Channel> channel;
};

// The client flags of `args` for `peer`: --agent (else `envAddress`, else
// the default socket) or --controller (else `envAddress`), --timeout, the
// TLS flags: addresses checked, PEM files read. False with a message on
// `err`.
bool readClientOptions(const Args& args, const std::string& envAddress, const std::string& command,
                       Peer peer, ClientOptions* o, std::ostream& err);

// The agent flags of `args` (`envAgent`: $BULKHEAD_AGENT, "" when unset):
// addresses checked, PEM files read. False with a message on `err`.
bool readAgentOptions(const Args& args, const std::string& envAgent, const std::string& command,
                      AgentOptions* o, std::ostream& err);

// Commands other than push talk to exactly one agent.
bool oneAgent(const AgentOptions& o, const std::string& command, std::ostream& err);

// A channel for `address` (checked when the options were read).
Connection connect(const std::string& address, const ClientOptions& o);

void setDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout);

const char* statusCodeName(grpc::StatusCode code);

// Whether the channel ever got through to the daemon: a failed call on a
// channel that is not READY never reached it.
bool reached(const Connection& c);

// Prints a failed call to `err`, every line prefixed with the address;
// returns the exit code.
int reportFailure(const Connection& c, const grpc::Status& s, std::ostream& err);

// A unary method of a generated stub (v1::Agent::Stub::GetStatus).
template <class Stub, class Request, class Response>
using UnaryMethod = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Response*);

// One unary call on `c` with the deadline `timeout`.
template <class Stub, class Request, class Response>
grpc::Status invoke(const Connection& c, UnaryMethod<Stub, Request, Response> method,
                    const Request& request, Response* response, std::chrono::milliseconds timeout) {
  Stub stub(c.channel);
  grpc::ClientContext ctx;
  setDeadline(ctx, timeout);
  return (stub.*method)(&ctx, request, response);
}

// The same: kExitOk with `response` filled, else the failure printed
// (reportFailure) and its exit code.
template <class Stub, class Request, class Response>
int call(const Connection& c, UnaryMethod<Stub, Request, Response> method, const Request& request,
         Response* response, std::chrono::milliseconds timeout, std::ostream& err) {
  const grpc::Status s = invoke(c, method, request, response, timeout);
  return s.ok() ? kExitOk : reportFailure(c, s, err);
}

// The same, to the one daemon of `o`.
template <class Stub, class Request, class Response>
int callOne(const ClientOptions& o, UnaryMethod<Stub, Request, Response> method,
            const Request& request, Response* response, std::ostream& err) {
  return call(connect(o.addresses.at(0), o), method, request, response, o.timeout, err);
}

}  // namespace bulkhead::cli
