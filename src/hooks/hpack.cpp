#include "bulkhead/hooks/hpack.h"

#include <array>

namespace bulkhead::hooks::hpack {

namespace {

constexpr size_t kStaticEntries = 61;

// RFC 7541 appendix A.
const Header kStatic[kStaticEntries] = {
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
};

// Code lengths of symbols 0..255 and EOS (256), RFC 7541 appendix B. The
// code is canonical (codes of one length are consecutive, in symbol order,
// and follow the shorter ones), so the lengths alone define it.
constexpr uint8_t kCodeLengths[257] = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,
    5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10, 13, 6,  7,  7,  7,  7,  7,  7,
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8,  13, 19, 13, 14, 6,
    15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,  6,  7,  6,  5,  5,  6,  7,  7,
    7,  7,  7,  15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21,
    23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24,
    21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
};

constexpr int kMaxCodeLength = 30;
constexpr uint16_t kEos = 256;

// The canonical code's tables: per length, its first code, how many codes
// it has and where its symbols start in `symbols` (sorted by length, then
// symbol).
struct Canonical {
  std::array<uint32_t, kMaxCodeLength + 1> first{};
  std::array<uint32_t, kMaxCodeLength + 1> count{};
  std::array<uint32_t, kMaxCodeLength + 1> offset{};
  std::array<uint16_t, 257> symbols{};
};

const Canonical& canonical() {
  static const Canonical c = [] {
    Canonical t;
    for (uint8_t len : kCodeLengths)
      ++t.count[len];
    for (int len = 1; len <= kMaxCodeLength; ++len) {
      t.first[len] = len == 1 ? 0 : (t.first[len - 1] + t.count[len - 1]) << 1;
      t.offset[len] = len == 1 ? 0 : t.offset[len - 1] + t.count[len - 1];
    }
    std::array<uint32_t, kMaxCodeLength + 1> next = t.offset;
    for (uint16_t s = 0; s < 257; ++s)
      t.symbols[next[kCodeLengths[s]]++] = s;
    return t;
  }();
  return c;
}

Error malformed(const std::string& why) {
  return makeError(ErrorCode::kInvalidInput, "HPACK: " + why);
}

// Section 5.1. `at` moves past the integer.
Result<uint64_t> readInteger(std::string_view in, size_t& at, int prefixBits) {
  if (at >= in.size()) return malformed("integer past the end of the block");
  const uint64_t mask = (1u << prefixBits) - 1;
  uint64_t value = uint8_t(in[at++]) & mask;
  if (value < mask) return value;
  for (int shift = 0;; shift += 7) {
    if (at >= in.size()) return malformed("integer past the end of the block");
    if (shift > 28) return malformed("integer too large");
    const uint8_t b = uint8_t(in[at++]);
    value += uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value;
  }
}

// Section 5.2. No header a hook reads comes near this bound.
constexpr size_t kMaxStringBytes = 64 * 1024;

Result<std::string> readString(std::string_view in, size_t& at) {
  if (at >= in.size()) return malformed("string past the end of the block");
  const bool huffman = (uint8_t(in[at]) & 0x80) != 0;
  auto len = readInteger(in, at, 7);
  if (!len) return len.takeError();
  if (*len > kMaxStringBytes || *len > in.size() - at)
    return malformed("string past the end of the block");
  const std::string_view raw = in.substr(at, size_t(*len));
  at += size_t(*len);
  if (huffman) return huffmanDecode(raw);
  return std::string(raw);
}

}  // namespace

