// bulkhead-libvirt-hook: libvirt's qemu hook (/etc/libvirt/hooks/qemu.d/)
// that registers a domain's routed taps with the local agent when it starts
// and removes the registration when it stops. Only domains that carry the
// bulkhead metadata element are touched. Never calls back into libvirt;
// every agent call ends within the hook's budget. See docs/hooks.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bulkhead/hooks/agent_link.h"

namespace bulkhead::hooks {

inline constexpr const char* kMetadataNamespace = "urn:bulkhead:workload:1";
inline constexpr const char* kHookConfig = "/etc/bulkhead/hook.yaml";

// The workload a domain XML describes; nullopt when the domain has no
// <bulkhead:workload> metadata. `notes` gets one line per interface left
// out (not a routed tap). kInvalidInput for XML that does not parse (with
// line and column) or metadata that is incomplete.
Result<std::optional<v1::Workload>> workloadFromDomainXml(const std::string& xml,
                                                          std::vector<std::string>* notes);

// `agent:` of a hook config file; "" when the file does not exist.
Result<std::string> agentFromHookConfig(const std::string& path);

struct HookOutcome {
  int exitCode = 0;
  std::string err;  // stderr
};

// One hook run: `args` as libvirt passes them (domain, operation,
// sub-operation, extra), the domain XML from stdin.
HookOutcome runLibvirtHook(const std::vector<std::string>& args, const std::string& xml,
                           const std::string& envAgent, const std::string& configPath,
                           const AgentConnector& connect);

}  // namespace bulkhead::hooks
