// What bulkhead-controller runs around the core, in the library so that
// main() only wires: the gRPC server on --listen (mutual TLS on tcp://),
// and the --policies bundle pushed at start.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "bulkhead/common/result.h"
#include "bulkhead/controller/config.h"
#include "bulkhead/controller/core.h"
#include "bulkhead/controller/service.h"

namespace bulkhead::controller {

// Serves `service` on config.listen. A unix socket left by a controller
// that died is replaced; one a live process accepts on is not.
Result<std::unique_ptr<grpc::Server>> startServer(ControllerService& service,
                                                  const ControllerConfig& config);

// Pushes the bundle in `dir` (a no-op when it is the one in force).
// kInvalidInput with every diagnostic when it does not validate.
Result<v1::PushPolicyResponse> pushPolicyDir(ControllerCore& core, const std::string& dir,
                                             size_t maxBytes);

// The ControllerOptions a config asks for; `name` is this machine's.
ControllerOptions controllerOptions(const ControllerConfig& config, std::string name);

}  // namespace bulkhead::controller
