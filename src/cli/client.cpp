// The `bulkhead` commands that talk gRPC to agents (docs/cli.md). One translation
// unit on purpose: gRPC's headers are slow to compile.
#include "bulkhead/cli/client.h"
#include "bulkhead/common/grpc_channel.h"
#include "bulkhead/flows/format.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "bulkhead/policy/address.h"
#include "bulkhead/policy/loader.h"
#include "bulkhead/v1/agent.grpc.pb.h"

namespace bulkhead::cli {

namespace {

// Bundles can be big; the agent enforces its own limit (RESOURCE_EXHAUSTED).
constexpr int kMaxMessageBytes = 256 << 20;
constexpr int kDefaultTimeoutSeconds = 30;
constexpr int kMaxTimeoutSeconds = 24 * 3600;

// Flags every command that talks to an agent accepts.
const std::set<std::string> kAgentFlags = {"--agent",   "--tls-ca",          "--tls-cert",
                                           "--tls-key", "--tls-server-name", "--timeout"};

// The flags of each command beyond kAgentFlags.
const std::map<std::string, std::set<std::string>> kCommandFlags = {
    {"push", {"--version", "--dry-run", "--json"}},
    {"workload add", {"--app", "--iface", "--addr", "--label"}},
    {"workload rm", {}},
    {"workload ls", {"--json"}},
    {"status", {"--json"}},
    {"quarantine", {"--release"}},
    {"quarantine ls", {"--json"}},
    {"flows", {"--follow", "--json", "--app", "--workload"}},
};

// ---------------------------------------------------------------------------
// JSON output. Counts are printed as JSON integers (proto3's JSON mapping
// would print uint64 as strings).

void appendJsonNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) {
    out += "null";
    return;
  }
  out.append(buf, end);
}

class JsonObject {
 public:
  JsonObject& str(std::string_view key, std::string_view value) {
    return raw(key, jsonQuote(value));
  }
  JsonObject& num(std::string_view key, uint64_t value) { return raw(key, std::to_string(value)); }
  JsonObject& dbl(std::string_view key, double value) {
    std::string text;
    appendJsonNumber(text, value);
    return raw(key, text);
  }
  JsonObject& boolean(std::string_view key, bool value) {
    return raw(key, value ? "true" : "false");
  }
  JsonObject& strings(std::string_view key,
                      const google::protobuf::RepeatedPtrField<std::string>& v) {
    std::string text = "[";
    for (int i = 0; i < v.size(); ++i) {
      if (i > 0) text += ", ";
      text += jsonQuote(v.Get(i));
    }
    return raw(key, text + "]");
  }
  template <class Map>
  JsonObject& stringMap(std::string_view key, const Map& map) {
    std::map<std::string, std::string> sorted(map.begin(), map.end());
    JsonObject o;
    for (const auto& [k, v] : sorted)
      o.str(k, v);
    return raw(key, o.text());
  }
  JsonObject& raw(std::string_view key, std::string_view json) {
    body_ += first_ ? "{" : ", ";
    first_ = false;
    body_ += jsonQuote(key);
    body_ += ": ";
    body_ += json;
    return *this;
  }
  std::string text() const { return first_ ? "{}" : body_ + "}"; }

 private:
  std::string body_;
  bool first_ = true;
};

// ---------------------------------------------------------------------------
// Agent connection.

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

bool readWholeFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    *error = path + ": read error";
    return false;
  }
  *out = text.str();
  return true;
}

