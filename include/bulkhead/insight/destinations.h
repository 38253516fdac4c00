// Names a flow's destination in the policy's own terms, for suggest and
// graph: a Service whose endpoints (or appSelector) cover the address and
// port, else the App whose workloads hold the address. Workload addresses
// come from the bundle's Workload documents and from the flow events
// themselves (an event's src is an address of its workload).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "bulkhead/insight/flow_log.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::insight {

// tcp/N, udp/N, icmp, icmpv6 for a record; nullopt for protocols a policy
// cannot name on their own (sctp, numbers).
std::optional<policy::PortSpec> portOf(const FlowRecord& r);

bool contains(const policy::Cidr& c, const policy::IpAddr& a);
bool covers(const policy::PortSpec& spec, const policy::PortSpec& p);

class DestinationIndex {
 public:
  explicit DestinationIndex(const policy::Bundle& bundle);

  // `addr` is an address of a workload of `app` (the src of its events).
  void learnSource(const policy::IpAddr& addr, const std::string& app);

  // The first Service by name covering dst and port; nullptr if none.
  const policy::Service* serviceFor(const policy::IpAddr& dst, const policy::PortSpec& port) const;
  // The App whose workloads hold dst; "" when none (or two apps claim it).
  std::string appFor(const policy::IpAddr& dst) const;

  // What serviceFor looks at for one destination, worked out once for all
  // its ports: the Services (by name) whose endpoints hold dst or whose
  // appSelector selects its App, each with the ports that go with it.
  struct Candidates {
    std::string app;  // appFor(dst)
    std::vector<std::pair<const policy::Service*, const std::vector<policy::PortSpec>*>> list;
    // serviceFor(dst, port), for the dst these were made for.
    const policy::Service* serviceFor(const policy::PortSpec& port) const;
  };
  Candidates candidatesFor(const policy::IpAddr& dst) const;

  const policy::Bundle& bundle() const { return bundle_; }

 private:
  bool selects(const policy::Selector& s, const std::string& app) const;

  const policy::Bundle& bundle_;
  std::vector<const policy::Service*> byName_;   // the bundle's Services by name
  std::map<policy::IpAddr, std::string> known_;  // from Workload documents
  struct IpHash {
    size_t operator()(const policy::IpAddr& a) const;
  };
  std::unordered_map<policy::IpAddr, std::set<std::string>, IpHash> learned_;  // event sources
};

}  // namespace bulkhead::insight
