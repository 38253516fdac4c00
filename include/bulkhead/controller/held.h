// What one connected host holds of other hosts' workloads: a record id and
// the generation it was sent, per workload. The controller keeps one per
// connected host, and every host holds the workloads of every app it
// selects: at 1,000 hosts selecting ~1,000 workloads each that is a million
// entries. A node-based hash map takes ~45 bytes for each (node, allocator
// header, bucket); this keeps them as sorted pairs in one vector, 16 bytes
// each. A host's set changes one workload at a time (a binary search and a
// move of at most its ~1,000 entries) or is rebuilt whole (snapshot, sync).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bulkhead::controller {

class HeldWorkloads {
 public:
  struct Entry {
    uint64_t id = 0;
    uint64_t gen = 0;
  };

  HeldWorkloads() = default;
  // The whole set at once, in any order; an id given twice keeps its last gen.
  explicit HeldWorkloads(std::vector<Entry> entries);

  // Records that the host has `id` at `gen`; false if it already had
  // exactly that (nothing to send).
  bool set(uint64_t id, uint64_t gen);
  // Forgets `id`; false if the host did not hold it.
  bool erase(uint64_t id);
  bool contains(uint64_t id) const { return at(id) != nullptr; }
  // Whether the host has `id` at exactly `gen`.
  bool holds(uint64_t id, uint64_t gen) const {
    const Entry* e = at(id);
    return e != nullptr && e->gen == gen;
  }
  // Empty, with its memory returned: a disconnected host holds nothing.
  void clear() { std::vector<Entry>().swap(entries_); }

  size_t size() const { return entries_.size(); }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

 private:
  // Where `id` is or would go: the first entry whose id is not below it.
  size_t slot(uint64_t id) const {
    return size_t(std::lower_bound(entries_.begin(), entries_.end(), id,
                                   [](const Entry& e, uint64_t v) { return e.id < v; }) -
                  entries_.begin());
  }
  const Entry* at(uint64_t id) const {
    const size_t i = slot(id);
    return i < entries_.size() && entries_[i].id == id ? &entries_[i] : nullptr;
  }

  std::vector<Entry> entries_;  // sorted by id, ids unique
};

inline HeldWorkloads::HeldWorkloads(std::vector<Entry> entries) {
  // Stable, so that of two entries of one id the one given later wins.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.id < b.id; });
  entries_.reserve(entries.size());
  for (const Entry& e : entries)
    if (!entries_.empty() && entries_.back().id == e.id)
      entries_.back().gen = e.gen;
    else
      entries_.push_back(e);
}

inline bool HeldWorkloads::set(uint64_t id, uint64_t gen) {
  const size_t i = slot(id);
  if (i < entries_.size() && entries_[i].id == id) {
    if (entries_[i].gen == gen) return false;
    entries_[i].gen = gen;
    return true;
  }
  entries_.insert(entries_.begin() + std::ptrdiff_t(i), Entry{id, gen});
  return true;
}

inline bool HeldWorkloads::erase(uint64_t id) {
  const size_t i = slot(id);
  if (i == entries_.size() || entries_[i].id != id) return false;
  entries_.erase(entries_.begin() + std::ptrdiff_t(i));
  return true;
}

}  // namespace bulkhead::controller