bool readAgentOptions(const Args& args, const std::string& envAgent, const std::string& command,
                      AgentOptions* o, std::ostream& err) {
  const std::string prefix = "bulkhead " + command + ": ";
  if (args.has("--agent")) {
    o->addresses = args.flags.at("--agent");
  } else {
    o->addresses = {envAgent.empty() ? std::string(kDefaultAgent) : envAgent};
  }
  bool anyTcp = false;
  for (const std::string& a : o->addresses) {
    AgentAddress parsed;
    std::string error;
    if (!parseAgentAddress(a, &parsed, &error)) {
      err << prefix << "--agent " << a << ": " << error << "\n";
      return false;
    }
    anyTcp = anyTcp || parsed.tcp;
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
  }
  if (args.has("--tls-cert") != args.has("--tls-key")) {
    err << prefix << "--tls-cert and --tls-key go together\n";
    return false;
  }
  if (anyTcp && !args.has("--tls-ca")) {
    err << prefix
        << "tcp:// agents need TLS: name the CA that signed the agent's certificate with "
           "--tls-ca (and a client certificate with --tls-cert/--tls-key)\n";
    return false;
  }
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
    if (pem->find("-----BEGIN ") == std::string::npos ||
        pem->find(key ? "PRIVATE KEY-----" : "CERTIFICATE-----") == std::string::npos) {
      err << prefix << flag << " " << args.get(flag) << ": not a PEM "
          << (key ? "private key" : "certificate") << "\n";
      return false;
    }
  }
  o->serverName = args.get("--tls-server-name");
  return true;
}

