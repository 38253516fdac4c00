// The kernel's connection tracking table, behind an interface passed to the
// agent core (as nft::NftKernel): quarantine deletes a workload's entries so
// that its live flows stop at once. The real one talks ctnetlink through
// libnetfilter_conntrack in the agent's network namespace; unit tests pass a
// fake that records the calls.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/policy/address.h"

struct nfct_handle;

namespace bulkhead::agent {

class ConntrackTable {
 public:
  virtual ~ConntrackTable() = default;
  // Deletes every entry with one of `addresses` as source or destination,
  // in either direction (original or reply). Returns how many it deleted.
  virtual Result<size_t> flush(const std::vector<policy::IpAddr>& addresses) = 0;
};

class NetfilterConntrack : public ConntrackTable {
 public:
  // Opens ctnetlink in the calling thread's network namespace.
  static Result<std::unique_ptr<NetfilterConntrack>> open();
  ~NetfilterConntrack() override;
  NetfilterConntrack(const NetfilterConntrack&) = delete;
  NetfilterConntrack& operator=(const NetfilterConntrack&) = delete;

  Result<size_t> flush(const std::vector<policy::IpAddr>& addresses) override;

 private:
  explicit NetfilterConntrack(nfct_handle* handle) : handle_(handle) {}
  nfct_handle* handle_;
};

}  // namespace bulkhead::agent
