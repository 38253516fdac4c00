#include "bulkhead/controller/core.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

#include "bulkhead/common/escape.h"
#include "bulkhead/common/host_address.h"
#include "bulkhead/common/time_format.h"
#include "bulkhead/controller/held.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::controller {

namespace {

constexpr int kAborted = 10;      // grpc::StatusCode::ABORTED
constexpr int kUnavailable = 14;  // grpc::StatusCode::UNAVAILABLE

std::string hex(const unsigned char* data, unsigned len) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 15];
  }
  return out;
}

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             common::WallClock::now().time_since_epoch())
      .count();
}

// The workload as an agent reported it, checked as the agent checks a
// registration (name, app, addresses, labels); addresses normalized.
Result<v1::Workload> checkedWorkload(const v1::Workload& in, const std::string& host) {
  if (!in.host().empty() && in.host() != host)
    return makeError(ErrorCode::kInvalidInput, "workload \"" + escapeForLog(in.name()) +
                                                   "\" names host \"" + escapeForLog(in.host()) +
                                                   "\": a host reports only its own workloads");
  policy::Workload w;
  w.name = in.name();
  w.app = in.app();
  for (const auto& [k, v] : in.labels())
    w.labels[k] = v;
  v1::Workload out;
  for (const auto& a : in.addresses()) {
    std::string why;
    const auto text = common::hostAddressText(a, &why);
    const auto ip = text ? policy::IpAddr::parse(*text) : std::nullopt;
    if (!ip)
      return makeError(ErrorCode::kInvalidInput, "workload \"" + escapeForLog(in.name()) +
                                                     "\": bad address \"" + escapeForLog(a) + "\"");
    w.addresses.push_back(*ip);
    out.add_addresses(ip->toString());
  }
  // Interfaces are the reporting agent's business (they are never sent to
  // other hosts): the checks run on a stand-in, the rest as the agent's.
  w.interfaces = {"remote0"};
  std::vector<policy::Diagnostic> errors;
  policy::validateWorkload(w, errors);
  if (!errors.empty()) return makeError(ErrorCode::kInvalidInput, errors.front().message);
  out.set_name(in.name());
  out.set_app(in.app());
  *out.mutable_labels() = in.labels();
  out.set_source(in.source());
  out.set_host(host);
  return out;
}