AgentConnection connectAgent(const std::string& address, const AgentOptions& o) {
  AgentAddress parsed;
  std::string error;
  parseAgentAddress(address, &parsed, &error);  // checked by readAgentOptions
  grpc::ChannelArguments channelArgs = common::agentChannelArguments(kMaxMessageBytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (parsed.tcp) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = o.caPem;
    tls.pem_cert_chain = o.certPem;
    tls.pem_private_key = o.keyPem;
    credentials = grpc::SslCredentials(tls);
    if (!o.serverName.empty()) channelArgs.SetSslTargetNameOverride(o.serverName);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  AgentConnection c;
  c.address = address;
  c.tcp = parsed.tcp;
  c.channel = grpc::CreateCustomChannel(parsed.target, credentials, channelArgs);
  c.stub = v1::Agent::NewStub(c.channel);
  return c;
}

void setDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

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

// Whether the channel ever got through to the agent: a failed call on a
// channel that is not READY never reached it.
bool reachedAgent(const AgentConnection& c) {
  return c.channel->GetState(false) == GRPC_CHANNEL_READY;
}

// Prints a failed call to `err`, every line prefixed with the agent address;
// returns the exit code.
int reportFailure(const AgentConnection& c, const grpc::Status& s, std::ostream& err) {
  const std::string& message = s.error_message();
  const grpc::StatusCode code = s.error_code();
  if (code == grpc::StatusCode::INVALID_ARGUMENT && !message.empty()) {
    // "file:line:column: message" lines, one per error.
    std::istringstream lines(message);
    std::string line;
    while (std::getline(lines, line))
      if (!line.empty()) err << c.address << ": " << line << "\n";
  } else if (code == grpc::StatusCode::UNAVAILABLE && !reachedAgent(c) && c.tcp) {
    err << c.address
        << ": cannot reach the agent over TLS (is bulkhead-agent listening there? is its "
           "certificate signed by --tls-ca and does it trust --tls-cert?): "
        << message << "\n";
  } else if (code == grpc::StatusCode::UNAVAILABLE && !reachedAgent(c)) {
    err << c.address << ": cannot reach the agent (is bulkhead-agent running?): " << message
        << "\n";
  } else if (code == grpc::StatusCode::DEADLINE_EXCEEDED) {
    err << c.address << ": no answer before the deadline (DEADLINE_EXCEEDED"
        << (reachedAgent(c) ? "" : "; the agent was never reached") << ")"
        << (message.empty() ? "" : ": " + message) << "\n";
  } else {
    err << c.address << ": " << statusCodeName(code) << (message.empty() ? "" : ": " + message)
        << "\n";
  }
  return exitCodeFor(code);
}

// ---------------------------------------------------------------------------
// Shared output.

std::string describeChange(const v1::RulesetChange& c) {
  if (!c.summary().empty()) return c.summary();
  std::vector<std::string> parts;
  auto add = [&parts](uint64_t n, const char* what) {
    if (n > 0) parts.push_back(std::to_string(n) + " " + what);
  };
  add(c.element_adds(), "element adds");
  add(c.element_removes(), "element removes");
  add(c.sets_added(), "sets added");
  add(c.sets_deleted(), "sets deleted");
  add(c.chains_added(), "chains added");
  add(c.chains_rewritten(), "chains rewritten");
  add(c.chains_deleted(), "chains deleted");
  if (parts.empty()) return "no change to the table";
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::string changeJson(const v1::RulesetChange& c) {
  return JsonObject()
      .num("element_adds", c.element_adds())
      .num("element_removes", c.element_removes())
      .num("sets_added", c.sets_added())
      .num("sets_deleted", c.sets_deleted())
      .num("chains_added", c.chains_added())
      .num("chains_rewritten", c.chains_rewritten())
      .num("chains_deleted", c.chains_deleted())
      .str("summary", describeChange(c))
      .text();
}

bool checkFlags(const Args& args, const std::string& command, std::ostream& err) {
  const auto& own = kCommandFlags.at(command);
  for (const auto& [flag, values] : args.flags) {
    if (kAgentFlags.count(flag) || own.count(flag)) continue;
    err << "bulkhead " << command << ": " << flag << " does not apply to this command\n";
    return false;
  }
  return true;
}

// Commands other than push talk to exactly one agent.
bool oneAgent(const AgentOptions& o, const std::string& command, std::ostream& err) {
  if (o.addresses.size() == 1) return true;
  err << "bulkhead " << command << ": talks to one agent; --agent was given " << o.addresses.size()
      << " times\n";
  return false;
}

// ---------------------------------------------------------------------------
// push

struct PushOutcome {
  int code = kExitOk;
  std::string out, err;
};

PushOutcome pushOne(const std::string& address, const AgentOptions& o,
                    const v1::ApplyPolicyRequest& request, const std::set<std::string>& known,
                    bool json) {
  PushOutcome r;
  std::ostringstream out, err;
  AgentConnection c = connectAgent(address, o);
  grpc::ClientContext ctx;
  setDeadline(ctx, o.timeout);
  v1::ApplyPolicyResponse response;
  const grpc::Status s = c.stub->ApplyPolicy(&ctx, request, &response);
  if (!s.ok()) {
    r.code = reportFailure(c, s, err);
    if (json) {
      out << JsonObject()
                 .str("agent", address)
                 .boolean("ok", false)
                 .str("code", statusCodeName(s.error_code()))
                 .str("error", s.error_message())
                 .text()
          << "\n";
    }
  } else {
    for (const std::string& w : response.warnings())
      if (!known.count(w)) err << address << ": warning: " << w << "\n";
    if (json) {
      JsonObject o;
      o.str("agent", address)
          .boolean("ok", true)
          .str("version", response.version())
          .boolean("changed", response.changed())
          .boolean("dry_run", request.dry_run())
          .raw("change", changeJson(response.change()))
          .strings("warnings", response.warnings());
      if (request.dry_run()) o.str("plan", response.plan());
      out << o.text() << "\n";
    } else if (request.dry_run()) {
      if (response.changed())
        out << address << ": dry run: version " << response.version() << " would change the table ("
            << describeChange(response.change()) << ")\n";
      else
        out << address << ": dry run: version " << response.version()
            << " is already in force; unchanged\n";
    } else if (response.changed()) {
      out << address << ": applied version " << response.version() << " ("
          << describeChange(response.change()) << ")\n";
    } else {
      out << address << ": unchanged: version " << response.version() << " already in force\n";
    }
  }
  r.out = out.str();
  r.err = err.str();
  return r;
}

int push(const Args& args, const std::string& envAgent, std::ostream& out, std::ostream& err) {
  if (!checkFlags(args, "push", err)) return kExitBadInput;
  if (args.words.size() < 2) {
    err << "bulkhead push: name at least one policy file or directory\n";
    return kExitBadInput;
  }
  if (args.has("--version") && args.get("--version").empty()) {
    err << "bulkhead push: --version needs a value\n";
    return kExitBadInput;
  }
  AgentOptions o;
  if (!readAgentOptions(args, envAgent, "push", &o, err)) return kExitBadInput;

  // Validate locally first: an invalid bundle is never sent.
  std::vector<policy::Diagnostic> errors;
  const auto files = policy::readSourceFiles({args.words.begin() + 1, args.words.end()}, errors);
  auto loaded = policy::loadFiles(files);
  for (auto& e : loaded.errors)
    errors.push_back(std::move(e));
  for (const auto& e : errors)
    err << e.toString() << "\n";
  std::set<std::string> known;
  for (const auto& w : loaded.warnings) {
    known.insert(w.toString());
    err << "warning: " << w.toString() << "\n";
  }
  if (!errors.empty()) {
    err << "bulkhead push: " << errors.size() << " error(s); nothing sent\n";
    return kExitBadInput;
  }

  v1::ApplyPolicyRequest request;
  for (const auto& f : files) {
    auto* pf = request.add_files();
    pf->set_name(f.name);
    pf->set_content(f.content);
  }
  request.set_version(args.get("--version"));
  request.set_dry_run(args.has("--dry-run"));
  const bool json = args.has("--json");

  // Every agent at once; reports in the order the agents were named.
  std::vector<PushOutcome> outcomes(o.addresses.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < o.addresses.size(); ++i)
    threads.emplace_back(
        [&, i] { outcomes[i] = pushOne(o.addresses[i], o, request, known, json); });
  for (auto& t : threads)
    t.join();
  int code = kExitOk;
  for (const auto& r : outcomes) {
    out << r.out;
    err << r.err;
    code = std::max(code, r.code);  // bad input (2) outranks runtime (1)
  }
  return code;
}

// ---------------------------------------------------------------------------
// workload add | rm | ls

const char* sourceName(v1::Workload::Source s) {
  switch (s) {
    case v1::Workload::SOURCE_API:
      return "api";
    case v1::Workload::SOURCE_BUNDLE:
      return "bundle";
    case v1::Workload::SOURCE_CNI:
      return "cni";
    case v1::Workload::SOURCE_LIBVIRT:
      return "libvirt";
    default:
      return "-";
  }
}

std::string joined(const google::protobuf::RepeatedPtrField<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "-" : out;
}

int workloadAdd(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  const std::string prefix = "bulkhead workload add: ";
  if (args.words.size() != 3) {
    err << prefix
        << "name exactly one workload: workload add NAME --app APP --iface IF --addr IP\n";
    return kExitBadInput;
  }
  v1::Workload w;
  w.set_name(args.words[2]);
  if (!args.has("--app") || args.flags.at("--app").size() != 1) {
    err << prefix << "needs one --app\n";
    return kExitBadInput;
  }
  w.set_app(args.get("--app"));

  // The checks the agent makes, so that a typo costs no round trip.
  policy::Workload local;
  local.name = w.name();
  local.app = w.app();
  bool ok = true;
  if (args.has("--iface"))
    for (const auto& i : args.flags.at("--iface")) {
      w.add_interfaces(i);
      local.interfaces.push_back(i);
    }
  if (args.has("--addr"))
    for (const auto& a : args.flags.at("--addr")) {
      // As the agent reads them: a host address, optionally with /32 or /128.
      const std::string index = std::to_string(w.addresses_size());
      w.add_addresses(a);
      std::string host = a;
      if (const auto slash = a.find('/'); slash != std::string::npos) {
        const bool v6 = a.find(':') != std::string::npos;
        if (a.substr(slash + 1) != (v6 ? "128" : "32")) {
          err << prefix << "workload.addresses[" << index << "]: \"" << a
              << "\" is not a host address (no prefix, /32 or /128)\n";
          ok = false;
          continue;
        }
        host = a.substr(0, slash);
      }
      if (auto ip = policy::IpAddr::parse(host)) {
        local.addresses.push_back(*ip);
      } else {
        err << prefix << "workload.addresses[" << index << "]: bad address \"" << a
            << "\" (--addr takes an IPv4 or IPv6 host address)\n";
        ok = false;
      }
    }
  if (args.has("--label"))
    for (const auto& l : args.flags.at("--label")) {
      const auto eq = l.find('=');
      if (eq == std::string::npos || eq == 0) {
        err << prefix << "--label " << l << ": expected KEY=VALUE\n";
        ok = false;
        continue;
      }
      const std::string key = l.substr(0, eq);
      if (local.labels.count(key)) {
        err << prefix << "--label " << key << " given twice\n";
        ok = false;
        continue;
      }
      local.labels[key] = l.substr(eq + 1);
      (*w.mutable_labels())[key] = l.substr(eq + 1);
    }
  std::vector<policy::Diagnostic> errors;
  policy::validateWorkload(local, errors);
  for (const auto& e : errors)
    err << prefix << e.toString() << "\n";
  if (!ok || !errors.empty()) return kExitBadInput;

  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, o.timeout);
  v1::UpsertWorkloadRequest request;
  *request.mutable_workload() = w;
  v1::UpsertWorkloadResponse response;
  const grpc::Status s = c.stub->UpsertWorkload(&ctx, request, &response);
  if (!s.ok()) return reportFailure(c, s, err);
  for (const auto& warning : response.warnings())
    err << c.address << ": warning: " << warning << "\n";
  out << c.address << ": workload " << w.name() << " registered ("
      << describeChange(response.change()) << ")\n";
  return kExitOk;
}

int workloadRm(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 3) {
    err << "bulkhead workload rm: name exactly one workload\n";
    return kExitBadInput;
  }
  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, o.timeout);
  v1::DeleteWorkloadRequest request;
  request.set_name(args.words[2]);
  v1::DeleteWorkloadResponse response;
  const grpc::Status s = c.stub->DeleteWorkload(&ctx, request, &response);
  if (!s.ok()) return reportFailure(c, s, err);
  out << c.address << ": workload " << request.name() << " removed ("
      << describeChange(response.change()) << ")\n";
  return kExitOk;
}

