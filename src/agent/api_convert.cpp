#include "bulkhead/agent/api_convert.h"

#include <cctype>

#include "bulkhead/agent/core.h"  // nowRfc3339
#include "bulkhead/agent/request_checks.h"
#include "bulkhead/common/host_address.h"

namespace bulkhead::agent {

namespace {

// Name, app, labels, interfaces and addresses, not yet validated.
Result<policy::Workload> parseWorkload(const v1::Workload& w) {
  policy::Workload out;
  out.name = w.name();
  out.app = w.app();
  out.interfaces.assign(w.interfaces().begin(), w.interfaces().end());
  for (const auto& [k, v] : w.labels())
    out.labels[k] = v;
  for (int i = 0; i < w.addresses_size(); ++i) {
    // A host prefix is accepted as the address it names.
    std::string why;
    const auto a = common::hostAddressText(w.addresses(i), &why);
    if (!a)
      return makeError(ErrorCode::kInvalidInput, "workload.addresses[" + std::to_string(i) +
                                                     "]: \"" + w.addresses(i) + "\" " + why);
    auto ip = policy::IpAddr::parse(*a);
    if (!ip)
      return makeError(ErrorCode::kInvalidInput, "workload.addresses[" + std::to_string(i) +
                                                     "]: bad address \"" + w.addresses(i) + "\"");
    out.addresses.push_back(*ip);
  }
  return out;
}

}  // namespace

Result<policy::Workload> fromApi(const v1::Workload& w) {
  auto out = parseWorkload(w);
  if (!out) return out;
  if (auto st = checkValidWorkload(*out, /*remote=*/false); !st) return st.takeError();
  return out;
}

Status checkHostName(const std::string& host) {
  constexpr size_t kMaxHost = 253;
  if (host.empty() || host.size() > kMaxHost)
    return makeError(ErrorCode::kInvalidInput, "host: 1-253 bytes");
  for (unsigned char c : host)
    if (!std::isalnum(c) && c != '-' && c != '.' && c != '_')
      return makeError(ErrorCode::kInvalidInput, "host: only letters, digits, '-', '.' and '_'");
  return {};
}

Result<RemoteWorkload> remoteFromApi(const v1::Workload& w) {
  if (auto st = checkHostName(w.host()); !st) return st.takeError();
  auto out = parseWorkload(w);
  if (!out) return out.takeError();
  if (auto st = checkValidWorkload(*out, /*remote=*/true); !st) return st.takeError();
  return RemoteWorkload{w.host(), std::move(*out)};
}

v1::Workload toApi(const RemoteWorkload& w) {
  v1::Workload out = toApi(w.workload, v1::Workload::SOURCE_REMOTE);
  out.set_quarantined(false);
  out.set_host(w.host);
  return out;
}

v1::Workload toApi(const policy::Workload& w, v1::Workload::Source source) {
  v1::Workload out;
  out.set_name(w.name);
  out.set_app(w.app);
  for (const auto& i : w.interfaces)
    out.add_interfaces(i);
  for (const auto& a : w.addresses)
    out.add_addresses(a.toString());
  for (const auto& [k, v] : w.labels)
    (*out.mutable_labels())[k] = v;
  out.set_quarantined(w.quarantined);
  out.set_source(source);
  return out;
}

Status checkOrigin(const v1::Workload& w) {
  switch (w.source()) {
    case v1::Workload::SOURCE_UNSPECIFIED:
    case v1::Workload::SOURCE_API:
    case v1::Workload::SOURCE_CNI:
    case v1::Workload::SOURCE_LIBVIRT:
      break;
    default:
      return makeError(ErrorCode::kInvalidInput,
                       "workload.source: only api, cni or libvirt can register a workload");
  }
  return checkOwner(w.owner());
}

v1::Workload::Source toApi(WorkloadSource source) {
  switch (source) {
    case WorkloadSource::kBundle:
      return v1::Workload::SOURCE_BUNDLE;
    case WorkloadSource::kCni:
      return v1::Workload::SOURCE_CNI;
    case WorkloadSource::kLibvirt:
      return v1::Workload::SOURCE_LIBVIRT;
    case WorkloadSource::kRemote:
      return v1::Workload::SOURCE_REMOTE;
    case WorkloadSource::kApi:
      break;
  }
  return v1::Workload::SOURCE_API;
}

WorkloadSource fromApi(v1::Workload::Source source) {
  switch (source) {
    case v1::Workload::SOURCE_BUNDLE:
      return WorkloadSource::kBundle;
    case v1::Workload::SOURCE_CNI:
      return WorkloadSource::kCni;
    case v1::Workload::SOURCE_LIBVIRT:
      return WorkloadSource::kLibvirt;
    case v1::Workload::SOURCE_REMOTE:
      return WorkloadSource::kRemote;
    default:
      return WorkloadSource::kApi;
  }
}

Result<WorkloadRegistration> registrationFromApi(const v1::Workload& w) {
  auto workload = fromApi(w);
  if (!workload) return workload.takeError();
  if (auto st = checkOrigin(w); !st) return st.takeError();
  return WorkloadRegistration{std::move(*workload), fromApi(w.source()), w.owner()};
}

v1::Workload toApi(const WorkloadView& w) {
  v1::Workload out = toApi(w.workload, toApi(w.source));
  out.set_owner(w.owner);
  out.set_host(w.host);
  return out;
}

Result<WorkloadView> viewFromApi(const v1::Workload& w) {
  auto workload = fromApi(w);
  if (!workload) return workload.takeError();
  return WorkloadView{std::move(*workload), fromApi(w.source()), w.owner(), w.host()};
}

LocalSource localSource(v1::Workload::Source source) {
  switch (source) {
    case v1::Workload::SOURCE_CNI:
      return LocalSource::kCni;
    case v1::Workload::SOURCE_LIBVIRT:
      return LocalSource::kLibvirt;
    default:
      return LocalSource::kApi;
  }
}

v1::Workload::Source toApi(LocalSource source) {
  switch (source) {
    case LocalSource::kCni:
      return v1::Workload::SOURCE_CNI;
    case LocalSource::kLibvirt:
      return v1::Workload::SOURCE_LIBVIRT;
    case LocalSource::kApi:
      break;
  }
  return v1::Workload::SOURCE_API;
}

Result<std::vector<policy::SourceFile>> fromApi(const PolicyFiles& files) {
  std::vector<policy::SourceFile> sources;
  sources.reserve(files.size());
  for (const auto& f : files) {
    if (f.name().empty() || f.name().size() > 4096)
      return makeError(ErrorCode::kInvalidInput, "files: every file needs a name (1-4096 bytes)");
    sources.push_back({f.name(), f.content()});
  }
  return sources;
}

v1::PolicyFile toApi(policy::SourceFile file) {
  v1::PolicyFile p;
  p.set_name(std::move(file.name));
  p.set_content(std::move(file.content));
  return p;
}

PolicyFiles toApi(const std::vector<policy::SourceFile>& files) {
  PolicyFiles out;
  out.Reserve(int(files.size()));
  for (const auto& f : files)
    *out.Add() = toApi(f);
  return out;
}

PolicyPush fromApi(const v1::ApplyPolicyRequest& request) {
  PolicyPush push;
  push.files.reserve(request.files_size());
  for (const auto& f : request.files())
    push.files.push_back({f.name(), f.content()});
  push.version = request.version();
  push.dryRun = request.dry_run();
  return push;
}

v1::ApplyPolicyRequest toApi(const PolicyPush& push) {
  v1::ApplyPolicyRequest request;
  *request.mutable_files() = toApi(push.files);
  request.set_version(push.version);
  request.set_dry_run(push.dryRun);
  return request;
}

v1::StateJournalEntry upsertRecord(const WorkloadView& w) {
  v1::StateJournalEntry entry;
  *entry.mutable_upsert() = toApi(w);
  return entry;
}

v1::StateJournalEntry deleteRecord(const std::string& name) {
  v1::StateJournalEntry entry;
  entry.set_deleted(name);
  return entry;
}

v1::StateJournalEntry quarantineRecord(const std::set<std::string>& quarantined,
                                       const QuarantineBook& book) {
  v1::StateJournalEntry entry;
  entry.set_quarantined_set(true);
  for (const auto& q : quarantined)
    entry.add_quarantined(q);
  book.saveTo(entry.mutable_quarantines());
  return entry;
}

v1::StateJournalEntry remoteUpsertRecord(const RemoteWorkload& w) {
  v1::StateJournalEntry entry;
  *entry.mutable_remote_upsert() = toApi(w);
  return entry;
}

v1::StateJournalEntry remoteDeleteRecord(const std::string& host, const std::string& name) {
  v1::StateJournalEntry entry;
  entry.mutable_remote_deleted()->set_host(host);
  entry.mutable_remote_deleted()->set_name(name);
  return entry;
}

v1::AgentState snapshotRecord(const std::string& version,
                              const std::vector<policy::SourceFile>& files,
                              const std::vector<WorkloadView>& workloads,
                              const std::set<std::string>& quarantined, const QuarantineBook& book,
                              const SnapshotExtras& extras) {
  v1::AgentState state;
  state.set_format(1);
  state.set_version(version);
  *state.mutable_files() = toApi(files);
  for (const auto& w : workloads)
    *state.add_workloads() = toApi(w);
  for (const auto& q : quarantined)
    state.add_quarantined(q);
  book.saveTo(state.mutable_quarantines());
  for (const auto& r : extras.remotes)
    *state.add_remote_workloads() = toApi(r);
  state.set_applied_revision(extras.appliedRevision);
  state.set_written_time(nowRfc3339());
  return state;
}

}  // namespace bulkhead::agent
