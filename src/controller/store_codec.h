// What the file store and the etcd store write alike: a host's fields as a
// HostStatus, and two serialized messages framed as one value. One codec,
// so both stores name a host's fields the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bulkhead/controller/store.h"
#include "bulkhead/v1/controller.pb.h"

namespace bulkhead::controller {

// host, agent version, acked revision, last error and last seen (RFC 3339).
void toHostStatus(const StoredHost& host, v1::HostStatus* out);
// The same fields back; a last seen that does not parse is 0.
StoredHost fromHostStatus(const v1::HostStatus& status);

// u64 little endian.
void appendU64(std::string& out, uint64_t v);
uint64_t readU64(std::string_view eightBytes);

// `a`'s length (u64), `a`, then `b`.
std::string joinFramed(std::string_view a, std::string_view b);
// nullopt when `value` is shorter than its frame says.
std::optional<std::pair<std::string_view, std::string_view>> splitFramed(std::string_view value);

}  // namespace bulkhead::controller
