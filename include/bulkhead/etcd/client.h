// bulkhead's etcd v3 client: KV, leases and watches over etcd's gRPC API,
// with stubs generated at build time from the .proto files of Debian's
// golang-etcd-server-dev (docs/architecture.md). A layer of its own below
// the controller; it includes only common/ and knows nothing of bulkhead's
// keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"

namespace bulkhead::etcd {

struct ClientOptions {
  std::vector<std::string> endpoints;     // "http://127.0.0.1:2379", "https://h:2379"
  std::string caFile, certFile, keyFile;  // https: server CA; client identity optional
  std::chrono::milliseconds requestTimeout{5000};
};

// Splits "URL[,URL...]" into options with the given TLS files. kInvalidInput
// for a bad endpoint list (empty, not http(s)://host:port, http and https
// mixed) or TLS files that cannot be read.
Result<ClientOptions> parseEndpoints(const std::string& commaList, const std::string& caFile = {},
                                     const std::string& certFile = {},
                                     const std::string& keyFile = {});
// The same checks on options built by hand (Client::connect runs them).
Status validateOptions(const ClientOptions& options);

struct KeyValue {
  std::string key, value;
  int64_t createRevision = 0, modRevision = 0, version = 0, lease = 0;
};
struct RangeResult {
  int64_t revision = 0;  // the store's revision when it was read
  std::vector<KeyValue> kvs;
};
enum class EventType { kPut, kDelete };
struct Event {
  EventType type;
  KeyValue kv;
};

class ClientImpl;

// Thread-safe; one gRPC channel over all endpoints, failing over to the
// next when one is unreachable. Errors: etcd unreachable -> kUnavailable
// (naming the endpoints), deadline -> kUnavailable ("timed out"),
// a request etcd refuses as too large -> kTooLarge.
class Client {
 public:
  static Result<std::unique_ptr<Client>> connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<RangeResult> get(const std::string& key);
  Result<RangeResult> getPrefix(const std::string& prefix);
  // Returns the store revision of the write.
  Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Compare-and-swap: writes only if key's mod_revision == expected (0: absent).
  // nullopt when the comparison failed (someone else wrote first).
  Result<std::optional<int64_t>> putIf(const std::string& key, const std::string& value,
                                       int64_t expectedModRevision, int64_t lease = 0);
  // Returns the store revision after the delete (also when nothing was there).
  Result<int64_t> erase(const std::string& key);
  Result<int64_t> leaseGrant(std::chrono::seconds ttl);
  Status leaseRevoke(int64_t lease);
  // kNotFound when the lease has expired or never existed.
  Status leaseKeepAlive(int64_t lease);
  // Compacts the store's history up to `revision` (tests, maintenance).
  Status compact(int64_t revision);

  const ClientOptions& options() const;
  ClientImpl& impl() { return *impl_; }

 private:
  explicit Client(std::unique_ptr<ClientImpl> impl);
  std::unique_ptr<ClientImpl> impl_;
};

// Keeps leases alive (one background thread, a keepalive every ttl/3);
// reports a lease that expired (etcd unreachable longer than its TTL).
class LeaseKeeper {
 public:
  LeaseKeeper(Client& client, std::function<void(int64_t lease)> onExpired);
  ~LeaseKeeper();  // stops and joins
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void add(int64_t lease, std::chrono::seconds ttl);
  void remove(int64_t lease);

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// A watch of a prefix from startRevision (inclusive), on its own thread.
// Survives etcd restarts and failover: re-creates the watch from the last
// revision it delivered + 1 (no event lost or repeated). When etcd has
// compacted past that revision, calls onCompacted(compactRevision) once and
// stops delivering: the owner reloads with getPrefix() and starts a new
// Watcher from the reload's revision + 1.
class Watcher {
 public:
  struct Callbacks {
    std::function<void(const std::vector<Event>&, int64_t revision)> onEvents;
    std::function<void(int64_t compactRevision)> onCompacted;
    std::function<void(const Status&)> onDisconnected;  // optional: logged by the owner
  };
  Watcher(Client& client, std::string prefix, int64_t startRevision, Callbacks callbacks);
  ~Watcher();  // stops and joins
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace bulkhead::etcd
