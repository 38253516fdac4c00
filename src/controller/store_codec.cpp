#include "store_codec.h"

#include <chrono>

#include "bulkhead/common/time_format.h"

namespace bulkhead::controller {

void toHostStatus(const StoredHost& host, v1::HostStatus* out) {
  out->set_host(host.host);
  out->set_agent_version(host.agentVersion);
  out->set_acked_revision(host.ackedRevision);
  out->set_failed_revision(host.failedRevision);
  out->set_last_error(host.lastError);
  out->set_last_seen(common::formatRfc3339(
      common::WallClock::time_point(std::chrono::milliseconds(host.lastSeenUnixMs))));
}

StoredHost fromHostStatus(const v1::HostStatus& status) {
  StoredHost h;
  h.host = status.host();
  h.agentVersion = status.agent_version();
  h.ackedRevision = status.acked_revision();
  h.failedRevision = status.failed_revision();
  h.lastError = status.last_error();
  if (auto t = common::parseRfc3339(status.last_seen()))
    h.lastSeenUnixMs =
        std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
  return h;
}

void appendU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out += char((v >> (8 * i)) & 0xff);
}

uint64_t readU64(std::string_view eightBytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < eightBytes.size(); ++i)
    v |= uint64_t(uint8_t(eightBytes[i])) << (8 * i);
  return v;
}

std::string joinFramed(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(8 + a.size() + b.size());
  appendU64(out, a.size());
  out += a;
  out += b;
  return out;
}

std::optional<std::pair<std::string_view, std::string_view>> splitFramed(std::string_view value) {
  if (value.size() < 8) return std::nullopt;
  const uint64_t len = readU64(value);
  if (len > value.size() - 8) return std::nullopt;
  return std::make_pair(value.substr(8, len), value.substr(8 + len));
}

}  // namespace bulkhead::controller
