// Formats of the denied-flow feed (docs/flows.md): RFC 5424 with structured data
// under SD-ID flow@32473, one JSON object per line, ArcSight CEF; each with
// its own escaping. Octet-counting framing for TCP (RFC 6587 / RFC 5425).
#pragma once

#include <string>

#include "bulkhead/flows/event.h"

namespace bulkhead::flows {

enum class Format { kRfc5424, kJson, kCef };

struct FormatOptions {
  std::string appName = "bulkhead-agent";
  int procId = 0;     // 0: the agent's pid
  int facility = 16;  // local0; PRI = facility*8 + severity (syslogSeverity())
};

// Syslog severity of an action: 4 (warning) for deny, spoof, quarantine,
// unregistered;
// 5 (notice) for audit, log and summary.
int syslogSeverity(FlowAction action);

// The human-readable MSG part: "billing-7f9c -> 198.51.100.10:22/tcp denied"
// (IPv6 as [addr]:port; no ":port" when both ports are 0, e.g. ICMP; "-" for
// an empty workload). Control characters become "#ooo".
std::string flowMessage(const FlowEvent& e);

// One line, without a trailing newline.
std::string formatEvent(const FlowEvent& e, Format f, const FormatOptions& o = {});
std::string formatRfc5424(const FlowEvent& e, const FormatOptions& o = {});
std::string formatJson(const FlowEvent& e);
std::string formatCef(const FlowEvent& e, const FormatOptions& o = {});

// "2026-11-25T13:06:40.343246Z": UTC, microseconds (common/time_format.h).
inline std::string rfc3339Micros(WallClock::time_point t) {
  return common::formatRfc3339(t, common::TimePrecision::kMicros);
}

// "LEN SP MSG" (RFC 6587 octet counting).
std::string octetFrame(const std::string& message);

// Escaping rules, exposed for tests.
std::string escapeSdValue(const std::string& v);  // RFC 5424 PARAM-VALUE: " \ ]
std::string escapeJson(const std::string& v);
std::string escapeCefHeader(const std::string& v);     // | and backslash
std::string escapeCefExtension(const std::string& v);  // = and backslash, newlines

}  // namespace bulkhead::flows
