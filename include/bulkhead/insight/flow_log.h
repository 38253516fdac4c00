// Flow events read back from JSON lines: the agent's `json` format, as a
// SIEM or `bulkhead flows --json` stores them (docs/flows.md). Streaming,
// with bounded memory whatever the input: a line longer than maxLineBytes
// is skipped (and counted), never held whole. Unknown keys are ignored
// (newer agents add some); a line without the keys an event needs, or not
// JSON at all, is skipped and counted with its line number.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <string>
#include <vector>

#include "bulkhead/policy/address.h"

namespace bulkhead::insight {

struct FlowRecord {
  std::string time;  // RFC 3339 UTC as written ("" when absent)
  std::string action, app, workload, proto, reason;
  policy::IpAddr src, dst;
  bool hasSrc = false;
  uint16_t dport = 0;
  uint64_t count = 1;
};

struct ReadStats {
  uint64_t lines = 0;                    // non-empty lines
  uint64_t events = 0;                   // turned into records
  uint64_t skipped = 0;                  // malformed, too long, missing keys
  std::vector<std::string> firstErrors;  // "name:line: why", the first few
};

inline constexpr size_t kMaxLineBytes = 64 * 1024;

// Reads every line of `in`; calls `sink` for each event. `name` labels errors.
void readFlowLines(std::istream& in, const std::string& name,
                   const std::function<void(const FlowRecord&)>& sink, ReadStats& stats,
                   size_t maxLineBytes = kMaxLineBytes);

// One line; false with *why when it is not an event.
bool parseFlowLine(std::string_view line, FlowRecord* out, std::string* why);

}  // namespace bulkhead::insight
