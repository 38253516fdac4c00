// Listeners of the agent's gRPC server.
#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpcpp/security/auth_metadata_processor.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

#include "bulkhead/agent/config.h"
#include "bulkhead/agent/service.h"
#include "bulkhead/common/endpoint.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/common/fd.h"
#include "bulkhead/common/grpc_server_tls.h"
#include "bulkhead/common/unix_socket.h"

namespace bulkhead::agent {

namespace {

constexpr gid_t kNoGroup = gid_t(-1);

// The socket's directory must let the socket group reach the socket. One
// the agent creates is made 0750 and given the group; an existing one (a
// systemd RuntimeDirectory=, or a shared directory such as /run) is never
// changed, only checked: a group that cannot traverse it is an error.
Status prepareSocketDir(const std::string& dir, gid_t group) {
  if (::mkdir(dir.c_str(), group == kNoGroup ? 0755 : 0750) == 0) {
    if (group == kNoGroup) return {};
    // mkdir's mode is masked by the umask; set it exactly, on the directory
    // just made (never through a symlink swapped in meanwhile).
    const Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    const bool ok =
        fd && ::fchown(fd.get(), uid_t(-1), group) == 0 && ::fchmod(fd.get(), 0750) == 0;
    const int err = errno;
    if (!ok)
      return makeError(ErrorCode::kIo, "--socket-group: cannot give " + dir + " to the group", err);
    return {};
  }
  if (errno != EEXIST) return makeError(ErrorCode::kIo, "--listen: cannot create " + dir, errno);
  if (group == kNoGroup) return {};
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return makeError(ErrorCode::kIo, "--listen: " + dir, errno);
  const bool traversable = (st.st_mode & S_IXOTH) || (st.st_gid == group && (st.st_mode & S_IXGRP));
  if (!traversable)
    return makeError(ErrorCode::kInvalidInput,
                     "--socket-group: the group cannot reach the socket: " + dir +
                         " is neither group-owned and group-searchable nor searchable by others");
  return {};
}

// Without root the agent can give its socket only to a group it is in.
// Checked up front: under the unit, chown is outside the system-call
// filter, and the socket is born with the unit's Group= anyway.
Status checkCanUseGroup(const std::string& name, gid_t gid) {
  if (::geteuid() == 0 || ::getegid() == gid) return {};
  std::vector<gid_t> groups(size_t(std::max(::getgroups(0, nullptr), 0)));
  groups.resize(size_t(std::max(::getgroups(int(groups.size()), groups.data()), 0)));
  if (std::find(groups.begin(), groups.end(), gid) != groups.end()) return {};
  return makeError(ErrorCode::kInvalidInput,
                   "--socket-group " + name + ": the agent runs as uid " +
                       std::to_string(::geteuid()) +
                       " outside that group (under systemd, make it the unit's Group=)");
}

// A socket file left by an agent that died is replaced; one a live process
// still accepts on is not (two agents on one table would fight), and a path
// that is not a socket is never deleted.
Status prepareUnixSocket(const std::string& path, gid_t group) {
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return makeError(ErrorCode::kInvalidInput, "--listen: socket path too long: " + path);
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (auto st = prepareSocketDir(path.substr(0, slash), group); !st) return st;
  }
  return common::replaceStaleSocket(path, "agent");
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

// --socket-group: its gid (kNoGroup when not set), checked usable.
Result<gid_t> socketGroupId(const AgentConfig& config) {
  if (config.socketGroup.empty()) return kNoGroup;
  const ::group* g = ::getgrnam(config.socketGroup.c_str());
  if (!g)
    return makeError(ErrorCode::kInvalidInput,
                     "--socket-group: no group named \"" + config.socketGroup + "\"");
  const gid_t gid = g->gr_gid;
  if (auto st = checkCanUseGroup(config.socketGroup, gid); !st) return st.takeError();
  return gid;
}

// tcp://HOST:PORT (`listen`): TLS with client-certificate verification,
// always.
Result<std::shared_ptr<grpc::ServerCredentials>> tlsCredentials(const AgentConfig& config,
                                                                const std::string& listen) {
  if (config.tlsCert.empty() || config.tlsKey.empty() || config.tlsClientCa.empty())
    return makeError(
        ErrorCode::kInvalidInput,
        "--listen " + listen + ": TCP listeners need --tls-cert, --tls-key and --tls-client-ca");
  auto tls = common::mutualTlsServerCredentials(config.tlsCert, config.tlsKey, config.tlsClientCa);
  if (!tls) return tls.takeError();
  std::shared_ptr<grpc::ServerCredentials> credentials = std::move(*tls);
  if (!config.tlsAllowedNames.empty())
    credentials->SetAuthMetadataProcessor(std::make_shared<AllowedNames>(config.tlsAllowedNames));
  return credentials;
}

// Local orchestration (root or the socket's group) only. Under the unit the
// socket is born with the right group (the service's group), and chown is
// not even in its system-call filter: call it only when the group differs.
Status restrictSocket(const std::string& path, gid_t socketGid) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return makeError(ErrorCode::kIo, "--listen: " + path, errno);
  if (socketGid != kNoGroup && st.st_gid != socketGid &&
      ::lchown(path.c_str(), uid_t(-1), socketGid) != 0)
    return makeError(ErrorCode::kIo, "--socket-group: chown " + path, errno);
  if (::chmod(path.c_str(), 0660) != 0)
    return makeError(ErrorCode::kIo, "chmod 0660 " + path, errno);
  return {};
}

}  // namespace

Result<std::unique_ptr<grpc::Server>> startServer(AgentService& service, const AgentConfig& config,
                                                  size_t maxMessageBytes) {
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(int(std::min<size_t>(maxMessageBytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(int(std::min<size_t>(maxMessageBytes, INT32_MAX)));
  auto socketGid = socketGroupId(config);
  if (!socketGid) return socketGid.takeError();
  std::vector<std::string> unixPaths;
  for (const auto& l : config.listen) {
    auto endpoint = common::parseEndpoint(l, kListenSchemes, "--listen");
    if (!endpoint) return endpoint.takeError();
    if (endpoint->scheme == common::Scheme::kUnix) {
      const std::string& path = endpoint->path;
      if (auto st = prepareUnixSocket(path, *socketGid); !st) return st.takeError();
      builder.AddListeningPort(endpoint->grpcTarget(), grpc::InsecureServerCredentials());
      unixPaths.push_back(path);
      continue;
    }
    auto credentials = tlsCredentials(config, l);
    if (!credentials) return credentials.takeError();
    builder.AddListeningPort(endpoint->grpcTarget(), *credentials);
  }
  auto server = builder.BuildAndStart();
  if (!server)
    return makeError(ErrorCode::kUnavailable,
                     "cannot start the gRPC server on the --listen addresses (in use?)");
  for (const auto& p : unixPaths) {
    if (auto st = restrictSocket(p, *socketGid); !st) {
      server->Shutdown();
      return st.takeError();
    }
  }
  return server;
}

}  // namespace bulkhead::agent
