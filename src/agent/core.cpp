#include "bulkhead/agent/core.h"

#include <malloc.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <tuple>
#include <unordered_map>

#include "bulkhead/agent/api_convert.h"
#include "bulkhead/agent/piecewise_check.h"
#include "bulkhead/agent/request_checks.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/common/host_address.h"
#include "bulkhead/common/time_format.h"
#include "bulkhead/compiler/render.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::agent {

namespace {

using common::SteadyClock;

double msSince(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

std::string sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

// Identifies a bundle's content: the same files give the same hash.
std::string contentHash(const std::vector<policy::SourceFile>& files) {
  std::string all;
  for (const auto& f : files) {
    all += std::to_string(f.name.size()) + ":" + f.name;
    all += std::to_string(f.content.size()) + ":" + f.content;
  }
  return "sha256:" + sha256Hex(all);
}

// Bytes of names and contents: what the bundle limit counts.
size_t bundleBytes(const std::vector<policy::SourceFile>& files) {
  size_t bytes = 0;
  for (const auto& f : files)
    bytes += f.name.size() + f.content.size();
  return bytes;
}

// What a local registration must be beyond a valid workload: registered by
// the API, the CNI plugin or the libvirt hook, and an owner that is
// printable ASCII without spaces, at most 256 bytes.
Status checkRegistration(const WorkloadRegistration& r) {
  if (auto st = checkValidWorkload(r.workload, /*remote=*/false); !st) return st;
  if (r.source != WorkloadSource::kApi && r.source != WorkloadSource::kCni &&
      r.source != WorkloadSource::kLibvirt)
    return makeError(ErrorCode::kInvalidInput,
                     "workload.source: only api, cni or libvirt can register a workload");
  return checkOwner(r.owner);
}

LocalSource localSourceOf(WorkloadSource source) {
  switch (source) {
    case WorkloadSource::kCni:
      return LocalSource::kCni;
    case WorkloadSource::kLibvirt:
      return LocalSource::kLibvirt;
    default:
      return LocalSource::kApi;
  }
}

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string nowRfc3339() {
  return common::formatRfc3339(common::WallClock::now(), common::TimePrecision::kMicros);
}

void LatencyWindow::add(double ms) {
  ++count_;
  samples_.push_back(ms);
  if (samples_.size() > kSamples) samples_.pop_front();
}

LatencySummary LatencyWindow::summary() const {
  LatencySummary l;
  l.count = count_;
  if (samples_.empty()) return l;
  std::vector<double> sorted(samples_.begin(), samples_.end());
  std::sort(sorted.begin(), sorted.end());
  auto at = [&](double q) {
    return sorted[std::min(sorted.size() - 1, size_t(q * sorted.size()))];
  };
  l.p50Ms = at(0.50);
  l.p99Ms = at(0.99);
  l.maxMs = sorted.back();
  return l;
}

WorkloadView AgentCore::localView(const policy::Workload& w) const {
  WorkloadView out{w, WorkloadSource::kApi, "", ""};
  if (auto it = origins_.find(w.name); it != origins_.end()) {
    out.source = it->second.source;
    out.owner = it->second.owner;
  }
  return out;
}

AgentCore::AgentCore(nft::NftKernel& kernel, compiler::CompileOptions compile, CoreOptions options)
    : enforcer_(kernel, std::move(compile)), options_(std::move(options)) {
  if (!options_.stateDir.empty()) store_.emplace(options_.stateDir);
}

Result<policy::Bundle> AgentCore::parseFiles(const std::vector<policy::SourceFile>& files,
                                             std::vector<std::string>* warnings) const {
  for (const auto& f : files)
    if (f.name.empty() || f.name.size() > kMaxFileNameBytes)
      return makeError(ErrorCode::kInvalidInput, "files: every file needs a name (1-4096 bytes)");
  auto loaded = policy::loadFiles(files);
  if (warnings)
    for (const auto& w : loaded.warnings)
      warnings->push_back(w.toString());
  if (!loaded.ok())
    return makeError(ErrorCode::kInvalidInput, policy::joinDiagnostics(loaded.errors));
  return std::move(loaded.bundle);
}

void AgentCore::markQuarantined(policy::Bundle& bundle) const {
  for (auto& w : bundle.workloads)
    w.quarantined = quarantined_.count(w.name) > 0;
}

void AgentCore::setFlowFeed(FlowFeed* feed) {
  std::lock_guard lock(mu_);
  feed_ = feed;
}

void AgentCore::setConntrack(ConntrackTable* conntrack) {
  std::lock_guard lock(mu_);
  conntrack_ = conntrack;
}

void AgentCore::flushFlows(const policy::Workload& workload, QuarantineOutcome& outcome) {
  if (!conntrack_) return;
  // The table now drops the workload's new flows; its established ones
  // still ride their conntrack entries until those are gone. Once deleted,
  // the next packet of such a flow is new again and meets the quarantine.
  auto flushed = conntrack_->flush(workload.addresses);
  if (!flushed) {
    Error e = flushed.takeError();
    e.message = "quarantine of " + workload.name +
                " is in force, but its live connections were not cut: " + e.message;
    noteError(e);
    outcome.warnings.push_back(e.describe());
    return;
  }
  outcome.flushedFlows = *flushed;
}

void AgentCore::beforeRewrite() {
  if (feed_) feed_->sampleCounters();
}

void AgentCore::publishAllInterfaces() {
  const auto& compiler = enforcer_.compiler();
  std::unordered_map<std::string, flows::Attribution> all;
  auto add = [&](const policy::Workload& w) {
    // The compiler's index of apps: Bundle::findApp walks them, 15 ms under
    // the lock for 10,000 workloads of 1,000 apps.
    const policy::App* app = compiler.findApp(w.app);
    for (const auto& i : w.interfaces)
      all[i] = attributionOf(w, app);
  };
  for (const auto& w : compiler.bundle().workloads)
    add(w);
  for (const auto& w : enforcer_.compiler().workloads())
    add(w);
  interfaces_.replaceAll(std::move(all));
}

void AgentCore::publishInterfaces(const policy::Workload* before, const policy::Workload* after) {
  if (before)
    for (const auto& i : before->interfaces)
      interfaces_.erase(i);
  if (after)
    for (const auto& i : after->interfaces)
      interfaces_.set(i, attributionOf(*after, enforcer_.compiler().findApp(after->app)));
}

flows::Attribution AgentCore::attributionOf(const policy::Workload& w, const policy::App* app) {
  // A vulnerability scanner's app is exempt from scan detection.
  constexpr const char* kScannerLabel = "bulkhead.io/scanner";
  auto scanner = [&](const policy::Labels& l) {
    auto it = l.find(kScannerLabel);
    return it != l.end() && it->second == "true";
  };
  return {w.name, w.app, scanner(w.labels) || (app && scanner(app->labels))};
}

Status AgentCore::saveChange(const v1::StateJournalEntry& entry) {
  auto ticket = writeChange(entry);
  if (!ticket) return ticket.takeError();
  if (!store_ || *ticket == 0) return {};
  if (auto st = store_->sync(*ticket); !st) {
    Error e = st.takeError();
    e.message = "the change is in force but could not be saved: " + e.message;
    noteError(e);
    return e;
  }
  return {};
}

Result<StateStore::Ticket> AgentCore::writeChange(const v1::StateJournalEntry& entry) {
  if (!store_) return StateStore::Ticket{0};
  // Snapshot again once the journal would take longer to replay than the
  // snapshot to write, or when a failed sync left it untrusted.
  constexpr size_t kCompactAfter = 4096;
  if (store_->journalEntries() >= kCompactAfter || store_->needsSnapshot()) {
    if (auto st = save(); !st) return st.takeError();
    return StateStore::Ticket{0};
  }
  auto ticket = store_->write(entry);
  if (!ticket) {
    Error e = ticket.takeError();
    e.message = "the change is in force but could not be saved: " + e.message;
    noteError(e);
    return e;
  }
  return *ticket;
}

Status AgentCore::awaitSaved(StateStore::Ticket ticket) {
  if (!store_ || ticket == 0) return {};
  if (auto st = store_->sync(ticket); !st) {
    Error e = st.takeError();
    e.message = "the change is in force but could not be saved: " + e.message;
    std::lock_guard lock(mu_);
    noteError(e);
    return e;
  }
  return {};
}

void AgentCore::noteError(const Error& e) {
  lastError_ = e.describe();
  lastErrorTime_ = nowRfc3339();
}

Status AgentCore::save() {
  if (!store_) return {};
  std::vector<WorkloadView> workloads;
  for (const auto& w : enforcer_.compiler().workloads())
    workloads.push_back(localView(w));
  SnapshotExtras extras;
  for (const auto& [id, w] : enforcer_.compiler().remotes())
    extras.remotes.push_back(RemoteWorkload{id.first, w});
  extras.appliedRevision = appliedRevision_;
  const v1::AgentState state =
      snapshotRecord(version_, files_, workloads, quarantined_, quarantineBook_, extras);
  if (auto st = store_->save(state); !st) {
    Error e = st.takeError();
    e.message = "the change is in force but could not be saved: " + e.message;
    noteError(e);
    return e;
  }
  return {};
}

Status AgentCore::restore() {
  std::lock_guard lock(mu_);
  if (!store_) return {};
  auto loaded = store_->load();
  if (!loaded) return loaded.takeError();
  if (!*loaded) return {};
  return restoreState(**loaded);
}

Status AgentCore::restoreState(const v1::AgentState& state) {
  auto files = fromApi(state.files());
  auto bundle = files ? parseFiles(*files, nullptr) : Result<policy::Bundle>(files.takeError());
  if (!bundle)
    return makeError(ErrorCode::kInvalidInput, "state file " + store_->path() +
                                                   " holds a bundle that no longer validates:\n" +
                                                   bundle.error().message);
  quarantined_ = {state.quarantined().begin(), state.quarantined().end()};
  quarantineBook_.load(state.quarantines(), quarantined_);
  std::vector<policy::Workload> workloads;
  for (const auto& w : state.workloads()) {
    auto view = viewFromApi(w);
    if (!view)
      return makeError(ErrorCode::kInvalidInput,
                       "state file " + store_->path() + ": " + view.error().message);
    view->workload.quarantined = quarantined_.count(view->workload.name) > 0;
    if (view->source != WorkloadSource::kApi || !view->owner.empty())
      origins_[view->workload.name] = Origin{view->source, view->owner};
    workloads.push_back(std::move(view->workload));
  }
  compiler::RemoteWorkloads remotes;
  for (const auto& w : state.remote_workloads()) {
    auto r = remoteFromApi(w);
    if (!r)
      return makeError(ErrorCode::kInvalidInput,
                       "state file " + store_->path() + ": " + r.error().message);
    remotes[{r->host, r->workload.name}] = std::move(r->workload);
  }
  markQuarantined(*bundle);
  beforeRewrite();
  auto diff = enforcer_.load(std::move(*bundle), std::move(workloads), std::move(remotes));
  if (!diff) return diff.takeError();
  appliedRevision_ = state.applied_revision();
  publishAllInterfaces();
  trackStaged();
  version_ = state.version();
  files_ = std::move(*files);
  contentHash_ = contentHash(files_);
  lastAppliedTime_ = nowRfc3339();
  malloc_trim(0);
  return {};
}

Status AgentCore::planPolicy(const policy::Bundle& bundle, PushOutcome& outcome) const {
  auto next =
      compiler::compile(bundle, enforcer_.compiler().workloads(), enforcer_.compiler().options());
  if (!next) return next.takeError();
  const auto diff = compiler::diffRulesets(enforcer_.ruleset(), *next);
  outcome.changed = !diff.empty();
  outcome.change = ChangeCounts::of(diff);
  outcome.plan = compiler::renderRuleset(*next);
  return {};
}

Result<PushOutcome> AgentCore::applyPolicy(const PolicyPush& push) {
  // One source of policy: a local push would be undone by the next
  // revision, and the fleet's status would not show it.
  if (!options_.controller.empty() && !push.dryRun)
    return makeError(ErrorCode::kFailedPrecondition,
                     "this agent takes its policy from the controller " + options_.controller +
                         "; push it there (bulkhead push --controller)");
  return pushPolicy(push, std::nullopt);
}

Status AgentCore::checkBundleSize(const PolicyPush& push) const {
  const size_t bytes = bundleBytes(push.files);
  if (bytes > options_.maxBundleBytes)
    return makeError(ErrorCode::kTooLarge, "bundle of " + std::to_string(bytes) +
                                               " bytes is over the agent's limit of " +
                                               std::to_string(options_.maxBundleBytes));
  return {};
}

Result<policy::Bundle> AgentCore::readBundle(const PolicyPush& push, PushOutcome& outcome) const {
  if (auto st = checkBundleSize(push); !st) return st.takeError();
  return parseFiles(push.files, &outcome.warnings);
}

Status AgentCore::renamePolicy(const std::string& version, std::optional<uint64_t> revision) {
  if (version == version_ && (!revision || *revision == appliedRevision_)) return {};
  version_ = version;
  if (revision) appliedRevision_ = *revision;
  return save();
}

Result<PushOutcome> AgentCore::pushPolicy(const PolicyPush& push,
                                          std::optional<uint64_t> revision) {
  if (auto st = checkPolicyPush(push); !st) return st.takeError();
  const auto start = SteadyClock::now();
  std::lock_guard lock(mu_);
  PushOutcome outcome;
  auto bundle = readBundle(push, outcome);
  if (!bundle) return bundle.takeError();
  const double parseMs = msSince(start);
  const std::string hash = contentHash(push.files);
  const std::string version = push.version.empty() ? hash : push.version;
  if (version.size() > 256)
    return makeError(ErrorCode::kInvalidInput, "version: longer than 256 bytes");
  outcome.version = version;
  markQuarantined(*bundle);

  if (push.dryRun) {
    if (auto st = planPolicy(*bundle, outcome); !st) return st.takeError();
    return outcome;
  }

  if (hash == contentHash_ && enforcer_.committed()) {
    outcome.changed = false;
    if (auto st = renamePolicy(version, revision); !st) return st.takeError();
    return outcome;
  }
  beforeRewrite();
  const auto compileStart = SteadyClock::now();
  auto diff = enforcer_.setPolicy(std::move(*bundle));
  if (!diff) {
    Error e = diff.takeError();
    if (e.code != ErrorCode::kInvalidInput) noteError(e);
    return e;
  }
  const double compileMs = msSince(compileStart);
  publishAllInterfaces();
  trackStaged();
  files_ = push.files;
  contentHash_ = hash;
  version_ = version;
  if (revision) appliedRevision_ = *revision;
  lastAppliedTime_ = nowRfc3339();
  ++pushes_;
  outcome.changed = true;
  outcome.change = ChangeCounts::of(*diff);
  applyLatency_.add(msSince(start));
  const auto saveStart = SteadyClock::now();
  if (auto st = save(); !st) return st.takeError();
  // Where a push's time goes (bench_push reads this line).
  spdlog::info(
      "push of version {}: parse {:.1f} ms, compile and commit {:.1f} ms, save {:.1f} ms ({})",
      escapeForLog(version), parseMs, compileMs, msSince(saveStart), diff->summary());
  // A push builds and drops a whole ruleset's worth of temporaries: hand
  // the freed memory back to the system instead of keeping it mapped.
  malloc_trim(0);
  return outcome;
}

Result<WorkloadOutcome> AgentCore::upsertWorkload(const WorkloadRegistration& registration) {
  const auto start = SteadyClock::now();
  if (auto st = checkRegistration(registration); !st) return st.takeError();
  policy::Workload w = registration.workload;
  std::unique_lock lock(mu_);
  w.quarantined = quarantined_.count(w.name) > 0;
  std::optional<policy::Workload> previous;
  if (const auto* x = enforcer_.compiler().findWorkload(w.name)) previous = *x;
  auto diff = enforcer_.upsertWorkload(w);
  if (!diff) {
    Error e = diff.takeError();
    if (e.code != ErrorCode::kInvalidInput) noteError(e);
    return e;
  }
  publishInterfaces(previous ? &*previous : nullptr, &w);
  const WorkloadSource source = registration.source;
  if (source == WorkloadSource::kApi && registration.owner.empty())
    origins_.erase(w.name);
  else
    origins_[w.name] = Origin{source, registration.owner};
  WorkloadOutcome outcome;
  outcome.change = ChangeCounts::of(*diff);
  if (!enforcer_.compiler().findApp(w.app))
    outcome.warnings.push_back("workload " + w.name + ": app " + w.app +
                               " has no App document; it gets default deny");
  ++workloadChanges_;
  workloadLatency_.add(msSince(start));
  trackStaged();
  const uint64_t change = queueLocalChange({w, false, localSourceOf(source)});
  auto ticket = writeChange(upsertRecord(localView(w)));
  lock.unlock();  // the kernel has it; wait for the disk without the lock
  const Status saved = ticket ? awaitSaved(*ticket) : Status(ticket.error());
  deliverLocalChanges(change);
  if (!saved) return saved.error();
  return outcome;
}

Result<WorkloadOutcome> AgentCore::deleteWorkload(const std::string& name,
                                                  const std::string& owner) {
  if (auto st = checkWorkloadName("name", name); !st) return st.takeError();
  if (auto st = checkClientString("owner", owner, 256); !st) return st.takeError();
  const auto start = SteadyClock::now();
  std::unique_lock lock(mu_);
  for (const auto& w : enforcer_.compiler().bundle().workloads)
    if (w.name == name)
      return makeError(ErrorCode::kInvalidInput, "workload \"" + name +
                                                     "\" is defined by the policy bundle; "
                                                     "push a bundle without it");
  std::optional<policy::Workload> previous;
  if (const auto* x = enforcer_.compiler().findWorkload(name)) previous = *x;
  if (!owner.empty()) {
    const auto it = origins_.find(name);
    if (!previous || it == origins_.end() || it->second.owner != owner)
      return makeError(ErrorCode::kNotFound,
                       "no workload \"" + name + "\" registered by owner \"" + owner + "\"");
  }
  auto diff = enforcer_.removeWorkload(name);
  if (!diff) {
    Error e = diff.takeError();
    if (e.code != ErrorCode::kInvalidInput && e.code != ErrorCode::kNotFound) noteError(e);
    return e;
  }
  publishInterfaces(previous ? &*previous : nullptr, nullptr);
  origins_.erase(name);
  WorkloadOutcome outcome;
  outcome.change = ChangeCounts::of(*diff);
  ++workloadChanges_;
  workloadLatency_.add(msSince(start));
  trackStaged();
  policy::Workload gone;
  gone.name = name;
  const uint64_t change = queueLocalChange({std::move(gone), true});
  auto ticket = writeChange(deleteRecord(name));
  lock.unlock();  // the kernel has it; wait for the disk without the lock
  const Status saved = ticket ? awaitSaved(*ticket) : Status(ticket.error());
  deliverLocalChanges(change);
  if (!saved) return saved.error();
  return outcome;
}

std::vector<WorkloadView> AgentCore::listWorkloads(const std::string& name) const {
  std::lock_guard lock(mu_);
  std::vector<WorkloadView> all;
  for (const auto& w : enforcer_.compiler().bundle().workloads)
    if (name.empty() || w.name == name) all.push_back({w, WorkloadSource::kBundle, "", ""});
  for (const auto& w : enforcer_.compiler().workloads())
    if (name.empty() || w.name == name) all.push_back(localView(w));
  for (const auto& [id, w] : enforcer_.compiler().remotes())
    if (name.empty() || w.name == name) {
      all.push_back({w, WorkloadSource::kRemote, "", id.first});
      all.back().workload.quarantined = false;  // quarantine is the owning host's
    }
  std::sort(all.begin(), all.end(), [](const WorkloadView& a, const WorkloadView& b) {
    return std::tie(a.workload.name, a.host) < std::tie(b.workload.name, b.host);
  });
  return all;
}

Result<QuarantineOutcome> AgentCore::quarantine(const std::string& name, bool release,
                                                const QuarantineWhy& why) {
  if (auto st = checkWorkloadName("name", name); !st) return st.takeError();
  std::lock_guard lock(mu_);
  const auto& compiler = enforcer_.compiler();
  Result<compiler::RulesetDiff> diff =
      makeError(ErrorCode::kNotFound, "no workload \"" + name + "\"");
  std::optional<policy::Workload> target;
  std::set<std::string> next = quarantined_;
  if (release) {
    next.erase(name);
  } else {
    next.insert(name);
  }
  if (const auto* w = compiler.findWorkload(name)) {
    policy::Workload copy = *w;  // the upsert changes the list it is in
    copy.quarantined = !release;
    target = copy;
    diff = enforcer_.upsertWorkload(copy);
  }
  for (const auto& w : compiler.bundle().workloads) {
    if (w.name != name) continue;
    target = w;
    policy::Bundle bundle = compiler.bundle();
    for (auto& bw : bundle.workloads)
      if (bw.name == name) bw.quarantined = !release;
    diff = enforcer_.setPolicy(std::move(bundle));
    break;
  }
  if (!diff) {
    Error e = diff.takeError();
    if (e.code != ErrorCode::kNotFound) noteError(e);
    return e;
  }
  quarantined_ = std::move(next);
  const int64_t now = unixNow();
  if (release) {
    quarantineBook_.end(name, now);
  } else {
    quarantineBook_.start(name, why, now);
  }
  trackStaged();
  QuarantineOutcome outcome;
  outcome.change = ChangeCounts::of(*diff);
  if (!release && target) flushFlows(*target, outcome);
  ++workloadChanges_;
  if (auto st = saveChange(quarantineRecord(quarantined_, quarantineBook_)); !st)
    return st.takeError();
  return outcome;
}

std::vector<QuarantineEntry> AgentCore::listQuarantines() const {
  std::lock_guard lock(mu_);
  std::vector<QuarantineEntry> out;
  for (const auto& r : quarantineBook_.active())
    out.push_back(fromApi(r));  // the book keeps its records as they are saved
  return out;
}

std::vector<std::string> AgentCore::dueQuarantines() const {
  std::lock_guard lock(mu_);
  return quarantineBook_.due(unixNow());
}

AgentStatusView AgentCore::status() const {
  AgentStatusView s = coreStatus();
  std::lock_guard lock(controllerMu_);
  if (controllerStatus_) s.controller = controllerStatus_();
  return s;
}

void AgentCore::setControllerStatus(std::function<ControllerLinkStatus()> status) {
  std::lock_guard lock(controllerMu_);
  controllerStatus_ = std::move(status);
}

AgentStatusView AgentCore::coreStatus() const {
  std::lock_guard lock(mu_);
  const auto& c = enforcer_.compiler();
  const auto& rs = enforcer_.ruleset();
  AgentStatusView s;
  s.version = version_;
  s.table = rs.table;
  s.host = options_.host;
  s.apps = uint32_t(c.bundle().apps.size());
  s.services = uint32_t(c.bundle().services.size());
  s.globalPolicies = uint32_t(c.bundle().globalPolicies.size());
  s.workloads = uint32_t(c.bundle().workloads.size() + c.workloads().size());
  s.setElements = rs.elementCount();
  s.chains = uint32_t(rs.chains.size());
  s.remoteWorkloads = uint32_t(c.remotes().size());
  s.stagedInterfaces = uint32_t(enforcer_.stagedCount());
  s.appliedRevision = appliedRevision_;
  s.pushes = pushes_;
  s.workloadChanges = workloadChanges_;
  s.promotions = promotions_;
  s.driftRepairs = driftRepairs_;
  s.lastError = lastError_;
  s.lastErrorTime = lastErrorTime_;
  s.lastAppliedTime = lastAppliedTime_;
  s.lastDriftCheck = lastDriftCheck_;
  s.lastDriftCheckTime = lastDriftCheckTime_;
  s.applyLatency = applyLatency_.summary();
  s.workloadLatency = workloadLatency_.summary();
  s.promotionLatency = promotionLatency_.summary();
  if (feed_) s.flows = fromApi(feed_->counters());  // the feed counts in the wire's type
  return s;
}

common::SteadyClock::duration AgentCore::quietFor() const {
  std::lock_guard lock(mu_);
  return SteadyClock::now() - lastChange_;
}

void AgentCore::trackStaged() {
  lastChange_ = SteadyClock::now();
  if (enforcer_.stagedCount() == 0) {
    stagedSince_.reset();
  } else if (!stagedSince_) {
    stagedSince_ = lastChange_;
  }
}

Result<size_t> AgentCore::promoteStaged(bool force) {
  const auto start = SteadyClock::now();
  std::lock_guard lock(mu_);
  const size_t staged = enforcer_.stagedCount();
  if (staged == 0) {
    stagedSince_.reset();
    return size_t{0};
  }
  // Waiting for a quiet moment batches a burst of registrations into one
  // promotion; the age bound keeps a steady trickle from deferring it forever.
  const bool idle = start - lastChange_ >= options_.promoteIdle;
  const bool aged = stagedSince_ && start - *stagedSince_ >= options_.promoteMaxAge;
  if (!force && !idle && !aged) return size_t{0};
  auto diff = enforcer_.promoteStaged(options_.promoteBatch);
  const size_t left = enforcer_.stagedCount();
  if (left == 0) stagedSince_.reset();
  if (!diff) {
    noteError(diff.error());
    return diff.takeError();
  }
  ++promotions_;
  promotionLatency_.add(msSince(start));
  return staged - left;
}

Status AgentCore::repairLocked() {
  beforeRewrite();
  if (auto st = enforcer_.replaceAll(); !st) {
    noteError(st.error());
    return st;
  }
  ++driftRepairs_;
  return {};
}

Result<std::optional<std::string>> AgentCore::repairDrift(
    const std::string& why, Result<std::optional<std::string>> drift) {
  lastDriftCheckTime_ = nowRfc3339();
  if (!drift) {
    lastDriftCheck_ = why + ": check failed: " + drift.error().describe();
    noteError(drift.error());
    return drift;
  }
  // How long the table took to read back, when it was: what a check
  // costs at this size, on this host.
  const std::string took =
      readBackTook_ ? " (read back in " + std::to_string(readBackTook_->count()) + " ms)" : "";
  if (!*drift) {
    lastDriftCheck_ = why + ": in sync" + took;
    return drift;
  }
  lastDriftCheck_ = why + ": " + **drift + took;
  if (Status st = repairLocked(); !st) {
    lastDriftCheck_ += "; repair failed";
    return st.takeError();
  }
  lastDriftCheck_ += "; repaired";
  return drift;
}

Result<std::optional<std::string>> AgentCore::driftRead(std::unique_lock<std::mutex>& lock,
                                                        bool mustCompare) {
  // Without a reader the read is made under the lock.
  readBackTook_.reset();
  if (reader_ == nullptr) return enforcer_.drift(mustCompare);
  if (auto decided = enforcer_.driftWithoutReading()) return std::move(*decided);
  const auto start = common::SteadyClock::now();
  const auto before = reader_->generation();
  auto differs = PiecewiseCheck(enforcer_, *reader_, lock).run();
  if (!differs && differs.error().code == ErrorCode::kUnavailable)
    return enforcer_.drift(mustCompare);  // a reader that cannot read in pieces
  enforcer_.noteReadBack(differs, before, reader_->generation());
  readBackTook_ =
      std::chrono::duration_cast<std::chrono::milliseconds>(common::SteadyClock::now() - start);
  return differs;
}

Result<std::optional<std::string>> AgentCore::checkDrift(const std::string& why) {
  std::unique_lock lock(mu_);
  return repairDrift(why, driftRead(lock, /*mustCompare=*/false));
}

Result<bool> AgentCore::repair(bool force, const std::string& why) {
  std::unique_lock lock(mu_);
  if (force) {
    if (Status st = repairLocked(); !st) return st.takeError();
    return true;
  }
  auto drift = repairDrift(why, driftRead(lock, /*mustCompare=*/false));
  if (!drift) return drift.takeError();
  return drift->has_value();
}

Result<bool> AgentCore::repairAfterLostEvents(const std::string& why) {
  std::unique_lock lock(mu_);
  // Our own big transactions (a push, a whole replace) overflow the
  // notification socket too; repairing after each would make another.
  // When nobody else has committed since the table was last known to
  // hold ours, nothing drifted.
  auto untouched = enforcer_.untouchedSinceLastCommit();
  if (untouched && *untouched) return false;
  // Someone committed (maybe only to another table, maybe us between the
  // ACK and the generation read): decide by content. A kernel that cannot
  // read the table back: repair.
  auto differs = driftRead(lock, /*mustCompare=*/true);
  if (!differs && differs.error().code == ErrorCode::kUnavailable) {
    if (Status st = repairLocked(); !st) return st.takeError();
    return true;
  }
  auto drift = repairDrift(why, std::move(differs));
  if (!drift) return drift.takeError();
  return drift->has_value();
}

void AgentCore::setNotificationGate(nft::NotificationGate* gate) {
  std::lock_guard lock(mu_);
  enforcer_.setNotificationGate(gate);
}

void AgentCore::setTableReader(nft::NftKernel* reader) {
  std::lock_guard lock(mu_);
  reader_ = reader;
}

// --- fleet member ----------------------------------------------------------------

namespace {

PolicyPush revisionPush(const PolicyRevision& policy) {
  return PolicyPush{policy.files, policy.version, false};
}

bool sameWorkload(const policy::Workload& a, const policy::Workload& b) {
  return a.name == b.name && a.app == b.app && a.labels == b.labels && a.addresses == b.addresses &&
         a.interfaces == b.interfaces;
}

bool sameRemotes(const compiler::RemoteWorkloads& a, const compiler::RemoteWorkloads& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.first == y.first && sameWorkload(x.second, y.second);
  });
}

// A controller's remote set, checked as the API checks a registration.
Result<compiler::RemoteWorkloads> remoteSet(std::vector<RemoteWorkload> remotes) {
  compiler::RemoteWorkloads out;
  for (auto& r : remotes) {
    if (auto st = checkHostName(r.host); !st) return st.takeError();
    std::vector<policy::Diagnostic> errors;
    policy::validateRemoteWorkload(r.workload, errors);
    if (!errors.empty())
      return makeError(ErrorCode::kInvalidInput, "remote workload of host " + r.host + ": " +
                                                     policy::joinDiagnostics(errors));
    r.workload.quarantined = false;
    const std::string name = r.workload.name;
    if (!out.emplace(compiler::RemoteId{r.host, name}, std::move(r.workload)).second)
      return makeError(ErrorCode::kInvalidInput,
                       "remote workload \"" + name + "\" of host " + r.host + " listed twice");
  }
  return out;
}

}  // namespace

