#include "controller_messages.h"

#include <chrono>

#include "bulkhead/agent/api_convert.h"
#include "bulkhead/common/escape.h"

namespace bulkhead::agent {

v1::Workload reportedWorkload(const policy::Workload& w, LocalSource source,
                              const std::string& host) {
  v1::Workload out = toApi(w, toApi(source));
  out.clear_interfaces();
  out.set_host(host);
  return out;
}

v1::AgentMessage helloMessage(const std::string& host, const std::string& version,
                              uint64_t appliedRevision,
                              const std::vector<LocalWorkload>& workloads) {
  v1::AgentMessage m;
  v1::AgentHello* hello = m.mutable_hello();
  hello->set_host(host);
  hello->set_agent_version(version);
  hello->set_applied_revision(appliedRevision);
  hello->set_remote_batches(true);  // onRemoteBatch
  for (const auto& w : workloads)
    *hello->add_workloads() = reportedWorkload(w.workload, w.source, host);
  return m;
}

v1::AgentMessage changeMessage(const LocalWorkloadChange& change, const std::string& host) {
  v1::AgentMessage m;
  if (change.removed) {
    m.mutable_workload()->set_deleted(change.workload.name);
  } else {
    *m.mutable_workload()->mutable_upsert() =
        reportedWorkload(change.workload, change.source, host);
  }
  return m;
}

v1::AgentMessage ackMessage(uint64_t revision, const Status& applied) {
  v1::AgentMessage m;
  v1::RevisionAck* ack = m.mutable_ack();
  ack->set_revision(revision);
  ack->set_applied(applied.ok());
  if (!applied.ok()) ack->set_error(applied.error().describe());
  return m;
}

v1::AgentMessage keepAliveMessage() {
  v1::AgentMessage m;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  m.mutable_keepalive()->set_sent_unix_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  return m;
}

Result<PolicyRevision> revisionFromApi(const v1::PolicyRevision& p) {
  if (p.revision() == 0)
    return makeError(ErrorCode::kInvalidInput, "policy revision 0 (revisions start at 1)");
  auto files = fromApi(p.files());
  if (!files) return files.takeError();
  PolicyRevision out;
  out.revision = p.revision();
  out.version = p.version();
  out.files = std::move(*files);
  return out;
}

Result<RemoteWorkload> remoteFromApi(const v1::Workload& w, const std::string& ownHost) {
  const std::string who =
      "remote workload \"" + escapeForLog(w.host()) + "/" + escapeForLog(w.name()) + "\": ";
  if (w.host().empty()) return makeError(ErrorCode::kInvalidInput, who + "no host");
  if (w.host() == ownHost)
    return makeError(ErrorCode::kInvalidInput, who + "names this host; local workloads are ours");
  // Checked as a local registration is (name, app, labels, addresses). The
  // check asks for an interface, which a remote workload never has here: a
  // placeholder stands in for it and is dropped with whatever was sent.
  v1::Workload checked = w;
  checked.clear_interfaces();
  checked.add_interfaces("remote0");
  checked.set_quarantined(false);
  auto workload = fromApi(checked);
  if (!workload) return makeError(ErrorCode::kInvalidInput, who + workload.error().message);
  workload->interfaces.clear();
  return RemoteWorkload{w.host(), std::move(*workload)};
}

}  // namespace bulkhead::agent