bool sameWorkload(const v1::Workload& a, const v1::Workload& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

std::string bundleHash(const google::protobuf::RepeatedPtrField<v1::PolicyFile>& files) {
  std::string all;
  for (const auto& f : files) {
    all += std::to_string(f.name().size()) + ":" + f.name();
    all += std::to_string(f.content().size()) + ":" + f.content();
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(all.data(), all.size(), digest, &len, EVP_sha256(), nullptr);
  return "sha256:" + hex(digest, len);
}

// One workload of one host. `gen` grows with every change, so what a host
// holds is a (id, gen) per workload.
struct ControllerCore::Rec {
  uint64_t id = 0;
  uint64_t gen = 0;
  v1::Workload w;  // host set; the source the agent reported
  // w as other hosts get it (SOURCE_REMOTE, no interfaces or owner),
  // encoded once per change and shared by every message that carries it.
  SharedBytes remote;
};

struct ControllerCore::Host {
  std::string name;
  std::map<std::string, std::unique_ptr<Rec>> workloads;
  std::map<std::string, int> apps;  // local apps, with their workload counts
  Interest interest;
  std::unordered_map<std::string, bool> wantCache;  // app -> selected by interest
  // The stream, while connected.
  std::shared_ptr<AgentSink> sink;
  uint64_t session = 0;
  HeldWorkloads held;  // rec id -> gen it has
  Clock::time_point lastHeard{}, disconnectedAt{}, sentAt{};
  bool withdrawn = false;
  uint64_t acked = 0;
  uint64_t failedRevision = 0;
  std::string lastError, agentVersion, address;
  int64_t lastSeenMs = 0;
  // Shared stores: the host's stream is on another controller (`controller`
  // wrote its record), or was on this one until just now and its record
  // still says connected.
  bool elsewhere = false;
  bool leaving = false;
  std::string controller;
};

ControllerCore::ControllerCore(Store& store, ControllerOptions options)
    : store_(store), shared_(store.shared()), options_(std::move(options)) {}

ControllerCore::~ControllerCore() {
  stop();
}

void ControllerCore::installBundleLocked(v1::PolicyRevision bundle) {
  std::vector<policy::SourceFile> files;
  for (const auto& f : bundle.files())
    files.push_back({f.name(), f.content()});
  auto loaded = policy::loadFiles(files);
  span_ = SpanIndex(std::move(loaded.bundle));
  wanters_.clear();
  bundleHash_ = bundleHash(bundle.files());
  bundleBytes_ = encodeShared(bundle);
  bundle_ = std::move(bundle);
  for (auto& [name, host] : hosts_)
    refreshInterestLocked(*host);
}

Status ControllerCore::load() {
  if (shared_) {
    instance_ = shared_->instance();
    auto contents = shared_->loadAll();
    if (!contents) return contents.takeError();
    onReload(std::move(*contents));
    shared_->watch({[this](v1::PolicyRevision b) { onBundle(std::move(b)); },
                    [this](StoredHost h) {
                      std::lock_guard lock(mu_);
                      applyStoredHostLocked(std::move(h));
                    },
                    [this](const std::string& host) {
                      std::lock_guard lock(mu_);
                      hostGoneLocked(host);
                    },
                    [this](SharedStore::Contents c) { onReload(std::move(c)); }});
    return {};
  }
  auto bundle = store_.loadBundle();
  if (!bundle) return bundle.takeError();
  auto inventory = store_.loadInventory();
  if (!inventory) return inventory.takeError();
  std::lock_guard lock(mu_);
  if (*bundle) installBundleLocked(std::move(**bundle));
  const auto now = Clock::now();
  for (auto& stored : *inventory) {
    auto host = std::make_unique<Host>();
    host->name = stored.host;
    host->acked = stored.ackedRevision;
    host->failedRevision = stored.failedRevision;
    host->lastError = stored.lastError;
    host->agentVersion = stored.agentVersion;
    host->lastSeenMs = stored.lastSeenUnixMs;
    // The TTL of a host the controller has not heard from counts from now.
    host->disconnectedAt = now;
    Host& h = *host;
    hosts_[stored.host] = std::move(host);
    for (auto& w : stored.workloads)
      if (auto st = upsertLocked(h, std::move(w)); !st)
        spdlog::warn("stored workload of host {} skipped: {}", escapeForLog(stored.host),
                     st.error().message);
    refreshInterestLocked(h);
  }
  dirty_ = false;
  return {};
}

void ControllerCore::start() {
  std::lock_guard lock(runMu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  // etcd's latency (seconds when it is away) never holds up keepalives.
  if (shared_) storeThread_ = std::thread([this] { runStore(); });
}

void ControllerCore::stop() {
  {
    std::lock_guard lock(runMu_);
    stopping_ = true;
  }
  runCv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (storeThread_.joinable()) storeThread_.join();
  // The records of a shared store are left to their leases: the agents
  // move to another controller, which takes them over.
  if (shared_) return shared_->stopWatching();
  std::vector<StoredHost> inventory;
  {
    std::lock_guard lock(mu_);
    if (!dirty_) return;
    inventory = inventoryLocked();
    dirty_ = false;
  }
  if (auto st = store_.saveInventory(inventory); !st)
    spdlog::error("cannot save the inventory: {}", st.error().describe());
}

void ControllerCore::run() {
  const auto period = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(50),
      std::max<std::chrono::milliseconds>(options_.keepAlive / 5, std::chrono::milliseconds(1)));
  std::unique_lock lock(runMu_);
  while (!stopping_) {
    const auto before = Clock::now();
    runCv_.wait_for(lock, period);
    if (stopping_) break;
    lock.unlock();
    {
      // Woken late (a starved CPU), or kept waiting for the core's lock.
      std::lock_guard core(mu_);
      const auto now = Clock::now();
      noteLatenessLocked(now - before - period, now);
    }
    tick();
    lock.lock();
  }
}

// The shared store's writes and reloads, on their own thread; after a
// failed write (etcd away) the next try waits a second.
void ControllerCore::runStore() {
  std::unique_lock lock(runMu_);
  while (!stopping_) {
    runCv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stopping_) break;
    lock.unlock();
    shared_->poll();
    auto failure = flushHosts();
    // One line per transition, not per retry.
    if (failure && !storeFailing_)
      spdlog::warn("cannot write host records to the store (retried every second): {}", *failure);
    if (!failure && storeFailing_) spdlog::info("host records written to the store again");
    storeFailing_ = failure.has_value();
    lock.lock();
    if (storeFailing_) runCv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  }
}

void ControllerCore::tick() {
  processDisconnects();
  std::vector<StoredHost> inventory;
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    const bool keepAliveDue = now - lastKeepAlive_ >= options_.keepAlive;
    if (keepAliveDue) lastKeepAlive_ = now;
    const Outgoing keepAlive = Outgoing::keepAlive(unixMs());
    for (auto& [name, host] : hosts_) {
      Host& h = *host;
      if (h.sink) {
        if (now - std::max(h.lastHeard, backlogAt_) > kMissedKeepAlives * options_.keepAlive) {
          spdlog::warn("host {} silent for {} keepalive periods: its stream is closed",
                       escapeForLog(h.name), kMissedKeepAlives);
          h.sink->close(kUnavailable, "no message for " + std::to_string(kMissedKeepAlives) +
                                          " keepalive periods");
          dropSessionLocked(h);
        } else if (keepAliveDue) {
          sendLocked(h, keepAlive);
        }
        continue;
      }
      // On a shared store the host's record expires instead, everywhere.
      if (!shared_ && !h.withdrawn && now - h.disconnectedAt > options_.hostTtl) {
        spdlog::info("host {} away longer than the host TTL: its {} workloads are withdrawn",
                     escapeForLog(h.name), h.workloads.size());
        h.withdrawn = true;
        for (const auto& [n, rec] : h.workloads)
          retractLocked(*rec);
        ++epoch_;
        changed_.notify_all();
      }
    }
    if (!shared_ && dirty_ && now - lastSave_ >= options_.persistDelay) {
      inventory = inventoryLocked();
      dirty_ = false;
      lastSave_ = now;
    } else {
      return;
    }
  }
  // Written outside the lock: agents are served meanwhile.
  if (auto st = store_.saveInventory(inventory); !st) {
    spdlog::error("cannot save the inventory: {}", st.error().describe());
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
}

StoredHost ControllerCore::storedLocked(const Host& h) const {
  StoredHost s;
  s.host = h.name;
  s.agentVersion = h.agentVersion;
  s.ackedRevision = h.acked;
  s.failedRevision = h.failedRevision;
  s.lastError = h.lastError;
  s.lastSeenUnixMs = h.lastSeenMs;
  for (const auto& [n, rec] : h.workloads)
    s.workloads.push_back(rec->w);
  s.connected = h.sink != nullptr;
  s.address = h.address;
  return s;
}

std::vector<StoredHost> ControllerCore::inventoryLocked() const {
  std::vector<StoredHost> out;
  for (const auto& [name, h] : hosts_)
    out.push_back(storedLocked(*h));
  return out;
}

// ---- workloads and span filtering ------------------------------------------

bool ControllerCore::wantsLocked(Host& host, const std::string& app) const {
  auto [it, fresh] = host.wantCache.try_emplace(app, false);
  if (fresh) it->second = span_.wants(host.interest, app);
  return it->second;
}

void ControllerCore::refreshInterestLocked(Host& host) {
  std::set<std::string> apps;
  for (const auto& [app, count] : host.apps)
    apps.insert(app);
  host.interest = span_.interestOf(apps);
  host.wantCache.clear();
  for (auto& [app, hosts] : wanters_) {
    if (wantsLocked(host, app)) {
      hosts.insert(&host);
    } else {
      hosts.erase(&host);
    }
  }
}

const std::set<ControllerCore::Host*>& ControllerCore::wantersLocked(const std::string& app) {
  auto [it, fresh] = wanters_.try_emplace(app);
  if (fresh)
    for (auto& [name, host] : hosts_)
      if (wantsLocked(*host, app)) it->second.insert(host.get());
  return it->second;
}

std::vector<const ControllerCore::Rec*> ControllerCore::desiredLocked(Host& host) const {
  std::vector<const Rec*> out;
  for (const auto& [app, recs] : byApp_) {
    if (!wantsLocked(host, app)) continue;
    for (const Rec* rec : recs) {
      if (rec->w.host() == host.name) continue;
      if (hosts_.at(rec->w.host())->withdrawn) continue;
      out.push_back(rec);
    }
  }
  return out;
}

namespace {

v1::Workload remoteCopy(const v1::Workload& w) {
  v1::Workload out = w;
  out.set_source(v1::Workload::SOURCE_REMOTE);
  out.clear_interfaces();
  out.clear_owner();
  return out;
}

Outgoing upsertMessage(const v1::Workload& w, const SharedBytes& remote) {
  return Outgoing::upsert(w.host(), w.name(), remote);
}

Outgoing deleteMessage(const v1::Workload& w) {
  return Outgoing::remove(w.host(), w.name());
}

}  // namespace

// Brings what a connected host holds to what it needs: upserts for the new
// and changed, deletes for what it may no longer select. (A send can drop
// the session, which clears `held`: nothing iterates it while sending.)
void ControllerCore::syncLocked(Host& host) {
  if (!host.sink) return;
  std::vector<HeldWorkloads::Entry> desired;
  std::vector<Outgoing> out;
  for (const Rec* rec : desiredLocked(host)) {
    desired.push_back({rec->id, rec->gen});
    if (!host.held.holds(rec->id, rec->gen)) out.push_back(upsertMessage(rec->w, rec->remote));
  }
  HeldWorkloads next(std::move(desired));
  for (const auto& e : host.held)
    if (!next.contains(e.id)) out.push_back(deleteMessage(recs_.at(e.id)->w));
  host.held = std::move(next);
  for (auto& m : out)
    sendLocked(host, std::move(m));
}

// A workload was added or changed: every connected host that selects it
// gets it, and one that held it but no longer selects it loses it. A host
// holds only what it selects (syncLocked keeps it so as its apps change),
// so unless the workload changed its app or is withdrawn, the hosts that
// select it are the only ones to visit.
void ControllerCore::fanOutLocked(const Rec& rec, bool appChanged) {
  const bool visible = !hosts_.at(rec.w.host())->withdrawn;
  if (visible && !appChanged) {
    for (Host* h : wantersLocked(rec.w.app())) {
      if (!h->sink || h->name == rec.w.host()) continue;
      if (!h->held.set(rec.id, rec.gen)) continue;
      sendLocked(*h, upsertMessage(rec.w, rec.remote));
    }
    return;
  }
  for (auto& [name, host] : hosts_) {
    Host& h = *host;
    if (!h.sink || name == rec.w.host()) continue;
    if (visible && wantsLocked(h, rec.w.app())) {
      if (h.held.set(rec.id, rec.gen)) sendLocked(h, upsertMessage(rec.w, rec.remote));
    } else if (h.held.erase(rec.id)) {
      sendLocked(h, deleteMessage(rec.w));
    }
  }
}

// The workload goes (or is withdrawn): a delete to every host holding it.
void ControllerCore::retractLocked(const Rec& rec) {
  for (auto& [name, host] : hosts_) {
    if (host->held.erase(rec.id)) sendLocked(*host, deleteMessage(rec.w));
  }
}

Status ControllerCore::upsertLocked(Host& host, v1::Workload in) {
  auto checked = checkedWorkload(in, host.name);
  if (!checked) return checked.takeError();
  v1::Workload w = std::move(*checked);
  auto existing = host.workloads.find(w.name());
  Rec* rec = existing == host.workloads.end() ? nullptr : existing->second.get();
  if (rec && sameWorkload(rec->w, w)) return {};
  if (!rec && host.workloads.size() >= options_.maxWorkloadsPerHost)
    return makeError(ErrorCode::kTooLarge,
                     "host has " + std::to_string(host.workloads.size()) + " workloads, the limit");
  // An address is one workload's: a host cannot take over an address
  // another host's workload holds (its traffic would pass as that one's).
  for (const auto& a : w.addresses()) {
    auto it = addrOwner_.find(a);
    if (it != addrOwner_.end() && it->second != rec)
      return makeError(ErrorCode::kInvalidInput,
                       "workload \"" + escapeForLog(w.name()) + "\": address " + a +
                           " is held by workload \"" + escapeForLog(it->second->w.name()) +
                           "\" of host \"" + escapeForLog(it->second->w.host()) + "\"");
  }
  bool appsChanged = false;
  bool appMoved = false;
  if (!rec) {
    auto fresh = std::make_unique<Rec>();
    fresh->id = nextId_++;
    rec = fresh.get();
    recs_[rec->id] = rec;
    host.workloads[w.name()] = std::move(fresh);
    appsChanged = host.apps[w.app()]++ == 0;
  } else {
    for (const auto& a : rec->w.addresses())
      addrOwner_.erase(a);
    if (rec->w.app() != w.app()) {
      appMoved = true;
      byApp_[rec->w.app()].erase(rec);
      if (byApp_[rec->w.app()].empty()) byApp_.erase(rec->w.app());
      const bool oldGone = --host.apps[rec->w.app()] == 0;
      if (oldGone) host.apps.erase(rec->w.app());
      const bool newFresh = host.apps[w.app()]++ == 0;
      appsChanged = oldGone || newFresh;
    }
  }
  rec->w = std::move(w);
  rec->remote = encodeShared(remoteCopy(rec->w));
  rec->gen = nextId_++;
  byApp_[rec->w.app()].insert(rec);
  for (const auto& a : rec->w.addresses())
    addrOwner_[a] = rec;
  touchLocked(host);
  // A host without a stream (a hello being read, the store being loaded, a
  // host served by another controller) gets its interest computed once,
  // when it connects here, not once per workload.
  if (appsChanged && host.sink) {
    refreshInterestLocked(host);
    syncLocked(host);
  }
  fanOutLocked(*rec, appMoved);
  return {};
}

void ControllerCore::removeLocked(Host& host, const std::string& name) {
  auto it = host.workloads.find(name);
  if (it == host.workloads.end()) return;
  Rec* rec = it->second.get();
  retractLocked(*rec);
  for (const auto& a : rec->w.addresses())
    addrOwner_.erase(a);
  byApp_[rec->w.app()].erase(rec);
  if (byApp_[rec->w.app()].empty()) byApp_.erase(rec->w.app());
  const bool appGone = --host.apps[rec->w.app()] == 0;
  if (appGone) host.apps.erase(rec->w.app());
  recs_.erase(rec->id);
  host.workloads.erase(it);
  touchLocked(host);
  if (appGone && host.sink) {
    refreshInterestLocked(host);
    syncLocked(host);
  }
}

// ---- streams -------------------------------------------------------------------

void ControllerCore::sendLocked(Host& host, Outgoing message) {
  if (!host.sink) return;
  // A sink that refuses has closed itself (fell behind): the agent comes
  // back with a hello and gets a snapshot.
  if (!host.sink->send(std::move(message))) dropSessionLocked(host);
}

void ControllerCore::dropSessionLocked(Host& host) {
  if (!host.sink) return;
  sessions_.erase(host.session);
  host.sink.reset();
  host.session = 0;
  host.held.clear();
  host.disconnectedAt = Clock::now();
  if (shared_) {
    host.leaving = true;  // its record says connected until written again
    touchLocked(host);
  }
  ++epoch_;
  changed_.notify_all();
}

namespace {

Status checkHello(const v1::AgentHello& hello) {
  if (hello.host().empty() || hello.host().size() > 253 || hasControlChars(hello.host()))
    return makeError(ErrorCode::kInvalidInput, "hello: host must be a name of 1-253 characters");
  for (const auto& w : hello.workloads())
    if (!w.host().empty() && w.host() != hello.host())
      return makeError(ErrorCode::kInvalidInput, "hello: workload \"" + escapeForLog(w.name()) +
                                                     "\" of host \"" + escapeForLog(w.host()) +
                                                     "\": a host reports only its own workloads");
  return {};
}

}  // namespace

// The hello's inventory replaces what was known of the host, while it has
// no stream: the others get the deltas, and its snapshot reflects them.
void ControllerCore::reconcileLocked(Host& host, const v1::AgentHello& hello) {
  const bool wasWithdrawn = host.withdrawn;
  host.withdrawn = false;
  std::set<std::string> reported;
  for (const auto& w : hello.workloads())
    reported.insert(w.name());
  std::vector<std::string> gone;
  for (const auto& [name, rec] : host.workloads)
    if (!reported.count(name)) gone.push_back(name);
  for (const auto& name : gone)
    removeLocked(host, name);
  for (const auto& w : hello.workloads())
    if (auto st = upsertLocked(host, w); !st)
      spdlog::warn("host {}: {}", escapeForLog(host.name), st.error().message);
  if (wasWithdrawn)
    for (const auto& [name, rec] : host.workloads)
      fanOutLocked(*rec);
  refreshInterestLocked(host);
}

// The bundle in force and every remote workload the host needs; what it
// now holds is recorded in host.held.
Outgoing ControllerCore::snapshotLocked(Host& host) {
  std::vector<HeldWorkloads::Entry> held;
  std::vector<SharedBytes> remotes;
  for (const Rec* rec : desiredLocked(host)) {
    remotes.push_back(rec->remote);
    held.push_back({rec->id, rec->gen});
  }
  host.held = HeldWorkloads(std::move(held));
  return Outgoing::snapshot(bundle_ ? bundleBytes_ : nullptr, remotes);
}

Result<uint64_t> ControllerCore::connect(const v1::AgentHello& hello,
                                         std::shared_ptr<AgentSink> sink, const std::string& peer) {
  if (auto st = checkHello(hello); !st) return st.takeError();
  processDisconnects();
  std::lock_guard lock(mu_);
  auto& slot = hosts_[hello.host()];
  if (!slot) {
    slot = std::make_unique<Host>();
    slot->name = hello.host();
  }
  Host& host = *slot;
  if (host.sink) {
    host.sink->close(kAborted, "replaced by a newer stream of host " + host.name);
    dropSessionLocked(host);
  }
  reconcileLocked(host, hello);

  host.sink = std::move(sink);
  host.session = nextId_++;
  sessions_[host.session] = &host;
  host.agentVersion = hello.agent_version();
  host.address = peer;
  host.lastHeard = Clock::now();
  host.lastSeenMs = unixMs();
  if (bundle_ && hello.applied_revision() == bundle_->revision())
    host.acked = hello.applied_revision();
  if (bundle_) {
    host.sentAt = Clock::now();
    targets_.insert(host.name);
  }
  Outgoing snapshot = snapshotLocked(host);
  const uint64_t session = host.session;
  host.elsewhere = false;
  host.leaving = false;
  touchLocked(host);
  ++epoch_;
  changed_.notify_all();
  spdlog::info("host {} connected from {} (applied revision {}, {} workloads, {} remote sent)",
               escapeForLog(host.name), escapeForLog(peer), hello.applied_revision(),
               host.workloads.size(), host.held.size());
  sendLocked(host, std::move(snapshot));
  return session;
}

// A delay beyond a fifth of a keepalive period (at least 1 ms) in reading
// or in the background thread means the controller is behind.
void ControllerCore::noteLatenessLocked(Clock::duration late, Clock::time_point now) {
  const auto threshold =
      std::max<Clock::duration>(options_.keepAlive / 5, std::chrono::milliseconds(1));
  if (late > threshold) backlogAt_ = std::max(backlogAt_, now);
}

Status ControllerCore::received(uint64_t session, const v1::AgentMessage& message,
                                Clock::time_point readAt) {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  if (readAt == Clock::time_point{}) readAt = now;
  noteLatenessLocked(now - readAt, now);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return makeError(ErrorCode::kUnavailable, "stream replaced or closed");
  Host& host = *it->second;
  host.lastHeard = std::max(host.lastHeard, readAt);
  host.lastSeenMs = unixMs();
  switch (message.message_case()) {
    case v1::AgentMessage::kHello:
      return makeError(ErrorCode::kInvalidInput, "hello sent twice on one stream");
    case v1::AgentMessage::kWorkload: {
      const auto& change = message.workload();
      if (change.has_upsert()) {
        auto st = upsertLocked(host, change.upsert());
        // Another host's workload ends the stream; a bad one is only logged
        // (the agent validated it; a reconnect would not help).
        if (!st && st.error().code == ErrorCode::kInvalidInput) return st;
        if (!st) spdlog::warn("host {}: {}", escapeForLog(host.name), st.error().message);
      } else {
        removeLocked(host, change.deleted());
      }
      return {};
    }
    case v1::AgentMessage::kAck: {
      const auto& ack = message.ack();
      if (ack.applied()) {
        host.acked = std::max(host.acked, ack.revision());
        host.lastError.clear();
      } else {
        host.failedRevision = ack.revision();
        host.lastError = ack.error().substr(0, 4096);
        spdlog::warn("host {} did not apply revision {}: {}", escapeForLog(host.name),
                     ack.revision(), escapeForLog(host.lastError));
      }
      touchLocked(host);
      ++epoch_;
      changed_.notify_all();
      return {};
    }
    case v1::AgentMessage::kKeepalive:
    case v1::AgentMessage::MESSAGE_NOT_SET:
      return {};
  }
  return {};
}

void ControllerCore::disconnected(uint64_t session) {
  {
    std::lock_guard lock(disconnectMu_);
    pendingDisconnects_.push_back(session);
  }
  runCv_.notify_all();
}

// gRPC may run a stream's end inside a call the core made under its lock
// (closing a stream): disconnected() only queues, and this applies them.
void ControllerCore::processDisconnects() {
  std::vector<uint64_t> pending;
  {
    std::lock_guard lock(disconnectMu_);
    pending.swap(pendingDisconnects_);
  }
  if (pending.empty()) return;
  std::lock_guard lock(mu_);
  for (uint64_t session : pending) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) continue;
    spdlog::info("host {} disconnected", escapeForLog(it->second->name));
    dropSessionLocked(*it->second);
  }
}

