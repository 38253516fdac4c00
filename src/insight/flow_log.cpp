#include "bulkhead/insight/flow_log.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

namespace bulkhead::insight {

namespace {

constexpr size_t kMaxErrors = 5;
constexpr size_t kChunk = 1 << 20;

void note(ReadStats& stats, const std::string& name, uint64_t line, const std::string& why) {
  ++stats.skipped;
  if (stats.firstErrors.size() < kMaxErrors)
    stats.firstErrors.push_back(name + ":" + std::to_string(line) + ": " + why);
}

}  // namespace

namespace {

// The keys an event needs and what a line held under them: top-level
// strings and unsigned numbers; anything else under a key we use makes that
// key bad; nested values (keys of a newer agent) are skipped.
enum Key { kAction, kDst, kApp, kWorkload, kProto, kReason, kTime, kSrc, kDport, kCount, kOther };

struct Fields {
  std::string str[8];
  uint64_t num[2] = {0, 1};
  bool has[10] = {};
  bool bad[10] = {};
  bool topObject = false;

  // Empty again, the strings' buffers kept (no allocation per line).
  void reset() {
    for (auto& x : str)
      x.clear();
    num[0] = 0;
    num[1] = 1;
    std::fill(std::begin(has), std::end(has), false);
    std::fill(std::begin(bad), std::end(bad), false);
    topObject = false;
  }
};

// By length first: a key of the agent's lines costs one or two compares.
Key keyOf(std::string_view k) {
  switch (k.size()) {
    case 3:
      return k == "dst" ? kDst : k == "app" ? kApp : k == "src" ? kSrc : kOther;
    case 4:
      return k == "time" ? kTime : kOther;
    case 5:
      return k == "proto" ? kProto : k == "dport" ? kDport : k == "count" ? kCount : kOther;
    case 6:
      return k == "action" ? kAction : k == "reason" ? kReason : kOther;
    case 8:
      return k == "workload" ? kWorkload : kOther;
    default:
      return kOther;
  }
}

void setString(Fields& f, Key k, std::string_view v) {
  if (k == kOther) return;
  if (k >= kDport) {
    f.bad[k] = true;
    return;
  }
  f.str[k].assign(v);
  f.has[k] = true;
}

void setNumber(Fields& f, Key k, uint64_t v) {
  if (k == kOther) return;
  if (k < kDport) {
    f.bad[k] = true;
    return;
  }
  f.num[k - kDport] = v;
  f.has[k] = true;
}

// Fills Fields from nlohmann's SAX events (no document, no map): the
// general path, for any JSON.
class EventSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit EventSax(Fields& f) : f_(f) {}
  bool null() override { return other(); }
  bool boolean(bool) override { return other(); }
  bool number_integer(number_integer_t v) override {
    return v >= 0 ? number_unsigned(number_unsigned_t(v)) : other();
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (depth_ == 1) setNumber(f_, key_, v);
    return true;
  }
  bool number_float(number_float_t, const string_t&) override { return other(); }
  bool string(string_t& v) override {
    if (depth_ == 1) setString(f_, key_, v);
    return true;
  }
  bool binary(binary_t&) override { return other(); }
  bool start_object(std::size_t) override {
    if (depth_ == 0) f_.topObject = true;
    if (depth_ == 1) other();
    ++depth_;
    return true;
  }
  bool key(string_t& k) override {
    if (depth_ == 1) key_ = keyOf(k);
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 1) other();
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  bool other() {
    if (depth_ == 1 && key_ != kOther) f_.bad[key_] = true;
    return true;
  }
  Fields& f_;
  int depth_ = 0;
  Key key_ = kOther;
};

// The agent's own lines: one object of plain ASCII strings and unsigned
// integers (a newer agent may add nested values). Read directly, at a
// fraction of a general parser's cost. Anything else (escapes, non-ASCII,
// floats, negative numbers, nesting deeper than kMaxDepth, malformed text)
// makes read() return false, and the line goes through the general parser
// instead: both paths accept and reject the same lines with the same result.
class FlatReader {
 public:
  FlatReader(std::string_view line, Fields& f)
      : p_(line.data()), end_(line.data() + line.size()), f_(f) {}

  bool read() {
    ws();
    if (!at('{')) return false;
    f_.topObject = true;
    return members(0, [&](Key k) { return topValue(k); }) && (ws(), p_ == end_);
  }

 private:
  static constexpr int kMaxDepth = 16;

