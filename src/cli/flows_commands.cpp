// flows (docs/cli.md), and the agent's flow events for suggest: WatchFlows.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <ostream>
#include <thread>

#include "bulkhead/cli/client.h"
#include "command_groups.h"
#include "output.h"

namespace bulkhead::cli {

namespace {

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

// The fields of docs/flows.md's json format.
std::string flowJson(const v1::FlowEvent& e) {
  Json o = {{"time", e.time()},   {"host", e.host()},         {"action", e.action()},
            {"app", e.app()},     {"workload", e.workload()}, {"src", e.src()},
            {"sport", e.sport()}, {"dst", e.dst()},           {"dport", e.dport()},
            {"proto", e.proto()}, {"reason", e.reason()},     {"count", e.count()}};
  if (!e.fields().empty()) o["fields"] = jsonStringMap(e.fields());
  return jsonLine(o);
}

// How a WatchFlows call ends normally: at its deadline (once the agent was
// reached), and/or when interrupted (SIGINT, SIGTERM).
struct Listening {
  bool deadline;
  bool interruptible;
};

// Reads the stream into `sink` until it ends; the exit code.
int readFlows(const Connection& c, grpc::ClientContext& ctx, const v1::WatchFlowsRequest& request,
              Listening how, const std::function<void(const v1::FlowEvent&)>& sink,
              std::ostream& err) {
  InterruptCanceller canceller(&ctx, how.interruptible);
  v1::Agent::Stub stub(c.channel);
  auto reader = stub.WatchFlows(&ctx, request);
  v1::FlowEvent event;
  bool any = false;
  while (reader->Read(&event)) {
    any = true;
    sink(event);
  }
  const grpc::Status s = reader->Finish();
  const bool interrupted = canceller.interrupted();
  canceller.stop();
  if (s.ok()) return kExitOk;
  if (how.deadline && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && (any || reached(c)))
    return kExitOk;
  if (how.interruptible && interrupted && s.error_code() == grpc::StatusCode::CANCELLED)
    return kExitOk;
  return reportFailure(c, s, err);
}

}  // namespace

int flowsCommand(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 1) {
    err << "bulkhead flows: takes no arguments\n";
    return kExitBadInput;
  }
  const bool follow = args.has("--follow");
  const bool json = args.has("--json");
  const Connection c = connect(o.addresses[0], o);
  grpc::ClientContext ctx;
  if (!follow) setDeadline(ctx, std::chrono::milliseconds(kFlowsWindowMs));
  v1::WatchFlowsRequest request;
  request.set_app(args.get("--app"));
  request.set_workload(args.get("--workload"));
  return readFlows(
      c, ctx, request, Listening{!follow, follow},
      [&](const v1::FlowEvent& e) {
        out << (json ? flowJson(e) : flowLine(e)) << "\n" << std::flush;
      },
      err);
}

int watchFlowsFor(const Args& args, const std::string& envAgent, const std::string& command,
                  long ms, const std::function<void(const std::string&)>& sink, std::ostream& err) {
  AgentOptions o;
  if (!readAgentOptions(args, envAgent, command, &o, err) || !oneAgent(o, command, err))
    return kExitBadInput;
  const Connection c = connect(o.addresses[0], o);
  grpc::ClientContext ctx;
  setDeadline(ctx, std::chrono::milliseconds(ms));
  v1::WatchFlowsRequest request;
  request.set_app(args.get("--app"));
  // Ctrl-C ends the listening early, with what arrived so far.
  return readFlows(
      c, ctx, request, Listening{true, true}, [&](const v1::FlowEvent& e) { sink(flowJson(e)); },
      err);
}

}  // namespace bulkhead::cli