// ---- policy ----------------------------------------------------------------------

Result<v1::PushPolicyResponse> ControllerCore::push(const v1::PushPolicyRequest& request) {
  std::lock_guard pushLock(pushMu_);
  size_t bytes = 0;
  std::vector<policy::SourceFile> files;
  for (const auto& f : request.files()) {
    bytes += f.name().size() + f.content().size();
    if (f.name().empty())
      return makeError(ErrorCode::kInvalidInput, "files: a file without a name");
    files.push_back({f.name(), f.content()});
  }
  if (bytes > options_.maxBundleBytes)
    return makeError(ErrorCode::kTooLarge, "bundle of " + std::to_string(bytes) +
                                               " bytes is over the controller's limit of " +
                                               std::to_string(options_.maxBundleBytes));
  auto loaded = policy::loadFiles(files);
  if (!loaded.ok())
    return makeError(ErrorCode::kInvalidInput, policy::joinDiagnostics(loaded.errors));
  v1::PushPolicyResponse response;
  for (const auto& w : loaded.warnings)
    response.add_warnings(w.toString());
  const std::string hash = bundleHash(request.files());
  const std::string version = request.version().empty() ? hash : request.version();
  if (version.size() > 256 || hasControlChars(version))
    return makeError(ErrorCode::kInvalidInput, "version: longer than 256 bytes or not printable");
  v1::PolicyRevision next;
  {
    std::lock_guard lock(mu_);
    const uint64_t current = bundle_ ? bundle_->revision() : 0;
    if (bundle_ && hash == bundleHash_) {
      response.set_revision(current);
      response.set_version(bundle_->version());
      response.set_changed(false);
      return response;
    }
    response.set_revision(current + 1);
    response.set_version(version);
    response.set_changed(true);
    if (request.dry_run() && !shared_) return response;
    next.set_revision(current + 1);
  }
  // On a shared store every write (host records, acks, other pushes) moves
  // the store's revision: a dry run asks it what the push would get now.
  if (request.dry_run()) {
    auto revision = shared_->nextRevision();
    if (!revision) return revision.takeError();
    response.set_revision(*revision);
    return response;
  }
  next.set_version(version);
  *next.mutable_files() = request.files();
  if (shared_) return pushShared(std::move(next), hash, std::move(response));
  // Durable before any agent sees it: a restarted controller never hands
  // out a revision number twice.
  if (auto st = store_.saveBundle(next); !st) return st.takeError();
  std::lock_guard lock(mu_);
  const uint32_t sent = distributeBundleLocked(next);
  response.set_hosts_connected(sent);
  spdlog::info("revision {} (version {}) sent to {} hosts", next.revision(), escapeForLog(version),
               sent);
  return response;
}