std::vector<LocalWorkload> AgentCore::localWorkloads() const {
  std::lock_guard lock(mu_);
  std::vector<LocalWorkload> out;
  for (const auto& w : enforcer_.compiler().workloads()) {
    auto it = origins_.find(w.name);
    out.push_back({w, it == origins_.end() ? LocalSource::kApi : localSourceOf(it->second.source)});
  }
  return out;
}

uint64_t AgentCore::appliedRevision() const {
  std::lock_guard lock(mu_);
  return appliedRevision_;
}

Status AgentCore::applyRevision(const PolicyRevision& policy) {
  if (policy.revision == 0) return makeError(ErrorCode::kInvalidInput, "revision 0");
  auto applied = pushPolicy(revisionPush(policy), policy.revision);
  if (!applied) return applied.takeError();
  if (applied->changed)
    spdlog::info("revision {} (version {}) applied ({})", policy.revision,
                 escapeForLog(applied->version), applied->change ? applied->change->summary : "");
  return {};
}

Status AgentCore::applySnapshot(const std::optional<PolicyRevision>& policy,
                                std::vector<RemoteWorkload> remotes) {
  auto next = remoteSet(std::move(remotes));
  if (!next) return next.takeError();
  std::optional<PolicyPush> request;
  if (policy) {
    if (policy->revision == 0) return makeError(ErrorCode::kInvalidInput, "revision 0");
    request = revisionPush(*policy);
    if (auto st = checkPolicyPush(*request); !st) return st;
    if (auto st = checkBundleSize(*request); !st) return st;
  }
  std::lock_guard lock(mu_);
  std::optional<policy::Bundle> bundle;
  std::string hash = contentHash_, version = version_;
  if (request) {
    hash = contentHash(request->files);
    version = request->version.empty() ? hash : request->version;
    if (version.size() > kMaxVersionBytes)
      return makeError(ErrorCode::kInvalidInput, "version: longer than 256 bytes");
    if (hash != contentHash_ || !enforcer_.committed()) {
      auto parsed = parseFiles(request->files, nullptr);
      if (!parsed) return parsed.takeError();
      markQuarantined(*parsed);
      bundle = std::move(*parsed);
    }
  }
  const uint64_t revision = policy ? policy->revision : appliedRevision_;
  // What a reconnection usually brings: what is in force already. Nothing
  // for the kernel then (not even an empty transaction).
  if (!bundle && enforcer_.committed() && sameRemotes(*next, enforcer_.compiler().remotes())) {
    if (version == version_ && revision == appliedRevision_) return {};
    version_ = version;
    appliedRevision_ = revision;
    return save();
  }
  const bool newBundle = bundle.has_value();
  if (auto st = loadSnapshot(std::move(bundle), std::move(*next)); !st) return st;
  if (newBundle) {
    files_ = std::move(request->files);
    contentHash_ = hash;
    ++pushes_;
  }
  version_ = version;
  appliedRevision_ = revision;
  return save();
}

