// Limits on everything a user controls, so that hostile or broken input
// cannot exhaust the agent's memory. Exceeding one is a validation error.
#pragma once

#include <cstddef>

namespace bulkhead::policy::limits {

inline constexpr size_t kMaxFileBytes = 64u << 20;     // one YAML file
inline constexpr size_t kMaxBundleBytes = 256u << 20;  // all files of one bundle
inline constexpr size_t kMaxFiles = 10000;             // files in a directory tree
inline constexpr size_t kMaxDocuments = 200000;        // YAML documents in a bundle
inline constexpr size_t kMaxNameLength = 63;           // DNS label, like Kubernetes names
inline constexpr size_t kMaxLabels = 64;               // labels per object / selector
inline constexpr size_t kMaxLabelKeyLength = 63;
inline constexpr size_t kMaxLabelValueLength = 63;
inline constexpr size_t kMaxEndpoints = 1024;         // endpoints per service
inline constexpr size_t kMaxCidrsPerService = 65536;  // summed over its endpoints
inline constexpr size_t kMaxPortsPerList = 1024;
inline constexpr size_t kMaxRulesPerObject =
    1024;                                        // egress rules of an App, rules of a GlobalPolicy
inline constexpr size_t kMaxRefsPerRule = 4096;  // to: names
inline constexpr size_t kMaxCidrsPerRule = 65536;      // toCIDRs
inline constexpr size_t kMaxInterfaces = 16;           // per workload
inline constexpr size_t kMaxAddresses = 64;            // per workload
inline constexpr size_t kMaxInterfaceNameLength = 15;  // IFNAMSIZ - 1
inline constexpr size_t kMaxYamlDepth = 32;            // nesting of a document
// Nodes that YAML aliases stand for, summed over every alias of every
// document of every file of one bundle (a push, a validate): bounds what a
// bundle can expand to, however many documents it has (each document is
// also bounded on its own, see yaml_tree.h).
inline constexpr size_t kMaxAliasNodesPerBundle = 1u << 20;
// A workload name "<namespace>/<pod>": a DNS label, '/', a DNS subdomain.
inline constexpr size_t kMaxWorkloadNameLength = 63 + 1 + 253;

}  // namespace bulkhead::policy::limits
