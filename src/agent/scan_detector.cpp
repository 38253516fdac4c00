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
    ticks_.resize(ticks_.size() + cap_);
  } else {
    g = reclaim(workload, now, window);
  }
  Header& x = headers_[g];
  x.key = k;
  x.hash = h;
  x.workload = workload;
  x.last = x.queued = x.oldest = now;
  x.size = 0;
  x.held = true;
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
  x.held = false;
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
void DistinctSets<K, M>::expire(uint32_t g, Tick now, Tick window) {
  // Members past the window leave; the live ones close ranks, and the
  // oldest of them becomes the set's bound.
  Tick* t = &ticks_[size_t(g) * cap_];
  M* ms = &members_[size_t(g) * cap_];
  Header& x = headers_[g];
  uint32_t kept = 0;
  Tick oldest = now;
  for (uint32_t i = 0; i < x.size; ++i) {
    if (!live(t[i], now, window)) continue;
    if (int32_t(t[i] - oldest) < 0) oldest = t[i];
    t[kept] = t[i];
    ms[kept] = ms[i];
    ++kept;
  }
  used_ -= x.size - kept;
  x.size = kept;
  x.oldest = oldest;
}

template <typename K, typename M>
uint32_t DistinctSets<K, M>::touch(uint32_t g, const M& m, Tick now, Tick window) {
  Header& x = headers_[g];
  // Every member is at least as young as `oldest`: while that is in the
  // window, all are live and none needs looking at for expiry.
  if (x.size && !live(x.oldest, now, window)) expire(g, now, window);
  Tick* t = &ticks_[size_t(g) * cap_];
  M* ms = &members_[size_t(g) * cap_];
  if (int32_t(now - x.last) > 0) x.last = now;
  for (uint32_t i = 0; i < x.size; ++i) {
    if (!(ms[i] == m)) continue;
    // A refreshed member may have been the oldest: the bound stays lower,
    // which only makes the next expiry walk come early.
    if (int32_t(now - t[i]) > 0) t[i] = now;
    return x.size;
  }
  if (x.size == cap_) return x.size;  // full of live members: at the threshold
  if (x.size == 0 || int32_t(now - x.oldest) < 0) x.oldest = now;
  t[x.size] = now;
  ms[x.size] = m;
  ++used_;
  return ++x.size;
}