Status AgentCore::loadSnapshot(std::optional<policy::Bundle> bundle,
                               compiler::RemoteWorkloads remotes) {
  const auto start = SteadyClock::now();
  const bool newBundle = bundle.has_value();
  if (newBundle) beforeRewrite();
  const auto& c = enforcer_.compiler();
  auto diff = enforcer_.load(newBundle ? std::move(*bundle) : c.bundle(), c.workloads(),
                             std::move(remotes));
  if (!diff) {
    Error e = diff.takeError();
    if (e.code != ErrorCode::kInvalidInput) noteError(e);
    return e;
  }
  if (newBundle) {
    publishAllInterfaces();
    applyLatency_.add(msSince(start));
  }
  trackStaged();
  lastAppliedTime_ = nowRfc3339();
  spdlog::info("controller snapshot applied: {} remote workloads ({})",
               enforcer_.compiler().remotes().size(), diff->summary());
  malloc_trim(0);
  return {};
}

Status AgentCore::upsertRemoteWorkload(const RemoteWorkload& remote) {
  if (auto st = checkHostName(remote.host); !st) return st;
  const auto start = SteadyClock::now();
  std::unique_lock lock(mu_);
  auto diff = enforcer_.upsertRemote(remote.host, remote.workload);
  if (!diff) {
    Error e = diff.takeError();
    if (e.code != ErrorCode::kInvalidInput) noteError(e);
    return e;
  }
  ++workloadChanges_;
  workloadLatency_.add(msSince(start));
  trackStaged();
  const auto& held = enforcer_.compiler().remotes().at({remote.host, remote.workload.name});
  auto ticket = writeChange(remoteUpsertRecord(RemoteWorkload{remote.host, held}));
  if (!ticket) return ticket.takeError();
  lock.unlock();  // the kernel has it; wait for the disk without the lock
  return awaitSaved(*ticket);
}

