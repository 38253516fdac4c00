#include "bulkhead/common/endpoint.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <vector>

#include "bulkhead/common/escape.h"

namespace bulkhead::common {

namespace {

constexpr Scheme kAllSchemes[] = {Scheme::kUnix, Scheme::kTcp, Scheme::kTls, Scheme::kUdp,
                                  Scheme::kJournald};
constexpr size_t kMaxHostBytes = 253;  // a DNS name's longest text form
constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;

const char* schemeForm(Scheme s) {
  switch (s) {
    case Scheme::kUnix:
      return "unix:///path";
    case Scheme::kTcp:
      return "tcp://HOST:PORT";
    case Scheme::kTls:
      return "tls://HOST:PORT";
    case Scheme::kUdp:
      return "udp://HOST:PORT";
    case Scheme::kJournald:
      return "journald";
  }
  return "?";
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// A DNS name (letters, digits, '-', '_', dots between non-empty labels) or
// a dotted IPv4 address; never anything a resolver or a log would read
// differently.
bool isHostName(std::string_view h) {
  if (h.empty() || h.size() > kMaxHostBytes || h.front() == '.' || h.front() == '-') return false;
  if (!std::all_of(h.begin(), h.end(), isNameChar)) return false;
  return h.find("..") == std::string_view::npos;
}

bool isIpv6(const std::string& h) {
  in6_addr a{};
  return inet_pton(AF_INET6, h.c_str(), &a) == 1;
}

// PORT: 1-65535, decimal digits only (no sign, no spaces, no 0x).
bool parsePort(std::string_view p, uint16_t* out) {
  if (p.empty() || p.size() > 5) return false;
  uint32_t n = 0;
  for (const char c : p) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + uint32_t(c - '0');
  }
  if (n == 0 || n > 65535) return false;
  *out = uint16_t(n);
  return true;
}

class Parser {
 public:
  Parser(std::string_view text, Schemes allowed, std::string_view what)
      : text_(text), allowed_(allowed), what_(what) {}

  Result<Endpoint> parse() {
    if (text_.empty()) return fail("empty");
    if (text_.size() > kMaxEndpointBytes)
      return fail("longer than " + std::to_string(kMaxEndpointBytes) + " bytes");
    if (hasControlChars(text_)) return fail("control characters are not allowed");
    if (text_ == "journald" || text_ == "journald://") return scheme(Scheme::kJournald, {});
    if (text_.rfind("unix:", 0) == 0) return unixPath(text_.substr(5));
    const auto sep = text_.find("://");
    if (sep == std::string_view::npos) return fail("no scheme");
    const std::string_view name = text_.substr(0, sep);
    for (const Scheme s : {Scheme::kTcp, Scheme::kTls, Scheme::kUdp})
      if (name == schemeName(s)) return hostPort(s, text_.substr(sep + 3));
    return fail("unknown scheme \"" + escapeForLog(name, 32) + "\"");
  }

 private:
  Result<Endpoint> unixPath(std::string_view rest) {
    if (rest.rfind("//", 0) == 0) rest.remove_prefix(2);  // unix:///abs -> /abs
    if (rest.empty() || rest.front() != '/') return fail("a unix socket needs an absolute path");
    if (rest.size() > kMaxUnixPath)
      return fail("the socket path is longer than " + std::to_string(kMaxUnixPath) + " bytes");
    Endpoint e;
    e.path = std::string(rest);
    return scheme(Scheme::kUnix, std::move(e));
  }

  Result<Endpoint> hostPort(Scheme s, std::string_view rest) {
    Endpoint e;
    std::string_view port;
    if (!rest.empty() && rest.front() == '[') {
      const auto close = rest.find(']');
      if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
        return fail("expected [IPv6]:PORT");
      e.host = std::string(rest.substr(1, close - 1));
      if (!isIpv6(e.host)) return fail("not an IPv6 address in brackets");
      port = rest.substr(close + 2);
    } else {
      const auto colon = rest.rfind(':');
      if (colon == std::string_view::npos) return fail("needs a host and a port");
      if (rest.find(':') != colon) return fail("write an IPv6 address in brackets, [2001:db8::1]");
      e.host = std::string(rest.substr(0, colon));
      if (e.host.empty()) return fail("the host is empty");
      if (!isHostName(e.host)) return fail("not a host name or address");
      port = rest.substr(colon + 1);
    }
    if (!parsePort(port, &e.port)) return fail("the port must be a number from 1 to 65535");
    return scheme(s, std::move(e));
  }

  Result<Endpoint> scheme(Scheme s, Endpoint e) {
    if (!allowed_.has(s)) return fail(std::string(schemeName(s)) + " is not accepted here");
    e.scheme = s;
    return e;
  }

  Error fail(const std::string& why) const {
    return makeError(ErrorCode::kInvalidInput, std::string(what_) + " \"" +
                                                   escapeForLog(text_, 128) + "\": " + why +
                                                   "; expected " + describeSchemes(allowed_));
  }

  std::string_view text_;
  Schemes allowed_;
  std::string_view what_;
};

}  // namespace

const char* schemeName(Scheme scheme) {
  switch (scheme) {
    case Scheme::kUnix:
      return "unix";
    case Scheme::kTcp:
      return "tcp";
    case Scheme::kTls:
      return "tls";
    case Scheme::kUdp:
      return "udp";
    case Scheme::kJournald:
      return "journald";
  }
  return "?";
}

std::string describeSchemes(Schemes allowed) {
  std::vector<const char*> forms;
  for (const Scheme s : kAllSchemes)
    if (allowed.has(s)) forms.push_back(schemeForm(s));
  std::string out;
  for (size_t i = 0; i < forms.size(); ++i) {
    if (i > 0) out += i + 1 == forms.size() ? " or " : ", ";
    out += forms[i];
  }
  return out;
}

std::string Endpoint::hostPort() const {
  return (isIpv6Host() ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Endpoint::grpcTarget() const {
  return scheme == Scheme::kUnix ? "unix:" + path : hostPort();
}

std::string Endpoint::toString() const {
  switch (scheme) {
    case Scheme::kUnix:
      return "unix://" + path;
    case Scheme::kJournald:
      return "journald";
    default:
      return std::string(schemeName(scheme)) + "://" + hostPort();
  }
}

Result<Endpoint> parseEndpoint(std::string_view text, Schemes allowed, std::string_view what) {
  return Parser(text, allowed, what).parse();
}

}  // namespace bulkhead::common