void printTable(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

int workloadLs(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 2) {
    err << "bulkhead workload ls: takes no arguments\n";
    return kExitBadInput;
  }
  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, o.timeout);
  v1::ListWorkloadsResponse response;
  const grpc::Status s = c.stub->ListWorkloads(&ctx, v1::ListWorkloadsRequest(), &response);
  if (!s.ok()) return reportFailure(c, s, err);
  if (args.has("--json")) {
    std::string list = "[";
    for (const auto& w : response.workloads()) {
      if (list.size() > 1) list += ", ";
      list += JsonObject()
                  .str("name", w.name())
                  .str("app", w.app())
                  .strings("interfaces", w.interfaces())
                  .strings("addresses", w.addresses())
                  .stringMap("labels", w.labels())
                  .str("source", sourceName(w.source()))
                  .str("owner", w.owner())
                  .boolean("quarantined", w.quarantined())
                  .text();
    }
    out << JsonObject().raw("workloads", list + "]").text() << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "APP", "INTERFACES", "ADDRESSES", "SOURCE", "OWNER", "QUARANTINED"}};
  for (const auto& w : response.workloads())
    rows.push_back({w.name(), w.app(), joined(w.interfaces()), joined(w.addresses()),
                    sourceName(w.source()), w.owner().empty() ? "-" : w.owner(),
                    w.quarantined() ? "yes" : "no"});
  printTable(rows, out);
  return kExitOk;
}

