// Watcher: one Watch stream at a time, re-created after every break from
// the revision after the last one delivered.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "client_impl.h"

namespace bulkhead::etcd {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);

KeyValue fromProto(const mvccpb::KeyValue& kv) {
  return KeyValue{kv.key(),          kv.value(),   kv.create_revision(),
                  kv.mod_revision(), kv.version(), kv.lease()};
}

}  // namespace

struct Watcher::State {
  enum class Outcome { kBroken, kCompacted, kStopped };

  ClientImpl& impl;
  std::string prefix;
  int64_t next;  // the first revision not yet delivered
  Callbacks callbacks;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  grpc::ClientContext* context = nullptr;  // the open stream's, for the destructor to cancel
  std::thread thread;

  void run();
  Outcome watchOnce(size_t endpoint, grpc::Status& why, bool& progressed);
  // Handles one response; kCompacted or kBroken end the stream.
  std::optional<Outcome> handle(const etcdserverpb::WatchResponse& response, grpc::Status& why);
  void deliver(const etcdserverpb::WatchResponse& response);
  bool sleepFor(Clock::duration d);  // false when stopping
};

void Watcher::State::deliver(const etcdserverpb::WatchResponse& response) {
  std::vector<Event> events;
  int64_t last = 0;
  for (const auto& e : response.events()) {
    // A re-created watch starts at `next`; anything older was delivered.
    if (e.kv().mod_revision() < next) continue;
    const EventType type = e.type() == mvccpb::Event::DELETE ? EventType::kDelete : EventType::kPut;
    events.push_back(Event{type, fromProto(e.kv())});
    last = std::max(last, e.kv().mod_revision());
  }
  if (events.empty()) {
    // A progress notification: etcd has sent everything up to its revision.
    if (response.events_size() == 0 && !response.created())
      next = std::max(next, response.header().revision() + 1);
    return;
  }
  next = last + 1;
  if (callbacks.onEvents) callbacks.onEvents(events, last);
}

std::optional<Watcher::State::Outcome> Watcher::State::handle(
    const etcdserverpb::WatchResponse& response, grpc::Status& why) {
  // etcd answers a watch from a compacted revision with compact_revision
  // set and the watch cancelled; retrying from the same revision would get
  // the same answer forever.
  if (response.compact_revision() != 0) {
    if (callbacks.onCompacted) callbacks.onCompacted(response.compact_revision());
    return Outcome::kCompacted;
  }
  if (response.canceled()) {
    why = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "watch cancelled by etcd: " + response.cancel_reason());
    return Outcome::kBroken;
  }
  deliver(response);
  return std::nullopt;
}

Watcher::State::Outcome Watcher::State::watchOnce(size_t endpoint, grpc::Status& why,
                                                  bool& progressed) {
  grpc::ClientContext ctx;
  // A member cut off from the cluster's leader ends the stream instead of
  // going quiet (etcd's clientv3 asks the same way).
  ctx.AddMetadata("hasleader", "true");
  {
    std::lock_guard lock(mutex);
    if (stopping) return Outcome::kStopped;
    context = &ctx;
  }
  auto stream = impl.channel(endpoint).watch->Watch(&ctx);
  etcdserverpb::WatchRequest request;
  auto* create = request.mutable_create_request();
  create->set_key(prefixRangeStart(prefix));
  create->set_range_end(prefixRangeEnd(prefix));
  create->set_start_revision(next);
  create->set_progress_notify(true);
  Outcome outcome = Outcome::kBroken;
  why = grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream closed");
  etcdserverpb::WatchResponse response;
  if (stream->Write(request)) {
    while (stream->Read(&response)) {
      progressed = progressed || response.created() || response.events_size() > 0;
      if (auto end = handle(response, why)) {
        outcome = *end;
        break;
      }
    }
  }
  ctx.TryCancel();
  const grpc::Status finished = stream->Finish();
  if (!finished.ok() && finished.error_code() != grpc::StatusCode::CANCELLED) why = finished;
  std::lock_guard lock(mutex);
  context = nullptr;
  return stopping ? Outcome::kStopped : outcome;
}

bool Watcher::State::sleepFor(Clock::duration d) {
  std::unique_lock lock(mutex);
  return !wake.wait_for(lock, d, [this] { return stopping; });
}

void Watcher::State::run() {
  Clock::duration backoff = kFirstBackoff;
  for (;;) {
    const size_t endpoint = impl.current();
    grpc::Status why;
    bool progressed = false;
    if (watchOnce(endpoint, why, progressed) != Outcome::kBroken) return;
    impl.failedOn(endpoint);
    if (callbacks.onDisconnected)
      callbacks.onDisconnected(impl.toError(why, "watch of '" + prefix + "'"));
    if (progressed) backoff = kFirstBackoff;
    // etcd down: retry with a growing pause, never in a tight loop.
    if (!sleepFor(backoff)) return;
    backoff = std::min<Clock::duration>(backoff * 2, kMaxBackoff);
  }
}

Watcher::Watcher(Client& client, std::string prefix, int64_t startRevision, Callbacks callbacks)
    : state_(new State{client.impl(), std::move(prefix), std::max<int64_t>(startRevision, 1),
                       std::move(callbacks)}) {
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

Watcher::~Watcher() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    if (state_->context) state_->context->TryCancel();
  }
  state_->wake.notify_all();
  state_->thread.join();
}

}  // namespace bulkhead::etcd
