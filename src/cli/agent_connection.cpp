#include "agent_connection.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>

#include "bulkhead/common/agent_address.h"
#include "bulkhead/common/endpoint.h"
#include "bulkhead/common/file.h"
#include "bulkhead/common/grpc_channel.h"

namespace bulkhead::cli {

namespace {

using common::AgentAddress;
using common::kDefaultAgent;
using common::parseAgentAddress;

// Bundles can be big; the agent enforces its own limit (RESOURCE_EXHAUSTED).
constexpr int kMaxMessageBytes = 256 << 20;

bool readWholeFile(const std::string& path, std::string* out, std::string* error) {
  constexpr size_t kMaxPemBytes = 1 << 20;  // a PEM file is a few kilobytes
  auto text = common::readFileBounded(path, kMaxPemBytes);
  if (!text) {
    *error = path + ": " + text.error().describe();
    return false;
  }
  *out = std::move(*text);
  return true;
}

// --agent (else $BULKHEAD_AGENT, else the default), or --controller (else
// $BULKHEAD_CONTROLLER), and --timeout.
bool readAddressesAndTimeout(const Args& args, const std::string& envAddress,
                             const std::string& prefix, ClientOptions* o, bool* anyTcp,
                             std::ostream& err) {
  const bool agent = o->peer == Peer::kAgent;
  const std::string flag = agent ? "--agent" : "--controller";
  if (args.has(flag)) {
    o->addresses = args.flags.at(flag);
  } else if (!envAddress.empty() || agent) {
    o->addresses = {envAddress.empty() ? std::string(kDefaultAgent) : envAddress};
  } else {
    err << prefix << "name the controller with --controller URL or $BULKHEAD_CONTROLLER\n";
    return false;
  }
  for (const std::string& a : o->addresses) {
    auto parsed = common::parseEndpoint(a, common::kAgentSchemes, flag);
    if (!parsed) {
      err << prefix << parsed.error().message << "\n";
      return false;
    }
    *anyTcp = *anyTcp || parsed->scheme == common::Scheme::kTcp;
  }
  if (args.has("--timeout")) {
    const std::string t = args.get("--timeout");
    int seconds = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), seconds);
    if (ec != std::errc() || p != t.data() + t.size() || seconds < 1 ||
        seconds > kMaxTimeoutSeconds) {
      err << prefix << "--timeout must be a whole number of seconds, 1-" << kMaxTimeoutSeconds
          << "\n";
      return false;
    }
    o->timeout = std::chrono::seconds(seconds);
    o->timeoutGiven = true;
  }
  return true;
}

// --tls-ca, --tls-cert, --tls-key: read and recognisably PEM.
bool readTlsFiles(const Args& args, const std::string& prefix, AgentOptions* o, std::ostream& err) {
  std::string error;
  if ((args.has("--tls-ca") && !readWholeFile(args.get("--tls-ca"), &o->caPem, &error)) ||
      (args.has("--tls-cert") && !readWholeFile(args.get("--tls-cert"), &o->certPem, &error)) ||
      (args.has("--tls-key") && !readWholeFile(args.get("--tls-key"), &o->keyPem, &error))) {
    err << prefix << error << "\n";
    return false;
  }
  // gRPC only logs a bad PEM file; say which one it is.
  const std::pair<const char*, const std::string*> pems[] = {
      {"--tls-ca", &o->caPem}, {"--tls-cert", &o->certPem}, {"--tls-key", &o->keyPem}};
  for (const auto& [flag, pem] : pems) {
    if (!args.has(flag)) continue;
    const bool key = std::string_view(flag) == "--tls-key";
    if (!common::looksLikePem(*pem,
                              key ? common::PemKind::kPrivateKey : common::PemKind::kCertificate)) {
      err << prefix << flag << " " << args.get(flag) << ": not a PEM "
          << (key ? "private key" : "certificate") << "\n";
      return false;
    }
  }
  return true;
}

// The request was at fault (exit 2) or something at run time was (exit 1).
int exitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitBadInput;
    default:
      return kExitRuntime;
  }
}

}  // namespace

