// Endpoints as users write them on the command line, in config files and in
// hook configs: where the agent listens (--listen), where a client or hook
// finds it (--agent, $BULKHEAD_AGENT), where the flow feed sends its events
// (--syslog). One parser, one set of rules and one set of messages for all
// of them; each caller says which schemes it accepts (docs/agent.md has the
// table).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bulkhead/common/result.h"

namespace bulkhead::common {

enum class Scheme : uint8_t { kUnix, kTcp, kTls, kUdp, kJournald };

// The scheme as written before "://" ("journald" for kJournald).
const char* schemeName(Scheme scheme);

// A set of schemes: which forms a flag accepts.
class Schemes {
 public:
  constexpr Schemes(std::initializer_list<Scheme> schemes) {
    for (const Scheme s : schemes)
      bits_ |= bit(s);
  }
  constexpr bool has(Scheme s) const { return (bits_ & bit(s)) != 0; }

 private:
  static constexpr uint8_t bit(Scheme s) { return uint8_t(1u << uint8_t(s)); }
  uint8_t bits_ = 0;
};

struct Endpoint {
  Scheme scheme = Scheme::kUnix;
  std::string path;   // kUnix: an absolute path that fits sockaddr_un
  std::string host;   // kTcp, kTls, kUdp: a name, an IPv4 address or an IPv6 address (no brackets)
  uint16_t port = 0;  // kTcp, kTls, kUdp: 1-65535

  bool isIpv6Host() const { return host.find(':') != std::string::npos; }
  // "host:port", an IPv6 host in brackets: what getaddrinfo-based clients
  // and gRPC take.
  std::string hostPort() const;
  // gRPC's form: "unix:/path" or "host:port".
  std::string grpcTarget() const;
  // Back in the form users write: unix:///path, tcp://host:port, journald.
  std::string toString() const;

  bool operator==(const Endpoint&) const = default;
};

// Longest endpoint text accepted (a sockaddr_un path or a DNS name fit
// easily; anything longer is an error, not a truncation).
inline constexpr size_t kMaxEndpointBytes = 1024;

// Parses one endpoint. The forms:
//   unix:///abs/path  (also unix:/abs/path)   absolute, at most 107 bytes
//   tcp://HOST:PORT  tls://HOST:PORT  udp://HOST:PORT
//       HOST: a DNS name or IPv4 address, or [IPv6]; PORT: 1-65535 in decimal
//   journald
// `what` names the flag or field in messages ("--listen"); `allowed` says
// which schemes it takes. kInvalidInput with one message per rule broken,
// always ending in what the flag accepts. Control characters (NUL, newline)
// are refused anywhere and never echoed raw.
Result<Endpoint> parseEndpoint(std::string_view text, Schemes allowed, std::string_view what);

// "unix:///path, tcp://HOST:PORT or journald": the forms of `allowed`, for
// messages and help text.
std::string describeSchemes(Schemes allowed);

}  // namespace bulkhead::common
