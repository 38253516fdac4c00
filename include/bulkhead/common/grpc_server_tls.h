// The server side of bulkhead's TLS: the credentials of a tcp:// listener
// of the agent and of the controller, built the same way for both (mutual
// TLS, the client's certificate verified against a CA). Header-only, like
// grpc_channel.h: it compiles into whichever gRPC its includer links.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "bulkhead/common/file.h"
#include "bulkhead/common/result.h"

namespace bulkhead::common {

// A certificate chain, key or CA bundle is a few kilobytes; a path that
// names something huge (or endless, like /dev/zero) is a mistake.
inline constexpr size_t kMaxPemBytes = 1 << 20;

// The PEM file of `flag` ("--tls-cert"); kInvalidInput naming the flag and
// the path when it cannot be read or holds no PEM block.
inline Result<std::string> readPem(const std::string& path, const char* flag) {
  auto pem = readFileBounded(path, kMaxPemBytes);
  if (!pem)
    return makeError(ErrorCode::kInvalidInput,
                     std::string(flag) + ": cannot read " + path + ": " + pem.error().describe());
  if (pem->find("-----BEGIN") == std::string::npos)
    return makeError(ErrorCode::kInvalidInput, std::string(flag) + ": " + path + " is not PEM");
  return pem;
}

// Credentials that require a client certificate signed by `clientCaPath`'s
// CA (--tls-cert, --tls-key, --tls-client-ca).
inline Result<std::shared_ptr<grpc::ServerCredentials>> mutualTlsServerCredentials(
    const std::string& certPath, const std::string& keyPath, const std::string& clientCaPath) {
  auto cert = readPem(certPath, "--tls-cert");
  if (!cert) return cert.takeError();
  auto key = readPem(keyPath, "--tls-key");
  if (!key) return key.takeError();
  auto ca = readPem(clientCaPath, "--tls-client-ca");
  if (!ca) return ca.takeError();
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = *ca;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace bulkhead::common
