#include "bulkhead/common/config_keys.h"

namespace bulkhead::common {

namespace {
bool isUpper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool isLowerOrDigit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
}  // namespace

std::string dashedKey(std::string_view key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    const char ch = key[i];
    if (!isUpper(ch)) {
      out += ch;
      continue;
    }
    const bool afterLower = i > 0 && isLowerOrDigit(key[i - 1]);
    // The last capital of an acronym starts the next word: "CAFile".
    const bool endsAcronym = i > 0 && isUpper(key[i - 1]) && i + 1 < key.size() &&
                             key[i + 1] >= 'a' && key[i + 1] <= 'z';
    if (afterLower || endsAcronym) out += '-';
    out += char(ch - 'A' + 'a');
  }
  return out;
}

}  // namespace bulkhead::common