  bool at(char c) {
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r'))
      ++p_;
  }
  bool plainString(std::string_view* out) {  // after the opening quote
    const char* s = p_;
    while (p_ < end_ && *p_ != '"') {
      const auto c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c >= 0x80 || c == '\\') return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *out = std::string_view(s, size_t(p_ - s));
    ++p_;
    return true;
  }
  bool unsignedNumber(uint64_t* v) {  // at a digit
    const char* s = p_;
    *v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9')
      *v = *v * 10 + uint64_t(*p_++ - '0');
    if (p_ - s > 19 || (*s == '0' && p_ - s > 1)) return false;  // too big; a leading zero
    return p_ == end_ || (*p_ != '.' && *p_ != 'e' && *p_ != 'E');
  }
  bool literal() {
    for (std::string_view w : {"true", "false", "null"}) {
      if (size_t(end_ - p_) >= w.size() && std::string_view(p_, w.size()) == w) {
        p_ += w.size();
        return true;
      }
    }
    return false;
  }
  // `{` read: members up to and including `}`, each value read by `value`.
  template <typename Value>
  bool members(int depth, Value value) {
    ws();
    if (at('}')) return true;
    for (;;) {
      std::string_view name;
      if (!at('"') || !plainString(&name)) return false;
      ws();
      if (!at(':')) return false;
      ws();
      if (!value(depth == 0 ? keyOf(name) : kOther)) return false;
      ws();
      if (at('}')) return true;
      if (!at(',')) return false;
      ws();
    }
  }
  bool topValue(Key k) {
    if (p_ == end_) return false;
    if (*p_ == '"') {
      std::string_view v;
      if (!(++p_, plainString(&v))) return false;
      setString(f_, k, v);
    } else if (*p_ >= '0' && *p_ <= '9') {
      uint64_t v = 0;
      if (!unsignedNumber(&v)) return false;
      setNumber(f_, k, v);
    } else {
      if (!skipValue(1)) return false;
      if (k != kOther) f_.bad[k] = true;  // not a string or a number
    }
    return true;
  }
  bool skipValue(int depth) {  // a nested value, checked, then ignored
    if (p_ == end_ || depth > kMaxDepth) return false;
    std::string_view v;
    uint64_t n = 0;
    switch (*p_) {
      case '"':
        return ++p_, plainString(&v);
      case '{':
        return ++p_, members(depth, [&](Key) { return skipValue(depth + 1); });
      case '[':
        ++p_;
        ws();
        if (at(']')) return true;
        for (;;) {
          if (!skipValue(depth + 1)) return false;
          ws();
          if (at(']')) return true;
          if (!at(',')) return false;
          ws();
        }
      default:
        return (*p_ >= '0' && *p_ <= '9') ? unsignedNumber(&n) : literal();
    }
  }

  const char* p_;
  const char* const end_;
  Fields& f_;
};

// The agent writes IPv4 addresses as plain dotted quads: read here, without
// IpAddr::parse's copy and inet_pton. Any other text (IPv6, leading zeros,
// anything malformed) goes to IpAddr::parse, which decides.
std::optional<policy::IpAddr> parseAddress(std::string_view t) {
  policy::IpAddr a;  // IPv4, all bytes zero
  size_t i = 0;
  for (size_t octet = 0; octet < 4; ++octet) {
    if (octet > 0 && (i >= t.size() || t[i++] != '.')) return policy::IpAddr::parse(t);
    const size_t start = i;
    unsigned v = 0;
    while (i < t.size() && i - start < 3 && t[i] >= '0' && t[i] <= '9')
      v = v * 10 + unsigned(t[i++] - '0');
    if (i == start || v > 255 || (t[start] == '0' && i - start > 1))
      return policy::IpAddr::parse(t);
    a.bytes[octet] = uint8_t(v);
  }
  if (i != t.size()) return policy::IpAddr::parse(t);
  return a;
}

}  // namespace

bool parseFlowLine(std::string_view line, FlowRecord* out, std::string* why) {
  thread_local Fields f;
  f.reset();
  if (!FlatReader(line, f).read()) {
    f.reset();
    EventSax sax(f);
    if (!nlohmann::json::sax_parse(line.begin(), line.end(), &sax)) return *why = "not JSON", false;
  }
  if (!f.topObject) return *why = "not a JSON object", false;
  auto good = [&](int k) { return f.has[k] && !f.bad[k]; };
  if (!good(kAction)) return *why = "no \"action\" string", false;
  if (!good(kDst)) return *why = "no \"dst\" string", false;
  auto ip = parseAddress(f.str[kDst]);
  if (!ip) return *why = "bad \"dst\" address", false;
  if (f.bad[kDport] || f.num[0] > 65535) return *why = "\"dport\" is not a port number", false;
  if (f.bad[kCount]) return *why = "\"count\" is not a count", false;
  FlowRecord& r = *out;
  r.dst = *ip;
  r.dport = uint16_t(f.num[0]);
  r.count = f.num[1];
  // Swapped, not copied or moved: both keep a buffer for the next line
  // (reset() empties the fields before it).
  r.action.swap(f.str[kAction]);
  r.app.swap(f.str[kApp]);
  r.workload.swap(f.str[kWorkload]);
  r.proto.swap(f.str[kProto]);
  r.reason.swap(f.str[kReason]);
  r.time.swap(f.str[kTime]);
  r.src = {};
  r.hasSrc = false;
  if (good(kSrc)) {
    if (auto s = parseAddress(f.str[kSrc])) {
      r.src = *s;
      r.hasSrc = true;
    }
  }
  return true;
}

void readFlowLines(std::istream& in, const std::string& name,
                   const std::function<void(const FlowRecord&)>& sink, ReadStats& stats,
                   size_t maxLineBytes) {
  std::string chunk(kChunk, '\0');
  std::string line;
  bool tooLong = false;
  uint64_t lineNo = 0;
  FlowRecord r;  // reused: its strings keep their buffers
  std::string why;
  auto finish = [&]() {
    ++lineNo;
    if (tooLong) {
      ++stats.lines;
      note(stats, name, lineNo, "line longer than " + std::to_string(maxLineBytes) + " bytes");
    } else if (line.find_first_not_of(" \t\r") != std::string::npos) {
      ++stats.lines;
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
