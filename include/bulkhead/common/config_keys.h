// Config files' keys mirror the command-line flags without their dashes
// (`log-group: 1771`), and may be spelled in camelCase (`logGroup`,
// `tlsClientCA`). One mapping for the agent's and the controller's files.
#pragma once

#include <string>
#include <string_view>

namespace bulkhead::common {

// A camelCase key as the flag's dashed name: "tlsClientCA" -> "tls-client-ca",
// "caFile" -> "ca-file", "CAFile" -> "ca-file"; dashed keys come back as given.
std::string dashedKey(std::string_view key);

}  // namespace bulkhead::common
