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

// Thread-safe. One gRPC channel per endpoint (an https endpoint is verified
// against, and sent SNI for, its own host name); a call starts on the
// endpoint that last answered and moves on to the next while endpoints
// answer UNAVAILABLE (refused, unreachable, member without a leader), so a
// call fails only when every endpoint did. Each attempt has requestTimeout.
// When every endpoint was unavailable (etcd restarting, a channel still in
// its reconnect back-off), the call waits for one to be ready and is sent
// there, still within requestTimeout of its start: a put made during a
// short etcd restart succeeds once etcd is back.
// Errors: etcd unreachable -> kUnavailable naming the endpoints; deadline ->
// kUnavailable ("timed out after N ms"); a request etcd refuses as too large
// (its --max-request-bytes, 1.5 MiB by default) -> kTooLarge; bad input ->
// kInvalidInput. A write that failed with kUnavailable may still have been
// applied (the answer was lost): putIf's caller rereads before retrying.
class Client {
 public:
  // Checks the options and reads the TLS files (kInvalidInput); does not
  // contact etcd: the first call reports an etcd that cannot be reached.
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

// Keeps leases alive (one background thread, a keepalive every ttl/3, every
// 500 ms after a failure); reports a lease that expired (etcd unreachable
// longer than its TTL, or etcd no longer knows it) once, on that thread,
// and forgets it.
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

// A watch of a prefix from startRevision (inclusive; values below 1 count
// as 1, the oldest retained revision), on its own thread. The callbacks run
// on that thread, one at a time; they must not destroy the Watcher.
// onEvents gets the events in revision order and the revision of the last
// one; a batch never splits a revision.
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
    // Optional, for the owner's log: the stream broke; the watcher retries
    // with a back-off growing from 100 ms to 2 s.
    std::function<void(const Status&)> onDisconnected;
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