bool readClientOptions(const Args& args, const std::string& envAddress, const std::string& command,
                       Peer peer, ClientOptions* o, std::ostream& err) {
  const std::string prefix = "bulkhead " + command + ": ";
  const std::string name = peer == Peer::kAgent ? "agent" : "controller";
  o->peer = peer;
  bool anyTcp = false;
  if (!readAddressesAndTimeout(args, envAddress, prefix, o, &anyTcp, err)) return false;
  if (args.has("--tls-cert") != args.has("--tls-key")) {
    err << prefix << "--tls-cert and --tls-key go together\n";
    return false;
  }
  if (anyTcp && !args.has("--tls-ca")) {
    err << prefix << "tcp:// " << name << "s need TLS: name the CA that signed the " << name
        << "'s certificate with --tls-ca (and a client certificate with --tls-cert/--tls-key)\n";
    return false;
  }
  if (!readTlsFiles(args, prefix, o, err)) return false;
  o->serverName = args.get("--tls-server-name");
  return true;
}

bool readAgentOptions(const Args& args, const std::string& envAgent, const std::string& command,
                      AgentOptions* o, std::ostream& err) {
  return readClientOptions(args, envAgent, command, Peer::kAgent, o, err);
}

bool oneAgent(const AgentOptions& o, const std::string& command, std::ostream& err) {
  if (o.addresses.size() == 1) return true;
  err << "bulkhead " << command << ": talks to one agent; --agent was given " << o.addresses.size()
      << " times\n";
  return false;
}

Connection connect(const std::string& address, const ClientOptions& o) {
  AgentAddress parsed;
  std::string error;
  parseAgentAddress(address, &parsed, &error);  // checked when the options were read
  grpc::ChannelArguments channelArgs = common::agentChannelArguments(kMaxMessageBytes);
  const common::ClientTls tls{o.caPem, o.certPem, o.keyPem, o.serverName};
  const auto credentials = common::clientCredentials(parsed.tcp, tls, channelArgs);
  Connection c;
  c.address = address;
  c.peer = o.peer;
  c.tcp = parsed.tcp;
  c.channel = grpc::CreateCustomChannel(parsed.target, credentials, channelArgs);
  return c;
}

void setDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

// One case per gRPC code: a table, not steps (longer than the usual function).
const char* statusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

bool reached(const Connection& c) {
  return c.channel->GetState(false) == GRPC_CHANNEL_READY;
}

int reportFailure(const Connection& c, const grpc::Status& s, std::ostream& err) {
  const std::string& message = s.error_message();
  const grpc::StatusCode code = s.error_code();
  const char* peer = c.peer == Peer::kAgent ? "agent" : "controller";
  const char* daemon = c.peer == Peer::kAgent ? "bulkhead-agent" : "bulkhead-controller";
  if (code == grpc::StatusCode::INVALID_ARGUMENT && !message.empty()) {
    // "file:line:column: message" lines, one per error.
    std::istringstream lines(message);
    std::string line;
    while (std::getline(lines, line))
      if (!line.empty()) err << c.address << ": " << line << "\n";
  } else if (code == grpc::StatusCode::UNAVAILABLE && !reached(c) && c.tcp) {
    err << c.address << ": cannot reach the " << peer << " over TLS (is " << daemon
        << " listening there? is its certificate signed by --tls-ca and does it trust "
           "--tls-cert?): "
        << message << "\n";
  } else if (code == grpc::StatusCode::UNAVAILABLE && !reached(c)) {
    err << c.address << ": cannot reach the " << peer << " (is " << daemon
        << " running?): " << message << "\n";
  } else if (code == grpc::StatusCode::DEADLINE_EXCEEDED) {
    err << c.address << ": no answer before the deadline (DEADLINE_EXCEEDED"
        << (reached(c) ? "" : std::string("; the ") + peer + " was never reached") << ")"
        << (message.empty() ? "" : ": " + message) << "\n";
  } else {
    err << c.address << ": " << statusCodeName(code) << (message.empty() ? "" : ": " + message)
        << "\n";
  }
  return exitCodeFor(code);
}

}  // namespace bulkhead::cli
