// `bulkhead graph`: who may talk to whom. Apps, Services and external
// networks as nodes; edges for what the policy allows (solid), what
// GlobalPolicies forbid (dashed) and, from flow events, what was attempted
// and denied (red, with counts). Rendered as Graphviz DOT, Mermaid, or SVG
// (DOT through Graphviz's `dot -Tsvg`). Deterministic output.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/insight/destinations.h"
#include "bulkhead/insight/flow_log.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::insight {

enum class NodeKind { kApp, kService, kNetwork };
enum class EdgeKind { kAllowed, kForbidden, kDenied };

struct GraphNode {
  std::string id;  // "app:billing", "svc:dns", "net:198.51.100.0/24"
  std::string label;
  NodeKind kind = NodeKind::kApp;
};

struct GraphEdge {
  std::string from, to;  // node ids
  EdgeKind kind = EdgeKind::kAllowed;
  std::string label;   // ports, policy name, or "N denied"
  uint64_t count = 0;  // kDenied: attempts
};

struct Graph {
  std::vector<GraphNode> nodes;  // sorted by id
  std::vector<GraphEdge> edges;  // sorted by (from, to, kind)
};

class GraphBuilder {
 public:
  explicit GraphBuilder(const policy::Bundle& bundle);
  void addFlow(const FlowRecord& r);  // deny/audit events only count
  Graph build() const;

 private:
  const policy::Bundle& bundle_;
  DestinationIndex index_;
  std::map<std::pair<std::string, std::string>, uint64_t> denied_;  // (app, node id) -> attempts
  std::map<std::string, std::string> flowNodes_;  // node id -> label, for addresses
};

std::string toDot(const Graph& g);
std::string toMermaid(const Graph& g);
// DOT to SVG through Graphviz's `dot` (on PATH). kUnavailable when it is
// not installed; kInternal when it fails.
Result<std::string> dotToSvg(const std::string& dot);

}  // namespace bulkhead::insight
