// The policy model (docs/policy.md): what the YAML loader produces, what the gRPC
// API (later) fills in, and what the compiler consumes. Plain values; every
// object remembers where it was defined so errors can name file:line:column.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/policy/address.h"

namespace bulkhead::policy {

struct SourceLoc {
  std::string file;  // "" for objects that came through the API
  int line = 0;      // 1-based; 0 when unknown
  int column = 0;    // 1-based

  std::string toString() const;  // "file:line:column" (or what is known of it)
};

// A diagnostic of the loader or validator: "file:line:column: message".
struct Diagnostic {
  SourceLoc loc;
  std::string message;

  std::string toString() const;
};

// Diagnostics one to a line, as an API error's message carries them.
std::string joinDiagnostics(const std::vector<Diagnostic>& diags);

using Labels = std::map<std::string, std::string>;

// A label selector: every key must be present with an equal value. An empty
// selector ({}) selects everything.
struct Selector {
  Labels matchLabels;
  bool matches(const Labels& labels) const;
};

// A reference to a Service or App by name, remembered with its position.
struct NameRef {
  std::string name;
  SourceLoc loc;
};

struct Endpoint {
  std::vector<Cidr> cidrs;
  std::vector<PortSpec> ports;  // empty: every protocol ("any")
};

struct Service {
  std::string name;
  Labels labels;
  SourceLoc loc;
  std::vector<Endpoint> endpoints;
  // A Service backed by workloads: the addresses of every registered workload
  // of every App (or app name used by a Workload) whose labels match.
  std::optional<Selector> appSelector;
  std::vector<PortSpec> ports;  // for appSelector; empty: "any"
};

enum class Mode : uint8_t { kEnforce, kAudit };
enum class DenyAction : uint8_t { kReject, kDrop };

struct EgressRule {
  SourceLoc loc;
  std::vector<NameRef> to;  // Services (or Apps: all of their workloads' addresses)
  std::vector<Cidr> toCIDRs;
  // For toCIDRs: the allowed ports (empty: any). For `to`: when given, narrows
  // each named service's own ports to the intersection.
  std::vector<PortSpec> ports;
};

struct App {
  std::string name;
  Labels labels;  // as written; effectiveLabels() adds the implicit app label
  SourceLoc loc;
  Mode mode = Mode::kEnforce;
  DenyAction denyAction = DenyAction::kReject;
  std::vector<EgressRule> egress;
  // True for an App the compiler made up for a workload whose app has no
  // document: default deny, no egress.
  bool implicit = false;

  Labels effectiveLabels() const;  // labels + {app: name}
};

enum class RuleAction : uint8_t { kDeny, kAllow, kLog };

struct GlobalRule {
  SourceLoc loc;
  RuleAction action = RuleAction::kDeny;
  Selector from;                       // over Apps
  std::vector<NameRef> to;             // Services or Apps by name
  std::optional<Selector> toSelector;  // over Services and Apps
  std::vector<Cidr> toCIDRs;
  std::vector<PortSpec> ports;  // narrows the destination; empty: as the destination says
};

struct GlobalPolicy {
  std::string name;
  Labels labels;
  SourceLoc loc;
  int32_t order = 1000;
  std::vector<GlobalRule> rules;
};

struct Workload {
  std::string name;
  Labels labels;
  SourceLoc loc;
  std::string app;
  std::vector<std::string> interfaces;
  std::vector<IpAddr> addresses;  // host addresses only
  bool quarantined = false;       // runtime state (API), never from YAML
};

// One policy bundle: everything one push (or one --policies directory) says.
struct Bundle {
  std::vector<Service> services;
  std::vector<App> apps;
  std::vector<GlobalPolicy> globalPolicies;
  std::vector<Workload> workloads;

  const Service* findService(const std::string& name) const;
  const App* findApp(const std::string& name) const;
};

}  // namespace bulkhead::policy
