// The real NftKernel: an nfnetlink socket (libmnl) in the network namespace
// of the thread that opens it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/nft/kernel.h"
#include "bulkhead/nft/netlink_socket.h"

struct nlmsghdr;

namespace bulkhead::nft {

class MnlKernel : public NftKernel {
 public:
  // Opens NETLINK_NETFILTER in the calling thread's current network
  // namespace. kUnavailable when that is impossible.
  static Result<std::unique_ptr<MnlKernel>> open();

  MnlKernel(const MnlKernel&) = delete;
  MnlKernel& operator=(const MnlKernel&) = delete;

  Status commit(const Batch& batch) override;
  Result<bool> tableExists(const std::string& name) override;
  Result<uint32_t> generation() override;
  // Dumps chains, sets, every element of the static sets and the rules, with
  // the ruleset generation unchanged across the dumps (else dumps again).
  Result<TableContent> readTable(const std::string& name) override;
  // The dumps readTable makes, each on its own: no generation check, and a
  // dump a commit interrupted is returned as read (see NftKernel).
  Result<TableContent> readDeclarations(const std::string& table) override;
  Result<std::vector<std::string>> readElements(const std::string& table,
                                                const std::string& set) override;
  uint32_t nextSeq(uint32_t count) override;

  // The netlink port id of this socket: the kernel stamps it on the
  // nf_tables notifications of our commits (see TableMonitor).
  uint32_t portId() const { return portId_; }

 private:
  MnlKernel(NetlinkSocket socket, uint32_t seed);
  Status growSendBuffer(size_t bytes);
  // Reads the replies to a batch sent; see commit().
  Status readCommitReplies(const Batch& batch);
  // What a dump that the kernel flagged NLM_F_DUMP_INTR (a commit moved the
  // ruleset generation during it) amounts to: a failure with EINTR (read
  // again), or what was read.
  enum class Interrupted { kFails, kAsRead };
  // Sends one NLM_F_DUMP request; every reply up to NLMSG_DONE goes to
  // `onReply`.
  Status dump(nlmsghdr* request, const std::string& what,
              const std::function<Status(const nlmsghdr*)>& onReply,
              Interrupted interrupted = Interrupted::kFails);
  Result<TableContent> dumpTable(const std::string& name);
  Result<TableContent> dumpDeclarations(const std::string& table, Interrupted interrupted);
  Result<std::vector<std::string>> dumpElements(const std::string& table, const std::string& set,
                                                Interrupted interrupted);

  NetlinkSocket socket_;
  uint32_t portId_;
  uint32_t seq_;
  size_t sendBuffer_ = 0;  // what SO_SNDBUF was last grown to
};

}  // namespace bulkhead::nft
