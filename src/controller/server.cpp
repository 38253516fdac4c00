#include "bulkhead/controller/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include "bulkhead/common/fd.h"
#include "bulkhead/common/grpc_server_tls.h"
#include "bulkhead/common/unix_socket.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::controller {

namespace {

Status prepareUnixSocket(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return makeError(ErrorCode::kIo, "--listen: cannot create " + dir, errno);
  }
  return common::replaceStaleSocket(path, "controller");
}

}  // namespace

ControllerOptions controllerOptions(const ControllerConfig& config, std::string name) {
  ControllerOptions options;
  options.hostTtl = std::chrono::seconds(config.hostTtlSeconds);
  options.maxBundleBytes = config.maxBundleBytes;
  options.name = std::move(name);
  return options;
}

Result<std::unique_ptr<grpc::Server>> startServer(ControllerService& service,
                                                  const ControllerConfig& config) {
  auto endpoint = common::parseEndpoint(config.listen, kControllerListenSchemes, "--listen");
  if (!endpoint) return endpoint.takeError();
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  const int maxMessage = int(std::min<size_t>(config.maxBundleBytes + (1u << 20), INT32_MAX));
  builder.SetMaxReceiveMessageSize(maxMessage);
  builder.SetMaxSendMessageSize(maxMessage);
  if (endpoint->scheme == common::Scheme::kUnix) {
    if (auto st = prepareUnixSocket(endpoint->path); !st) return st.takeError();
    builder.AddListeningPort(endpoint->grpcTarget(), grpc::InsecureServerCredentials());
  } else {
    auto tls =
        common::mutualTlsServerCredentials(config.tlsCert, config.tlsKey, config.tlsClientCa);
    if (!tls) return tls.takeError();
    builder.AddListeningPort(endpoint->grpcTarget(), *tls);
  }
  auto server = builder.BuildAndStart();
  if (!server)
    return makeError(ErrorCode::kUnavailable,
                     "cannot start the gRPC server on " + config.listen + " (in use?)");
  // Over a unix socket the hello's host is taken as given: only root and
  // the socket's group may connect.
  if (endpoint->scheme == common::Scheme::kUnix && ::chmod(endpoint->path.c_str(), 0660) != 0) {
    server->Shutdown();
    return makeError(ErrorCode::kIo, "chmod 0660 " + endpoint->path, errno);
  }
  return server;
}

Result<v1::PushPolicyResponse> pushPolicyDir(ControllerCore& core, const std::string& dir,
                                             size_t maxBytes) {
  std::vector<policy::Diagnostic> errors;
  auto files = policy::readSourceFiles({dir}, errors);
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors)
      msg += (msg.empty() ? "" : "\n") + e.toString();
    return makeError(ErrorCode::kInvalidInput, msg);
  }
  v1::PushPolicyRequest request;
  size_t total = 0;
  for (auto& f : files) {
    total += f.name.size() + f.content.size();
    auto* out = request.add_files();
    out->set_name(std::move(f.name));
    out->set_content(std::move(f.content));
  }
  if (total > maxBytes)
    return makeError(ErrorCode::kTooLarge, dir + ": " + std::to_string(total) +
                                               " bytes of policy is over the limit of " +
                                               std::to_string(maxBytes));
  return core.push(request);
}

}  // namespace bulkhead::controller
