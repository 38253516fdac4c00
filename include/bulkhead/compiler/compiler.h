// The compiler: policy + workloads -> Ruleset. Pure: no kernel, no I/O. It
// implements the evaluation order of docs/policy.md for traffic a workload sends
// through the host (forward hook) and to the host itself (input hook).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::compiler {

struct CompileOptions {
  std::string table = "bulkhead";
  uint16_t logGroup = 1771;
  // Per input interface (so per workload), shared by all of its log points:
  // a workload flooding denials spends its own budget, not the others'.
  uint32_t logRatePerSecond = 100;
  uint32_t logBurst = 200;
  // nft interface patterns ("veth*", "tap0"): an interface that matches one
  // but belongs to no registered workload is dropped before conntrack, in
  // both directions of policing. Empty: such interfaces are not touched.
  std::vector<std::string> workloadInterfacePatterns;
  // Accept DHCP / DHCPv6 from workloads to the host before policy: a VM that
  // gets its address from the hypervisor would otherwise never get one.
  bool allowDhcpToHost = true;
};

// Log prefixes: "bh:<action>:<reason>", action one of deny, audit, spoof,
// quarantine, log, unregistered; reason "default",
// "globalpolicy/<name>/<index>", "unregistered", or empty for spoof and
// quarantine. The flow reader parses them back.
//
// Every logging point is a pair of rules with the same comment (the reason,
// or "spoof"/"quarantine"/"unregistered"): `<match> update @log_budget {
// iifname limit ... } log ...` then `<match> counter [verdict]`. The counters
// of the rules that carry both a comment and a counter count every attempt
// the feed reports on ("seen" in status).
inline constexpr const char* kLogPrefixTag = "bh:";
std::string logPrefix(const std::string& action, const std::string& reason);

// Names of the objects in the table (stable: scripts and the diff rely on them).
std::string appChainName(const std::string& app);
std::string appSetName(const std::string& app, Family family);
std::string globalSetName(const std::string& policy, size_t ruleIndex, Family family);
std::string stagedSetName(const std::string& app);  // st_<app>
inline constexpr const char* kDispatchMap = "dispatch";
// Interfaces registered since the last promotion (see IncrementalCompiler)
// reach their app chain through these instead of the dispatch map.
inline constexpr const char* kStagedSet = "staged";
inline constexpr const char* kStagedChain = "staged_dispatch";
inline constexpr const char* kQuarantineSet = "quarantine";
inline constexpr const char* kSource4Set = "src4";
inline constexpr const char* kSource6Set = "src6";
inline constexpr const char* kPreChain = "workload_pre";
// Every registered interface (staged ones included): their packets go
// through kRawChain before conntrack.
inline constexpr const char* kRegisteredSet = "registered";
inline constexpr const char* kRawChain = "workload_raw";
inline constexpr const char* kPreroutingChain = "prerouting";
// The per-interface log budgets (a dynamic set the datapath fills).
inline constexpr const char* kLogBudgetSet = "log_budget";
inline constexpr uint32_t kLogBudgetTimeoutSeconds = 60;
inline constexpr uint32_t kLogBudgetSize = 65536;
inline constexpr const char* kRejectChain = "deny_reject";
inline constexpr const char* kForwardChain = "forward";
inline constexpr const char* kInputChain = "input";

// Checks a --workload-interfaces pattern: 1-15 bytes of [A-Za-z0-9_.-],
// optionally ending in one `*` (then at least one byte before it).
Status validateInterfacePattern(const std::string& pattern);

// Workloads of other hosts (sent by a controller), by (host, name): their
// addresses count in appSelector services, `to: <App>` and GlobalPolicy
// selectors as local ones do. They have no interfaces, so they are never in
// the dispatch map, the source or staged sets, and nothing enforces them
// here; their addresses claim nothing (another host's business). An app
// that only remote workloads use gets no chain: it is only selectable.
using RemoteId = std::pair<std::string, std::string>;  // (host, name)
using RemoteWorkloads = std::map<RemoteId, policy::Workload>;

// Compiles a validated bundle plus the workloads registered through the API
// (appended to the bundle's own) and the remote ones. Fails only on
// inconsistencies validation should have caught (e.g. two workloads
// claiming one interface).
Result<Ruleset> compile(const policy::Bundle& bundle,
                        const std::vector<policy::Workload>& extraWorkloads,
                        const CompileOptions& options = {});
Result<Ruleset> compile(const policy::Bundle& bundle,
                        const std::vector<policy::Workload>& extraWorkloads,
                        const RemoteWorkloads& remotes, const CompileOptions& options = {});

}  // namespace bulkhead::compiler
