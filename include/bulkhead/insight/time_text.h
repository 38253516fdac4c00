// A time as flow events carry it (RFC 3339 UTC text), held compactly for
// suggest's per-flow state: the agent's own form
// (2026-11-28T09:00:01.123456Z) packed into 8 bytes whose order is the
// text's; any other text kept as it is. Compared as text either way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace bulkhead::insight {

class TimeText {
 public:
  static uint64_t pack(std::string_view t);  // 0: not the agent's form
  bool empty() const { return packed_ == 0 && !text_; }
  std::string str() const;
  // The text, formatted into `buf` when packed (no allocation).
  std::string_view view(char (&buf)[32]) const;
  // Compared as text (as Evidence compares times), as numbers when both
  // are packed.
  bool before(std::string_view t, uint64_t packed) const;
  bool after(std::string_view t, uint64_t packed) const;
  bool operator<(const TimeText& o) const;
  void assign(std::string_view t, uint64_t packed);
  void assign(const TimeText& o);

 private:
  uint64_t packed_ = 0;
  std::unique_ptr<std::string> text_;
};

}  // namespace bulkhead::insight
