// bulkhead-agent's settings: flags, and a YAML config file whose keys mirror
// the flags without the leading dashes (`log-group: 1771`, or in camelCase
// `logGroup: 1771`). Flags win.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bulkhead/common/defaults.h"
#include "bulkhead/common/endpoint.h"
#include "bulkhead/common/result.h"

namespace bulkhead::agent {

struct AgentConfig {
  std::string configFile;
  std::vector<std::string> listen;  // unix:///path or tcp://host:port
  std::string tlsCert, tlsKey, tlsClientCa;
  // When not empty, a TCP client's certificate must carry one of these names
  // (a DNS or URI subjectAltName, or the subject CN); others get
  // PERMISSION_DENIED.
  std::vector<std::string> tlsAllowedNames;
  std::string stateDir = "/var/lib/bulkhead";
  std::string table = "bulkhead";
  uint16_t logGroup = 1771;
  // Kernel log limit per logging rule (events/s; burst twice that).
  uint32_t logRate = 100;
  // Agent-side limit per workload on exported events (events/s; burst twice that).
  uint32_t flowWorkloadRate = 200;
  // How often a summary event tells the SIEM what was not delivered.
  uint32_t flowSummarySeconds = 60;
  // unix:///dev/log | udp://HOST:PORT | tcp://HOST:PORT | tls://HOST:PORT |
  // journald; repeatable: every target gets every event. The first is the
  // primary: status's `exported` counts what it delivered.
  std::vector<std::string> syslog;
  std::string syslogTlsCa, syslogTlsCert, syslogTlsKey;
  std::string flowFormat = "rfc5424";
  std::string policiesDir;      // static policy, for hosts without a controller
  uint32_t resyncSeconds = 30;  // periodic full check of the table
  // nft patterns ("veth*"): matching interfaces of no workload are dropped.
  std::vector<std::string> workloadInterfaces;
  uint64_t maxBundleBytes = 64u << 20;  // a push larger than this: RESOURCE_EXHAUSTED
  // Scan detection on denied attempts (docs/flows.md): `anomaly` events,
  // and with autoQuarantine the scanning workload is quarantined.
  bool scanDetection = true;
  bool autoQuarantine = false;
  uint32_t scanHosts = 20;            // distinct destinations on one port
  uint32_t scanPorts = 15;            // distinct ports on one destination
  uint32_t scanWindowSeconds = 60;    // sliding window
  uint32_t quarantineSeconds = 1800;  // automatic quarantine; doubles when caught again
  // Diagnostic: false runs without the nftables event monitor, so drift is
  // found by the periodic check alone (tests of that check use it).
  bool driftEvents = true;
  // unix:// sockets: owned by this group, mode 0660, in a directory the
  // group can traverse; "": the agent's own group. Must name an existing group.
  std::string socketGroup;
  // The controllers this agent follows (unix:///path or tcp://HOST:PORT,
  // tried in order); empty: none, policy comes from pushes and --policies.
  std::vector<std::string> controllers;
  // The agent's client identity towards tcp:// controllers, and the CA that
  // signs theirs: all three are needed for tcp://.
  std::string controllerCa, controllerCert, controllerKey;
  // This agent's name in the fleet; "": the machine's hostname.
  std::string host;

  bool operator==(const AgentConfig&) const = default;
};

inline constexpr const char* kDefaultListen = common::kDefaultAgent;
// What --listen accepts: the local socket, and TCP (always with TLS).
inline constexpr common::Schemes kListenSchemes{common::Scheme::kUnix, common::Scheme::kTcp};
// What --controller accepts: a local socket, and TCP (always with TLS).
inline constexpr common::Schemes kControllerSchemes{common::Scheme::kUnix, common::Scheme::kTcp};

// Parses argv (without argv[0]), reading --config first when given. Errors
// are kInvalidInput with the flag or file:line at fault. Without any
// --listen, the agent listens on kDefaultListen.
Result<AgentConfig> parseAgentArgs(const std::vector<std::string>& argv);

// Checks the names in `config` that this host must know (the socket group),
// so that a typo stops the agent before it touches the kernel. kInvalidInput.
Status checkHostNames(const AgentConfig& config);

// `bulkhead-agent --help`: every flag, as in bulkhead-agent(8).
std::string_view agentUsage();

}  // namespace bulkhead::agent
