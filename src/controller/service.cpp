#include "bulkhead/controller/service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "bulkhead/common/escape.h"
#include "bulkhead/common/grpc_status.h"

namespace bulkhead::controller {

grpc::Status toGrpcStatus(const Error& e) {
  return common::grpcStatus(e);
}

std::vector<std::string> peerHostNames(const grpc::AuthContext& context) {
  std::vector<std::string> names;
  if (!context.IsPeerAuthenticated()) return names;
  for (const auto& v : context.FindPropertyValues(GRPC_PEER_DNS_PROPERTY_NAME))
    names.emplace_back(v.data(), v.size());
  if (names.empty())
    for (const auto& v : context.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME))
      names.emplace_back(v.data(), v.size());
  return names;
}

// Starts the writes of streams that got a message while idle, on a thread
// of its own: the core sends under its lock, and a write started there
// runs gRPC's write path (framing, the socket) under that lock, which then
// serializes every stream's writes with the core's work. Changes queued
// meanwhile go out folded with the first.
class WriteStarter {
 public:
  WriteStarter() : thread_([this] { run(); }) {}
  ~WriteStarter() { stop(); }

  void post(std::function<void()> start) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      pending_.push_back(std::move(start));
    }
    cv_.notify_one();
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // the last stream let go of it from its own thread
    } else {
      thread_.join();
    }
  }

 private:
  void run() {
    for (;;) {
      std::vector<std::function<void()>> batch;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        if (stopping_) return;
        batch.swap(pending_);
      }
      for (auto& start : batch)
        start();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

namespace {

class AgentStream;

// The message's parts as slices of one byte buffer: shared parts are
// referenced (the slice holds a reference), framing bytes copied.
grpc::ByteBuffer toByteBuffer(const Outgoing& m) {
  constexpr size_t kCopyBelow = 256;
  std::vector<grpc::Slice> slices;
  slices.reserve(m.parts().size());
  for (const auto& part : m.parts()) {
    if (part->empty()) continue;
    if (part->size() < kCopyBelow) {
      slices.emplace_back(part->data(), part->size());
      continue;
    }
    auto* keep = new SharedBytes(part);
    slices.emplace_back(
        const_cast<char*>(part->data()), part->size(),
        [](void* k) { delete static_cast<SharedBytes*>(k); }, keep);
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// The outbound side of one stream: a bounded queue and at most one write in
// flight. gRPC may run a reaction inline in the thread that starts an
// operation, so StartWrite and Finish are always called without mu_.
class Outbox : public AgentSink, public std::enable_shared_from_this<Outbox> {
 public:
  Outbox(AgentStream* stream, const ServiceOptions& options, std::shared_ptr<WriteStarter> starter)
      : stream_(stream), options_(options), starter_(std::move(starter)) {}

  bool send(Outgoing message) override;
  void close(int grpcCode, const std::string& message) override;
  void onWriteDone(bool ok);
  // Starts the next write if none is in flight (WriteStarter's thread).
  void kick();
  // The agent applies RemoteBatch (its hello said so): queued remote
  // changes go out folded into one message per write.
  void allowBatches() {
    std::lock_guard lock(mu_);
    batches_ = true;
  }

 private:
  // Under mu_: what to do once mu_ is released.
  enum class Next : uint8_t { kNothing, kWrite, kFinish };
  Next nextLocked();
  Outgoing popLocked();
  void act(Next next);

  std::mutex mu_;
  AgentStream* stream_;
  const ServiceOptions& options_;
  std::shared_ptr<WriteStarter> starter_;
  bool kickPosted_ = false;
  std::deque<Outgoing> queue_;
  size_t queuedBytes_ = 0;
  grpc::ByteBuffer current_;  // the write in flight
  bool writing_ = false;
  bool batches_ = false;
  bool closing_ = false;
  bool finished_ = false;
  grpc::Status finish_;
};

// Raw bytes both ways: outbound messages are written from their shared
// encoded parts (wire.h), inbound ones parsed here.
class AgentStream : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  AgentStream(ControllerCore& core, grpc::CallbackServerContext* context,
              const ServiceOptions& options, std::shared_ptr<WriteStarter> starter)
      : core_(core),
        context_(context),
        outbox_(std::make_shared<Outbox>(this, options, std::move(starter))) {
    if (auto auth = context->auth_context()) names_ = peerHostNames(*auth);
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side or the stream broke.
      outbox_->close(int(grpc::StatusCode::OK), "");
      return;
    }
    // When the controller read it, before any wait for the core: the
    // silence check counts from here (ControllerCore::received).
    const auto readAt = std::chrono::steady_clock::now();
    grpc::Status status = parse();
    if (status.ok()) status = session_ ? later(readAt) : hello();
    if (!status.ok()) {
      spdlog::warn("agent stream from {} ({}) closed: {}", escapeForLog(context_->peer()),
                   host_.empty() ? "no hello" : escapeForLog(host_), status.error_message());
      outbox_->close(int(status.error_code()), status.error_message());
      return;
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override { outbox_->onWriteDone(ok); }

  void OnDone() override {
    if (session_) core_.disconnected(session_);
    delete this;
  }

 private:
  static grpc::Status denied(const std::string& message) {
    return {grpc::StatusCode::PERMISSION_DENIED, message};
  }

  // A host speaks only for itself: a workload naming another host ends the
  // stream.
  grpc::Status ownWorkload(const v1::Workload& w) const {
    if (w.host().empty() || w.host() == host_) return grpc::Status::OK;
    return denied("workload \"" + escapeForLog(w.name(), 128) + "\" names host \"" +
                  escapeForLog(w.host(), 128) + "\": host \"" + escapeForLog(host_, 128) +
                  "\" reports only its own workloads");
  }

  grpc::Status parse() {
    message_.Clear();
    auto st = grpc::SerializationTraits<v1::AgentMessage>::Deserialize(&in_, &message_);
    if (st.ok()) return st;
    return {grpc::StatusCode::INVALID_ARGUMENT, "not an AgentMessage: " + st.error_message()};
  }

  grpc::Status hello() {
    if (!message_.has_hello())
      return {grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a hello"};
    const auto& host = message_.hello().host();
    // Over TLS the certificate names the host; over a unix socket the
    // hello's name is taken as given.
    if (!names_.empty() && std::find(names_.begin(), names_.end(), host) == names_.end()) {
      std::string presented;
      for (const auto& n : names_)
        presented += (presented.empty() ? "" : ", ") + escapeForLog(n, 128);
      return denied("hello names host \"" + escapeForLog(host, 128) +
                    "\" but the client certificate is for [" + presented + "]");
    }
    host_ = host;
    for (const auto& w : message_.hello().workloads())
      if (auto st = ownWorkload(w); !st.ok()) return st;
    if (message_.hello().remote_batches()) outbox_->allowBatches();
    auto session = core_.connect(message_.hello(), outbox_, context_->peer());
    if (!session) return toGrpcStatus(session.error());
    session_ = *session;
    return grpc::Status::OK;
  }

  grpc::Status later(std::chrono::steady_clock::time_point readAt) {
    if (message_.has_workload() && message_.workload().has_upsert())
      if (auto st = ownWorkload(message_.workload().upsert()); !st.ok()) return st;
    auto st = core_.received(session_, message_, readAt);
    return st ? grpc::Status::OK : toGrpcStatus(st.error());
  }

  friend class Outbox;
  ControllerCore& core_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<Outbox> outbox_;
  std::vector<std::string> names_;
  std::string host_;
  grpc::ByteBuffer in_;
  v1::AgentMessage message_;
  uint64_t session_ = 0;
};

bool Outbox::send(Outgoing message) {
  Next next = Next::kNothing;
  bool accepted = false;
  bool post = false;
  {
    std::lock_guard lock(mu_);
    if (closing_) return false;
    // Any write proves the controller alive: a keepalive behind others is
    // not needed (and would split a run of remote changes).
    if (message.kind() == Outgoing::Kind::kKeepAlive && (writing_ || !queue_.empty())) return true;
    const size_t bytes = message.size();
    if (queue_.size() >= options_.maxQueuedMessages ||
        queuedBytes_ + bytes > options_.maxQueuedBytes) {
      spdlog::warn("agent stream {} fell behind ({} messages, {} bytes queued): closed",
                   escapeForLog(stream_->context_->peer()), queue_.size(), queuedBytes_);
      closing_ = true;
      queue_.clear();
      queuedBytes_ = 0;
      finish_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                             "the agent fell behind the controller's updates; reconnect");
    } else {
      queue_.push_back(std::move(message));
      queuedBytes_ += bytes;
      accepted = true;
    }
    if (closing_) {
      next = nextLocked();
    } else if (!writing_ && !kickPosted_) {
      kickPosted_ = post = true;
    }
  }
  if (post) starter_->post([self = shared_from_this()] { self->kick(); });
  act(next);
  return accepted;
}

void Outbox::kick() {
  Next next;
  {
    std::lock_guard lock(mu_);
    kickPosted_ = false;
    next = nextLocked();
  }
  act(next);
}

void Outbox::close(int grpcCode, const std::string& message) {
  Next next;
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
    closing_ = true;
    queue_.clear();
    queuedBytes_ = 0;
    finish_ = grpc::Status(grpc::StatusCode(grpcCode), message);
    next = nextLocked();
  }
  act(next);
}

void Outbox::onWriteDone(bool ok) {
  Next next;
  {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok && !closing_) {
      // The stream is broken; the read side notices too.
      closing_ = true;
      queue_.clear();
      queuedBytes_ = 0;
      finish_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
    }
    next = nextLocked();
  }
  act(next);
}

Outbox::Next Outbox::nextLocked() {
  if (writing_ || finished_) return Next::kNothing;
  if (closing_) {
    finished_ = true;
    return Next::kFinish;
  }
  if (queue_.empty()) return Next::kNothing;
  Outgoing next = popLocked();
  if (batches_ && next.isRemoteChange() && !queue_.empty() && queue_.front().isRemoteChange()) {
    // Queued while the stream was busy: one message, one write, and one
    // transaction on the agent, instead of one of each per change.
    std::vector<Outgoing> run;
    run.push_back(std::move(next));
    while (!queue_.empty() && queue_.front().isRemoteChange())
      run.push_back(popLocked());
    next = foldRemoteChanges(run);
  }
  current_ = toByteBuffer(next);
  writing_ = true;
  return Next::kWrite;
}

Outgoing Outbox::popLocked() {
  Outgoing m = std::move(queue_.front());
  queue_.pop_front();
  queuedBytes_ -= std::min(queuedBytes_, m.size());
  return m;
}

// Without mu_. The stream lives until OnDone, which comes only after Finish
// and after the write in flight completes.
void Outbox::act(Next next) {
  if (next == Next::kWrite) stream_->StartWrite(&current_);
  if (next == Next::kFinish) stream_->Finish(finish_);
}

}  // namespace

v1::ControllerMessage foldRemoteChanges(std::vector<v1::ControllerMessage> changes) {
  std::vector<Outgoing> encoded;
  encoded.reserve(changes.size());
  for (const auto& m : changes)
    encoded.push_back(Outgoing::of(m));
  return foldRemoteChanges(encoded).decode();
}

ControllerService::ControllerService(ControllerCore& core, ServiceOptions options)
    : core_(core), options_(options), starter_(std::make_shared<WriteStarter>()) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ControllerService::Connect(
    grpc::CallbackServerContext* context) {
  return new AgentStream(core_, context, options_, starter_);
}

grpc::Status ControllerService::PushPolicy(grpc::ServerContext*,
                                           const v1::PushPolicyRequest* request,
                                           v1::PushPolicyResponse* response) {
  auto r = core_.push(*request);
  if (!r) {
    if (r.error().code != ErrorCode::kInvalidInput)
      spdlog::error("PushPolicy: {}", r.error().describe());
    return toGrpcStatus(r.error());
  }
  *response = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status ControllerService::WatchRollout(grpc::ServerContext* context,
                                             const v1::WatchRolloutRequest* request,
                                             grpc::ServerWriter<v1::RolloutProgress>* writer) {
  const auto timeout =
      std::chrono::seconds(request->timeout_seconds() ? request->timeout_seconds() : 60);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  uint64_t epoch = core_.epoch();
  std::string last;
  for (;;) {
    auto progress = core_.rollout(request->revision());
    if (!progress) return toGrpcStatus(progress.error());
    const bool expired = std::chrono::steady_clock::now() >= deadline;
    if (expired || stopping_) progress->set_done(true);
    std::string bytes = progress->SerializeAsString();
    if (bytes != last) {
      if (!writer->Write(*progress)) return grpc::Status::CANCELLED;
      last = std::move(bytes);
    }
    if (progress->done()) return grpc::Status::OK;
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    // Woken by an ack or a connection change; at least once a second to
    // notice a cancelled caller or a stop.
    epoch = core_.waitForChange(
        epoch, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1)));
  }
}

grpc::Status ControllerService::GetFleetStatus(grpc::ServerContext*,
                                               const v1::GetFleetStatusRequest*,
                                               v1::FleetStatus* response) {
  *response = core_.fleetStatus();
  return grpc::Status::OK;
}

grpc::Status ControllerService::ListFleetWorkloads(grpc::ServerContext*,
                                                   const v1::ListFleetWorkloadsRequest* request,
                                                   v1::ListWorkloadsResponse* response) {
  *response = core_.fleetWorkloads(request->host());
  return grpc::Status::OK;
}

}  // namespace bulkhead::controller
