#include "bulkhead/controller/etcd_store.h"

#include <spdlog/spdlog.h>

#include <random>

#include "bulkhead/common/escape.h"
#include "store_codec.h"

namespace bulkhead::controller {

namespace {

std::string randomId() {
  std::random_device rd;
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 8; ++i)
    out += kHex[rd() & 15];
  return out;
}

Result<v1::PolicyRevision> decodeBundle(const etcd::KeyValue& kv) {
  v1::PolicyRevision bundle;
  if (!bundle.ParseFromString(kv.value) || kv.modRevision <= 0)
    return makeError(ErrorCode::kInvalidInput,
                     "etcd key " + kv.key + " does not hold a policy bundle");
  bundle.set_revision(uint64_t(kv.modRevision));
  return bundle;
}

}  // namespace

// A FleetStatus (controller: the instance; one HostStatus) and the
// workloads as a ListWorkloadsResponse, framed by joinFramed.
std::string encodeHostRecord(const StoredHost& h) {
  v1::FleetStatus status;
  status.set_controller(h.controller);
  auto* s = status.add_hosts();
  toHostStatus(h, s);
  s->set_connected(h.connected);
  s->set_workloads(uint32_t(h.workloads.size()));
  s->set_address(h.address);
  v1::ListWorkloadsResponse workloads;
  for (const auto& w : h.workloads)
    *workloads.add_workloads() = w;
  return joinFramed(status.SerializeAsString(), workloads.SerializeAsString());
}

std::optional<StoredHost> decodeHostRecord(const std::string& p) {
  const auto parts = splitFramed(p);
  v1::FleetStatus status;
  v1::ListWorkloadsResponse workloads;
  if (!parts || !status.ParseFromArray(parts->first.data(), int(parts->first.size())) ||
      !workloads.ParseFromArray(parts->second.data(), int(parts->second.size())) ||
      status.hosts_size() != 1)
    return std::nullopt;
  const auto& s = status.hosts(0);
  StoredHost h = fromHostStatus(s);
  h.controller = status.controller();
  h.connected = s.connected();
  h.address = s.address();
  for (const auto& w : workloads.workloads()) {
    if (w.host() != h.host) return std::nullopt;
    h.workloads.push_back(w);
  }
  return h;
}

EtcdStore::EtcdStore(std::unique_ptr<etcd::Client> client, EtcdStoreOptions options)
    : client_(std::move(client)),
      options_(std::move(options)),
      instance_(options_.name + "#" + randomId()) {
  keeper_ =
      std::make_unique<etcd::LeaseKeeper>(*client_, [this](int64_t lease) { leaseExpired(lease); });
}

EtcdStore::~EtcdStore() {
  stopWatching();
  keeper_.reset();
}

Result<std::optional<v1::PolicyRevision>> EtcdStore::loadBundle() {
  auto r = client_->get(bundleKey());
  if (!r) return r.takeError();
  if (r->kvs.empty()) return std::optional<v1::PolicyRevision>{};
  auto bundle = decodeBundle(r->kvs.front());
  if (!bundle) return bundle.takeError();
  return std::optional<v1::PolicyRevision>(std::move(*bundle));
}

// Outside a shared core (tools, tests): the bundle written whatever is in
// force.
Status EtcdStore::saveBundle(const v1::PolicyRevision& bundle) {
  v1::PolicyRevision value = bundle;
  value.clear_revision();
  auto r = client_->put(bundleKey(), value.SerializeAsString());
  if (!r) return r.takeError();
  return {};
}

Result<std::vector<StoredHost>> EtcdStore::loadInventory() {
  auto all = loadAll();
  if (!all) return all.takeError();
  return std::move(all->hosts);
}

Status EtcdStore::saveInventory(const std::vector<StoredHost>& hosts) {
  for (const auto& h : hosts)
    if (auto st = putHost(h); !st) return st;
  return {};
}

Result<SharedStore::Contents> EtcdStore::loadAll() {
  auto r = client_->getPrefix(options_.prefix);
  if (!r) return r.takeError();
  Contents out;
  const std::string hosts = options_.prefix + "hosts/";
  for (const auto& kv : r->kvs) {
    if (kv.key == bundleKey()) {
      auto bundle = decodeBundle(kv);
      if (!bundle) return bundle.takeError();
      out.bundle = std::move(*bundle);
    } else if (kv.key.rfind(hosts, 0) == 0) {
      auto h = decodeHostRecord(kv.value);
      if (!h || h->host != kv.key.substr(hosts.size())) {
        spdlog::warn("etcd key {} is not a host record: skipped", escapeForLog(kv.key));
        continue;
      }
      out.hosts.push_back(std::move(*h));
    }
  }
  std::lock_guard lock(watchMu_);
  loadedRevision_ = r->revision;
  return out;
}

void EtcdStore::watch(Events events) {
  std::lock_guard lock(watchMu_);
  events_ = std::move(events);
  startWatcher(loadedRevision_ + 1);
}

void EtcdStore::startWatcher(int64_t fromRevision) {
  etcd::Watcher::Callbacks callbacks;
  callbacks.onEvents = [this](const std::vector<etcd::Event>& events, int64_t) {
    onEvents(events);
  };
  callbacks.onCompacted = [this](int64_t revision) {
    spdlog::warn("etcd compacted past the watched revision (compacted at {}): reloading", revision);
    reloadNeeded_ = true;
  };
  callbacks.onDisconnected = [](const Status& st) {
    if (!st) spdlog::warn("etcd watch interrupted: {}", st.error().describe());
  };
  watcher_ = std::make_unique<etcd::Watcher>(*client_, options_.prefix, fromRevision,
                                             std::move(callbacks));
}

