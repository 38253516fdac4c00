// ControllerSession's reader side: each message of the controller applied
// through FleetMember, on the reader thread, one at a time and in order.
#include <spdlog/spdlog.h>

#include "bulkhead/common/escape.h"
#include "controller_messages.h"
#include "controller_session.h"

namespace bulkhead::agent {

void ControllerSession::handle(const v1::ControllerMessage& m) {
  using Case = v1::ControllerMessage::MessageCase;
  const Case which = m.message_case();
  if (which == Case::kKeepalive) return;
  if (which == Case::kSnapshot) return onSnapshot(m.snapshot());
  bool established = false;
  {
    std::lock_guard lock(shared_.mu);
    established = established_;
  }
  if (!established) {
    // Deltas only make sense on top of a snapshot; applying them alone
    // would leave a state the controller does not know.
    return fail("the controller sent a change before its snapshot");
  }
  switch (which) {
    case Case::kPolicy:
      return onPolicy(m.policy());
    case Case::kRemoteUpsert:
      return onRemoteUpsert(m.remote_upsert());
    case Case::kRemoteDelete:
      return onRemoteDelete(m.remote_delete());
    case Case::kRemoteBatch:
      return onRemoteBatch(m.remote_batch());
    default:
      return;  // a message of a newer controller: nothing to do with it here
  }
}

std::vector<RemoteWorkload> ControllerSession::remotesOf(const v1::Snapshot& snapshot) {
  std::vector<RemoteWorkload> remotes;
  remotes.reserve(snapshot.remote_workloads_size());
  for (const auto& w : snapshot.remote_workloads()) {
    auto remote = remoteFromApi(w, options_.host);
    if (!remote) {
      spdlog::warn("controller {}: {}; ignored", url_, remote.error().message);
      continue;
    }
    remotes.push_back(std::move(*remote));
  }
  return remotes;
}

// The bundle and the complete set of remote workloads. A bundle that is not
// applied is acked with its error and the remote workloads are still taken
// (they are facts about the fleet, whatever bundle is in force); a set of
// remote workloads that cannot be applied ends the stream, so the next one
// tries again.
void ControllerSession::onSnapshot(const v1::Snapshot& snapshot) {
  std::vector<RemoteWorkload> remotes = remotesOf(snapshot);
  const size_t count = remotes.size();
  Status applied;
  if (snapshot.has_policy()) {
    auto policy = revisionFromApi(snapshot.policy());
    applied = policy ? member_.applySnapshot(*policy, remotes) : Status(policy.takeError());
    if (applied) {
      spdlog::info("controller {}: revision {} in force", url_, snapshot.policy().revision());
    } else {
      spdlog::error("controller {}: revision {} not applied, the bundle in force stays: {}", url_,
                    snapshot.policy().revision(), applied.error().describe());
    }
    send(ackMessage(snapshot.policy().revision(), applied));
  }
  if (!snapshot.has_policy() || !applied) {
    if (auto st = member_.applySnapshot(std::nullopt, std::move(remotes)); !st)
      return fail("the controller's remote workloads were not applied: " + st.error().describe());
  }
  std::lock_guard lock(shared_.mu);
  if (established_) return;  // a controller may send a fresh snapshot at any time
  established_ = true;
  shared_.status.connected = true;
  shared_.status.controller = url_;
  shared_.status.lastError.clear();
  ++shared_.status.sessions;
  spdlog::info("controller {}: connected as host {}, {} remote workloads", url_,
               escapeForLog(options_.host), count);
}

void ControllerSession::onPolicy(const v1::PolicyRevision& policy) {
  auto revision = revisionFromApi(policy);
  const Status applied = revision ? member_.applyRevision(*revision) : Status(revision.takeError());
  if (applied) {
    spdlog::info("controller {}: revision {} (version {}) in force", url_, policy.revision(),
                 escapeForLog(policy.version()));
  } else {
    spdlog::error("controller {}: revision {} not applied, the bundle in force stays: {}", url_,
                  policy.revision(), applied.error().describe());
  }
  send(ackMessage(policy.revision(), applied));
}

// An entry the controller got wrong is skipped; one the agent could not
// apply (the kernel) ends the stream: the next snapshot puts it right.
void ControllerSession::onRemoteUpsert(const v1::Workload& w) {
  auto remote = remoteFromApi(w, options_.host);
  if (!remote) {
    spdlog::warn("controller {}: {}; ignored", url_, remote.error().message);
    return;
  }
  const Status st = member_.upsertRemoteWorkload(*remote);
  if (st) return;
  if (st.error().code == ErrorCode::kInvalidInput) {
    spdlog::warn("controller {}: remote workload {}/{} refused: {}", url_,
                 escapeForLog(remote->host), escapeForLog(remote->workload.name),
                 st.error().message);
    return;
  }
  fail("remote workload " + escapeForLog(remote->host) + "/" + escapeForLog(remote->workload.name) +
       " not applied: " + st.error().describe());
}

void ControllerSession::onRemoteDelete(const v1::RemoteWorkloadKey& key) {
  const Status st = member_.deleteRemoteWorkload(key.host(), key.name());
  if (st || st.error().code == ErrorCode::kNotFound || st.error().code == ErrorCode::kInvalidInput)
    return;
  fail("remote workload " + escapeForLog(key.host()) + "/" + escapeForLog(key.name()) +
       " not removed: " + st.error().describe());
}

// Many changes, one transaction: entries the controller got wrong are
// skipped as single ones are; a batch the agent could not apply ends the
// stream (the next snapshot puts it right).
void ControllerSession::onRemoteBatch(const v1::RemoteBatch& batch) {
  std::vector<RemoteWorkload> upserts;
  upserts.reserve(batch.upserts_size());
  for (const auto& w : batch.upserts()) {
    auto remote = remoteFromApi(w, options_.host);
    if (!remote) {
      spdlog::warn("controller {}: {}; ignored", url_, remote.error().message);
      continue;
    }
    upserts.push_back(std::move(*remote));
  }
  std::vector<RemoteWorkloadKey> deletes;
  deletes.reserve(batch.deletes_size());
  for (const auto& k : batch.deletes())
    deletes.push_back({k.host(), k.name()});
  const Status st = member_.applyRemoteChanges(upserts, deletes);
  if (st) return;
  fail("a batch of " + std::to_string(upserts.size() + deletes.size()) +
       " remote workload changes not applied: " + st.error().describe());
}

}  // namespace bulkhead::agent