// On a shared store the revision is the store's: the bundle is written only
// if no other controller wrote one since the one in force here; if one did,
// that one is installed first and the push compared with it again.
Result<v1::PushPolicyResponse> ControllerCore::pushShared(v1::PolicyRevision next,
                                                          const std::string& hash,
                                                          v1::PushPolicyResponse response) {
  constexpr int kAttempts = 5;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    uint64_t current = 0;
    {
      std::lock_guard lock(mu_);
      current = bundle_ ? bundle_->revision() : 0;
      if (bundle_ && hash == bundleHash_) {
        response.set_revision(current);
        response.set_version(bundle_->version());
        response.set_changed(false);
        return response;
      }
    }
    auto stored = shared_->putBundle(next, current);
    if (!stored) return stored.takeError();
    if (*stored) {
      next.set_revision(uint64_t(**stored));
      std::lock_guard lock(mu_);
      // The watch may have brought it already.
      if (!bundle_ || bundle_->revision() < next.revision()) distributeBundleLocked(next);
      response.set_revision(next.revision());
      response.set_hosts_connected(uint32_t(targets_.size()));
      spdlog::info("revision {} (version {}) stored; sent to {} hosts", next.revision(),
                   escapeForLog(next.version()), targets_.size());
      return response;
    }
    auto theirs = store_.loadBundle();
    if (!theirs) return theirs.takeError();
    if (*theirs) onBundle(std::move(**theirs));
  }
  return makeError(ErrorCode::kUnavailable, "other controllers stored a bundle at each of " +
                                                std::to_string(kAttempts) +
                                                " attempts; push again");
}

