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

ScanDetector::ScanDetector(ScanOptions options)
    : options_(options),
      seed_(uint64_t(std::random_device{}()) << 32 | std::random_device{}()),
      triples_(std::max<size_t>(options.maxEntries, 1)),
      sweeps_(std::max<size_t>(options.maxEntries, 1)),
      scans_(std::max<size_t>(options.maxEntries, 1)),
      ids_(kMaxWorkloads) {
  options_.maxEntries = triples_.maxSize();
}

size_t ScanDetector::bytes() const {
  size_t n = triples_.bytes() + sweeps_.bytes() + scans_.bytes() + ids_.bytes() +
             ring_.capacity() * sizeof(Record) + state_.capacity() * sizeof(Workload);
  for (const auto& name : names_)
    n += sizeof(std::string) + name.capacity();
  return n;
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
    triples_.clear();
    sweeps_.clear();
    scans_.clear();
    ids_.clear();
    collided_.clear();
    names_.clear();
    state_.clear();
    head_ = queued_ = 0;
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

uint64_t ScanDetector::hashOf(const Triple& t) const {
  return hashMix(hashMix(hashMix(seed_, t.wp), t.lo), t.hi);
}

uint64_t ScanDetector::hashOf(uint64_t sweep) const {
  return hashMix(seed_ ^ 0x5bd1e995u, sweep);
}

uint64_t ScanDetector::hashOf(const DstKey& d) const {
  return hashMix(hashMix(hashMix(seed_ ^ 0x27d4eb2du, d.wf), d.lo), d.hi);
}

policy::IpAddr ScanDetector::dstOf(const Triple& t) {
  policy::IpAddr a;
  a.family = (t.wp >> 24 & 1) ? policy::Family::kIpv6 : policy::Family::kIpv4;
  std::memcpy(a.bytes.data(), &t.lo, 8);
  std::memcpy(a.bytes.data() + 8, &t.hi, 8);
  return a;
}

void ScanDetector::push(const Record& r) {
  if (queued_ == ring_.size()) {
    // Grows (in order) up to maxEntries: there is one record per entry.
    std::vector<Record> bigger(std::min(std::max<size_t>(64, ring_.size() * 2),
                                        std::max(options_.maxEntries, queued_ + 1)));
    for (size_t i = 0; i < queued_; ++i)
      bigger[i] = ring_[(head_ + i) % ring_.size()];
    ring_.swap(bigger);
    head_ = 0;
  }
  ring_[(head_ + queued_) % ring_.size()] = r;
  ++queued_;
}

ScanDetector::Record ScanDetector::pop() {
  const Record r = ring_[head_];
  head_ = (head_ + 1) % ring_.size();
  --queued_;
  return r;
}

void ScanDetector::uncount(const Triple& t, Entry& e) {
  e.counted = false;
  const uint64_t s = sweepKey(t), sh = hashOf(s);
  if (uint32_t* n = sweeps_.find(s, sh); n && --*n == 0) sweeps_.erase(s, sh);
  const DstKey d = dstKey(t);
  const uint64_t dh = hashOf(d);
  if (uint32_t* n = scans_.find(d, dh); n && --*n == 0) scans_.erase(d, dh);
}

void ScanDetector::drop(const Triple& t) {
  const uint64_t h = hashOf(t);
  Entry* e = triples_.find(t, h);
  if (!e) return;
  if (e->counted) uncount(t, *e);
  triples_.erase(t, h);
  Workload& w = state_[t.wp >> 32];
  w.live -= std::min<size_t>(w.live, 1);
}

void ScanDetector::expire(Time now) {
  // Amortized: each entry leaves once, or is queued again once per window
  // when it was retried meanwhile.
  while (queued_ > 0 && now - ring_[head_].when >= options_.window) {
    const Record r = pop();
    const Entry* e = triples_.find(r.key, hashOf(r.key));
    if (!e) continue;
    if (now - e->when >= options_.window) {
      drop(r.key);
    } else {
      push({r.key, e->when});
    }
  }
}

void ScanDetector::restartWorkload(uint32_t wid) {
  size_t kept = 0;
  for (size_t i = 0; i < queued_; ++i) {
    const Record r = ring_[(head_ + i) % ring_.size()];
    if ((r.key.wp >> 32) == wid) {
      drop(r.key);
    } else {
      ring_[(head_ + kept++) % ring_.size()] = r;
    }
  }
  queued_ = kept;
  state_[wid].live = 0;
}

bool ScanDetector::makeRoom(uint32_t wid) {
  // At the bound: a workload holding a quarter of all entries (a flood of
  // distinct attempts below both thresholds) starts over, at its own cost,
  // not the others'; else the oldest entry goes. Amortized O(1): a restart
  // walks the queue once and frees a quarter of it.
  if (state_[wid].live * 4 >= options_.maxEntries) {
    restartWorkload(wid);
    return true;
  }
  if (queued_ == 0) return false;
  drop(pop().key);
  return true;
}

std::optional<ScanFinding> ScanDetector::check(ScanKind kind, const Triple& t,
                                               const flows::FlowEvent& e, Time& quiet) {
  // The count crossed the threshold: confirm it from the entries themselves
  // (an entry retried and queued again may outlive its window in the count;
  // those found past the window leave the counts now). Rare: at most once
  // per crossing, and a kind reported is quiet for the window after.
  const Time now = e.time;
  const bool hosts = kind == ScanKind::kHosts;
  const uint64_t sweep = sweepKey(t);
  const DstKey dst = dstKey(t);
  std::vector<std::string> members;
  for (size_t i = 0; i < queued_; ++i) {
    const Triple& k = ring_[(head_ + i) % ring_.size()].key;
    if (hosts ? sweepKey(k) != sweep : !(dstKey(k) == dst)) continue;
    Entry* x = triples_.find(k, hashOf(k));
    if (!x || !x->counted) continue;
    if (now - x->when >= options_.window) {
      uncount(k, *x);
      continue;
    }
    members.push_back(hosts ? dstOf(k).toString() : portName(uint32_t(k.wp & 0xffffff)));
  }
  if (members.size() < (hosts ? options_.hosts : options_.ports)) return std::nullopt;
  ScanFinding f;
  f.kind = kind;
  f.workload = e.workload;
  f.app = e.app;
  f.distinct = uint32_t(members.size());
  f.port = portName(uint32_t(t.wp & 0xffffff));
  f.dst = e.dst;
  f.trigger = e;
  std::sort(members.begin(), members.end());
  members.resize(std::min(members.size(), options_.sample));
  f.sample = std::move(members);
  quiet = now + options_.window;
  return f;
}

std::optional<ScanFinding> ScanDetector::observe(const flows::FlowEvent& e) {
  if (e.workload.empty() || !counted(e.action)) return std::nullopt;
  const Time now = e.time;
  expire(now);
  const uint32_t wid = workloadId(e.workload);
  // A kind reported within the window is not reported again before its
  // quiet time ends (a scan that goes on is reported again after it).
  const bool sweepQuiet = now < state_[wid].quietHosts, scanQuiet = now < state_[wid].quietPorts;
  if (sweepQuiet && scanQuiet) return std::nullopt;
  Triple t;
  t.wp = uint64_t(wid) << 32 | uint64_t(e.dst.family == policy::Family::kIpv6) << 24 | portKey(e);
  std::memcpy(&t.lo, e.dst.bytes.data(), 8);
  std::memcpy(&t.hi, e.dst.bytes.data() + 8, 8);
  const uint64_t h = hashOf(t);
  auto [entry, fresh] = triples_.insert(t, h);
  if (!entry) {
    if (!makeRoom(wid)) return std::nullopt;
    std::tie(entry, fresh) = triples_.insert(t, h);
    if (!entry) return std::nullopt;
  }
  if (!fresh && entry->counted) {
    // A repeat: one probe, its time refreshed.
    entry->when = std::max(entry->when, now);
    return std::nullopt;
  }
  entry->when = now;
  entry->counted = true;
  if (fresh) {
    push({t, now});
    ++state_[wid].live;
  }
  // (The count tables hold at most one key per counted entry: never full.)
  const uint64_t sweep = sweepKey(t);
  const uint32_t hostCount = ++*sweeps_.insert(sweep, hashOf(sweep)).first;
  const DstKey dst = dstKey(t);
  const uint32_t portCount = ++*scans_.insert(dst, hashOf(dst)).first;
  Workload& w = state_[wid];
  if (!sweepQuiet && options_.hosts && hostCount >= options_.hosts)
    if (auto f = check(ScanKind::kHosts, t, e, w.quietHosts)) return f;
  if (!scanQuiet && options_.ports && portCount >= options_.ports)
    if (auto f = check(ScanKind::kPorts, t, e, w.quietPorts)) return f;
  return std::nullopt;
}

}  // namespace bulkhead::agent
