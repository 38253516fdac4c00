// The commands that talk to a controller (docs/cli.md, "Talking to a
// controller"): push (PushPolicy, then WatchRollout with --wait), status
// (GetFleetStatus) and workload ls (ListFleetWorkloads).
#include <unistd.h>

#include <iostream>
#include <set>

#include "bulkhead/v1/controller.grpc.pb.h"
#include "command_groups.h"
#include "fleet_output.h"

namespace bulkhead::cli {

namespace {

using Stub = v1::Controller::Stub;

// How long `push --wait` waits for the hosts' acks without --timeout.
constexpr int kDefaultWaitSeconds = 60;
// The rollout stream's deadline beyond the wait: the controller ends the
// stream itself when the wait is over, with the pending hosts.
constexpr int kRolloutSlackSeconds = 10;

// How progress shows: a line rewritten in place on a terminal, plain lines
// (one per host as it acks) otherwise, nothing for --json.
enum class Progress { kTerminal, kLines, kNone };

Progress progressFor(const Args& args, std::ostream& out) {
  if (args.has("--json")) return Progress::kNone;
  return &out == &std::cout && isatty(STDOUT_FILENO) ? Progress::kTerminal : Progress::kLines;
}

void printPushed(const std::string& address, const v1::PushPolicyRequest& request,
                 const v1::PushPolicyResponse& r, std::ostream& out) {
  const std::string what =
      "revision " + std::to_string(r.revision()) + " (version " + r.version() + ")";
  if (request.dry_run())
    out << address << ": dry run: version " << r.version() << " is valid; nothing stored\n";
  else if (r.changed())
    out << address << ": stored " << what << ", sent to " << r.hosts_connected()
        << " connected host(s)\n";
  else
    out << address << ": unchanged: " << what << " already in force\n";
}

Json pushedJson(const std::string& address, const v1::PushPolicyRequest& request,
                const v1::PushPolicyResponse& r) {
  return {{"controller", address},
          {"ok", true},
          {"revision", r.revision()},
          {"version", r.version()},
          {"changed", r.changed()},
          {"dry_run", request.dry_run()},
          {"hosts_connected", r.hosts_connected()},
          {"warnings", jsonStrings(r.warnings())}};
}

// Reads the rollout stream until the controller says it is done; `last`:
// its final message. False when the stream ended early (`s` says why).
bool readRollout(const Connection& c, uint64_t revision, int waitSeconds, Progress how,
                 std::ostream& out, v1::RolloutProgress* last, grpc::Status* s) {
  grpc::ClientContext ctx;
  setDeadline(ctx, std::chrono::seconds(waitSeconds + kRolloutSlackSeconds));
  v1::WatchRolloutRequest request;
  request.set_revision(revision);
  request.set_timeout_seconds(uint32_t(waitSeconds));
  Stub stub(c.channel);
  auto reader = stub.WatchRollout(&ctx, request);
  v1::RolloutProgress p;
  bool done = false;
  while (reader->Read(&p)) {
    if (how == Progress::kTerminal) out << "\r\x1b[K" << progressLine(p) << std::flush;
    if (how == Progress::kLines)
      for (const auto& line : progressChanges(*last, p))
        out << line << "\n";
    *last = p;
    done = done || p.done();
  }
  if (how == Progress::kTerminal) out << "\r\x1b[K" << std::flush;
  *s = reader->Finish();
  return done;
}

// Follows the rollout of `revision`: kExitOk when every host applied it,
// else kExitRuntime after naming each host that failed, timed out or is
// disconnected.
int followRollout(const Connection& c, uint64_t revision, int waitSeconds, Progress how,
                  std::ostream& out, std::ostream& err, v1::RolloutProgress* last) {
  grpc::Status s;
  if (!readRollout(c, revision, waitSeconds, how, out, last, &s)) {
    if (!s.ok()) return reportFailure(c, s, err);
    err << c.address << ": the rollout stream ended before the rollout was done\n";
    return kExitRuntime;
  }
  const auto failures = rolloutFailures(*last, waitSeconds);
  for (const auto& line : failures)
    err << line << "\n";
  if (!failures.empty()) {
    std::string names;
    for (const auto& h : last->hosts())
      if (h.state() != v1::HostRollout::STATE_APPLIED)
        names += (names.empty() ? "" : ", ") + h.host();
    err << "bulkhead push: revision " << revision << " not applied by " << failures.size() << " of "
        << last->hosts_size() << " host(s): " << names << "\n";
    return kExitRuntime;
  }
  if (how != Progress::kNone)
    out << "revision " << revision << " applied by " << last->acked() << "/" << last->total()
        << " host(s)\n";
  return kExitOk;
}

int pushToController(const Args& args, const ClientOptions& o, std::ostream& out,
                     std::ostream& err) {
  v1::PushPolicyRequest request;
  std::set<std::string> known;
  if (!loadForPush(args, request.mutable_files(), &known, err)) return kExitBadInput;
  request.set_version(args.get("--version"));
  request.set_dry_run(args.has("--dry-run"));
  const bool json = args.has("--json");
  const Connection c = connect(o.addresses[0], o);
  v1::PushPolicyResponse response;
  const grpc::Status s = invoke(c, &Stub::PushPolicy, request, &response, o.timeout);
  if (!s.ok()) {
    if (json)
      out << jsonLine({{"controller", c.address},
                       {"ok", false},
                       {"code", statusCodeName(s.error_code())},
                       {"error", s.error_message()}})
          << "\n";
    return reportFailure(c, s, err);
  }
  for (const std::string& w : response.warnings())
    if (!known.count(w)) err << c.address << ": warning: " << w << "\n";
  Json result = pushedJson(c.address, request, response);
  int code = kExitOk;
  if (!json) printPushed(c.address, request, response, out);
  if (args.has("--wait") && !request.dry_run()) {
    const int wait = o.timeoutGiven ? int(o.timeout.count() / 1000) : kDefaultWaitSeconds;
    v1::RolloutProgress last;
    code = followRollout(c, response.revision(), wait, progressFor(args, out), out, err, &last);
    result["ok"] = code == kExitOk;
    result["rollout"] = rolloutJson(last);
  }
  if (json) out << jsonLine(result) << "\n";
  return code;
}

int fleetStatus(const Args& args, const ClientOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 1) {
    err << "bulkhead status: takes no arguments\n";
    return kExitBadInput;
  }
  v1::FleetStatus st;
  if (int code = callOne(o, &Stub::GetFleetStatus, v1::GetFleetStatusRequest(), &st, err))
    return code;
  if (args.has("--json"))
    out << jsonLine(fleetStatusJson(o.addresses[0], st)) << "\n";
  else
    printFleetStatus(o.addresses[0], st, out);
  return kExitOk;
}

int fleetWorkloads(const Args& args, const ClientOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 2) {
    err << "bulkhead workload ls: takes no arguments\n";
    return kExitBadInput;
  }
  v1::ListWorkloadsResponse list;
  if (int code = callOne(o, &Stub::ListFleetWorkloads, v1::ListFleetWorkloadsRequest(), &list, err))
    return code;
  if (args.has("--json"))
    out << jsonLine(fleetWorkloadsJson(list)) << "\n";
  else
    printFleetWorkloads(list, out);
  return kExitOk;
}

}  // namespace

bool servedByController(const std::string& command) {
  return command == "push" || command == "status" || command == "workload ls";
}

bool toController(const Args& args, const std::string& envController) {
  return args.has("--controller") || (!args.has("--agent") && !envController.empty());
}

int controllerCommand(const Args& args, const std::string& envController, std::ostream& out,
                      std::ostream& err) {
  const std::string& name = args.command;
  if (name == "push" && !pushWordsOk(args, err)) return kExitBadInput;
  ClientOptions o;
  if (!readClientOptions(args, envController, name, Peer::kController, &o, err))
    return kExitBadInput;
  if (o.addresses.size() != 1) {
    err << "bulkhead " << name << ": talks to one controller; --controller was given "
        << o.addresses.size() << " times\n";
    return kExitBadInput;
  }
  if (name == "push") return pushToController(args, o, out, err);
  if (name == "status") return fleetStatus(args, o, out, err);
  return fleetWorkloads(args, o, out, err);
}

}  // namespace bulkhead::cli