// Installs a new revision and sends it to every host connected here; the
// hosts connected to other controllers count as its targets too.
uint32_t ControllerCore::distributeBundleLocked(const v1::PolicyRevision& bundle) {
  installBundleLocked(bundle);
  targets_.clear();
  const Outgoing m = Outgoing::policy(bundleBytes_);
  uint32_t sent = 0;
  const auto now = Clock::now();
  for (auto& [name, host] : hosts_) {
    if (host->elsewhere) targets_.insert(name);
    if (!host->sink) continue;
    host->sentAt = now;
    targets_.insert(name);
    sendLocked(*host, m);  // the bundle's bytes are shared
    ++sent;
  }
  // The new policy may select more or less of the others' workloads.
  for (auto& [name, host] : hosts_)
    syncLocked(*host);
  ++epoch_;
  changed_.notify_all();
  return sent;
}

// ---- shared stores ---------------------------------------------------------------

void ControllerCore::touchLocked(Host& host) {
  dirty_ = true;
  if (shared_) dirtyHosts_.insert(host.name);
}

void ControllerCore::onBundle(v1::PolicyRevision bundle) {
  std::lock_guard lock(mu_);
  if (bundle_ && bundle.revision() <= bundle_->revision()) return;
  const uint32_t sent = distributeBundleLocked(bundle);
  spdlog::info("revision {} (version {}) from the store: sent to {} hosts", bundle.revision(),
               escapeForLog(bundle.version()), sent);
}

