// Formats of the denied-flow feed (docs/flows.md): RFC 5424 with
// structured data under flow@32473, JSON, ArcSight CEF, and RFC 6587 octet
// counting. Every value that comes from outside (workload and app names,
// reasons, host names) goes through the escaping of the format it lands in.
#include "bulkhead/flows/format.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace bulkhead::flows {
namespace {

// Length limits of RFC 5424 §6 for the header fields.
constexpr size_t kMaxHostname = 255;
constexpr size_t kMaxAppName = 48;
constexpr size_t kMaxProcId = 128;
constexpr size_t kMaxMsgId = 32;
constexpr int kSeverityWarning = 4;
constexpr int kSeverityNotice = 5;

// A header field: PRINTUSASCII (33..126) only, at most `limit` octets, "-"
// (NILVALUE) when empty. Anything else becomes '_' so a hostile or odd name
// can never break the header's space-separated shape.
std::string headerField(const std::string& v, size_t limit) {
  if (v.empty()) return "-";
  std::string out;
  out.reserve(std::min(v.size(), limit));
  for (unsigned char c : v) {
    if (out.size() >= limit) break;
    out.push_back(c >= 33 && c <= 126 ? static_cast<char>(c) : '_');
  }
  return out;
}

// A control character as rsyslog writes it ("#ooo", octal), so that one
// event stays one line; anything else as it is.
void appendVisible(std::string& out, unsigned char c) {
  if (c < 0x20 || c == 0x7f) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "#%03o", c);
    out += buf;
  } else {
    out.push_back(static_cast<char>(c));
  }
}

// Free text of the MSG part: control characters become "#ooo" (octal), as
// rsyslog writes them, so one event stays one line.
std::string msgText(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (unsigned char c : v)
    appendVisible(out, c);
  return out;
}

// What each action looks like in the formats: the RFC 5424 MSGID, the verb
// of the human-readable message, the CEF name and severity.
struct ActionText {
  const char* msgId;
  const char* verb;
  const char* cefName;
  int cefSeverity;
};

ActionText textOf(FlowAction action) {
  switch (action) {
    case FlowAction::kDeny:
      return {"DENY", "denied", "Flow denied", 5};
    case FlowAction::kAudit:
      return {"AUDIT", "audited", "Flow would be denied (audit)", 3};
    case FlowAction::kSpoof:
      return {"SPOOF", "spoofed", "Spoofed source address", 7};
    case FlowAction::kQuarantine:
      return {"QUARANTINE", "quarantined", "Flow from quarantined workload", 7};
    case FlowAction::kUnregistered:
      return {"UNREGISTERED", "dropped (unregistered interface)",
              "Flow from unregistered workload interface", 7};
    case FlowAction::kLog:
      return {"LOG", "logged", "Flow logged", 3};
    case FlowAction::kAnomaly:
      return {"ANOMALY", "flagged as a scan", "Scan detected", 8};
    case FlowAction::kSummary:
      return {"SUMMARY", "summary", "Flow summary", 3};
  }
  return {"UNKNOWN", "unknown", "Flow unknown", 3};
}

// "198.51.100.10:22/tcp", "[2001:db8::1]:443/tcp", "198.51.100.10/icmp"
// (no port for protocols without one: both ports are 0).
std::string destination(const FlowEvent& e) {
  std::string out =
      e.dst.family == policy::Family::kIpv6 ? "[" + e.dst.toString() + "]" : e.dst.toString();
  if (e.dport != 0 || e.sport != 0) out += ":" + std::to_string(e.dport);
  out += "/" + (e.proto.empty() ? std::string("-") : e.proto);
  return out;
}

std::string procIdOf(const FormatOptions& o) {
  return std::to_string(o.procId > 0 ? o.procId : static_cast<int>(::getpid()));
}

// Length in octets of the UTF-8 sequence starting at s[i], or 0 if it is not
// a valid (shortest-form, non-surrogate) sequence.
size_t utf8Length(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

}  // namespace

int syslogSeverity(FlowAction action) {
  return (action == FlowAction::kAudit || action == FlowAction::kLog ||
          action == FlowAction::kSummary)
             ? kSeverityNotice
             : kSeverityWarning;
}

std::string flowMessage(const FlowEvent& e) {
  return msgText(e.workload.empty() ? std::string("-") : e.workload) + " -> " +
         msgText(destination(e)) + " " + msgText(textOf(e.action).verb);
}

std::string octetFrame(const std::string& message) {
  return std::to_string(message.size()) + " " + message;
}

std::string escapeSdValue(const std::string& v) {
  std::string out;
  out.reserve(v.size() + 4);
  for (unsigned char c : v) {
    // Control characters: RFC 5424 has no escape for them (appendVisible).
    if (c == '"' || c == '\\' || c == ']') out.push_back('\\');
    appendVisible(out, c);
  }
  return out;
}

