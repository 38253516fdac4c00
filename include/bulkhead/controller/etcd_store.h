// The controller's store on etcd v3, shared by several controllers
// (docs/controller.md, "Several controllers on etcd"). Under the prefix:
//
//   <prefix>bundle        the bundle in force (a PolicyRevision without its
//                         revision): its revision IS the key's mod_revision,
//                         so revisions grow across controllers, and a push
//                         writes only if the key's mod_revision is still the
//                         revision the pushing controller has in force
//   <prefix>hosts/<host>  one host's record (its workloads, acked revision,
//                         last error, the controller holding its stream and
//                         whether it is connected), written by that
//                         controller with a lease of the host TTL that it
//                         keeps alive while the stream lasts
//
// A host gone everywhere is a record whose lease ran out: etcd deletes it
// and every controller withdraws its workloads. A watch on the prefix
// brings the other controllers' writes; a compacted revision reloads
// everything and watches again.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "bulkhead/controller/store.h"
#include "bulkhead/etcd/client.h"

namespace bulkhead::controller {

struct EtcdStoreOptions {
  std::string prefix = "/bulkhead/";
  std::chrono::seconds hostTtl{300};
  std::string name;  // this controller's name; its instance adds a random id
};

class EtcdStore : public Store, public SharedStore {
 public:
  EtcdStore(std::unique_ptr<etcd::Client> client, EtcdStoreOptions options);
  ~EtcdStore() override;
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;

  // Store: what a single controller's core would call.
  Result<std::optional<v1::PolicyRevision>> loadBundle() override;
  Status saveBundle(const v1::PolicyRevision& bundle) override;
  Result<std::vector<StoredHost>> loadInventory() override;
  Status saveInventory(const std::vector<StoredHost>& hosts) override;
  SharedStore* shared() override { return this; }

  // SharedStore.
  Result<Contents> loadAll() override;
  void watch(Events events) override;
  void stopWatching() override;
  Result<std::optional<uint64_t>> putBundle(const v1::PolicyRevision& bundle,
                                            uint64_t current) override;
  Status putHost(const StoredHost& host) override;
  void releaseHost(const std::string& host) override;
  std::string instance() const override { return instance_; }
  void poll() override;
  Result<uint64_t> nextRevision() override;

  std::string bundleKey() const { return options_.prefix + "bundle"; }
  std::string hostKey(const std::string& host) const { return options_.prefix + "hosts/" + host; }
  etcd::Client& client() { return *client_; }

 private:
  void onEvents(const std::vector<etcd::Event>& events);
  void startWatcher(int64_t fromRevision);
  void leaseExpired(int64_t lease);
  Result<int64_t> liveLease(const std::string& host);

  std::unique_ptr<etcd::Client> client_;
  EtcdStoreOptions options_;
  std::string instance_;
  std::unique_ptr<etcd::LeaseKeeper> keeper_;

  std::mutex leaseMu_;
  std::map<std::string, int64_t> leases_;  // host -> the lease kept alive for it

  std::mutex watchMu_;  // events_, watcher_, loadedRevision_
  Events events_;
  std::unique_ptr<etcd::Watcher> watcher_;
  int64_t loadedRevision_ = 0;
  std::atomic<bool> reloadNeeded_{false};
  std::chrono::steady_clock::time_point lastReloadTry_{};
};

// A host's record as stored: the controller's instance, the host's status
// and its workloads. nullopt for bytes that are not one.
std::string encodeHostRecord(const StoredHost& host);
std::optional<StoredHost> decodeHostRecord(const std::string& value);

}  // namespace bulkhead::controller
