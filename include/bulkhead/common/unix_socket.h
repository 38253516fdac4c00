// A server's unix socket path before it listens: a socket file left by a
// process that died is replaced; one that a live process still accepts on is
// not (two agents on one table, or two controllers on one store, would
// fight); a path that is not a socket is never deleted. For the agent's and
// the controller's --listen.
#pragma once

#include <string>
#include <string_view>

#include "bulkhead/common/result.h"

namespace bulkhead::common {

// `server` names what would be serving there in the message ("agent").
// kUnavailable: a live process serves on `path`; kInvalidInput: not a
// socket; kIo: with errno.
Status replaceStaleSocket(const std::string& path, std::string_view server);

}  // namespace bulkhead::common