void EtcdStore::stopWatching() {
  std::unique_ptr<etcd::Watcher> watcher;
  {
    std::lock_guard lock(watchMu_);
    watcher.swap(watcher_);
  }
  watcher.reset();  // joins its thread, which may be delivering: not under watchMu_
}

// On the watcher's thread, in revision order. This controller's own host
// records are skipped (the core has them); its own bundle comes back and
// the core ignores a revision it has.
void EtcdStore::onEvents(const std::vector<etcd::Event>& events) {
  const std::string hosts = options_.prefix + "hosts/";
  for (const auto& ev : events) {
    if (ev.kv.key == bundleKey()) {
      if (ev.type != etcd::EventType::kPut) continue;
      auto bundle = decodeBundle(ev.kv);
      if (!bundle) {
        spdlog::error("{}", bundle.error().message);
        continue;
      }
      if (events_.onBundle) events_.onBundle(std::move(*bundle));
    } else if (ev.kv.key.rfind(hosts, 0) == 0) {
      const std::string host = ev.kv.key.substr(hosts.size());
      if (ev.type == etcd::EventType::kDelete) {
        if (events_.onHostGone) events_.onHostGone(host);
        continue;
      }
      auto h = decodeHostRecord(ev.kv.value);
      if (!h || h->host != host) {
        spdlog::warn("etcd key {} is not a host record: skipped", escapeForLog(ev.kv.key));
        continue;
      }
      if (h->controller == instance_) continue;
      if (events_.onHost) events_.onHost(std::move(*h));
    }
  }
}

void EtcdStore::poll() {
  if (!reloadNeeded_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - lastReloadTry_ < std::chrono::seconds(1)) return;
  lastReloadTry_ = now;
  stopWatching();
  auto contents = loadAll();
  if (!contents) {
    spdlog::warn("etcd reload failed (retried every second): {}", contents.error().describe());
    return;
  }
  reloadNeeded_ = false;
  Events events;
  {
    std::lock_guard lock(watchMu_);
    events = events_;
  }
  spdlog::info("etcd reloaded at revision {}: {} hosts", loadedRevision_, contents->hosts.size());
  if (events.onReload) events.onReload(std::move(*contents));
  std::lock_guard lock(watchMu_);
  startWatcher(loadedRevision_ + 1);
}

Result<std::optional<uint64_t>> EtcdStore::putBundle(const v1::PolicyRevision& bundle,
                                                     uint64_t current) {
  v1::PolicyRevision value = bundle;
  value.clear_revision();
  auto r = client_->putIf(bundleKey(), value.SerializeAsString(), int64_t(current));
  if (!r) return r.takeError();
  if (!*r) return std::optional<uint64_t>{};
  return std::optional<uint64_t>(uint64_t(**r));
}

// etcd gives a write the store's revision + 1: what a dry run reports. A
// push made later gets more when anything (a host record, an ack, another
// controller's push) is written between the two.
Result<uint64_t> EtcdStore::nextRevision() {
  auto r = client_->get(bundleKey());
  if (!r) return r.takeError();
  return uint64_t(r->revision) + 1;
}

Result<int64_t> EtcdStore::liveLease(const std::string& host) {
  {
    std::lock_guard lock(leaseMu_);
    auto it = leases_.find(host);
    if (it != leases_.end()) return it->second;
  }
  auto lease = client_->leaseGrant(options_.hostTtl);
  if (!lease) return lease.takeError();
  keeper_->add(*lease, options_.hostTtl);
  std::lock_guard lock(leaseMu_);
  leases_[host] = *lease;
  return *lease;
}

// A connected host's record lives on a lease kept alive; a disconnected
// one's on the same lease, no longer kept alive (or a fresh one never
// kept alive), so it expires one host TTL later unless another controller
// writes it first. A put refused because the lease expired meanwhile (etcd
// was away longer than the TTL) is tried once more on a new lease.
Status EtcdStore::putHost(const StoredHost& in) {
  StoredHost h = in;
  h.controller = instance_;
  const std::string value = encodeHostRecord(h);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto lease = liveLease(h.host);
    if (!lease) return lease.takeError();
    auto r = client_->put(hostKey(h.host), value, *lease);
    if (r) {
      if (!h.connected) releaseHost(h.host);
      return {};
    }
    // Unreachable etcd: no new lease would help.
    if (r.error().code == ErrorCode::kUnavailable || attempt == 1) return r.takeError();
    releaseHost(h.host);
  }
  return {};
}

void EtcdStore::releaseHost(const std::string& host) {
  int64_t lease = 0;
  {
    std::lock_guard lock(leaseMu_);
    auto it = leases_.find(host);
    if (it == leases_.end()) return;
    lease = it->second;
    leases_.erase(it);
  }
  keeper_->remove(lease);
}

void EtcdStore::leaseExpired(int64_t lease) {
  std::lock_guard lock(leaseMu_);
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second == lease) {
      spdlog::warn("etcd lease of host {} expired: the record is written again on a new lease",
                   escapeForLog(it->first));
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace bulkhead::controller