// ---------------------------------------------------------------------------
// status

std::string latencyJson(const v1::Latency& l) {
  return JsonObject()
      .num("count", l.count())
      .dbl("p50_ms", l.p50_ms())
      .dbl("p99_ms", l.p99_ms())
      .dbl("max_ms", l.max_ms())
      .text();
}

std::string statusJson(const v1::AgentStatus& st) {
  const auto& f = st.flows();
  std::map<std::string, uint64_t> causes(f.suppressed_by_cause().begin(),
                                         f.suppressed_by_cause().end());
  JsonObject byCause;
  for (const auto& [cause, n] : causes)
    byCause.num(cause, n);
  const std::string flows = JsonObject()
                                .num("seen", f.seen())
                                .num("exported", f.exported())
                                .num("suppressed", f.suppressed())
                                .raw("suppressed_by_cause", byCause.text())
                                .text();
  return JsonObject()
      .str("version", st.version())
      .str("table", st.table())
      .num("apps", st.apps())
      .num("services", st.services())
      .num("global_policies", st.global_policies())
      .num("workloads", st.workloads())
      .num("set_elements", st.set_elements())
      .num("chains", st.chains())
      .str("last_error", st.last_error())
      .str("last_error_time", st.last_error_time())
      .raw("apply_latency", latencyJson(st.apply_latency()))
      .raw("workload_latency", latencyJson(st.workload_latency()))
      .num("drift_repairs", st.drift_repairs())
      .str("last_drift_check", st.last_drift_check())
      .str("last_drift_check_time", st.last_drift_check_time())
      .str("last_applied_time", st.last_applied_time())
      .raw("flows", flows)
      .num("pushes", st.pushes())
      .num("workload_changes", st.workload_changes())
      .str("host", st.host())
      .num("staged_interfaces", st.staged_interfaces())
      .num("promotions", st.promotions())
      .raw("promotion_latency", latencyJson(st.promotion_latency()))
      .text();
}

