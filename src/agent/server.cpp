// Listeners of the agent's gRPC server.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpcpp/security/auth_metadata_processor.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "bulkhead/agent/service.h"
#include "bulkhead/common/escape.h"

namespace bulkhead::agent {

namespace {

Result<std::string> readPem(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) return makeError(ErrorCode::kInvalidInput, std::string(flag) + ": cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().find("-----BEGIN") == std::string::npos)
    return makeError(ErrorCode::kInvalidInput, std::string(flag) + ": " + path + " is not PEM");
  return ss.str();
}

// A socket file left by an agent that died is replaced; one a live process
// still accepts on is not (two agents on one table would fight), and a path
// that is not a socket is never deleted.
Status prepareUnixSocket(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return makeError(ErrorCode::kInvalidInput, "--listen: socket path too long: " + path);
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return makeError(ErrorCode::kIo, "--listen: cannot create " + dir, errno);
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return makeError(ErrorCode::kIo, "--listen: " + path, errno);
  }
  if (!S_ISSOCK(st.st_mode))
    return makeError(ErrorCode::kInvalidInput, "--listen: " + path + " exists and is not a socket");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return makeError(ErrorCode::kIo, "socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  if (rc == 0)
    return makeError(ErrorCode::kUnavailable,
                     "--listen: another process is serving on " + path + " (another agent?)");
  if (err != ECONNREFUSED) return makeError(ErrorCode::kIo, "--listen: probing " + path, err);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return makeError(ErrorCode::kIo, "--listen: removing stale " + path, errno);
  return {};
}

// --tls-allowed-names: runs on every call of a TLS connection, after the
// handshake has verified the certificate against --tls-client-ca. A trusted
// CA may sign for many parties; only the listed ones may drive the agent.
class AllowedNames : public grpc::AuthMetadataProcessor {
 public:
  explicit AllowedNames(std::vector<std::string> names) : names_(std::move(names)) {}
  // Cheap and non-blocking: checked on gRPC's own thread.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata&, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    std::string presented;
    for (const char* property :
         {GRPC_PEER_DNS_PROPERTY_NAME, GRPC_PEER_URI_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
      for (const auto& value : context->FindPropertyValues(property)) {
        const std::string name(value.data(), value.size());
        if (std::find(names_.begin(), names_.end(), name) != names_.end()) return grpc::Status::OK;
        presented += (presented.empty() ? "" : ", ") + escapeForLog(name, 128);
      }
    }
    // The names come from the client's certificate: escaped before logging.
    spdlog::warn("TLS client refused: certificate names [{}] not in --tls-allowed-names",
                 presented);
    return {grpc::StatusCode::PERMISSION_DENIED,
            "this client's certificate is not allowed here (--tls-allowed-names)"};
  }

 private:
  std::vector<std::string> names_;
};

}  // namespace

Result<std::unique_ptr<grpc::Server>> startServer(AgentService& service, const AgentConfig& config,
                                                  size_t maxMessageBytes) {
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(int(std::min<size_t>(maxMessageBytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(int(std::min<size_t>(maxMessageBytes, INT32_MAX)));
  std::vector<std::string> unixPaths;
  for (const auto& l : config.listen) {
    if (l.rfind("unix://", 0) == 0) {
      const std::string path = l.substr(7);
      if (path.empty() || path[0] != '/')
        return makeError(ErrorCode::kInvalidInput,
                         "--listen: unix:// needs an absolute path: " + l);
      if (auto st = prepareUnixSocket(path); !st) return st.takeError();
      builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
      unixPaths.push_back(path);
      continue;
    }
    // tcp://HOST:PORT: TLS with client-certificate verification, always.
    if (config.tlsCert.empty() || config.tlsKey.empty() || config.tlsClientCa.empty())
      return makeError(
          ErrorCode::kInvalidInput,
          "--listen " + l + ": TCP listeners need --tls-cert, --tls-key and --tls-client-ca");
    auto cert = readPem(config.tlsCert, "--tls-cert");
    if (!cert) return cert.takeError();
    auto key = readPem(config.tlsKey, "--tls-key");
    if (!key) return key.takeError();
    auto ca = readPem(config.tlsClientCa, "--tls-client-ca");
    if (!ca) return ca.takeError();
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = *ca;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    auto credentials = grpc::SslServerCredentials(ssl);
    if (!config.tlsAllowedNames.empty())
      credentials->SetAuthMetadataProcessor(std::make_shared<AllowedNames>(config.tlsAllowedNames));
    builder.AddListeningPort(l.substr(6), credentials);
  }
  auto server = builder.BuildAndStart();
  if (!server)
    return makeError(ErrorCode::kUnavailable,
                     "cannot start the gRPC server on the --listen addresses (in use?)");
  for (const auto& p : unixPaths) {
    // Local orchestration (root or the socket's group) only.
    if (::chmod(p.c_str(), 0660) != 0) {
      server->Shutdown();
      return makeError(ErrorCode::kIo, "chmod 0660 " + p, errno);
    }
  }
  return server;
}

}  // namespace bulkhead::agent