// Another controller's record of a host. When that controller says the
// host's stream is on it while this one still holds a stream of the host,
// the agent moved and the stream here is stale; when it says the host is
// disconnected while the stream is here, this controller's record is the
// true one and is written again.
void ControllerCore::applyStoredHostLocked(StoredHost stored) {
  // This controller's own record (a reload has them): what the core holds
  // is newer or the same.
  if (stored.controller == instance_) return;
  auto& slot = hosts_[stored.host];
  if (!slot) {
    slot = std::make_unique<Host>();
    slot->name = stored.host;
    slot->disconnectedAt = Clock::now();
  }
  Host& h = *slot;
  if (h.sink) {
    if (!stored.connected) return touchLocked(h);
    spdlog::info("host {} moved to controller {}: its stream here is closed", escapeForLog(h.name),
                 escapeForLog(stored.controller));
    h.sink->close(kAborted, "host " + h.name + " moved to controller " + stored.controller);
    dropSessionLocked(h);
    toRelease_.push_back(h.name);
  }
  std::set<std::string> reported;
  for (const auto& w : stored.workloads)
    reported.insert(w.name());
  std::vector<std::string> gone;
  for (const auto& [name, rec] : h.workloads)
    if (!reported.count(name)) gone.push_back(name);
  for (const auto& name : gone)
    removeLocked(h, name);
  for (auto& w : stored.workloads)
    if (auto st = upsertLocked(h, std::move(w)); !st)
      spdlog::warn("host {} (from the store): {}", escapeForLog(h.name), st.error().message);
  h.leaving = false;
  dirtyHosts_.erase(h.name);  // the other controller's record stands
  h.acked = stored.ackedRevision;
  h.failedRevision = stored.failedRevision;
  h.lastError = stored.lastError;
  h.agentVersion = stored.agentVersion;
  h.lastSeenMs = stored.lastSeenUnixMs;
  h.address = stored.address;
  h.controller = stored.controller;
  if (h.elsewhere && !stored.connected) h.disconnectedAt = Clock::now();
  h.elsewhere = stored.connected;
  // Its controller sends it the revision in force: a target of the rollout.
  if (h.elsewhere && bundle_) targets_.insert(h.name);
  ++epoch_;
  changed_.notify_all();
}

