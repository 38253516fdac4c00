#include "bulkhead/agent/controller_link.h"

#include <spdlog/spdlog.h>

#include <map>
#include <random>

#include "bulkhead/common/thread_name.h"
#include "controller_session.h"

namespace bulkhead::agent {

ControllerLink::ControllerLink(FleetMember& member, ControllerLinkOptions options)
    : member_(member), options_(std::move(options)), shared_(std::make_shared<Shared>()) {
  shared_->host = options_.host;
  shared_->maxQueued = options_.maxQueued;
  // The listener holds the shared state, not the link: a call the member
  // makes while the link is being destroyed finds it still there.
  member_.setLocalChangeListener(
      [shared = shared_](const LocalWorkloadChange& change) { shared->localChange(change); });
  if (!options_.controllers.empty())
    thread_ = std::thread([this] {
      common::nameThisThread("bh-controller");
      run();
    });
}

ControllerLink::~ControllerLink() {
  member_.setLocalChangeListener(nullptr);
  stop();
}

void ControllerLink::stop() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
    shared_->cv.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

ControllerLinkStatus ControllerLink::status() const {
  std::lock_guard lock(shared_->mu);
  return shared_->status;
}

// Dials the controllers in order; after a stream that was established, the
// first again. Between rounds of failures it waits, doubling from
// backoffMin to backoffMax, each wait drawn from [half, all] of it so that
// a fleet does not come back in step. A failure is logged when it differs
// from the last one logged for that controller, not on every retry.
void ControllerLink::run() {
  std::mt19937_64 random(std::random_device{}());
  std::map<std::string, std::string> reported;
  auto backoff = options_.backoffMin;
  size_t next = 0;
  for (;;) {
    const std::string& url = options_.controllers[next];
    ControllerSession session(member_, options_, *shared_, url);
    const bool established = session.run();
    {
      std::lock_guard lock(shared_->mu);
      if (shared_->stopping) return;
      shared_->status.connected = false;
      shared_->status.controller = url;
      shared_->status.lastError = session.error();
    }
    if (established) {
      spdlog::warn("controller {}: disconnected ({}); enforcing what is in force until it is back",
                   url, session.error());
      reported.clear();
      backoff = options_.backoffMin;
      next = 0;
    } else {
      if (reported[url] != session.error())
        spdlog::warn("controller {}: {}; retrying", url, session.error());
      reported[url] = session.error();
      next = (next + 1) % options_.controllers.size();
      if (next != 0) continue;  // the next controller at once
    }
    std::uniform_int_distribution<int64_t> draw(backoff.count() / 2, backoff.count());
    const std::chrono::milliseconds wait{draw(random)};
    if (!established) backoff = std::min(backoff * 2, options_.backoffMax);
    std::unique_lock lock(shared_->mu);
    if (shared_->cv.wait_for(lock, wait, [&] { return shared_->stopping; })) return;
  }
}

}  // namespace bulkhead::agent
