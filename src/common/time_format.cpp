#include "bulkhead/common/time_format.h"

#include <cstdio>
#include <ctime>

namespace bulkhead::common {

namespace {

using std::chrono::microseconds;

// Digits at s[pos, pos+n) as a number; -1 when any is not a digit.
int digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool isLeap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int daysIn(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && isLeap(year) ? 29 : kDays[month - 1];
}

// Fraction after the seconds: microseconds (more digits are read and cut),
// and where it ends.
bool fraction(std::string_view s, size_t* pos, int64_t* micros) {
  *micros = 0;
  if (*pos >= s.size() || s[*pos] != '.') return true;
  size_t i = *pos + 1, n = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++n)
    if (n < 6) *micros = *micros * 10 + (s[i] - '0');
  if (n == 0 || n > 18) return false;
  for (size_t k = n; k < 6; ++k)
    *micros *= 10;
  *pos = i;
  return true;
}

// "Z" or "+HH:MM"/"-HH:MM" at the end: the offset east of UTC in seconds.
bool zone(std::string_view s, size_t pos, int64_t* offset) {
  if (pos + 1 == s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    *offset = 0;
    return true;
  }
  if (pos + 6 != s.size() || (s[pos] != '+' && s[pos] != '-') || s[pos + 3] != ':') return false;
  const int hh = digits(s, pos + 1, 2), mm = digits(s, pos + 4, 2);
  if (hh < 0 || hh > 23 || mm < 0 || mm > 59) return false;
  *offset = (s[pos] == '-' ? -1 : 1) * int64_t(hh * 3600 + mm * 60);
  return true;
}

}  // namespace

std::string formatRfc3339(WallClock::time_point t, TimePrecision precision) {
  const int64_t us = std::chrono::duration_cast<microseconds>(t.time_since_epoch()).count();
  int64_t secs = us / 1000000, frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  const time_t tt = time_t(secs);
  tm utc{};
  gmtime_r(&tt, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
  std::string out = buf;
  if (precision == TimePrecision::kMicros) {
    std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(frac));
    out += buf;
  }
  return out + "Z";
}

std::optional<WallClock::time_point> parseRfc3339(std::string_view s) {
  if (s.size() < 20 || s.size() > 64 || s[4] != '-' || s[7] != '-' || s[13] != ':' ||
      s[16] != ':' || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
    return std::nullopt;
  const int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  const int hour = digits(s, 11, 2), minute = digits(s, 14, 2);
  int second = digits(s, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour < 0 ||
      hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60)
    return std::nullopt;
  if (second == 60) second = 59;  // a leap second: std::chrono has none
  size_t pos = 19;
  int64_t micros = 0, offset = 0;
  if (!fraction(s, &pos, &micros) || !zone(s, pos, &offset)) return std::nullopt;
  const auto date =
      std::chrono::sys_days(std::chrono::year(year) / unsigned(month) / unsigned(day));
  const auto t = date + std::chrono::hours(hour) + std::chrono::minutes(minute) +
                 std::chrono::seconds(second) + microseconds(micros) - std::chrono::seconds(offset);
  return std::chrono::time_point_cast<WallClock::duration>(t);
}

}  // namespace bulkhead::common