// A host's record expired: no controller holds its stream. Its workloads
// are withdrawn from every host; a host whose stream is here is written
// again.
void ControllerCore::hostGoneLocked(const std::string& name) {
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return;
  Host& h = *it->second;
  if (h.sink) return touchLocked(h);
  spdlog::info("host {} gone from the store: its {} workloads are withdrawn", escapeForLog(name),
               h.workloads.size());
  std::vector<std::string> names;
  for (const auto& [n, rec] : h.workloads)
    names.push_back(n);
  for (const auto& n : names)
    removeLocked(h, n);
  dirtyHosts_.erase(name);
  targets_.erase(name);
  hosts_.erase(it);
  ++epoch_;
  changed_.notify_all();
}

void ControllerCore::onReload(SharedStore::Contents contents) {
  std::lock_guard lock(mu_);
  if (contents.bundle && (!bundle_ || contents.bundle->revision() > bundle_->revision())) {
    if (bundle_) {
      distributeBundleLocked(*contents.bundle);
    } else {
      installBundleLocked(std::move(*contents.bundle));
    }
  }
  std::set<std::string> present;
  for (auto& stored : contents.hosts) {
    present.insert(stored.host);
    applyStoredHostLocked(std::move(stored));
  }
  std::vector<std::string> gone;
  for (const auto& [name, h] : hosts_)
    if (!present.count(name)) gone.push_back(name);
  for (const auto& name : gone)
    hostGoneLocked(name);
}

