#include "bulkhead/insight/flow_log.h"

#include <cstring>
#include <nlohmann/json.hpp>

namespace bulkhead::insight {

namespace {

constexpr size_t kMaxErrors = 5;
constexpr size_t kChunk = 1 << 20;

bool getString(const nlohmann::json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

void note(ReadStats& stats, const std::string& name, uint64_t line, const std::string& why) {
  ++stats.skipped;
  if (stats.firstErrors.size() < kMaxErrors)
    stats.firstErrors.push_back(name + ":" + std::to_string(line) + ": " + why);
}

}  // namespace

bool parseFlowLine(std::string_view line, FlowRecord* out, std::string* why) {
  const auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded()) return *why = "not JSON", false;
  if (!j.is_object()) return *why = "not a JSON object", false;
  FlowRecord r;
  std::string dst, src;
  if (!getString(j, "action", &r.action)) return *why = "no \"action\" string", false;
  if (!getString(j, "dst", &dst)) return *why = "no \"dst\" string", false;
  auto ip = policy::IpAddr::parse(dst);
  if (!ip) return *why = "bad \"dst\" address", false;
  r.dst = *ip;
  getString(j, "app", &r.app);
  getString(j, "workload", &r.workload);
  getString(j, "proto", &r.proto);
  getString(j, "reason", &r.reason);
  getString(j, "time", &r.time);
  if (getString(j, "src", &src)) {
    if (auto s = policy::IpAddr::parse(src)) {
      r.src = *s;
      r.hasSrc = true;
    }
  }
  if (auto it = j.find("dport"); it != j.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > 65535)
      return *why = "\"dport\" is not a port number", false;
    r.dport = uint16_t(it->get<uint64_t>());
  }
  if (auto it = j.find("count"); it != j.end()) {
    if (!it->is_number_unsigned()) return *why = "\"count\" is not a count", false;
    r.count = it->get<uint64_t>();
  }
  *out = std::move(r);
  return true;
}

void readFlowLines(std::istream& in, const std::string& name,
                   const std::function<void(const FlowRecord&)>& sink, ReadStats& stats,
                   size_t maxLineBytes) {
  std::string chunk(kChunk, '\0');
  std::string line;
  bool tooLong = false;
  uint64_t lineNo = 0;
  auto finish = [&]() {
    ++lineNo;
    if (tooLong) {
      ++stats.lines;
      note(stats, name, lineNo, "line longer than " + std::to_string(maxLineBytes) + " bytes");
    } else if (line.find_first_not_of(" \t\r") != std::string::npos) {
      ++stats.lines;
      FlowRecord r;
      std::string why;
      if (parseFlowLine(line, &r, &why)) {
        ++stats.events;
        sink(r);
      } else {
        note(stats, name, lineNo, why);
      }
    }
    line.clear();
    tooLong = false;
  };
  while (in) {
    in.read(chunk.data(), std::streamsize(chunk.size()));
    const size_t n = size_t(in.gcount());
    size_t pos = 0;
    while (pos < n) {
      const char* nl = static_cast<const char*>(std::memchr(chunk.data() + pos, '\n', n - pos));
      const size_t end = nl ? size_t(nl - chunk.data()) : n;
      if (!tooLong) {
        if (line.size() + (end - pos) > maxLineBytes) {
          tooLong = true;
          line.clear();
          line.shrink_to_fit();
        } else {
          line.append(chunk, pos, end - pos);
        }
      }
      if (!nl) break;
      finish();
      pos = end + 1;
    }
  }
  if (!line.empty() || tooLong) finish();
}

}  // namespace bulkhead::insight