template <typename K, typename M>
void DistinctSets<K, M>::empty(uint32_t g) {
  used_ -= headers_[g].size;
  headers_[g].size = 0;
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
  // The arrays as far as sets have opened: their reserve beyond is address
  // space, not memory, until a set opens there.
  return index_.bytes() + headers_.size() * sizeof(Header) + members_.size() * sizeof(M) +
         ticks_.size() * sizeof(Tick) + free_.capacity() * 4 + queue_.size() * 4 +
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
      ids_(kMaxWorkloads) {
  options_.maxEntries =
      std::max(options.maxEntries, 16 * size_t(std::max(options.hosts, options.ports)));
}

size_t ScanDetector::bytes() const {
  size_t n = sweeps_.bytes() + scans_.bytes() + ids_.bytes() +
             state_.capacity() * sizeof(Workload) + protos_.capacity() * sizeof(std::string);
  for (const auto& name : names_)
    n += sizeof(std::string) + name.capacity();
  return n;
}

void ScanDetector::reset() {
  sweeps_.reset();
  scans_.reset();
}

namespace {

// A string of up to 16 bytes as two words, exact together with its length:
// two overlapping loads (no loop of byte shifts).
[[gnu::always_inline]] inline void shortWords(const char* p, size_t n, uint64_t* w0, uint64_t* w1) {
  if (n >= 8) {
    std::memcpy(w0, p, 8);
    std::memcpy(w1, p + n - 8, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    *w0 = a | uint64_t(b) << 32;
    *w1 = 0;
  } else {
    *w0 = n ? uint64_t(uint8_t(p[0])) | uint64_t(uint8_t(p[n / 2])) << 8 |
                  uint64_t(uint8_t(p[n - 1])) << 16
            : 0;
    *w1 = 0;
  }
}

}  // namespace

uint32_t ScanDetector::workloadId(const std::string& name) {
  if (name.size() <= 16) {
    NameKey key;
    shortWords(name.data(), name.size(), &key.w0, &key.w1);
    key.size = name.size();
    if (const uint32_t* id = ids_.find(key, hashMix(hashMix(seed_ ^ key.size, key.w0), key.w1)))
      return *id;
  } else if (auto it = longIds_.find(name); it != longIds_.end()) {
    return it->second;
  }
  return internWorkload(name);
}

uint32_t ScanDetector::internWorkload(const std::string& name) {
  if (names_.size() >= kMaxWorkloads) {
    // More names than any host registers: everything starts over.
    reset();
    ids_.clear();
    longIds_.clear();
    names_.clear();
    state_.clear();
  }
  const auto fresh = uint32_t(names_.size());
  names_.push_back(name);
  state_.emplace_back();
  if (name.size() <= 16) {
    NameKey key;
    shortWords(name.data(), name.size(), &key.w0, &key.w1);
    key.size = name.size();
    *ids_.insert(key, hashMix(hashMix(seed_ ^ key.size, key.w0), key.w1)).first = fresh;
  } else {
    longIds_.emplace(name, fresh);
  }
  return fresh;
}

uint32_t ScanDetector::portKey(const flows::FlowEvent& e) {
  // Protocol names interned: a port is (protocol index, port number). Names
  // up to 8 bytes compare as one word.
  const size_t n = e.proto.size();
  uint64_t w0 = 0, w1 = 0;
  if (n <= 8) shortWords(e.proto.data(), n, &w0, &w1);
  size_t i = 0;
  while (i < protos_.size() && !(protoKeys_[i].second == n &&
                                 (n <= 8 ? protoKeys_[i].first == w0 : protos_[i] == e.proto)))
    ++i;
  if (i == protos_.size()) {
    if (protos_.size() >= 255) return 0xff0000u | e.dport;  // (never: IP has 256 protocols)
    protos_.push_back(e.proto);
    protoKeys_.emplace_back(w0, n);
  }
  return uint32_t(i) << 16 | e.dport;
}

std::string ScanDetector::portName(uint32_t key) const {
  const size_t i = key >> 16 & 0xff;
  return (i < protos_.size() ? protos_[i] : std::string("?")) + "/" + std::to_string(key & 0xffff);
}

[[gnu::always_inline]] inline scan::Tick ScanDetector::tickOf(Time t) {
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

std::optional<ScanFinding> ScanDetector::finding(ScanKind kind, uint32_t set,
                                                 const flows::FlowEvent& e, uint64_t wp) {
  // The set holds only live members (touch just dropped the others).
  const bool hosts = kind == ScanKind::kHosts;
  std::vector<std::string> members;
  const uint32_t held = hosts ? sweeps_.size(set) : scans_.size(set);
  for (uint32_t i = 0; i < held; ++i) {
    if (hosts) {
      const scan::Addr& a = sweeps_.member(set, i);
      policy::IpAddr ip;
      ip.family = a.v6 ? policy::Family::kIpv6 : policy::Family::kIpv4;
      std::memcpy(ip.bytes.data(), &a.lo, 8);
      std::memcpy(ip.bytes.data() + 8, &a.hi, 8);
      members.push_back(ip.toString());
    } else {
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

std::optional<ScanFinding> ScanDetector::observeFull(const flows::FlowEvent& e) {
  if (e.workload.empty() || !counted(e.action)) return std::nullopt;
  const Tick now = tickOf(e.time);
  const uint32_t wid = workloadId(e.workload);
  // A kind reported within the window is not looked at before its quiet
  // time ends (a scan that goes on is reported again after it).
  Workload& w = state_[wid];
  const bool sweepOn = options_.hosts && !(e.time < w.quietHosts);
  const bool scanOn = options_.ports && !(e.time < w.quietPorts);
  if (!sweepOn && !scanOn) return std::nullopt;
  const uint64_t v6 = e.dst.family == policy::Family::kIpv6;
  const uint64_t wp = uint64_t(wid) << 32 | v6 << 24 | portKey(e);
  const uint64_t sweepKey = wp & ~(uint64_t(0xff) << 24);  // both families: one sweep
  scan::DstKey dstKey{wp >> 32 << 32 | v6, 0, 0};
  std::memcpy(&dstKey.lo, e.dst.bytes.data(), 8);
  std::memcpy(&dstKey.hi, e.dst.bytes.data() + 8, 8);
  // A scan keeps one key of a kind while it runs (a sweep its port, a port
  // scan its destination): the workload's last set of each kind is tried
  // before the index. Otherwise both index slots are loaded in parallel
  // rather than one miss after the other.
  uint32_t sweep = sweepOn && sweeps_.holds(w.sweepSet, sweepKey) ? w.sweepSet : scan::kNone;
  uint32_t dst = scanOn && scans_.holds(w.portSet, dstKey) ? w.portSet : scan::kNone;
  uint64_t sweepHash = 0, dstHash = 0;
  if (sweepOn && sweep == scan::kNone) {
    sweepHash = hashMix(seed_ ^ 0x5bd1e995u, sweepKey);
    sweeps_.prefetchIndex(sweepHash);
  }
  if (scanOn && dst == scan::kNone) {
    dstHash = hashMix(hashMix(hashMix(seed_ ^ 0x27d4eb2du, dstKey.wf), dstKey.lo), dstKey.hi);
    scans_.prefetchIndex(dstHash);
  }
  if (sweepOn && sweep == scan::kNone)
    w.sweepSet = sweep = sweeps_.open(sweepKey, sweepHash, wid, now, window_);
  if (scanOn && dst == scan::kNone)
    w.portSet = dst = scans_.open(dstKey, dstHash, wid, now, window_);
  if (sweepOn) sweeps_.prefetchSet(sweep);
  if (scanOn) scans_.prefetchSet(dst);
  // Both kinds are counted; a finding is built only when one crosses (a
  // port scan crossing together with a sweep is reported at its set's
  // next attempt).
  const bool swept = sweepOn && sweepCrossed(e, wp, sweep, now);
  const bool scanned = scanOn && scanCrossed(wp, dst, now);
  if (swept) return finding(ScanKind::kHosts, sweep, e, wp);
  if (scanned) return finding(ScanKind::kPorts, dst, e, wp);
  return std::nullopt;
}

bool ScanDetector::sweepCrossed(const flows::FlowEvent& e, uint64_t wp, uint32_t g, Tick now) {
  scan::Addr a;
  std::memcpy(&a.lo, e.dst.bytes.data(), 8);
  std::memcpy(&a.hi, e.dst.bytes.data() + 8, 8);
  a.v6 = wp >> 24 & 1;
  return sweeps_.touch(g, a, now, window_) >= options_.hosts;
}

bool ScanDetector::scanCrossed(uint64_t wp, uint32_t g, Tick now) {
  return scans_.touch(g, uint32_t(wp & 0xffffff), now, window_) >= options_.ports;
}

}  // namespace bulkhead::agent