// Writes the records of the hosts whose streams are here (or just ended
// here), outside the lock, several at a time (each etcd write waits for
// its disk). The error of a write that failed (those hosts are written
// again later).
std::optional<std::string> ControllerCore::flushHosts() {
  constexpr size_t kParallel = 16;
  std::vector<StoredHost> writes;
  std::vector<std::string> releases;
  {
    std::lock_guard lock(mu_);
    for (const auto& name : dirtyHosts_) {
      auto it = hosts_.find(name);
      if (it == hosts_.end()) continue;
      Host& h = *it->second;
      if (!h.sink && !h.leaving) continue;
      writes.push_back(storedLocked(h));
      h.leaving = false;
    }
    dirtyHosts_.clear();
    releases.swap(toRelease_);
  }
  for (const auto& name : releases)
    shared_->releaseHost(name);
  std::vector<const StoredHost*> failed;
  std::string why;
  for (size_t start = 0; start < writes.size(); start += kParallel) {
    std::vector<std::future<Status>> batch;
    const size_t end = std::min(writes.size(), start + kParallel);
    for (size_t i = start; i < end; ++i)
      batch.push_back(
          std::async(std::launch::async, [this, &w = writes[i]] { return shared_->putHost(w); }));
    for (size_t i = start; i < end; ++i) {
      const Status st = batch[i - start].get();
      if (st) continue;
      if (failed.empty())
        why = "host " + escapeForLog(writes[i].host) + ": " + st.error().describe();
      failed.push_back(&writes[i]);
    }
    if (!failed.empty()) {  // etcd is away: the rest waits too
      for (size_t i = end; i < writes.size(); ++i)
        failed.push_back(&writes[i]);
      break;
    }
  }
  if (failed.empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  for (const StoredHost* stored : failed) {
    auto it = hosts_.find(stored->host);
    if (it == hosts_.end()) continue;
    if (!it->second->sink && !stored->connected) it->second->leaving = true;
    dirtyHosts_.insert(stored->host);
  }
  return why;
}

uint64_t ControllerCore::revision() const {
  std::lock_guard lock(mu_);
  return bundle_ ? bundle_->revision() : 0;
}

// ---- status ----------------------------------------------------------------------

v1::FleetStatus ControllerCore::fleetStatus() const {
  std::lock_guard lock(mu_);
  v1::FleetStatus out;
  const uint64_t current = bundle_ ? bundle_->revision() : 0;
  out.set_revision(current);
  if (bundle_) out.set_version(bundle_->version());
  out.set_controller(options_.name);
  const auto now = Clock::now();
  auto seconds = [&](Clock::time_point t) {
    return std::chrono::duration<double>(now - t).count();
  };
  for (const auto& [name, h] : hosts_) {
    auto* s = out.add_hosts();
    s->set_host(name);
    s->set_connected(h->sink != nullptr || h->elsewhere);
    s->set_acked_revision(h->acked);
    s->set_failed_revision(h->failedRevision);
    s->set_workloads(uint32_t(h->workloads.size()));
    s->set_last_error(h->lastError);
    if (!h->sink && !h->elsewhere)
      s->set_lag_seconds(seconds(h->disconnectedAt));
    else if (h->acked < current)
      s->set_lag_seconds(seconds(h->sentAt));
    if (h->lastSeenMs > 0)
      s->set_last_seen(common::formatRfc3339(
          common::WallClock::time_point(std::chrono::milliseconds(h->lastSeenMs)),
          common::TimePrecision::kSeconds));
    s->set_agent_version(h->agentVersion);
    if (h->sink || h->elsewhere) s->set_address(h->address);
  }
  return out;
}

v1::ListWorkloadsResponse ControllerCore::fleetWorkloads(const std::string& host) const {
  std::lock_guard lock(mu_);
  v1::ListWorkloadsResponse out;
  for (const auto& [name, h] : hosts_) {
    if ((!host.empty() && name != host) || h->withdrawn) continue;
    for (const auto& [n, rec] : h->workloads)
      *out.add_workloads() = rec->w;
  }
  return out;
}

Result<v1::RolloutProgress> ControllerCore::rollout(uint64_t revision) const {
  std::lock_guard lock(mu_);
  const uint64_t current = bundle_ ? bundle_->revision() : 0;
  if (revision == 0) revision = current;
  if (revision == 0 || revision > current)
    return makeError(ErrorCode::kNotFound,
                     "revision " + std::to_string(revision) +
                         " was never pushed (in force: " + std::to_string(current) + ")");
  v1::RolloutProgress out;
  out.set_revision(revision);
  uint32_t acked = 0, total = 0;
  bool pending = false;
  for (const auto& [name, h] : hosts_) {
    if (h->withdrawn) continue;
    v1::HostRollout r;
    r.set_host(name);
    const bool target = revision == current ? targets_.count(name) > 0 : true;
    if (h->acked >= revision) {
      r.set_state(v1::HostRollout::STATE_APPLIED);
      ++acked;
    } else if (h->failedRevision >= revision) {
      r.set_state(v1::HostRollout::STATE_FAILED);
      r.set_error(h->lastError);
    } else if (h->sink || h->elsewhere) {
      r.set_state(v1::HostRollout::STATE_PENDING);
      pending = true;
    } else {
      r.set_state(v1::HostRollout::STATE_DISCONNECTED);
    }
    if (target || h->acked >= revision) ++total;
    *out.add_hosts() = std::move(r);
  }
  out.set_acked(acked);
  out.set_total(total);
  out.set_done(!pending);
  return out;
}

uint64_t ControllerCore::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

uint64_t ControllerCore::waitForChange(uint64_t epoch, Clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  changed_.wait_until(lock, deadline, [&] { return epoch_ != epoch; });
  return epoch_;
}

}  // namespace bulkhead::controller
