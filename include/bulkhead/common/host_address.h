// A workload's address as the API, the CLI and policy files take it: one
// host, written bare or with the host prefix (/32 for IPv4, /128 for IPv6).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bulkhead::common {

// The message for an address with any other prefix.
inline constexpr const char* kNotHostAddress = "is not a host address (no prefix, /32 or /128)";

// The address text without its host prefix; nullopt, with *why set to
// kNotHostAddress, when a prefix other than /32 (IPv4) or /128 (IPv6) is
// given. Whether the text is an address at all is the caller's parse.
std::optional<std::string> hostAddressText(std::string_view text, std::string* why);

}  // namespace bulkhead::common
