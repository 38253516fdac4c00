// etcd endpoint URLs and the client options built from them.
#include "endpoints.h"

#include <charconv>
#include <optional>

#include "bulkhead/common/escape.h"
#include "bulkhead/common/file.h"
#include "bulkhead/etcd/client.h"

namespace bulkhead::etcd {
namespace {

constexpr size_t kMaxUrlBytes = 1024;
constexpr size_t kMaxPemBytes = 1 << 20;
constexpr const char* kForm = "expected http://HOST:PORT or https://HOST:PORT";

Error badUrl(std::string_view text, const std::string& why) {
  return makeError(ErrorCode::kInvalidInput,
                   "etcd endpoint '" + escapeForLog(text, 128) + "': " + why + " (" + kForm + ")");
}

bool validHostChars(std::string_view host) {
  for (const char ch : host) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' || ch == ':';
    if (!ok) return false;
  }
  return !host.empty();
}

// Splits "host[:port]" / "[v6][:port]" into host and port text.
Result<std::pair<std::string, std::string_view>> splitHostPort(std::string_view text,
                                                               std::string_view rest) {
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return badUrl(text, "unclosed '['");
    std::string host(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty() && after.front() != ':') return badUrl(text, "junk after ']'");
    return std::pair{host, after.empty() ? after : after.substr(1)};
  }
  const size_t colon = rest.find(':');
  if (colon == std::string_view::npos) return std::pair{std::string(rest), std::string_view{}};
  if (rest.find(':', colon + 1) != std::string_view::npos)
    return badUrl(text, "an IPv6 address must be in brackets");
  return std::pair{std::string(rest.substr(0, colon)), rest.substr(colon + 1)};
}

Status readable(const std::string& path, const char* what) {
  if (path.empty()) return {};
  auto text = common::readFileBounded(path, kMaxPemBytes);
  if (!text)
    return makeError(
        ErrorCode::kInvalidInput,
        std::string("etcd ") + what + " '" + escapeForLog(path) + "': " + text.error().describe());
  return {};
}

}  // namespace

std::string EtcdEndpoint::hostPort() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string EtcdEndpoint::url() const {
  return (tls ? "https://" : "http://") + hostPort();
}

Result<EtcdEndpoint> parseEndpointUrl(std::string_view text) {
  if (text.size() > kMaxUrlBytes) return badUrl(text.substr(0, 64), "too long");
  if (hasControlChars(text)) return badUrl(text, "control characters");
  EtcdEndpoint ep;
  std::string_view rest = text;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    ep.tls = true;
    rest.remove_prefix(8);
  } else {
    return badUrl(text, "unknown scheme");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos)
    return badUrl(text, "a path, query or user is not allowed");
  auto parts = splitHostPort(text, rest);
  if (!parts) return parts.takeError();
  ep.host = parts->first;
  if (!validHostChars(ep.host)) return badUrl(text, "bad host");
  const std::string_view portText = parts->second;
  if (portText.empty()) {
    ep.port = kDefaultEtcdPort;
    return ep;
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || end != portText.data() + portText.size() || port == 0 || port > 65535)
    return badUrl(text, "bad port");
  ep.port = uint16_t(port);
  return ep;
}

Result<ClientOptions> parseEndpoints(const std::string& commaList, const std::string& caFile,
                                     const std::string& certFile, const std::string& keyFile) {
  ClientOptions options;
  size_t start = 0;
  while (start <= commaList.size()) {
    size_t comma = commaList.find(',', start);
    if (comma == std::string::npos) comma = commaList.size();
    std::string item = commaList.substr(start, comma - start);
    if (!item.empty()) options.endpoints.push_back(std::move(item));
    start = comma + 1;
  }
  options.caFile = caFile;
  options.certFile = certFile;
  options.keyFile = keyFile;
  if (auto st = validateOptions(options); !st) return st.takeError();
  return options;
}

Status validateOptions(const ClientOptions& options) {
  if (options.endpoints.empty())
    return makeError(ErrorCode::kInvalidInput, "no etcd endpoint given");
  std::optional<bool> tls;
  for (const auto& text : options.endpoints) {
    auto ep = parseEndpointUrl(text);
    if (!ep) return ep.takeError();
    if (tls && *tls != ep->tls)
      return makeError(ErrorCode::kInvalidInput, "etcd endpoints mix http:// and https://");
    tls = ep->tls;
  }
  if (!*tls && !(options.caFile.empty() && options.certFile.empty() && options.keyFile.empty()))
    return makeError(ErrorCode::kInvalidInput,
                     "etcd TLS files given but the endpoints are http://, not https://");
  if (options.certFile.empty() != options.keyFile.empty())
    return makeError(ErrorCode::kInvalidInput,
                     "etcd client certificate and key go together: give both or neither");
  if (auto st = readable(options.caFile, "CA file"); !st) return st;
  if (auto st = readable(options.certFile, "certificate file"); !st) return st;
  return readable(options.keyFile, "key file");
}

}  // namespace bulkhead::etcd
