// Where the controller keeps what must outlive it: the bundle in force with
// its revision, and the last-known inventory of every host (its local
// workloads, the revision it acked, its last error). Behind an interface so
// that several controllers can share one store later; FileStore is the
// embedded one (one controller, one machine, a complete deployment).
#pragma once

#include <cstdint>
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
  std::string lastError;
  int64_t lastSeenUnixMs = 0;
  std::vector<v1::Workload> workloads;
};

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
