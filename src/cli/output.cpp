#include "output.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <ostream>

namespace bulkhead::cli {

namespace {

void appendNumber(double v, std::string& out) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (!std::isfinite(v) || ec != std::errc()) {
    out += "null";
    return;
  }
  out.append(buf, end);
}

// nlohmann-json serialises either compactly ({"a":1}) or across lines; the
// CLI's documented one-line form has a space after ':' and ','. Strings and
// integers are nlohmann's own; doubles are shortest round-trip (1.5, 2).
void append(const Json& v, std::string& out) {
  switch (v.type()) {
    case Json::value_t::object: {
      out += '{';
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it != v.begin()) out += ", ";
        append(Json(it.key()), out);
        out += ": ";
        append(it.value(), out);
      }
      out += '}';
      return;
    }
    case Json::value_t::array: {
      out += '[';
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it != v.begin()) out += ", ";
        append(*it, out);
      }
      out += ']';
      return;
    }
    case Json::value_t::number_float:
      appendNumber(v.get<double>(), out);
      return;
    default:
      // Invalid UTF-8 (names come from the agent) becomes U+FFFD, not an exception.
      out += v.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

}  // namespace

std::string jsonLine(const Json& value) {
  std::string out;
  append(value, out);
  return out;
}

Json jsonStrings(const google::protobuf::RepeatedPtrField<std::string>& values) {
  Json list = Json::array();
  for (const auto& v : values)
    list.push_back(v);
  return list;
}

void printTable(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

std::string joined(const google::protobuf::RepeatedPtrField<std::string>& values) {
  std::string out;
  for (const auto& s : values)
    out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "-" : out;
}

std::string describeChange(const v1::RulesetChange& c) {
  if (!c.summary().empty()) return c.summary();
  std::vector<std::string> parts;
  auto add = [&parts](uint64_t n, const char* what) {
    if (n > 0) parts.push_back(std::to_string(n) + " " + what);
  };
  add(c.element_adds(), "element adds");
  add(c.element_removes(), "element removes");
  add(c.sets_added(), "sets added");
  add(c.sets_deleted(), "sets deleted");
  add(c.chains_added(), "chains added");
  add(c.chains_rewritten(), "chains rewritten");
  add(c.chains_deleted(), "chains deleted");
  if (parts.empty()) return "no change to the table";
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : ", ") + p;
  return out;
}

Json changeJson(const v1::RulesetChange& c) {
  return {{"element_adds", c.element_adds()},     {"element_removes", c.element_removes()},
          {"sets_added", c.sets_added()},         {"sets_deleted", c.sets_deleted()},
          {"chains_added", c.chains_added()},     {"chains_rewritten", c.chains_rewritten()},
          {"chains_deleted", c.chains_deleted()}, {"summary", describeChange(c)}};
}

}  // namespace bulkhead::cli
