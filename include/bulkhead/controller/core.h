// The controller's state and logic, apart from gRPC: the bundle and its
// revision, every host's workloads, which remote workloads each connected
// host holds (span filtering, controller/span.h), acks and rollouts, the
// host TTL, keepalives and the store. Every method is thread-safe. Agents'
// streams reach it through AgentSink (service.cpp implements one over a
// gRPC stream; tests may implement their own).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/controller/span.h"
#include "bulkhead/controller/store.h"
#include "bulkhead/controller/wire.h"
#include "bulkhead/v1/controller.pb.h"

namespace bulkhead::controller {

// Either side sends a keepalive at least this often; a peer silent for
// kMissedKeepAlives periods is gone.
inline constexpr std::chrono::milliseconds kKeepAlivePeriod{5000};
inline constexpr int kMissedKeepAlives = 3;

// One agent's outbound stream. send() never blocks: it queues, and returns
// false when the stream is closed or has fallen too far behind (it then
// closes itself; the agent reconnects and gets a snapshot). Messages come
// encoded (wire.h): the parts they share with other hosts' are not copied.
class AgentSink {
 public:
  virtual ~AgentSink() = default;
  virtual bool send(Outgoing message) = 0;
  // Ends the stream with this status (once; later calls do nothing).
  virtual void close(int grpcCode, const std::string& message) = 0;
};

struct ControllerOptions {
  std::chrono::milliseconds keepAlive = kKeepAlivePeriod;
  // A host disconnected longer has its workloads withdrawn from the others.
  std::chrono::milliseconds hostTtl = std::chrono::seconds(300);
  // The inventory is written at most this often (changes coalesce): each
  // write is the whole inventory, ~1 MB at 1,000 hosts of 10 workloads.
  std::chrono::milliseconds persistDelay{1000};
  size_t maxBundleBytes = 64u << 20;
  size_t maxWorkloadsPerHost = 65536;
  std::string name;  // this controller's name in FleetStatus
};

class ControllerCore {
 public:
  ControllerCore(Store& store, ControllerOptions options);
  ~ControllerCore();
  ControllerCore(const ControllerCore&) = delete;
  ControllerCore& operator=(const ControllerCore&) = delete;

  // The bundle and the last-known inventory from the store (hosts start
  // disconnected; their workloads are served until the TTL runs out). On
  // a shared store it then follows the other controllers' writes.
  Status load();
  // The thread of keepalives, silent peers, the TTL and the store writes.
  void start();
  // Stops the thread and writes the inventory one last time.
  void stop();

  // kInvalidInput with every diagnostic; kTooLarge over maxBundleBytes.
  Result<v1::PushPolicyResponse> push(const v1::PushPolicyRequest& request);

  // A stream's hello: the host replaces any older stream of it, reports
  // its workloads, and gets its snapshot on `sink`. Returns the session.
  // kInvalidInput for a hello without a valid host name or reporting
  // another host's workloads.
  Result<uint64_t> connect(const v1::AgentHello& hello, std::shared_ptr<AgentSink> sink,
                           const std::string& peer);
  // Every later message of the session. An error ends the stream:
  // kInvalidInput for a second hello or another host's workload (the
  // service refuses those first, as PERMISSION_DENIED), kUnavailable for a
  // session already replaced. `readAt`: when the stream read it (default:
  // now); the host's silence counts from there, and a read that waited
  // long for the core marks the controller as backlogged (see tick()).
  Status received(uint64_t session, const v1::AgentMessage& message,
                  std::chrono::steady_clock::time_point readAt = {});
  // The stream ended; a session already replaced is ignored. Safe from any
  // thread and any gRPC callback (it does not take the core's lock).
  void disconnected(uint64_t session);

  v1::FleetStatus fleetStatus() const;
  v1::ListWorkloadsResponse fleetWorkloads(const std::string& host) const;
  // revision 0: the one in force. kNotFound for a revision never pushed.
  Result<v1::RolloutProgress> rollout(uint64_t revision) const;
  // Waits until something a rollout depends on changes (an ack, a
  // connection) after `epoch`, or until `deadline`; returns the epoch now.
  uint64_t waitForChange(uint64_t epoch, std::chrono::steady_clock::time_point deadline) const;
  uint64_t epoch() const;

