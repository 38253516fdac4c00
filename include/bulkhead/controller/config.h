// bulkhead-controller's settings: flags, and a YAML config file whose keys
// mirror the flags without the dashes (`host-ttl: 300`, or `hostTtl: 300`).
// Flags win over the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bulkhead/common/endpoint.h"
#include "bulkhead/common/result.h"

namespace bulkhead::controller {

inline constexpr const char* kDefaultListen = "tcp://0.0.0.0:7444";
inline constexpr const char* kDefaultStateDir = "/var/lib/bulkhead-controller";
inline constexpr uint32_t kDefaultHostTtlSeconds = 300;
inline constexpr const char* kDefaultEtcdPrefix = "/bulkhead/";
inline constexpr common::Schemes kControllerListenSchemes{common::Scheme::kUnix,
                                                          common::Scheme::kTcp};

struct ControllerConfig {
  std::string configFile;
  std::string listen = kDefaultListen;
  std::string tlsCert, tlsKey, tlsClientCa;
  std::string stateDir = kDefaultStateDir;
  bool stateDirSet = false;  // given by flag or file (an error with --etcd)
  // The shared store (docs/controller.md, "etcd"): empty for the embedded one.
  std::vector<std::string> etcdEndpoints;  // http://HOST:PORT or https://HOST:PORT
  std::string etcdCa, etcdCert, etcdKey;
  std::string etcdPrefix = kDefaultEtcdPrefix;
  std::string policiesDir;  // the initial bundle, pushed at start when it differs
  uint32_t hostTtlSeconds = kDefaultHostTtlSeconds;
  size_t maxBundleBytes = 64u << 20;
  bool operator==(const ControllerConfig&) const = default;
};

// argv without the program name. kInvalidInput with the flag (or
// file:line:column) in the message. A tcp:// listener needs --tls-cert,
// --tls-key and --tls-client-ca. --etcd and --state-dir exclude each other;
// --etcd-cert and --etcd-key go together.
Result<ControllerConfig> parseControllerArgs(const std::vector<std::string>& argv);

// --help's text.
const char* controllerUsage();

}  // namespace bulkhead::controller
