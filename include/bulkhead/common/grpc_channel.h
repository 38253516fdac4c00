// The gRPC client channels of bulkhead's programs: the short-lived clients
// of the agent (the CLI, the hooks: one process, one or two calls, then
// exit) and the agent's long-lived link to its controller. Header-only on
// purpose: the hooks and the CLI link gRPC statically and the tests link it
// as a shared library, and one program must never hold both, so this
// compiles into whichever gRPC its includer uses.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace bulkhead::common {

// Arguments that keep a one-shot call from starting what it does not use:
// no retry machinery (a failed call is reported, not repeated), a
// subchannel pool of its own (no global pool to share with anyone). Unix
// targets ("unix:/path") go through gRPC's unix resolver, never DNS, and
// skip the HTTP proxy mapper.
inline grpc::ChannelArguments agentChannelArguments(int maxMessageBytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(maxMessageBytes);
  args.SetMaxSendMessageSize(maxMessageBytes);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

// A TLS client's identity and trust, as PEM text (not file names).
struct ClientTls {
  std::string caPem;       // signs the server's certificate
  std::string certPem;     // the client's certificate chain; empty: none
  std::string keyPem;      // its private key
  std::string serverName;  // expected in the server's certificate; empty: the target's host
};

enum class PemKind : uint8_t { kCertificate, kPrivateKey };

// Whether `text` is recognisably PEM of that kind. gRPC only logs a bad PEM
// file and then fails every handshake; callers check first and name the file.
inline bool looksLikePem(std::string_view text, PemKind kind) {
  const std::string_view tail =
      kind == PemKind::kPrivateKey ? "PRIVATE KEY-----" : "CERTIFICATE-----";
  return text.find("-----BEGIN ") != std::string_view::npos &&
         text.find(tail) != std::string_view::npos;
}

// The credentials of a channel: TLS for TCP targets (always, as everywhere
// in bulkhead: the server verified against tls.caPem, the client's
// certificate presented when given), none for unix sockets, whose file mode
// is their access control. A serverName goes into `args` as the name the
// server's certificate must carry.
inline std::shared_ptr<grpc::ChannelCredentials> clientCredentials(bool tcp, const ClientTls& tls,
                                                                   grpc::ChannelArguments& args) {
  if (!tcp) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.caPem;
  options.pem_cert_chain = tls.certPem;
  options.pem_private_key = tls.keyPem;
  if (!tls.serverName.empty()) args.SetSslTargetNameOverride(tls.serverName);
  return grpc::SslCredentials(options);
}

}  // namespace bulkhead::common
