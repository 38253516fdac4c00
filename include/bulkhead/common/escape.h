// Client strings on their way into a log line, an error message or a status
// field: a control character (newline, CR, tab, ESC, DEL...) in them would
// let a client forge lines or terminal output. Requests with such strings
// are refused, and whatever must still be printed goes through escapeForLog.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace bulkhead {

inline bool isControlChar(char ch) {
  const auto u = uint8_t(ch);
  return u < 0x20 || u == 0x7f;
}

inline bool hasControlChars(std::string_view s) {
  for (const char ch : s)
    if (isControlChar(ch)) return true;
  return false;
}

// Control characters and backslashes as C escapes (\n, \t, \x1b, \\), so a
// printed value stays on its line and reads back unambiguously; cut after
// `maxBytes` with the full length noted.
inline std::string escapeForLog(std::string_view s, size_t maxBytes = 256) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  const std::string_view shown = s.substr(0, maxBytes);
  out.reserve(shown.size());
  for (const char ch : shown) {
    switch (ch) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (isControlChar(ch)) {
          out += "\\x";
          out += kHex[uint8_t(ch) >> 4];
          out += kHex[uint8_t(ch) & 15];
        } else {
          out += ch;
        }
    }
  }
  if (s.size() > maxBytes) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

}  // namespace bulkhead
