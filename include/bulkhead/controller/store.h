// Where the controller keeps what must outlive it: the bundle in force with
// its revision, and the last-known inventory of every host (its local
// workloads, the revision it acked, its last error). Behind an interface so
// that several controllers can share one store later; FileStore is the
// embedded one (one controller, one machine, a complete deployment).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/v1/controller.pb.h"

namespace bulkhead::controller {

// What the controller remembers of one host. The workloads carry their
// host (Workload.host) and the source the agent reported.
struct StoredHost {
  std::string host;
  std::string agentVersion;
  uint64_t ackedRevision = 0;
  uint64_t failedRevision = 0;  // the last revision it failed to apply
  std::string lastError;
  int64_t lastSeenUnixMs = 0;
  std::vector<v1::Workload> workloads;
  // Shared stores only: the controller that wrote the record (its
  // instance, "name#id"), whether the host's stream is on it, and the
  // stream's peer address.
  std::string controller;
  bool connected = false;
  std::string address;
};

class SharedStore;

class Store {
 public:
  virtual ~Store() = default;
  // The bundle in force; nullopt when none was ever pushed. A store that
  // exists but cannot be read is an error, never "nothing".
  virtual Result<std::optional<v1::PolicyRevision>> loadBundle() = 0;
  // Durable when it returns.
  virtual Status saveBundle(const v1::PolicyRevision& bundle) = 0;
  virtual Result<std::vector<StoredHost>> loadInventory() = 0;
  // The whole inventory, replacing the stored one; durable when it returns.
  virtual Status saveInventory(const std::vector<StoredHost>& hosts) = 0;
  // A store several controllers serve from at once; nullptr for one of a
  // single controller.
  virtual SharedStore* shared() { return nullptr; }
};

// The part of a store shared by several controllers (EtcdStore): the
// bundle's revision comes from the store, each host is written on its own
// by the controller holding its stream, and the others' writes come back
// as events. The core never calls it under its lock; the events arrive on
// the store's threads.
class SharedStore {
 public:
  struct Contents {
    std::optional<v1::PolicyRevision> bundle;
    std::vector<StoredHost> hosts;
  };
  struct Events {
    // A bundle another controller (or this one) stored.
    std::function<void(v1::PolicyRevision)> onBundle;
    // Another controller's record of a host.
    std::function<void(StoredHost)> onHost;
    // A host's record is gone: no controller kept it (the host TTL ran out).
    std::function<void(const std::string& host)> onHostGone;
    // Everything again, after events were lost (a compacted revision).
    std::function<void(Contents)> onReload;
  };

  virtual ~SharedStore() = default;
  // The bundle and every host now; watch() delivers what changes after.
  virtual Result<Contents> loadAll() = 0;
  virtual void watch(Events events) = 0;
  virtual void stopWatching() = 0;
  // Stores `bundle` (its revision is ignored) if the one in force is still
  // revision `current` (0: none). Returns the new revision, or nullopt
  // when another controller stored one first.
  virtual Result<std::optional<uint64_t>> putBundle(const v1::PolicyRevision& bundle,
                                                    uint64_t current) = 0;
  // This controller's record of a host whose stream it holds (connected)
  // or just lost (not connected): kept alive while connected, left to
  // expire after the host TTL otherwise.
  virtual Status putHost(const StoredHost& host) = 0;
  // Stops keeping a host's record alive without writing it (the host's
  // stream moved to another controller, which keeps it now).
  virtual void releaseHost(const std::string& host) = 0;
  // This controller's instance name as its records carry it.
  virtual std::string instance() const = 0;
  // Background work on the caller's thread (the core's tick): a reload and
  // a new watch after a compaction.
  virtual void poll() = 0;
  // The revision a bundle stored now would get if nothing else is written
  // first (a dry run's answer): the store's revision + 1.
  virtual Result<uint64_t> nextRevision() = 0;
};

// Two files under a directory, each replaced whole: written to a temporary
// file, fsync'd, renamed over the old one, and the directory fsync'd, so a
// crash leaves either the old or the new file. Each file carries a magic,
// its length and a SHA-256 of its content: a torn or altered file is an
// error naming it.
class FileStore : public Store {
 public:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {}

  Result<std::optional<v1::PolicyRevision>> loadBundle() override;
  Status saveBundle(const v1::PolicyRevision& bundle) override;
  Result<std::vector<StoredHost>> loadInventory() override;
  Status saveInventory(const std::vector<StoredHost>& hosts) override;

  std::string bundlePath() const { return dir_ + "/bundle.bin"; }
  std::string inventoryPath() const { return dir_ + "/inventory.bin"; }

 private:
  std::string dir_;
};

}  // namespace bulkhead::controller
