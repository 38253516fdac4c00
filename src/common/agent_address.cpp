#include "bulkhead/common/agent_address.h"

#include <charconv>

namespace bulkhead::common {

bool parseAgentAddress(const std::string& address, AgentAddress* out, std::string* error) {
  const std::string kUsageHint = "expected unix:///path/to/socket or tcp://host:port";
  if (address.rfind("unix:", 0) == 0) {
    std::string path = address.substr(5);
    if (path.rfind("//", 0) == 0) path = path.substr(2);  // unix:///abs -> /abs
    if (path.empty() || path[0] != '/') {
      *error = "a unix socket needs an absolute path; " + kUsageHint;
      return false;
    }
    out->target = "unix:" + path;
    out->tcp = false;
    out->host.clear();
    return true;
  }
  if (address.rfind("tcp://", 0) == 0) {
    const std::string hostPort = address.substr(6);
    const auto colon = hostPort.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == hostPort.size()) {
      *error = "needs a host and a port; " + kUsageHint;
      return false;
    }
    std::string host = hostPort.substr(0, colon);
    if (host.front() == '[') {
      if (host.back() != ']' || host.size() < 3) {
        *error = "bad bracketed IPv6 address; " + kUsageHint;
        return false;
      }
      host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string::npos) {
      *error = "write an IPv6 address in brackets, tcp://[::1]:7443";
      return false;
    }
    const std::string port = hostPort.substr(colon + 1);
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) {
      *error = "bad port \"" + port + "\"; " + kUsageHint;
      return false;
    }
    if (hostPort.find('/') != std::string::npos) {
      *error = kUsageHint;
      return false;
    }
    out->target = hostPort;
    out->tcp = true;
    out->host = host;
    return true;
  }
  *error = kUsageHint;
  return false;
}

}  // namespace bulkhead::common