std::string describeLatency(uint64_t operations, const v1::Latency& l) {
  std::ostringstream s;
  s << operations;
  if (l.count() == 0) return s.str();
  s << std::fixed << std::setprecision(2) << " (latency p50 " << l.p50_ms() << " ms, p99 "
    << l.p99_ms() << " ms, max " << l.max_ms() << " ms over " << l.count() << ")";
  return s.str();
}

void printStatus(const std::string& address, const v1::AgentStatus& st, std::ostream& out) {
  const auto& f = st.flows();
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"agent:", address});
  if (!st.host().empty()) rows.push_back({"host:", st.host()});
  rows.push_back({"version:", st.version().empty() ? "(no policy pushed yet)" : st.version()});
  if (!st.last_applied_time().empty()) rows.push_back({"applied:", st.last_applied_time()});
  rows.push_back({"table:", "inet " + st.table()});
  rows.push_back({"policy:", std::to_string(st.apps()) + " apps, " + std::to_string(st.services()) +
                                 " services, " + std::to_string(st.global_policies()) +
                                 " global policies, " + std::to_string(st.workloads()) +
                                 " workloads"});
  rows.push_back({"ruleset:", std::to_string(st.chains()) + " chains, " +
                                  std::to_string(st.set_elements()) + " set elements"});
  rows.push_back({"pushes:", describeLatency(st.pushes(), st.apply_latency())});
  rows.push_back(
      {"workload changes:", describeLatency(st.workload_changes(), st.workload_latency())});
  rows.push_back({"staged interfaces:", std::to_string(st.staged_interfaces())});
  rows.push_back({"promotions:", describeLatency(st.promotions(), st.promotion_latency())});
  rows.push_back({"drift repairs:", std::to_string(st.drift_repairs())});
  if (!st.last_drift_check_time().empty())
    rows.push_back({"drift check:", st.last_drift_check_time() + " " + st.last_drift_check()});
  std::string flows = "seen " + std::to_string(f.seen()) + ", exported " +
                      std::to_string(f.exported()) + ", suppressed " +
                      std::to_string(f.suppressed());
  if (!f.suppressed_by_cause().empty()) {
    std::map<std::string, uint64_t> causes(f.suppressed_by_cause().begin(),
                                           f.suppressed_by_cause().end());
    std::string list;
    for (const auto& [cause, n] : causes)
      list += (list.empty() ? "" : ", ") + cause + ": " + std::to_string(n);
    flows += " (" + list + ")";
  }
  rows.push_back({"flows:", flows});
  rows.push_back({"last error:", st.last_error().empty()
                                     ? "none"
                                     : (st.last_error_time().empty()
                                            ? st.last_error()
                                            : st.last_error_time() + " " + st.last_error())});
  printTable(rows, out);
}

int status(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 1) {
    err << "bulkhead status: takes no arguments\n";
    return kExitBadInput;
  }
  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, o.timeout);
  v1::AgentStatus st;
  const grpc::Status s = c.stub->GetStatus(&ctx, v1::GetStatusRequest(), &st);
  if (!s.ok()) return reportFailure(c, s, err);
  if (args.has("--json"))
    out << statusJson(st) << "\n";
  else
    printStatus(c.address, st, out);
  return kExitOk;
}

// ---------------------------------------------------------------------------
// quarantine

int quarantine(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 2) {
    err << "bulkhead quarantine: name exactly one workload\n";
    return kExitBadInput;
  }
  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, o.timeout);
  v1::QuarantineRequest request;
  request.set_name(args.words[1]);
  request.set_release(args.has("--release"));
  v1::QuarantineResponse response;
  const grpc::Status s = c.stub->Quarantine(&ctx, request, &response);
  if (!s.ok()) return reportFailure(c, s, err);
  out << c.address << ": workload " << request.name()
      << (request.release() ? " released" : " quarantined") << " ("
      << describeChange(response.change());
  if (!request.release()) out << "; " << response.flushed_flows() << " tracked connections cut";
  out << ")\n";
  for (const auto& w : response.warnings())
    err << "warning: " << w << "\n";
  return kExitOk;
}

