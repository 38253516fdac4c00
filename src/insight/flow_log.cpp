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

// The keys an event needs, taken straight from the parser's events (no
// document is built): top-level strings and numbers; nested values (keys of
// a newer agent) are skipped.
class EventSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  using json = nlohmann::json;
  std::map<std::string, std::string, std::less<>> strings;
  std::map<std::string, uint64_t, std::less<>> numbers;
  std::set<std::string, std::less<>> badNumbers;  // present, not an unsigned integer
  int depth = 0;
  bool topObject = false;

  bool null() override { return scalar(); }
  bool boolean(bool) override { return scalar(); }
  bool number_integer(number_integer_t v) override {
    if (depth == 1)
      (v >= 0 ? (numbers[key_] = uint64_t(v), true) : (badNumbers.insert(key_), true));
    return true;
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (depth == 1) numbers[key_] = v;
    return true;
  }
  bool number_float(number_float_t, const string_t&) override {
    if (depth == 1) badNumbers.insert(key_);
    return true;
  }
  bool string(string_t& v) override {
    if (depth == 1) {
      strings[key_] = std::move(v);
      badNumbers.insert(key_);
    }
    return true;
  }
  bool binary(binary_t&) override { return scalar(); }
  bool start_object(std::size_t) override {
    if (depth == 0) topObject = true;
    ++depth;
    return true;
  }
  bool key(string_t& k) override {
    if (depth == 1) key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    --depth;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth == 1) badNumbers.insert(key_);
    ++depth;
    return true;
  }
  bool end_array() override {
    --depth;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  bool scalar() {
    if (depth == 1) badNumbers.insert(key_);
    return true;
  }
  std::string key_;
};

}  // namespace

bool parseFlowLine(std::string_view line, FlowRecord* out, std::string* why) {
  EventSax sax;
  if (!nlohmann::json::sax_parse(line.begin(), line.end(), &sax)) return *why = "not JSON", false;
  if (!sax.topObject) return *why = "not a JSON object", false;
  FlowRecord r;
  auto str = [&](const char* key, std::string* to) {
    auto it = sax.strings.find(std::string_view(key));
    if (it == sax.strings.end()) return false;
    *to = std::move(it->second);
    return true;
  };
  std::string dst, src;
  if (!str("action", &r.action)) return *why = "no \"action\" string", false;
  if (!str("dst", &dst)) return *why = "no \"dst\" string", false;
  auto ip = policy::IpAddr::parse(dst);
  if (!ip) return *why = "bad \"dst\" address", false;
  r.dst = *ip;
  str("app", &r.app);
  str("workload", &r.workload);
  str("proto", &r.proto);
  str("reason", &r.reason);
  str("time", &r.time);
  if (str("src", &src)) {
    if (auto s = policy::IpAddr::parse(src)) {
      r.src = *s;
      r.hasSrc = true;
    }
  }
  auto num = [&](const char* key, uint64_t max, uint64_t* to) {
    if (sax.badNumbers.count(std::string_view(key))) return false;
    auto it = sax.numbers.find(std::string_view(key));
    if (it != sax.numbers.end()) {
      if (it->second > max) return false;
      *to = it->second;
    }
    return true;
  };
  uint64_t dport = 0;
  if (!num("dport", 65535, &dport)) return *why = "\"dport\" is not a port number", false;
  r.dport = uint16_t(dport);
  if (!num("count", UINT64_MAX, &r.count)) return *why = "\"count\" is not a count", false;
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