  uint64_t revision() const;
  // Runs one round of the background work now (tests drive time this way
  // with short options). A connected host is silent, and its stream
  // closed, when nothing was read from it for kMissedKeepAlives periods
  // counted from its last read, or from the controller's last backlog if
  // later: while the controller is too busy to read promptly (a read
  // waited for the core, or this thread woke late), messages sitting in
  // its own queues are not the peer's silence.
  void tick();

 private:
  using Clock = std::chrono::steady_clock;
  struct Rec;
  struct Host;

  Status upsertLocked(Host& host, v1::Workload w);
  void removeLocked(Host& host, const std::string& name);
  void fanOutLocked(const Rec& rec, bool appChanged = false);
  void retractLocked(const Rec& rec);
  void refreshInterestLocked(Host& host);
  void reconcileLocked(Host& host, const v1::AgentHello& hello);
  Outgoing snapshotLocked(Host& host);
  bool wantsLocked(Host& host, const std::string& app) const;
  const std::set<Host*>& wantersLocked(const std::string& app);
  std::vector<const Rec*> desiredLocked(Host& host) const;
  void syncLocked(Host& host);
  void sendLocked(Host& host, Outgoing message);
  void dropSessionLocked(Host& host);
  void installBundleLocked(v1::PolicyRevision bundle);
  uint32_t distributeBundleLocked(const v1::PolicyRevision& bundle);
  Result<v1::PushPolicyResponse> pushShared(v1::PolicyRevision next, const std::string& hash,
                                            v1::PushPolicyResponse response);
  // Shared stores: the other controllers' writes, and this one's own.
  void touchLocked(Host& host);
  StoredHost storedLocked(const Host& host) const;
  void applyStoredHostLocked(StoredHost stored);
  void hostGoneLocked(const std::string& name);
  void onBundle(v1::PolicyRevision bundle);
  void onReload(SharedStore::Contents contents);
  std::optional<std::string> flushHosts();
  void runStore();
  void processDisconnects();
  std::vector<StoredHost> inventoryLocked() const;
  void run();

  Store& store_;
  SharedStore* shared_;   // store_.shared()
  std::string instance_;  // shared_->instance()
  ControllerOptions options_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  uint64_t epoch_ = 0;

  std::mutex pushMu_;  // one push at a time (validation and store outside mu_)
  std::optional<v1::PolicyRevision> bundle_;
  SharedBytes bundleBytes_;  // bundle_ encoded, shared by every host's message
  std::string bundleHash_;
  SpanIndex span_;
  std::set<std::string> targets_;  // hosts the current revision was sent to

  std::map<std::string, std::unique_ptr<Host>> hosts_;
  std::unordered_map<uint64_t, Rec*> recs_;
  std::map<std::string, std::set<Rec*>> byApp_;
  // app -> the hosts whose apps select it, filled on first use per app and
  // kept current by refreshInterestLocked: a workload change visits only
  // the hosts that select it, not the whole fleet.
  std::unordered_map<std::string, std::set<Host*>> wanters_;
  std::map<std::string, Rec*> addrOwner_;
  std::unordered_map<uint64_t, Host*> sessions_;
  uint64_t nextId_ = 1;
  bool dirty_ = false;
  std::set<std::string> dirtyHosts_;    // shared store: records to write
  std::vector<std::string> toRelease_;  // shared store: records another controller took
  Clock::time_point lastSave_{};
  Clock::time_point lastKeepAlive_{};
  Clock::time_point backlogAt_{};  // the last time a read or the run loop was late
  void noteLatenessLocked(Clock::duration late, Clock::time_point now);

  std::mutex disconnectMu_;  // taken alone, never with mu_ held... see .cpp
  std::vector<uint64_t> pendingDisconnects_;

  std::mutex runMu_;
  std::condition_variable runCv_;
  bool stopping_ = false;
  std::thread thread_;
  std::thread storeThread_;    // shared stores: writes and reloads
  bool storeFailing_ = false;  // on storeThread_ only
};

// "sha256:<hex>" of the files' names and contents: the same formula as the
// agent's, so both name one bundle alike.
std::string bundleHash(const google::protobuf::RepeatedPtrField<v1::PolicyFile>& files);

}  // namespace bulkhead::controller
