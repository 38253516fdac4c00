// The flow actions' names: the one place that spells them.
#include "bulkhead/flows/event.h"

namespace bulkhead::flows {

namespace {

constexpr FlowAction kActions[] = {
    FlowAction::kDeny,         FlowAction::kAudit, FlowAction::kSpoof,   FlowAction::kQuarantine,
    FlowAction::kUnregistered, FlowAction::kLog,   FlowAction::kAnomaly, FlowAction::kSummary};

}  // namespace

const char* flowActionName(FlowAction action) {
  switch (action) {
    case FlowAction::kDeny:
      return "deny";
    case FlowAction::kAudit:
      return "audit";
    case FlowAction::kSpoof:
      return "spoof";
    case FlowAction::kQuarantine:
      return "quarantine";
    case FlowAction::kUnregistered:
      return "unregistered";
    case FlowAction::kLog:
      return "log";
    case FlowAction::kAnomaly:
      return "anomaly";
    case FlowAction::kSummary:
      return "summary";
  }
  return "unknown";
}

std::optional<FlowAction> parseFlowAction(std::string_view name) {
  for (const FlowAction a : kActions)
    if (name == flowActionName(a)) return a;
  return std::nullopt;
}

}  // namespace bulkhead::flows
