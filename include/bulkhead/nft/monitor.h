// Drift detection: a netlink socket subscribed to nf_tables notifications
// (NFNLGRP_NFTABLES) that reports changes to `table inet <table>` made by
// anyone but our own writer, so the agent can restore the table at once.
//
// Own vs foreign: the kernel stamps every nf_tables notification with the
// netlink port id of the socket whose batch made the change (nlmsg_pid), and
// port ids are unique per network namespace while a socket is open. The agent
// passes its writer's port id (MnlKernel::portId()) to ignorePortId(); every
// other port id is foreign. Port id 0 (the kernel itself) counts as foreign.
// The committing process (NFT_MSG_NEWGEN's NFTA_GEN_PROC_PID / _NAME) only
// names the culprit: it is the kernel-global id of the sending *thread*, so
// it is not comparable with getpid() (threads, pid namespaces).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/nft/netlink_socket.h"

namespace bulkhead::nft {

struct TableEvent {
  enum class Kind {
    kForeignChange,  // someone else changed or deleted the table
    kLostEvents,     // the socket overflowed: check the table in full
  };
  Kind kind = Kind::kForeignChange;
  // "delete chain inet bulkhead app_x by pid 1234 (nft)": the widest (up to
  // three) changes of one commit, then " (+N more)" for the rest.
  std::string what;
  uint32_t portId = 0;  // netlink port id of the committer (0: the kernel)
  uint32_t pid = 0;     // committing thread (kernel-global id), 0 if unknown
  std::string process;  // its comm, "" if unknown
  size_t changes = 0;   // notifications for the table in that commit
};

// One nf_tables notification, decoded. Pure: exposed for unit tests.
struct Notification {
  enum class Kind {
    kIgnored,      // not nf_tables, another table or family, or not a change
    kTableChange,  // a change to `inet <table>` (or to its contents)
    kGeneration,   // NFT_MSG_NEWGEN: the end of one commit
  };
  Kind kind = Kind::kIgnored;
  uint32_t portId = 0;   // nlmsg_pid: the socket that made the change
  std::string what;      // kTableChange: "add rule inet bulkhead app_x handle 7"
  int rank = 0;          // kTableChange: how much it covers (table > chain/set > rule > element)
  uint32_t procPid = 0;  // kGeneration: NFTA_GEN_PROC_PID, 0 if absent
  std::string procName;  // kGeneration: NFTA_GEN_PROC_NAME
};

// Decodes one netlink message (header included, `len` bytes available).
Notification parseNotification(const void* msg, size_t len, const std::string& table);

// The monitor as the writer's side sees it. The kernel builds one
// notification per changed object and element for as long as anyone listens
// to NFNLGRP_NFTABLES, the agent's own monitor included: about half of a
// 100,000-element push. Around its own large transactions the agent leaves
// the group (pause/resume), and the kernel builds none; what others commit
// meanwhile goes unheard, so the writer compares generations afterwards and
// calls reportUnheard() when someone else may have committed.
class NotificationGate {
 public:
  virtual ~NotificationGate() = default;
  // Leaves the notification group; calls nest.
  virtual void pause() = 0;
  // Joins it again once every pause() is matched.
  virtual void resume() = 0;
  // The next wait() reports kLostEvents with `what`: the caller owes a check
  // of the table (by generation, then content).
  virtual void reportUnheard(std::string what) = 0;
};

class TableMonitor : public NotificationGate {
 public:
  static constexpr int kDefaultRcvBufBytes = 8 * 1024 * 1024;

  // Opens NETLINK_NETFILTER in the calling thread's network namespace and
  // joins NFNLGRP_NFTABLES. kUnavailable on failure. `rcvBufBytes` sizes the
  // socket's receive buffer (tests shrink it to provoke overflows).
  static Result<std::unique_ptr<TableMonitor>> open(std::string table,
                                                    int rcvBufBytes = kDefaultRcvBufBytes);

  TableMonitor(const TableMonitor&) = delete;
  TableMonitor& operator=(const TableMonitor&) = delete;

  // Our own writer's netlink port id(s): changes made through them are ours,
  // not drift. Safe to call from another thread than wait()'s. Call it before
  // the writer's first commit.
  void ignorePortId(uint32_t portId);

  // Waits up to timeoutMs for notifications; returns one kForeignChange per
  // foreign commit that touched `inet <table>`, or kLostEvents when the
  // socket overflowed (the caller must then check the table in full; reading
  // goes on). Empty on timeout. Returns as soon as a commit is complete.
  Result<std::vector<TableEvent>> wait(int timeoutMs);

  // For poll()-based callers: readable when wait(0) may have something.
  int fd() const;
  uint32_t portId() const;

  // NotificationGate. Safe to call from another thread than wait()'s.
  void pause() override;
  void resume() override;
  void reportUnheard(std::string what) override;

 private:
  TableMonitor(NetlinkSocket socket, std::string table);

  struct Pending {  // foreign changes of a commit whose NEWGEN is still due
    bool active = false;
    uint32_t portId = 0;
    std::vector<std::pair<int, std::string>> top;  // (rank, what), widest first
    size_t changes = 0;
  };

  bool ignored(uint32_t portId);
  // What pause/resume and reportUnheard left for wait(): a kLostEvents event,
  // or an error while the group cannot be joined again.
  Status takeGateEvents(std::vector<TableEvent>& out);

  // Reads what is queued now, without blocking; an error only when the
  // socket itself fails.
  Status drain(std::vector<TableEvent>& out);
  void handle(const Notification& n, std::vector<TableEvent>& out);
  void flushPending(std::vector<TableEvent>& out, uint32_t pid, const std::string& process);

  NetlinkSocket socket_;
  std::string table_;
  Pending pending_;
  std::mutex ignoredMutex_;
  std::vector<uint32_t> ignoredPortIds_;
  std::mutex gateMutex_;  // guards the three below
  int paused_ = 0;
  bool rejoin_ = false;  // resume() could not join the group again
  std::string unheard_;  // reportUnheard()'s reasons, "; "-joined
};

}  // namespace bulkhead::nft
