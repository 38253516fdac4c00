// bulkhead-agent's settings (SPEC §3): flags, and a YAML config file whose
// keys mirror the flags without dashes (`log-group: 1771`). Flags win.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"

namespace bulkhead::agent {

struct AgentConfig {
  std::string configFile;
  std::vector<std::string> listen;  // unix:///path or tcp://host:port
  std::string tlsCert, tlsKey, tlsClientCa;
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
  std::string policiesDir;              // static policy, for hosts without a controller
  uint32_t resyncSeconds = 30;          // periodic full check of the table
  uint64_t maxBundleBytes = 64u << 20;  // a push larger than this: RESOURCE_EXHAUSTED
  // Scan detection on denied attempts (docs/flows.md): `anomaly` events,
  // and with autoQuarantine the scanning workload is quarantined.
  bool scanDetection = true;
  bool autoQuarantine = false;
  uint32_t scanHosts = 20;            // distinct destinations on one port
  uint32_t scanPorts = 15;            // distinct ports on one destination
  uint32_t scanWindowSeconds = 60;    // sliding window
  uint32_t quarantineSeconds = 1800;  // automatic quarantine; doubles when caught again
};

inline constexpr const char* kDefaultListen = "unix:///run/bulkhead/agent.sock";

// Parses argv (without argv[0]), reading --config first when given. Errors
// are kInvalidInput with the flag or file:line at fault. Without any
// --listen, the agent listens on kDefaultListen.
Result<AgentConfig> parseAgentArgs(const std::vector<std::string>& argv);

}  // namespace bulkhead::agent