// `quarantine ls`: who, why, since and until.
std::string unixTime(int64_t t) {
  if (t == 0) return "-";
  return flows::rfc3339Micros(flows::Clock::time_point(std::chrono::seconds(t))).substr(0, 19) +
         "Z";
}

int quarantineLs(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  (void)args;
  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, o.timeout);
  v1::ListQuarantinesResponse response;
  const grpc::Status s = c.stub->ListQuarantines(&ctx, v1::ListQuarantinesRequest(), &response);
  if (!s.ok()) return reportFailure(c, s, err);
  if (args.has("--json")) {
    std::string list = "[";
    for (const auto& q : response.quarantines()) {
      if (list.size() > 1) list += ", ";
      JsonObject j;
      j.str("workload", q.workload())
          .str("reason", q.reason())
          .str("since", unixTime(q.since_unix()));
      if (q.until_unix() != 0) {
        j.str("until", unixTime(q.until_unix())).num("seconds", q.seconds());
      } else {
        j.raw("until", "null");
      }
      list += j.text();
    }
    out << JsonObject().raw("quarantines", list + "]").text() << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"WORKLOAD", "REASON", "SINCE", "UNTIL"}};
  for (const auto& q : response.quarantines())
    rows.push_back({q.workload(), q.reason(), unixTime(q.since_unix()),
                    q.until_unix() ? unixTime(q.until_unix()) : "released by hand"});
  printTable(rows, out);
  return kExitOk;
}

// ---------------------------------------------------------------------------
// flows

std::atomic<bool> gInterrupted{false};

extern "C" void onInterrupt(int) {
  gInterrupted.store(true);
}

