#include "bulkhead/compiler/ruleset.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <functional>
#include <mutex>
#include <unordered_set>

namespace bulkhead::compiler {

namespace {

// Node-based, so a name's address never moves; never shrinks, so a
// ChainName never dangles. Looked up by string_view without a copy.
struct ChainNamePool {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::mutex mutex;
  std::unordered_set<std::string, Hash, std::equal_to<>> names;
};

ChainNamePool& chainNamePool() {
  static auto* pool = new ChainNamePool;  // never destroyed: names outlive static teardown
  return *pool;
}

}  // namespace

ChainName::ChainName(std::string_view name) {
  if (name.empty()) return;
  ChainNamePool& pool = chainNamePool();
  std::lock_guard lock(pool.mutex);
  auto it = pool.names.find(name);
  if (it == pool.names.end()) it = pool.names.emplace(name).first;
  name_ = &*it;
}

const std::string& ChainName::str() const {
  static const std::string kNone;
  return name_ ? *name_ : kNone;
}

size_t fieldLength(KeyField field) {
  switch (field) {
    case KeyField::kIfname:
      return 16;
    case KeyField::kIpv4Addr:
      return 4;
    case KeyField::kIpv6Addr:
      return 16;
    case KeyField::kInetProto:
      return 1;
    case KeyField::kInetService:
      return 2;
  }
  return 0;
}

size_t fieldRegisterLength(KeyField field) {
  return (fieldLength(field) + 3) / 4 * 4;
}

const Set* Ruleset::findSet(const std::string& name) const {
  auto it = std::lower_bound(sets.begin(), sets.end(), name,
                             [](const Set& s, const std::string& n) { return s.name < n; });
  return it != sets.end() && it->name == name ? &*it : nullptr;
}

Ruleset Ruleset::declarations() const {
  Ruleset out;
  out.table = table;
  out.chains = chains;
  out.sets.reserve(sets.size());
  for (const Set& s : sets)
    out.sets.push_back(Set{.name = s.name,
                           .fields = s.fields,
                           .interval = s.interval,
                           .verdictMap = s.verdictMap,
                           .comment = s.comment,
                           .elements = {},
                           .dynamic = s.dynamic,
                           .timeoutSeconds = s.timeoutSeconds,
                           .size = s.size,
                           .lookedUpOften = s.lookedUpOften});
  return out;
}

const Chain* Ruleset::findChain(const std::string& name) const {
  for (const auto& c : chains)
    if (c.name == name) return &c;
  return nullptr;
}

size_t Ruleset::elementCount() const {
  size_t n = 0;
  for (const auto& s : sets)
    n += s.elements.size();
  return n;
}

void KeyBuilder::append(const uint8_t* data, size_t len, size_t regLen) {
  assert(key_.len + regLen <= kMaxKeyBytes);
  std::memcpy(key_.bytes.data() + key_.len, data, len);
  key_.len = uint8_t(key_.len + regLen);  // padding bytes stay zero
}

KeyBuilder& KeyBuilder::ifname(std::string_view name) {
  uint8_t buf[16] = {};
  std::memcpy(buf, name.data(), std::min<size_t>(name.size(), 15));
  append(buf, 16, 16);
  return *this;
}

KeyBuilder& KeyBuilder::addr(const policy::IpAddr& addr) {
  append(addr.bytes.data(), addr.size(), addr.size());
  return *this;
}

KeyBuilder& KeyBuilder::proto(uint8_t proto) {
  append(&proto, 1, 4);
  return *this;
}

KeyBuilder& KeyBuilder::port(uint16_t port) {
  const uint8_t be[2] = {uint8_t(port >> 8), uint8_t(port & 0xff)};
  append(be, 2, 4);
  return *this;
}

}  // namespace bulkhead::compiler
