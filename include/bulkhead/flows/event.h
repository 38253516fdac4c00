// Denied-flow events (docs/flows.md): what the NFLOG reader decodes, what the
// folding stage emits, what exporters format. Plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bulkhead/common/time_format.h"
#include "bulkhead/policy/address.h"

namespace bulkhead::flows {

// Wall-clock time: when an attempt happened, as events report it. (The
// agent's intervals and deadlines use common::SteadyClock.)
using WallClock = common::WallClock;

// What the kernel (or the agent) did with an attempt: a closed set. Events
// name it in lower case ("deny"); log prefixes carry the first six.
enum class FlowAction : uint8_t {
  kDeny,          // refused by policy (the default deny or a deny rule)
  kAudit,         // would be refused; audit mode let it pass
  kSpoof,         // source address not the workload's own
  kQuarantine,    // from a quarantined workload (or the agent quarantined it)
  kUnregistered,  // from a workload interface the agent does not know
  kLog,           // a `log` rule matched
  kAnomaly,       // the agent's scan detector flagged the workload
  kSummary,       // the agent's report of attempts it could not deliver
};

// "deny", "audit", ..., "summary".
const char* flowActionName(FlowAction action);
// The inverse; nullopt for any other text.
std::optional<FlowAction> parseFlowAction(std::string_view name);

// One packet as NFLOG delivered it (nfnetlink_log attributes we use).
struct LoggedPacket {
  std::string prefix;       // NFULA_PREFIX: "bh:<action>[:<reason>]"
  uint32_t inIfindex = 0;   // NFULA_IFINDEX_INDEV: the workload's host-side interface
  uint16_t hwProtocol = 0;  // NFULA_PACKET_HDR hw_protocol (ethertype, host order)
  uint8_t family = 0;       // nfgenmsg family: NFPROTO_IPV4 / NFPROTO_IPV6 (inet tables)
  std::optional<WallClock::time_point> timestamp;  // NFULA_TIMESTAMP when present
  std::optional<uint32_t> seq;                     // NFULA_SEQ (per group) when enabled
  std::string payload;  // NFULA_PAYLOAD: the network header onward (copy range bytes)
};

// The parts of a packet's headers a flow event needs.
struct DecodedPacket {
  policy::IpAddr src, dst;
  uint8_t proto = 0;              // IP protocol (after IPv6 extension headers)
  uint16_t sport = 0, dport = 0;  // ports where the protocol has them, else 0
  uint8_t icmpType = 0, icmpCode = 0;
  bool hasPorts = false;   // TCP, UDP, UDP-Lite, SCTP, DCCP with their port fields present
  bool truncated = false;  // headers shorter than they claim; what could be read is filled
};

// Decodes an IPv4 or IPv6 packet; nullopt when not even the addresses can be
// read (garbage, unknown version).
std::optional<DecodedPacket> decodePacket(std::span<const uint8_t> packet);

// "tcp", "udp", "icmp", "icmpv6", "sctp", ..., else the number.
std::string protoName(uint8_t proto);

// Action and reason from a log prefix ("bh:deny:globalpolicy/x/0" ->
// {kDeny, "globalpolicy/x/0"}); nullopt for prefixes that are not ours
// (including an agent-only action such as "bh:summary").
struct PrefixInfo {
  FlowAction action = FlowAction::kDeny;
  std::string reason;
};
std::optional<PrefixInfo> parsePrefix(std::string_view prefix);

// One event (docs/flows.md), after folding identical attempts.
struct FlowEvent {
  WallClock::time_point time;  // first attempt folded into it
  std::string host;
  FlowAction action = FlowAction::kDeny;
  std::string app, workload;  // "" when the interface belongs to no workload (any more)
  policy::IpAddr src, dst;
  uint16_t sport = 0, dport = 0;
  std::string proto;  // protoName()
  // default, globalpolicy/<name>/<index>, unregistered, or "" (spoof, quarantine)
  std::string reason;
  uint64_t count = 1;  // attempts folded into this event
  // Evidence of an `anomaly` event, in order (distinct, window_seconds,
  // sample, ...); empty for every other action.
  std::vector<std::pair<std::string, std::string>> fields;
};

}  // namespace bulkhead::flows