Result<std::string> huffmanDecode(std::string_view in) {
  const Canonical& c = canonical();
  std::string out;
  uint32_t code = 0;
  int len = 0;
  for (unsigned char byte : in) {
    for (int bit = 7; bit >= 0; --bit) {
      code = (code << 1) | ((byte >> bit) & 1u);
      ++len;
      if (len > kMaxCodeLength) return malformed("bad Huffman code");
      if (c.count[len] == 0 || code < c.first[len] || code - c.first[len] >= c.count[len]) continue;
      const uint16_t symbol = c.symbols[c.offset[len] + (code - c.first[len])];
      if (symbol == kEos) return malformed("EOS inside a Huffman string");
      out += char(symbol);
      code = 0;
      len = 0;
    }
  }
  // Padding: fewer than 8 bits, all ones (the start of EOS).
  if (len > 7 || code != (1u << len) - 1) return malformed("bad Huffman padding");
  return out;
}

Result<Header> Decoder::lookup(uint64_t index) const {
  if (index == 0) return malformed("index 0");
  if (index <= kStaticEntries) return kStatic[index - 1];
  const uint64_t d = index - kStaticEntries - 1;
  if (d >= dynamic_.size())
    return malformed("index " + std::to_string(index) + " not in the table");
  return dynamic_[size_t(d)];
}

void Decoder::evictTo(size_t limit) {
  while (size_ > limit && !dynamic_.empty()) {
    size_ -= dynamic_.back().name.size() + dynamic_.back().value.size() + 32;
    dynamic_.pop_back();
  }
}

// Section 4.4: an entry larger than the table empties it and is not kept.
void Decoder::insert(Header header) {
  const size_t bytes = header.name.size() + header.value.size() + 32;
  evictTo(bytes > max_ ? 0 : max_ - bytes);
  if (bytes > max_) return;
  size_ += bytes;
  dynamic_.push_front(std::move(header));
}

Result<std::vector<Header>> Decoder::decode(std::string_view block) {
  std::vector<Header> out;
  size_t at = 0;
  while (at < block.size()) {
    const uint8_t b = uint8_t(block[at]);
    if (b & 0x80) {  // indexed field
      auto index = readInteger(block, at, 7);
      if (!index) return index.takeError();
      auto h = lookup(*index);
      if (!h) return h.takeError();
      out.push_back(std::move(*h));
      continue;
    }
    if ((b & 0xe0) == 0x20) {  // dynamic table size update
      auto size = readInteger(block, at, 5);
      if (!size) return size.takeError();
      if (*size > kDefaultTableSize) return malformed("table size above the one allowed");
      max_ = size_t(*size);
      evictTo(max_);
      continue;
    }
    // Literal: with incremental indexing (01), without (0000), never (0001).
    const bool indexing = (b & 0xc0) == 0x40;
    auto nameIndex = readInteger(block, at, indexing ? 6 : 4);
    if (!nameIndex) return nameIndex.takeError();
    Header h;
    if (*nameIndex == 0) {
      auto name = readString(block, at);
      if (!name) return name.takeError();
      h.name = std::move(*name);
    } else {
      auto named = lookup(*nameIndex);
      if (!named) return named.takeError();
      h.name = std::move(named->name);
    }
    auto value = readString(block, at);
    if (!value) return value.takeError();
    h.value = std::move(*value);
    if (indexing) insert(h);
    out.push_back(std::move(h));
  }
  return out;
}

void encodeInteger(std::string& out, uint64_t value, int prefixBits, uint8_t first) {
  const uint64_t mask = (1u << prefixBits) - 1;
  if (value < mask) {
    out += char(first | uint8_t(value));
    return;
  }
  out += char(first | uint8_t(mask));
  value -= mask;
  while (value >= 0x80) {
    out += char(0x80 | (value & 0x7f));
    value >>= 7;
  }
  out += char(value);
}

void encodeLiteral(std::string& out, size_t nameIndex, std::string_view name,
                   std::string_view value) {
  encodeInteger(out, nameIndex, 4, 0x00);
  if (nameIndex == 0) {
    encodeInteger(out, name.size(), 7, 0x00);
    out.append(name);
  }
  encodeInteger(out, value.size(), 7, 0x00);
  out.append(value);
}

}  // namespace bulkhead::hooks::hpack