Status AgentCore::deleteRemoteWorkload(const std::string& host, const std::string& name) {
  if (auto st = checkHostName(host); !st) return st;
  if (auto st = checkWorkloadName("name", name); !st) return st;
  const auto start = SteadyClock::now();
  std::unique_lock lock(mu_);
  auto diff = enforcer_.removeRemote(host, name);
  if (!diff) {
    Error e = diff.takeError();
    if (e.code != ErrorCode::kInvalidInput && e.code != ErrorCode::kNotFound) noteError(e);
    return e;
  }
  ++workloadChanges_;
  workloadLatency_.add(msSince(start));
  trackStaged();
  auto ticket = writeChange(remoteDeleteRecord(host, name));
  if (!ticket) return ticket.takeError();
  lock.unlock();  // the kernel has it; wait for the disk without the lock
  return awaitSaved(*ticket);
}

// A controller's batch: one transaction, one journal sync.
Status AgentCore::applyRemoteChanges(const std::vector<RemoteWorkload>& upserts,
                                     const std::vector<RemoteWorkloadKey>& deletes) {
  std::vector<std::pair<std::string, policy::Workload>> in;
  std::vector<compiler::RemoteId> out;
  for (const auto& u : upserts)
    if (auto st = checkHostName(u.host); !st)
      spdlog::warn("remote workload {}/{} refused: {}", escapeForLog(u.host),
                   escapeForLog(u.workload.name), st.error().message);
    else
      in.emplace_back(u.host, u.workload);
  for (const auto& d : deletes)
    if (checkHostName(d.host) && checkWorkloadName("name", d.name))
      out.emplace_back(d.host, d.name);
  const auto start = common::SteadyClock::now();
  std::unique_lock lock(mu_);
  std::vector<std::string> skipped;
  auto diff = enforcer_.applyRemotes(in, out, skipped);
  if (!diff) {
    noteError(diff.error());
    return diff.takeError();
  }
  for (const auto& why : skipped)
    spdlog::warn("remote workload change skipped: {}", escapeForLog(why));
  workloadChanges_ += in.size() + out.size();
  workloadLatency_.add(msSince(start));
  trackStaged();
  StateStore::Ticket last{0};
  auto journal = [&](const v1::StateJournalEntry& entry) -> Status {
    auto ticket = writeChange(entry);
    if (!ticket) return ticket.takeError();
    last = std::max(last, *ticket);
    return {};
  };
  const auto& held = enforcer_.compiler().remotes();
  for (const auto& [host, name] : out)
    if (!held.count({host, name}))
      if (auto st = journal(remoteDeleteRecord(host, name)); !st) return st;
  for (const auto& [host, w] : in)
    if (auto it = held.find({host, w.name}); it != held.end())
      if (auto st = journal(remoteUpsertRecord(RemoteWorkload{host, it->second})); !st) return st;
  lock.unlock();  // the kernel has it; wait for the disk without the lock
  return awaitSaved(last);
}

