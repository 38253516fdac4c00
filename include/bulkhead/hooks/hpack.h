// HPACK (RFC 7541), the part a one-call HTTP/2 client needs: decoding the
// header blocks a server sends (static and dynamic table, Huffman strings)
// and encoding its own request headers as plain literals, which need no
// table and no Huffman code.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "bulkhead/common/result.h"

namespace bulkhead::hooks::hpack {

struct Header {
  std::string name;
  std::string value;
};

// The dynamic table size a client allows unless it says otherwise
// (SETTINGS_HEADER_TABLE_SIZE's default).
inline constexpr size_t kDefaultTableSize = 4096;

// One connection's decoder: its dynamic table lives as long as the
// connection, so every header block the connection carries goes through
// the same Decoder, in order. kInvalidInput for a malformed block (HTTP/2's
// COMPRESSION_ERROR: the connection is unusable after it).
class Decoder {
 public:
  Result<std::vector<Header>> decode(std::string_view block);

 private:
  Result<Header> lookup(uint64_t index) const;
  void insert(Header header);
  void evictTo(size_t limit);

  std::deque<Header> dynamic_;  // newest first (index 62)
  size_t size_ = 0;             // RFC 7541 section 4.1: name + value + 32 per entry
  size_t max_ = kDefaultTableSize;
};

// A Huffman-coded string (RFC 7541 section 5.2 and appendix B).
// kInvalidInput for a code past the end, EOS inside, or bad padding.
Result<std::string> huffmanDecode(std::string_view in);

// Appends `value` as an integer with an N-bit prefix (section 5.1); `first`
// holds the bits above the prefix.
void encodeInteger(std::string& out, uint64_t value, int prefixBits, uint8_t first);

// Appends a "literal header field without indexing" (section 6.2.2) with
// plain strings: the name by static table index when `nameIndex` > 0, else
// spelled out.
void encodeLiteral(std::string& out, size_t nameIndex, std::string_view name,
                   std::string_view value);

}  // namespace bulkhead::hooks::hpack