// While alive (and `active`): SIGINT/SIGTERM cancel the call instead of
// killing the process, so `flows --follow` ends with exit 0.
class InterruptCanceller {
 public:
  InterruptCanceller(grpc::ClientContext* ctx, bool active) : active_(active) {
    if (!active_) return;
    gInterrupted.store(false);
    struct sigaction sa = {};
    sa.sa_handler = onInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &oldInt_);
    sigaction(SIGTERM, &sa, &oldTerm_);
    watcher_ = std::thread([this, ctx] {
      while (!done_.load()) {
        if (gInterrupted.load()) {
          ctx->TryCancel();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  ~InterruptCanceller() { stop(); }
  void stop() {
    if (!active_) return;
    active_ = false;
    done_.store(true);
    watcher_.join();
    sigaction(SIGINT, &oldInt_, nullptr);
    sigaction(SIGTERM, &oldTerm_, nullptr);
  }
  bool interrupted() const { return gInterrupted.load(); }

 private:
  bool active_;
  std::atomic<bool> done_{false};
  std::thread watcher_;
  struct sigaction oldInt_ = {}, oldTerm_ = {};
};

std::string flowLine(const v1::FlowEvent& e) {
  std::string dst = e.dst();
  const bool portless = e.proto() == "icmp" || e.proto() == "icmpv6" || e.dport() == 0;
  if (!portless) {
    if (dst.find(':') != std::string::npos) dst = "[" + dst + "]";
    dst += ":" + std::to_string(e.dport());
  }
  return e.time() + " " + (e.workload().empty() ? "-" : e.workload()) + " -> " + dst + "/" +
         e.proto() + " " + e.action() + " (" + (e.reason().empty() ? "-" : e.reason()) +
         ", count " + std::to_string(e.count()) + ")";
}

std::string flowJson(const v1::FlowEvent& e) {
  JsonObject o;
  o.str("time", e.time())
      .str("host", e.host())
      .str("action", e.action())
      .str("app", e.app())
      .str("workload", e.workload())
      .str("src", e.src())
      .num("sport", e.sport())
      .str("dst", e.dst())
      .num("dport", e.dport())
      .str("proto", e.proto())
      .str("reason", e.reason())
      .num("count", e.count());
  if (!e.fields().empty()) o.stringMap("fields", e.fields());
  return o.text();
}

int flows(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 1) {
    err << "bulkhead flows: takes no arguments\n";
    return kExitBadInput;
  }
  const bool follow = args.has("--follow");
  const bool json = args.has("--json");
  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  if (!follow) setDeadline(ctx, std::chrono::milliseconds(kFlowsWindowMs));
  v1::WatchFlowsRequest request;
  request.set_app(args.get("--app"));
  request.set_workload(args.get("--workload"));
  InterruptCanceller canceller(&ctx, follow);
  auto reader = c.stub->WatchFlows(&ctx, request);
  v1::FlowEvent event;
  bool any = false;
  while (reader->Read(&event)) {
    any = true;
    out << (json ? flowJson(event) : flowLine(event)) << "\n" << std::flush;
  }
  const grpc::Status s = reader->Finish();
  const bool interrupted = canceller.interrupted();
  canceller.stop();
  if (s.ok()) return kExitOk;
  // Without --follow, the window closing is the normal end, once the agent
  // was reached.
  if (!follow && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && (any || reachedAgent(c)))
    return kExitOk;
  if (follow && interrupted && s.error_code() == grpc::StatusCode::CANCELLED) return kExitOk;
  return reportFailure(c, s, err);
}

}  // namespace

int watchFlowsFor(const Args& args, const std::string& envAgent, const std::string& command,
                  long ms, const std::function<void(const std::string&)>& sink, std::ostream& err) {
  AgentOptions o;
  if (!readAgentOptions(args, envAgent, command, &o, err) || !oneAgent(o, command, err))
    return kExitBadInput;
  AgentConnection c = connectAgent(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, std::chrono::milliseconds(ms));
  v1::WatchFlowsRequest request;
  request.set_app(args.get("--app"));
  InterruptCanceller canceller(&ctx, true);
  auto reader = c.stub->WatchFlows(&ctx, request);
  v1::FlowEvent event;
  bool any = false;
  while (reader->Read(&event)) {
    any = true;
    sink(flowJson(event));
  }
  const grpc::Status s = reader->Finish();
  const bool interrupted = canceller.interrupted();
  canceller.stop();
  if (s.ok()) return kExitOk;
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && (any || reachedAgent(c)))
    return kExitOk;
  if (interrupted && s.error_code() == grpc::StatusCode::CANCELLED) return kExitOk;
  return reportFailure(c, s, err);
}

std::string jsonQuote(std::string_view text) {
  // The flow feed's JSON escaping: one implementation for every JSON we print.
  return "\"" + flows::escapeJson(std::string(text)) + "\"";
}

bool isClientCommand(std::string_view command) {
  return command == "push" || command == "workload" || command == "status" ||
         command == "quarantine" || command == "flows";
}

int runClientCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                     std::ostream& err) {
  // gRPC's own log lines would repeat, less clearly, what the command prints;
  // GRPC_VERBOSITY=debug (or any value) brings them back.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  const std::string& cmd = args.words.at(0);
  if (cmd == "push") return push(args, envAgent, out, err);
  std::string name = cmd;
  if (cmd == "workload") {
    const std::string sub = args.words.size() > 1 ? args.words[1] : "";
    if (sub != "add" && sub != "rm" && sub != "ls") {
      err << "bulkhead workload: expected add, rm or ls\n";
      return kExitBadInput;
    }
    name += " " + sub;
  }
  if (cmd == "quarantine" && args.words.size() == 2 && args.words[1] == "ls")
    name = "quarantine ls";
  if (!checkFlags(args, name, err)) return kExitBadInput;
  AgentOptions o;
  if (!readAgentOptions(args, envAgent, name, &o, err) || !oneAgent(o, name, err))
    return kExitBadInput;
  if (name == "workload add") return workloadAdd(args, o, out, err);
  if (name == "workload rm") return workloadRm(args, o, out, err);
  if (name == "workload ls") return workloadLs(args, o, out, err);
  if (name == "status") return status(args, o, out, err);
  if (name == "quarantine") return quarantine(args, o, out, err);
  if (name == "quarantine ls") return quarantineLs(args, o, out, err);
  return flows(args, o, out, err);
}

}  // namespace bulkhead::cli
