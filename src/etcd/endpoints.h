// Internal to src/etcd: one etcd endpoint URL, parsed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bulkhead/common/result.h"

namespace bulkhead::etcd {

struct EtcdEndpoint {
  bool tls = false;
  std::string host;  // a name or an address (IPv6 without brackets)
  uint16_t port = 0;

  // "host:port", an IPv6 host in brackets: gRPC's form.
  std::string hostPort() const;
  std::string url() const;
};

inline constexpr uint16_t kDefaultEtcdPort = 2379;

// "http://HOST[:PORT][/]" or "https://..."; HOST a name, IPv4 or [IPv6];
// PORT 2379 when left out. kInvalidInput naming the text otherwise.
Result<EtcdEndpoint> parseEndpointUrl(std::string_view text);

}  // namespace bulkhead::etcd
