#include "bulkhead/insight/time_text.h"

#include <cstring>
#include <iterator>

namespace bulkhead::insight {

namespace {

// Fields of the agent's time form: offset in the text, digits, bits packed.
struct TimeField {
  int at, digits, bits;
};
constexpr TimeField kTimeFields[] = {{0, 4, 14}, {5, 2, 4},  {8, 2, 5},  {11, 2, 5},
                                     {14, 2, 6}, {17, 2, 6}, {20, 6, 20}};
constexpr std::string_view kTimeShape = "0000-00-00T00:00:00.000000Z";

}  // namespace

uint64_t TimeText::pack(std::string_view t) {
  if (t.size() != kTimeShape.size()) return 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const bool digit = t[i] >= '0' && t[i] <= '9';
    if (kTimeShape[i] == '0' ? !digit : t[i] != kTimeShape[i]) return 0;
  }
  uint64_t packed = 1;  // a leading 1: never 0
  for (const auto& f : kTimeFields) {
    uint64_t v = 0;
    for (int i = 0; i < f.digits; ++i)
      v = v * 10 + uint64_t(t[size_t(f.at + i)] - '0');
    if (v >> f.bits) return 0;  // (a month 16 or more, ...: not a time, kept as text)
    packed = packed << f.bits | v;
  }
  return packed;
}

std::string_view TimeText::view(char (&buf)[32]) const {
  if (text_) return *text_;
  if (packed_ == 0) return {};
  std::memcpy(buf, kTimeShape.data(), kTimeShape.size());
  uint64_t p = packed_;
  for (auto f = std::rbegin(kTimeFields); f != std::rend(kTimeFields); ++f) {
    uint64_t v = p & ((uint64_t(1) << f->bits) - 1);
    p >>= f->bits;
    for (int i = f->digits - 1; i >= 0; --i, v /= 10)
      buf[size_t(f->at + i)] = char('0' + v % 10);
  }
  return {buf, kTimeShape.size()};
}

std::string TimeText::str() const {
  char buf[32];
  return std::string(view(buf));
}

bool TimeText::before(std::string_view t, uint64_t packed) const {
  if (packed && packed_) return packed < packed_;
  return t < str();
}

bool TimeText::after(std::string_view t, uint64_t packed) const {
  if (packed && packed_) return packed > packed_;
  return t > str();
}

void TimeText::assign(std::string_view t, uint64_t packed) {
  packed_ = packed;
  if (packed)
    text_.reset();
  else
    text_ = std::make_unique<std::string>(t);
}

bool TimeText::operator<(const TimeText& o) const {
  if (packed_ && o.packed_) return packed_ < o.packed_;
  char a[32], b[32];
  return view(a) < o.view(b);
}

void TimeText::assign(const TimeText& o) {
  packed_ = o.packed_;
  if (o.text_)
    text_ = std::make_unique<std::string>(*o.text_);
  else
    text_.reset();
}

}  // namespace bulkhead::insight
