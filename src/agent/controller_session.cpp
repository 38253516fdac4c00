#include "controller_session.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "bulkhead/agent/config.h"
#include "bulkhead/common/endpoint.h"
#include "controller_messages.h"

namespace bulkhead::agent {

namespace {

double seconds(std::chrono::milliseconds d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

void ControllerLink::Shared::localChange(const LocalWorkloadChange& change) {
  std::unique_lock lock(mu);
  if (!live) return;
  if (outbox.size() >= maxQueued) {
    overflow = true;
  } else {
    outbox.push_back(changeMessage(change, host));
  }
  cv.notify_all();
}

ControllerSession::ControllerSession(FleetMember& member, const ControllerLinkOptions& options,
                                     ControllerLink::Shared& shared, std::string url)
    : member_(member), options_(options), shared_(shared), url_(std::move(url)) {}

bool ControllerSession::run() {
  auto endpoint = common::parseEndpoint(url_, kControllerSchemes, "--controller");
  if (!endpoint) {
    error_ = endpoint.error().message;
    return false;
  }
  grpc::ChannelArguments args = common::agentChannelArguments(options_.maxMessageBytes);
  const bool tcp = endpoint->scheme == common::Scheme::kTcp;
  auto channel = grpc::CreateCustomChannel(
      endpoint->grpcTarget(), common::clientCredentials(tcp, options_.tls, args), args);
  if (!dial(*channel)) return false;
  auto stub = v1::Controller::NewStub(channel);
  // The call starts without waiting for the server: the hello goes with it.
  ctx_.set_initial_metadata_corked(true);
  std::unique_ptr<Stream> stream = stub->Connect(&ctx_);
  open();
  // After open(): a change made while the list is read is queued as well
  // (sent twice at worst; an upsert and a delete are idempotent).
  v1::AgentMessage hello = helloMessage(options_.host, options_.agentVersion,
                                        member_.appliedRevision(), member_.localWorkloads());
  {
    std::lock_guard lock(shared_.mu);
    shared_.outbox.push_front(std::move(hello));
  }
  std::thread reader([&] { readLoop(*stream); });
  std::thread writer([&] { writeLoop(*stream); });
  supervise();
  ctx_.TryCancel();
  writer.join();
  reader.join();
  const grpc::Status end = stream->Finish();
  std::lock_guard lock(shared_.mu);
  if (error_.empty())
    noteErrorLocked(end.ok() ? "the controller ended the stream"
                             : "the controller ended the stream: " + end.error_message());
  return established_;
}

// Waits for the channel to connect, in short slices so that stop() is
// prompt. A channel in TRANSIENT_FAILURE (refused, no such socket, TLS
// handshake refused) is given up at once: the next controller is tried.
bool ControllerSession::dial(grpc::Channel& channel) {
  const auto deadline = LinkClock::now() + options_.dialTimeout;
  for (;;) {
    {
      std::lock_guard lock(shared_.mu);
      if (shared_.stopping) {
        error_ = "stopped";
        return false;
      }
    }
    const grpc_connectivity_state state = channel.GetState(true);
    if (state == GRPC_CHANNEL_READY) return true;
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      error_ = "cannot connect (refused, unreachable, or the TLS handshake failed)";
      return false;
    }
    if (LinkClock::now() >= deadline) {
      error_ = "no connection within " + std::to_string(seconds(options_.dialTimeout)) + " s";
      return false;
    }
    channel.WaitForStateChange(state,
                               std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  }
}

void ControllerSession::open() {
  std::lock_guard lock(shared_.mu);
  shared_.outbox.clear();
  shared_.overflow = false;
  shared_.live = true;
  lastHeard_ = LinkClock::now();
}

// The caller's thread until the stream must end; then nothing more is
// applied (fail-static) and the outbox is dropped.
void ControllerSession::supervise() {
  const auto silence = options_.keepAlive * kKeepAliveMissed;
  std::unique_lock lock(shared_.mu);
  for (;;) {
    shared_.cv.wait_until(lock, lastHeard_ + silence, [&] {
      return shared_.stopping || readerDone_ || writerDone_ || failed_ || shared_.overflow;
    });
    if (shared_.stopping) {
      noteErrorLocked("stopped");
      break;
    }
    if (readerDone_ || writerDone_ || failed_) break;
    if (shared_.overflow) {
      noteErrorLocked("more than " + std::to_string(options_.maxQueued) +
                      " local changes waiting to be sent: dialling again for a full hello");
      break;
    }
    if (!applying_ && LinkClock::now() >= lastHeard_ + silence) {
      noteErrorLocked("nothing heard from the controller for " + std::to_string(seconds(silence)) +
                      " s");
      break;
    }
  }
  over_ = true;
  shared_.live = false;
  shared_.outbox.clear();
  shared_.cv.notify_all();
}

void ControllerSession::readLoop(Stream& stream) {
  v1::ControllerMessage m;
  while (stream.Read(&m)) {
    {
      std::lock_guard lock(shared_.mu);
      if (over_) break;
      applying_ = true;
    }
    handle(m);
    std::lock_guard lock(shared_.mu);
    applying_ = false;
    lastHeard_ = LinkClock::now();
  }
  std::lock_guard lock(shared_.mu);
  readerDone_ = true;
  shared_.cv.notify_all();
}

// Writes what is queued; a keepalive when nothing was written for a period.
void ControllerSession::writeLoop(Stream& stream) {
  auto nextKeepAlive = LinkClock::now();  // not before the hello: it is queued first
  std::unique_lock lock(shared_.mu);
  for (;;) {
    shared_.cv.wait_until(lock, nextKeepAlive, [&] { return over_ || !shared_.outbox.empty(); });
    if (over_) return;
    std::deque<v1::AgentMessage> batch;
    batch.swap(shared_.outbox);
    if (batch.empty() && LinkClock::now() < nextKeepAlive) continue;
    if (batch.empty()) batch.push_back(keepAliveMessage());
    lock.unlock();
    bool ok = true;
    for (const auto& m : batch)
      if (!(ok = stream.Write(m))) break;
    lock.lock();
    if (!ok) {
      writerDone_ = true;
      noteErrorLocked("the stream broke while writing to the controller");
      shared_.cv.notify_all();
      return;
    }
    nextKeepAlive = LinkClock::now() + options_.keepAlive;
  }
}

void ControllerSession::send(v1::AgentMessage m) {
  std::lock_guard lock(shared_.mu);
  if (over_) return;
  shared_.outbox.push_back(std::move(m));
  shared_.cv.notify_all();
}

void ControllerSession::fail(const std::string& why) {
  std::lock_guard lock(shared_.mu);
  noteErrorLocked(why);
  failed_ = true;
  shared_.cv.notify_all();
}

void ControllerSession::noteErrorLocked(const std::string& why) {
  if (error_.empty()) error_ = why;
}

}  // namespace bulkhead::agent