std::string escapeJson(const std::string& v) {
  std::string out;
  out.reserve(v.size() + 8);
  for (size_t i = 0; i < v.size();) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      const size_t n = utf8Length(v, i);
      if (n == 0) {
        out += "\\ufffd";  // invalid UTF-8: the replacement character
        ++i;
      } else {
        out.append(v, i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  return out;
}

std::string escapeCefHeader(const std::string& v) {
  std::string out;
  out.reserve(v.size() + 4);
  for (char c : v) {
    if (c == '|' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n' || c == '\r') {
      out.push_back(' ');  // the header has no escape for line breaks
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string escapeCefExtension(const std::string& v) {
  std::string out;
  out.reserve(v.size() + 4);
  for (char c : v) {
    switch (c) {
      case '=':
        out += "\\=";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string formatRfc5424(const FlowEvent& e, const FormatOptions& o) {
  const int facility = std::clamp(o.facility, 0, 23);
  const int pri = facility * 8 + syslogSeverity(e.action);
  std::string out;
  out.reserve(256);
  out += "<" + std::to_string(pri) + ">1 ";
  out += rfc3339Micros(e.time) + " ";
  out += headerField(e.host, kMaxHostname) + " ";
  out += headerField(o.appName, kMaxAppName) + " ";
  out += headerField(procIdOf(o), kMaxProcId) + " ";
  out += headerField(textOf(e.action).msgId, kMaxMsgId) + " ";
  const auto param = [&](const char* key, const std::string& value) {
    out += " ";
    out += key;
    out += "=\"";
    out += escapeSdValue(value);
    out += "\"";
  };
  out += "[flow@32473";
  param("action", flowActionName(e.action));
  param("app", e.app);
  param("workload", e.workload);
  param("src", e.src.toString());
  param("sport", std::to_string(e.sport));
  param("dst", e.dst.toString());
  param("dport", std::to_string(e.dport));
  param("proto", e.proto);
  param("reason", e.reason);
  param("count", std::to_string(e.count));
  out += "]";
  if (!e.fields.empty()) {
    out += "[evidence@32473";
    for (const auto& [k, v] : e.fields)
      param(k.c_str(), v);
    out += "]";
  }
  out += " ";
  out += flowMessage(e);
  return out;
}

std::string formatJson(const FlowEvent& e) {
  std::string out;
  out.reserve(256);
  const auto str = [&](const char* key, const std::string& value, bool first = false) {
    if (!first) out += ",";
    out += "\"";
    out += key;
    out += "\":\"";
    out += escapeJson(value);
    out += "\"";
  };
  const auto num = [&](const char* key, uint64_t value) {
    out += ",\"";
    out += key;
    out += "\":";
    out += std::to_string(value);
  };
  out += "{";
  str("time", rfc3339Micros(e.time), true);
  str("host", e.host);
  str("action", flowActionName(e.action));
  str("app", e.app);
  str("workload", e.workload);
  str("src", e.src.toString());
  num("sport", e.sport);
  str("dst", e.dst.toString());
  num("dport", e.dport);
  str("proto", e.proto);
  str("reason", e.reason);
  num("count", e.count);
  if (!e.fields.empty()) {
    out += ",\"fields\":{";
    for (size_t i = 0; i < e.fields.size(); ++i)
      str(e.fields[i].first.c_str(), e.fields[i].second, i == 0);
    out += "}";
  }
  out += "}";
  return out;
}

std::string formatCef(const FlowEvent& e, const FormatOptions& o) {
  using namespace std::chrono;
  const ActionText text = textOf(e.action);
  std::string out = "CEF:0|bulkhead|";
  out += escapeCefHeader(o.appName.empty() ? std::string("bulkhead-agent") : o.appName);
  out += "|0.1|";
  out += escapeCefHeader(std::string("flow-") + flowActionName(e.action)) + "|" +
         escapeCefHeader(text.cefName) + "|" + std::to_string(text.cefSeverity) + "|";
  bool first = true;
  const auto ext = [&](const char* key, const std::string& value) {
    if (!first) out += " ";
    first = false;
    out += key;
    out += "=";
    out += escapeCefExtension(value);
  };
  ext("src", e.src.toString());
  ext("spt", std::to_string(e.sport));
  ext("dst", e.dst.toString());
  ext("dpt", std::to_string(e.dport));
  ext("proto", e.proto);
  ext("act", flowActionName(e.action));
  ext("cnt", std::to_string(e.count));
  ext("cs1Label", "app");
  ext("cs1", e.app);
  ext("cs2Label", "workload");
  ext("cs2", e.workload);
  ext("cs3Label", "reason");
  ext("cs3", e.reason);
  ext("rt", std::to_string(duration_cast<milliseconds>(e.time.time_since_epoch()).count()));
  ext("dvchost", e.host);
  if (!e.fields.empty()) {
    std::string evidence;
    for (const auto& [k, v] : e.fields)
      evidence += (evidence.empty() ? "" : " ") + k + "=" + v;
    ext("cs4Label", "evidence");
    ext("cs4", evidence);
  }
  return out;
}

std::string formatEvent(const FlowEvent& e, Format f, const FormatOptions& o) {
  switch (f) {
    case Format::kRfc5424:
      return formatRfc5424(e, o);
    case Format::kJson:
      return formatJson(e);
    case Format::kCef:
      return formatCef(e, o);
  }
  return formatRfc5424(e, o);
}

}  // namespace bulkhead::flows
