// Leases: grant, revoke, one keep-alive, and the LeaseKeeper that renews a
// set of them from one thread.
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "client_impl.h"

namespace bulkhead::etcd {

Result<int64_t> Client::leaseGrant(std::chrono::seconds ttl) {
  if (ttl.count() <= 0) return makeError(ErrorCode::kInvalidInput, "etcd lease TTL must be > 0 s");
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl.count());
  etcdserverpb::LeaseGrantResponse response;
  const grpc::Status status = impl_->invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    return ch.lease->LeaseGrant(&ctx, request, &response);
  });
  if (!status.ok()) return impl_->toError(status, "lease grant");
  if (!response.error().empty())
    return makeError(ErrorCode::kUnavailable, "etcd lease grant: " + response.error());
  return response.id();
}

Status Client::leaseRevoke(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  const grpc::Status status = impl_->invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    return ch.lease->LeaseRevoke(&ctx, request, &response);
  });
  if (!status.ok()) return impl_->toError(status, "lease revoke " + std::to_string(lease));
  return {};
}

Status Client::leaseKeepAlive(int64_t lease) {
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseKeepAliveResponse response;
  // The API has only the stream form: one request, one answer.
  const grpc::Status status = impl_->invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    auto stream = ch.lease->LeaseKeepAlive(&ctx);
    const bool answered = stream->Write(request) && stream->Read(&response);
    stream->WritesDone();
    grpc::Status finished = stream->Finish();
    if (answered) return grpc::Status::OK;
    return finished.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream closed") : finished;
  });
  if (!status.ok()) return impl_->toError(status, "lease keep-alive " + std::to_string(lease));
  // etcd answers TTL 0 (not an error) for a lease it does not know.
  if (response.ttl() <= 0)
    return makeError(ErrorCode::kNotFound,
                     "etcd lease " + std::to_string(lease) + " has expired or never existed");
  return {};
}

struct LeaseKeeper::State {
  struct Entry {
    std::chrono::seconds ttl;
    std::chrono::steady_clock::time_point due, lastRenewed;
  };
  Client& client;
  std::function<void(int64_t)> onExpired;
  std::mutex mutex;
  std::condition_variable wake;
  std::map<int64_t, Entry> leases;
  bool stopping = false;
  std::thread thread;

  void run();
  // Renews `lease` once; false when it is gone for good.
  bool renew(int64_t lease, Entry& entry);
};

namespace {
using Clock = std::chrono::steady_clock;
// Retry sooner than ttl/3 after a failed renewal, but never spin.
constexpr auto kRetryAfterFailure = std::chrono::milliseconds(500);
}  // namespace

bool LeaseKeeper::State::renew(int64_t lease, Entry& entry) {
  const Status status = client.leaseKeepAlive(lease);
  const auto now = Clock::now();
  if (status.ok()) {
    entry.lastRenewed = now;
    entry.due = now + entry.ttl / 3;
    return true;
  }
  if (status.error().code == ErrorCode::kNotFound) return false;
  // etcd unreachable: the lease outlives us for its TTL since the last
  // renewal, not longer.
  if (now - entry.lastRenewed >= entry.ttl) return false;
  entry.due = now + std::min<Clock::duration>(kRetryAfterFailure, entry.ttl / 3);
  return true;
}

void LeaseKeeper::State::run() {
  std::unique_lock lock(mutex);
  while (!stopping) {
    auto next = Clock::time_point::max();
    int64_t dueLease = 0;
    for (const auto& [id, entry] : leases)
      if (entry.due < next) next = entry.due, dueLease = id;
    if (next > Clock::now()) {
      if (next == Clock::time_point::max())
        wake.wait(lock);
      else
        wake.wait_until(lock, next);
      continue;
    }
    Entry entry = leases.at(dueLease);
    lock.unlock();
    const bool alive = renew(dueLease, entry);
    lock.lock();
    auto it = leases.find(dueLease);
    if (it == leases.end()) continue;  // removed meanwhile: nobody to tell
    if (alive) {
      it->second = entry;
      continue;
    }
    leases.erase(it);
    lock.unlock();
    if (onExpired) onExpired(dueLease);
    lock.lock();
  }
}

LeaseKeeper::LeaseKeeper(Client& client, std::function<void(int64_t)> onExpired)
    : state_(new State{client, std::move(onExpired), {}, {}, {}, false, {}}) {
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

void LeaseKeeper::add(int64_t lease, std::chrono::seconds ttl) {
  const auto now = Clock::now();
  {
    std::lock_guard lock(state_->mutex);
    state_->leases[lease] =
        State::Entry{std::max(ttl, std::chrono::seconds(1)), now + ttl / 3, now};
  }
  state_->wake.notify_all();
}

void LeaseKeeper::remove(int64_t lease) {
  std::lock_guard lock(state_->mutex);
  state_->leases.erase(lease);
}

}  // namespace bulkhead::etcd
