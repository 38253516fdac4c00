#include "bulkhead/common/host_address.h"

namespace bulkhead::common {

std::optional<std::string> hostAddressText(std::string_view text, std::string* why) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::string(text);
  const bool v6 = text.find(':') != std::string_view::npos;
  if (text.substr(slash + 1) != (v6 ? "128" : "32")) {
    *why = kNotHostAddress;
    return std::nullopt;
  }
  return std::string(text.substr(0, slash));
}

}  // namespace bulkhead::common
