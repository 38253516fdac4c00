#include <string>
#include <string_view>

#include "bulkhead/flows/event.h"

namespace bulkhead::flows {

std::optional<PrefixInfo> parsePrefix(std::string_view prefix) {
  // The compiler writes "bh:<action>" or "bh:<action>:<reason>" (see
  // compiler::logPrefix); the kernel may hand it back NUL-padded.
  const auto nul = prefix.find('\0');
  if (nul != std::string_view::npos) prefix = prefix.substr(0, nul);
  if (prefix.substr(0, 3) != "bh:") return std::nullopt;
  prefix.remove_prefix(3);
  const auto colon = prefix.find(':');
  const auto action = parseFlowAction(prefix.substr(0, colon));
  // The kernel's rules log these; anomaly and summary are the agent's own.
  if (!action || *action == FlowAction::kAnomaly || *action == FlowAction::kSummary)
    return std::nullopt;
  PrefixInfo out;
  out.action = *action;
  if (colon != std::string_view::npos) out.reason = std::string(prefix.substr(colon + 1));
  return out;
}

std::string protoName(uint8_t proto) {
  switch (proto) {
    case 1:
      return "icmp";
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 33:
      return "dccp";
    case 58:
      return "icmpv6";
    case 132:
      return "sctp";
    case 136:
      return "udplite";
  }
  return std::to_string(proto);
}

}  // namespace bulkhead::flows
