#include "bulkhead/agent/scan_detector.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string_view>

namespace bulkhead::agent {

namespace {

bool counted(flows::FlowAction action) {
  return action == flows::FlowAction::kDeny || action == flows::FlowAction::kAudit;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

const char* scanReason(ScanKind kind) {
  return kind == ScanKind::kHosts ? "scan/hosts" : "scan/ports";
}

flows::FlowEvent anomalyEvent(const ScanFinding& f, const ScanOptions& o) {
  flows::FlowEvent e = f.trigger;
  e.action = flows::FlowAction::kAnomaly;
  e.reason = scanReason(f.kind);
  e.count = f.distinct;
  e.fields.clear();
  e.fields.emplace_back("distinct", std::to_string(f.distinct));
  e.fields.emplace_back("threshold",
                        std::to_string(f.kind == ScanKind::kHosts ? o.hosts : o.ports));
  e.fields.emplace_back("window_seconds", std::to_string(o.window.count()));
  if (f.kind == ScanKind::kHosts) {
    e.fields.emplace_back("port", f.port);
    e.fields.emplace_back("sample_dst", join(f.sample));
  } else {
    e.fields.emplace_back("dst", f.dst.toString());
    e.fields.emplace_back("sample_ports", join(f.sample));
  }
  return e;
}

namespace scan {

template <typename K, typename M>
uint32_t DistinctSets<K, M>::open(const K& k, uint64_t h, uint32_t workload, Tick now,
                                  Tick window) {
  if (const uint32_t* g = index_.find(k, h)) return *g;
  uint32_t g;
  if (!free_.empty()) {
    g = free_.back();
    free_.pop_back();
  } else if (headers_.size() < max_) {
    g = uint32_t(headers_.size());
    headers_.emplace_back();
    members_.resize(members_.size() + cap_);
    ticks_.resize(ticks_.size() + cap_, 0);
  } else {
    g = reclaim(workload, now, window);
  }
  Header& x = headers_[g];
  x.key = k;
  x.hash = h;
  x.workload = workload;
  x.last = x.queued = now;
  *index_.insert(k, h).first = g;
  queue_.push_back(g);
  if (perWorkload_.size() <= workload) perWorkload_.resize(workload + 1, 0);
  ++perWorkload_[workload];
  return g;
}

template <typename K, typename M>
uint32_t DistinctSets<K, M>::reclaim(uint32_t workload, Tick now, Tick window) {
  // A workload holding a quarter of all sets (distinct attempts below both
  // thresholds) starts over, at its own cost, not the others'. Amortized
  // O(1): the walk frees a quarter of the queue.
  if (workload < perWorkload_.size() && perWorkload_[workload] * 4 >= max_) {
    restart(workload);
    const uint32_t g = free_.back();
    free_.pop_back();
    return g;
  }
  // Else an expired set, or the oldest one not used since it was queued
  // (one used since goes to the back, a few times at most).
  for (int tries = 0;; ++tries) {
    const uint32_t g = queue_.front();
    queue_.pop_front();
    Header& x = headers_[g];
    if (tries < 4 && live(x.last, now, window) && x.last != x.queued) {
      x.queued = x.last;
      queue_.push_back(g);
      continue;
    }
    release(g);
    return g;
  }
}

template <typename K, typename M>
void DistinctSets<K, M>::release(uint32_t g) {
  Header& x = headers_[g];
  empty(g);
  index_.erase(x.key, x.hash);
  --perWorkload_[x.workload];
}

template <typename K, typename M>
void DistinctSets<K, M>::restart(uint32_t workload) {
  std::deque<uint32_t> kept;
  for (const uint32_t g : queue_) {
    if (headers_[g].workload == workload) {
      release(g);
      free_.push_back(g);
    } else {
      kept.push_back(g);
    }
  }
  queue_.swap(kept);
}

template <typename K, typename M>
typename DistinctSets<K, M>::Touch DistinctSets<K, M>::touch(uint32_t g, const M& m, Tick now,
                                                             Tick window) {
  // One pass: members past the window leave, the live ones are counted,
  // and m is found or takes the first free slot.
  Tick* t = &ticks_[size_t(g) * cap_];
  M* ms = &members_[size_t(g) * cap_];
  Header& x = headers_[g];
  Touch r;
  uint32_t hole = kNone;
  for (uint32_t i = 0; i < cap_; ++i) {
    if (t[i] == 0) {
      if (hole == kNone) hole = i;
      continue;
    }
    if (!live(t[i], now, window)) {
      t[i] = 0;
      ++x.gen;
      --used_;
      if (hole == kNone) hole = i;
      continue;
    }
    ++r.live;
    if (ms[i] == m) r.slot = i;
  }
  if (int32_t(now - x.last) > 0) x.last = now;
  if (r.slot != kNone) {
    if (int32_t(now - t[r.slot]) > 0) t[r.slot] = now;
    return r;
  }
  if (hole == kNone) return r;  // full of live members: at the threshold
  t[hole] = now;
  ms[hole] = m;
  ++used_;
  r.slot = hole;
  ++r.live;
  return r;
}

template <typename K, typename M>
void DistinctSets<K, M>::empty(uint32_t g) {
  Tick* t = &ticks_[size_t(g) * cap_];
  for (size_t i = 0; i < cap_; ++i) {
    if (t[i]) --used_;
    t[i] = 0;
  }
  ++headers_[g].gen;
}

template <typename K, typename M>
void DistinctSets<K, M>::reset() {
  index_.clear();
  headers_.clear();
  members_.clear();
  ticks_.clear();
  free_.clear();
  queue_.clear();
  perWorkload_.clear();
  used_ = 0;
}

template <typename K, typename M>
size_t DistinctSets<K, M>::bytes() const {
  return index_.bytes() + headers_.capacity() * sizeof(Header) + members_.capacity() * sizeof(M) +
         ticks_.capacity() * sizeof(Tick) + free_.capacity() * 4 + queue_.size() * 4 +
         perWorkload_.capacity() * 4;
}

}  // namespace scan

ScanDetector::ScanDetector(ScanOptions options)
    : options_(options),
      seed_(uint64_t(std::random_device{}()) << 32 | std::random_device{}()),
      window_(Tick(std::min<int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(options.window).count(),
          int64_t(1) << 30))),
      // Half of maxEntries' members for each kind, in sets of the threshold.
      sweeps_(options.hosts,
              std::max<size_t>(16, options.maxEntries / 2 / std::max<uint32_t>(options.hosts, 1))),
      scans_(options.ports,
             std::max<size_t>(16, options.maxEntries / 2 / std::max<uint32_t>(options.ports, 1))),
      cache_(kCacheSets * kCacheWays),
      ids_(kMaxWorkloads) {
  options_.maxEntries =
      std::max(options.maxEntries, 16 * size_t(std::max(options.hosts, options.ports)));
}

size_t ScanDetector::bytes() const {
  size_t n = sweeps_.bytes() + scans_.bytes() + cache_.capacity() * sizeof(Cached) + ids_.bytes() +
             state_.capacity() * sizeof(Workload);
  for (const auto& name : names_)
    n += sizeof(std::string) + name.capacity();
  return n;
}

void ScanDetector::reset() {
  sweeps_.reset();
  scans_.reset();
  std::fill(cache_.begin(), cache_.end(), Cached{});
  ++epoch_;
}

namespace {

// Up to 8 bytes of `s` from `at` as one word, built in registers (a short
// memcpy into a word stalls on store forwarding).
uint64_t word(std::string_view s, size_t at) {
  uint64_t w = 0;
  for (size_t i = at; i < s.size() && i < at + 8; ++i)
    w |= uint64_t(static_cast<unsigned char>(s[i])) << (8 * (i - at));
  return w;
}

}  // namespace

uint32_t ScanDetector::workloadId(const std::string& name) {
  // Workload names are short: up to 16 bytes taken as two words, a longer
  // one (rare) hashed whole.
  const uint64_t h = name.size() <= 16 ? hashMix(hashMix(seed_, word(name, 0)),
                                                 word(name, 8) ^ uint64_t(name.size()) << 56)
                                       : hashMix(seed_, std::hash<std::string_view>()(name));
  uint32_t* id = ids_.find(h, h);
  if (id && names_[*id] == name) return *id;
  if (id) {
    // Another name with the same 64-bit hash (practically never).
    if (auto it = collided_.find(name); it != collided_.end()) return it->second;
  }
  if (names_.size() >= kMaxWorkloads) {
    // More names than any host registers: everything starts over.
    reset();
    ids_.clear();
    collided_.clear();
    names_.clear();
    state_.clear();
    id = nullptr;
  }
  const auto fresh = uint32_t(names_.size());
  names_.push_back(name);
  state_.emplace_back();
  if (id) {
    collided_.emplace(name, fresh);
  } else {
    *ids_.insert(h, h).first = fresh;
  }
  return fresh;
}

uint32_t ScanDetector::portKey(const flows::FlowEvent& e) {
  // Protocol names interned: a port is (protocol index, port number).
  size_t i = 0;
  while (i < protos_.size() && protos_[i] != e.proto)
    ++i;
  if (i == protos_.size()) {
    if (protos_.size() >= 255) return 0xff0000u | e.dport;  // (never: IP has 256 protocols)
    protos_.push_back(e.proto);
  }
  return uint32_t(i) << 16 | e.dport;
}

std::string ScanDetector::portName(uint32_t key) const {
  const size_t i = key >> 16 & 0xff;
  return (i < protos_.size() ? protos_[i] : std::string("?")) + "/" + std::to_string(key & 0xffff);
}

scan::Tick ScanDetector::tickOf(Time t) {
  // Milliseconds from a base an hour before the first attempt (attempts
  // logged out of order stay after it); 32 bits last 24 days from there,
  // then the sets start over from a new base.
  using std::chrono::milliseconds;
  if (!based_) {
    base_ = t - std::chrono::hours(1);
    based_ = true;
  }
  int64_t ms = std::chrono::duration_cast<milliseconds>(t - base_).count();
  if (ms >= int64_t(1) << 31) {
    reset();
    base_ = t - std::chrono::hours(1);
    ms = 3'600'000;
  }
  return Tick(std::max<int64_t>(ms, 0) + 1);
}

bool ScanDetector::attemptKey(const flows::FlowEvent& e, AttemptKey* k) {
  if (e.workload.size() > 16 || e.proto.size() > 8) return false;
  k->name0 = word(e.workload, 0);
  k->name1 = word(e.workload, 8) ^ uint64_t(e.workload.size()) << 56;
  k->proto = word(e.proto, 0);
  k->port = uint64_t(e.dport) | uint64_t(e.dst.family == policy::Family::kIpv6) << 16;
  std::memcpy(&k->lo, e.dst.bytes.data(), 8);
  std::memcpy(&k->hi, e.dst.bytes.data() + 8, 8);
  return true;
}

ScanDetector::Cached* ScanDetector::cacheSet(const AttemptKey& k) {
  // Only picks a set (a collision costs a search, never a wrong answer).
  uint64_t x = (k.name0 ^ seed_) * 0x9e3779b97f4a7c15ull ^ k.name1 * 0xc2b2ae3d27d4eb4full ^
               (k.proto ^ k.port << 40) * 0x165667b19e3779f9ull ^ k.lo * 0xff51afd7ed558ccdull ^
               k.hi * 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 29;
  return &cache_[((x * 0xbf58476d1ce4e5b9ull) >> 40 & (kCacheSets - 1)) * kCacheWays];
}

bool ScanDetector::refresh(const Cached& c, Tick now) {
  // A repeat of a cached attempt: both members still there (no member of
  // their sets left since: same generation) and live. Refreshing a live
  // member changes no count, so no threshold can be crossed here.
  Tick* st = nullptr;
  Tick* pt = nullptr;
  if (c.sweep != scan::kNone) {
    if (sweeps_.header(c.sweep).gen != c.sweepGen) return false;
    st = &sweeps_.tick(c.sweep, c.sweepSlot);
    if (!scan::live(*st, now, window_)) return false;
  }
  if (c.scan != scan::kNone) {
    if (scans_.header(c.scan).gen != c.scanGen) return false;
    pt = &scans_.tick(c.scan, c.scanSlot);
    if (!scan::live(*pt, now, window_)) return false;
  }
  const auto later = [now](Tick& t) {
    if (int32_t(now - t) > 0) t = now;
  };
  if (st) {
    later(*st);
    later(sweeps_.header(c.sweep).last);
  }
  if (pt) {
    later(*pt);
    later(scans_.header(c.scan).last);
  }
  return true;
}

std::optional<ScanFinding> ScanDetector::finding(ScanKind kind, uint32_t set,
                                                 const flows::FlowEvent& e, uint64_t wp) {
  // The set holds only live members (touch just dropped the others).
  const bool hosts = kind == ScanKind::kHosts;
  std::vector<std::string> members;
  const size_t cap = hosts ? sweeps_.cap() : scans_.cap();
  for (uint32_t i = 0; i < cap; ++i) {
    if (hosts) {
      if (!sweeps_.tick(set, i)) continue;
      const scan::Addr& a = sweeps_.member(set, i);
      policy::IpAddr ip;
      ip.family = a.v6 ? policy::Family::kIpv6 : policy::Family::kIpv4;
      std::memcpy(ip.bytes.data(), &a.lo, 8);
      std::memcpy(ip.bytes.data() + 8, &a.hi, 8);
      members.push_back(ip.toString());
    } else {
      if (!scans_.tick(set, i)) continue;
      members.push_back(portName(scans_.member(set, i)));
    }
  }
  ScanFinding f;
  f.kind = kind;
  f.workload = e.workload;
  f.app = e.app;
  f.distinct = uint32_t(members.size());
  f.port = portName(uint32_t(wp & 0xffffff));
  f.dst = e.dst;
  f.trigger = e;
  std::sort(members.begin(), members.end());
  members.resize(std::min(members.size(), options_.sample));
  f.sample = std::move(members);
  // Reported: quiet for the window, its set starts empty after it.
  Workload& w = state_[wp >> 32];
  (hosts ? w.quietHosts : w.quietPorts) = e.time + options_.window;
  if (hosts) {
    sweeps_.empty(set);
  } else {
    scans_.empty(set);
  }
  return f;
}

std::optional<ScanFinding> ScanDetector::observe(const flows::FlowEvent& e) {
  if (e.workload.empty() || !counted(e.action)) return std::nullopt;
  const Tick now = tickOf(e.time);
  AttemptKey k;
  Cached* ways = nullptr;
  if (attemptKey(e, &k)) {
    ways = cacheSet(k);
    for (size_t i = 0; i < kCacheWays; ++i)
      if (ways[i].epoch == epoch_ && ways[i].key == k && refresh(ways[i], now)) return std::nullopt;
  }
  const uint32_t wid = workloadId(e.workload);
  // A kind reported within the window is not looked at before its quiet
  // time ends (a scan that goes on is reported again after it).
  const bool sweepOn = options_.hosts && !(e.time < state_[wid].quietHosts);
  const bool scanOn = options_.ports && !(e.time < state_[wid].quietPorts);
  if (!sweepOn && !scanOn) return std::nullopt;
  const uint64_t v6 = e.dst.family == policy::Family::kIpv6;
  const uint64_t wp = uint64_t(wid) << 32 | v6 << 24 | portKey(e);
  uint64_t lo, hi;
  std::memcpy(&lo, e.dst.bytes.data(), 8);
  std::memcpy(&hi, e.dst.bytes.data() + 8, 8);

  Cached next;
  std::optional<ScanFinding> found;
  if (sweepOn) {
    const uint64_t key = wp & ~(uint64_t(0xff) << 24);  // both families: one sweep
    const uint32_t g = sweeps_.open(key, hashMix(seed_ ^ 0x5bd1e995u, key), wid, now, window_);
    const auto r = sweeps_.touch(g, scan::Addr{lo, hi, v6}, now, window_);
    next.sweep = g;
    next.sweepGen = sweeps_.header(g).gen;
    next.sweepSlot = uint16_t(r.slot);
    if (r.live >= options_.hosts) found = finding(ScanKind::kHosts, g, e, wp);
  }
  if (scanOn) {
    const scan::DstKey key{wp >> 32 << 32 | v6, lo, hi};
    const uint64_t h = hashMix(hashMix(hashMix(seed_ ^ 0x27d4eb2du, key.wf), lo), hi);
    const uint32_t g = scans_.open(key, h, wid, now, window_);
    const auto r = scans_.touch(g, uint32_t(wp & 0xffffff), now, window_);
    next.scan = g;
    next.scanGen = scans_.header(g).gen;
    next.scanSlot = uint16_t(r.slot);
    if (r.live >= options_.ports) {
      if (found) {
        // Both crossed at once: this one is reported at the set's next
        // attempt (the epoch moves on, so no cached repeat skips it).
      } else {
        found = finding(ScanKind::kPorts, g, e, wp);
      }
    }
  }
  if (found) {
    ++epoch_;  // a kind is quiet now: every cached attempt is looked up again
  } else if (ways && sweepOn == bool(options_.hosts) && scanOn == bool(options_.ports)) {
    // Cached only when no kind is quiet: a hit needs no quiet check.
    next.key = k;
    next.epoch = epoch_;
    ways[1] = ways[0];  // (kCacheWays == 2) most recent first
    ways[0] = next;
  }
  return found;
}

}  // namespace bulkhead::agent
