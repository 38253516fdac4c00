#include "bulkhead/insight/flow_log.h"

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
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

// The keys an event needs, taken straight from the parser's events into
// their fields (no document, no map): top-level strings and unsigned
// numbers; anything else under a key we use makes that key bad; nested
// values (keys of a newer agent) are skipped.
class EventSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  enum Key { kAction, kDst, kApp, kWorkload, kProto, kReason, kTime, kSrc, kDport, kCount, kOther };
  std::string str[8];
  uint64_t num[2] = {0, 1};
  bool has[10] = {};
  bool bad[10] = {};
  bool topObject = false;

  bool null() override { return other(); }
  bool boolean(bool) override { return other(); }
  bool number_integer(number_integer_t v) override {
    return v >= 0 ? number_unsigned(number_unsigned_t(v)) : other();
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (depth_ != 1 || key_ == kOther) return true;
    if (key_ < kDport) return other();
    num[key_ - kDport] = v;
    has[key_] = true;
    return true;
  }
  bool number_float(number_float_t, const string_t&) override { return other(); }
  bool string(string_t& v) override {
    if (depth_ != 1 || key_ == kOther) return true;
    if (key_ >= kDport) return other();
    str[key_] = std::move(v);
    has[key_] = true;
    return true;
  }
  bool binary(binary_t&) override { return other(); }
  bool start_object(std::size_t) override {
    if (depth_ == 0) topObject = true;
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
  static Key keyOf(const std::string& k) {
    static const char* kNames[] = {"action", "dst",  "app", "workload", "proto",
                                   "reason", "time", "src", "dport",    "count"};
    for (int i = 0; i < kOther; ++i)
      if (k == kNames[i]) return Key(i);
    return kOther;
  }
  bool other() {
    if (depth_ == 1 && key_ != kOther) bad[key_] = true;
    return true;
  }
  int depth_ = 0;
  Key key_ = kOther;
};

}  // namespace

bool parseFlowLine(std::string_view line, FlowRecord* out, std::string* why) {
  using K = EventSax;
  EventSax sax;
  if (!nlohmann::json::sax_parse(line.begin(), line.end(), &sax)) return *why = "not JSON", false;
  if (!sax.topObject) return *why = "not a JSON object", false;
  auto good = [&](int k) { return sax.has[k] && !sax.bad[k]; };
  if (!good(K::kAction)) return *why = "no \"action\" string", false;
  if (!good(K::kDst)) return *why = "no \"dst\" string", false;
  FlowRecord r;
  auto ip = policy::IpAddr::parse(sax.str[K::kDst]);
  if (!ip) return *why = "bad \"dst\" address", false;
  r.dst = *ip;
  if (sax.bad[K::kDport] || sax.num[0] > 65535)
    return *why = "\"dport\" is not a port number", false;
  if (sax.bad[K::kCount]) return *why = "\"count\" is not a count", false;
  r.dport = uint16_t(sax.num[0]);
  r.count = sax.num[1];
  r.action = std::move(sax.str[K::kAction]);
  r.app = std::move(sax.str[K::kApp]);
  r.workload = std::move(sax.str[K::kWorkload]);
  r.proto = std::move(sax.str[K::kProto]);
  r.reason = std::move(sax.str[K::kReason]);
  r.time = std::move(sax.str[K::kTime]);
  if (good(K::kSrc)) {
    if (auto s = policy::IpAddr::parse(sax.str[K::kSrc])) {
      r.src = *s;
      r.hasSrc = true;
    }
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