void AgentCore::setLocalChangeListener(std::function<void(const LocalWorkloadChange&)> listener) {
  std::lock_guard lock(deliverMu_);
  listener_ = std::move(listener);
}

uint64_t AgentCore::queueLocalChange(LocalWorkloadChange change) {
  const uint64_t seq = ++localChangeSeq_;
  std::lock_guard lock(queueMu_);
  localChanges_.emplace_back(seq, std::move(change));
  return seq;
}

void AgentCore::deliverLocalChanges(uint64_t upTo) {
  std::lock_guard deliver(deliverMu_);
  for (;;) {
    std::pair<uint64_t, LocalWorkloadChange> next;
    {
      std::lock_guard lock(queueMu_);
      if (localChanges_.empty() || localChanges_.front().first > upTo) return;
      next = std::move(localChanges_.front());
      localChanges_.pop_front();
    }
    if (listener_) listener_(next.second);
  }
}

Result<std::vector<policy::SourceFile>> AgentCore::readPolicyFiles(const std::string& path,
                                                                   size_t maxBytes) {
  std::vector<policy::Diagnostic> errors;
  auto files = policy::readSourceFiles({path}, errors);
  if (!errors.empty()) return makeError(ErrorCode::kInvalidInput, policy::joinDiagnostics(errors));
  const size_t total = bundleBytes(files);
  if (total > maxBytes)
    return makeError(ErrorCode::kTooLarge, path + ": " + std::to_string(total) +
                                               " bytes of policy is over the limit of " +
                                               std::to_string(maxBytes));
  return files;
}

}  // namespace bulkhead::agent
