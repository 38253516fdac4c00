// A flat open-addressing hash table for plain keys and values (linear
// probing, backward-shift deletion, no tombstones): one array, no node per
// entry, no allocation except when it grows, and a hard bound on its size.
// The caller passes the key's 64-bit hash (computed once, reused across
// lookups). Keys and values must be trivially copyable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace bulkhead {

// Mixes a 64-bit word into a hash (murmur3's finalizer on the combined
// word): every input bit reaches every output bit. A single multiply is not
// enough: addresses in network byte order vary in a word's high bytes, and
// a product's low bits (the home slot) only see the factors' low bits.
inline uint64_t hashMix(uint64_t h, uint64_t v) {
  uint64_t x = (h ^ v) + 0x9e3779b97f4a7c15ull;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

template <typename K, typename V>
class FlatTable {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>);

 public:
  // Holds at most maxSize entries; the slot array grows by doubling up to
  // the power of two that keeps the load at or under 3/4 at maxSize.
  explicit FlatTable(size_t maxSize, size_t initialSlots = 64) : maxSize_(maxSize) {
    size_t n = 16;
    while (n < initialSlots)
      n <<= 1;
    slots_.resize(n);
  }

  size_t size() const { return size_; }
  size_t maxSize() const { return maxSize_; }
  size_t slotCount() const { return slots_.size(); }
  size_t bytes() const { return slots_.capacity() * sizeof(Slot); }

  // Starts loading h's home slot (a later find or insert of h hits cache).
  void prefetch(uint64_t h) const { __builtin_prefetch(&slots_[h & mask()]); }

  V* find(const K& k, uint64_t h) {
    const uint32_t t = tag(h);
    for (size_t i = h & mask();; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.tag == 0) return nullptr;
      if (s.tag == t && s.key == k) return &s.value;
    }
  }

  // The value for k, inserted value-initialized if absent (second: true);
  // {nullptr, false} when absent and the table holds maxSize entries.
  std::pair<V*, bool> insert(const K& k, uint64_t h) {
    const uint32_t t = tag(h);
    size_t i = h & mask();
    for (;; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.tag == 0) break;
      if (s.tag == t && s.key == k) return {&s.value, false};
    }
    if (size_ >= maxSize_) return {nullptr, false};
    if ((size_ + 1) * 4 > slots_.size() * 3) {
      grow();
      return insert(k, h);
    }
    slots_[i] = Slot{t, uint32_t(h), k};
    ++size_;
    return {&slots_[i].value, true};
  }

  bool erase(const K& k, uint64_t h) {
    const uint32_t t = tag(h);
    size_t i = h & mask();
    for (;; i = (i + 1) & mask()) {
      if (slots_[i].tag == 0) return false;
      if (slots_[i].tag == t && slots_[i].key == k) break;
    }
    // Backward shift: entries after the hole that may move into it do, so
    // no probe sequence ever crosses an empty slot it should not.
    for (size_t j = (i + 1) & mask();; j = (j + 1) & mask()) {
      Slot& s = slots_[j];
      if (s.tag == 0) break;
      const size_t home = s.hash & mask();
      if (((j - home) & mask()) >= ((j - i) & mask())) {
        slots_[i] = s;
        i = j;
      }
    }
    slots_[i].tag = 0;
    --size_;
    return true;
  }

  void clear() {
    for (auto& s : slots_)
      s.tag = 0;
    size_ = 0;
  }

  template <typename F>
  void forEach(F f) const {
    for (const auto& s : slots_)
      if (s.tag) f(s.key, s.value);
  }

 private:
  struct Slot {
    uint32_t tag = 0;   // 0: empty; else the hash's high bits, never 0
    uint32_t hash = 0;  // its low bits: the home slot
    K key{};
    V value{};
    Slot() = default;
    Slot(uint32_t t, uint32_t h, const K& k) : tag(t), hash(h), key(k) {}
  };

  static uint32_t tag(uint64_t h) { return uint32_t(h >> 32) | 1u; }
  size_t mask() const { return slots_.size() - 1; }

  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const auto& s : old) {
      if (!s.tag) continue;
      size_t i = s.hash & mask();
      while (slots_[i].tag)
        i = (i + 1) & mask();
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t maxSize_;
};

}  // namespace bulkhead
