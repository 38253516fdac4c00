#include "bulkhead/agent/scan_detector.h"

#include <algorithm>
#include <cstring>
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

size_t ScanDetector::IpHash::operator()(const policy::IpAddr& a) const {
  // FNV-1a over the address bytes.
  uint64_t h = 1469598103934665603ull ^ uint64_t(a.family);
  for (size_t i = 0; i < a.size(); ++i) {
    h ^= a.bytes[i];
    h *= 1099511628211ull;
  }
  return size_t(h);
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

template <typename Map>
size_t ScanDetector::pruneGroup(Map& group, Time now) {
  size_t dropped = 0;
  for (auto it = group.begin(); it != group.end();) {
    if (now - it->second >= options_.window) {
      it = group.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

void ScanDetector::pruneWorkload(Workload& w, Time now) {
  size_t dropped = 0;
  auto all = [&](auto& groups) {
    for (auto it = groups.begin(); it != groups.end();) {
      dropped += pruneGroup(it->second, now);
      it = it->second.empty() ? groups.erase(it) : std::next(it);
    }
  };
  all(w.sweeps);
  all(w.scans);
  w.entries -= std::min(w.entries, dropped);
  entries_ -= std::min(entries_, dropped);
}

uint32_t ScanDetector::portKey(const flows::FlowEvent& e) {
  // Protocol names interned: a port is (protocol index, port number).
  size_t i = 0;
  while (i < protos_.size() && protos_[i] != e.proto)
    ++i;
  if (i == protos_.size()) {
    if (protos_.size() >= 256) return 0xffff0000u | e.dport;  // (never: IP has 256 protocols)
    protos_.push_back(e.proto);
  }
  return uint32_t(i) << 16 | e.dport;
}

std::string ScanDetector::portName(uint32_t key) const {
  const size_t i = key >> 16;
  return (i < protos_.size() ? protos_[i] : std::string("?")) + "/" + std::to_string(key & 0xffff);
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

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

}  // namespace

uint64_t ScanDetector::keyOf(const flows::FlowEvent& e) {
  // Word at a time: this runs for every attempt, repeats included.
  // Workload names are short: up to 16 bytes taken as two words, a longer
  // one (rare) hashed whole.
  const std::string& w = e.workload;
  uint64_t h = w.size() <= 16 ? mix(word(w, 0) * 0x9e3779b97f4a7c15ull, word(w, 8) ^ w.size())
                              : std::hash<std::string_view>()(w);
  uint64_t lo = 0, hi = 0;
  std::memcpy(&lo, e.dst.bytes.data(), 8);
  std::memcpy(&hi, e.dst.bytes.data() + 8, 8);
  h = mix(h, lo ^ (uint64_t(e.dst.family) << 56));
  h = mix(h, hi);
  h = mix(h, word(e.proto, 0) ^ (uint64_t(e.proto.size()) << 60) ^ (uint64_t(e.dport) << 40));
  return h ^ (h >> 31);
}

void ScanDetector::enforceBound(Time now) {
  // Every window: forget what left it, so idle workloads cost nothing.
  if (now - lastPrune_ >= options_.window) {
    lastPrune_ = now;
    std::fill(recent_.begin(), recent_.end(), Recent{});
    for (auto it = state_.begin(); it != state_.end();) {
      pruneWorkload(it->second, now);
      it = it->second.entries == 0 ? state_.erase(it) : std::next(it);
    }
  }
  // Still over after the stale entries went (a flood of distinct pairs
  // below both thresholds): the biggest holder starts over.
  while (entries_ > options_.maxEntries && !state_.empty()) {
    auto big = std::max_element(state_.begin(), state_.end(), [](const auto& a, const auto& b) {
      return a.second.entries < b.second.entries;
    });
    entries_ -= std::min(entries_, big->second.entries);
    state_.erase(big);
  }
}

std::optional<ScanFinding> ScanDetector::observe(const flows::FlowEvent& e) {
  if (e.workload.empty() || !counted(e.action)) return std::nullopt;
  const Time now = e.time;
  // Repeats of a recent attempt change nothing but its time: one lookup.
  // (A repeat refreshes the entry's time once per window/8 at most, so an
  // entry may leave the window up to window/8 early.)
  const uint64_t key = keyOf(e) | 1;  // 0 marks an empty slot
  Recent& slot = recent_[key & (kRecentSlots - 1)];
  if (slot.key == key && now >= slot.when && now - slot.when < refresh_) return std::nullopt;
  slot = {key, now};
  return observeNew(e);
}

std::optional<ScanFinding> ScanDetector::observeNew(const flows::FlowEvent& e) {
  const Time now = e.time;
  Workload& w = state_[e.workload];
  // A kind reported within the window is not reported again before its
  // quiet time ends: no bookkeeping for it until then (a scan that goes on
  // is counted afresh, and reported again, after it).
  const bool sweepQuiet = now < w.quietHosts, scanQuiet = now < w.quietPorts;
  if (sweepQuiet && scanQuiet) {
    enforceBound(now);
    return std::nullopt;
  }
  const uint32_t port = portKey(e);
  std::optional<ScanFinding> found;

  static ByAddr noHosts;
  static ByPort noPorts;
  ByAddr& hosts = sweepQuiet ? noHosts : w.sweeps[port];
  if (!sweepQuiet && hosts.insert_or_assign(e.dst, now).second) {
    ++w.entries;
    ++entries_;
  }
  ByPort& ports = scanQuiet ? noPorts : w.scans[e.dst];
  if (!scanQuiet && ports.insert_or_assign(port, now).second) {
    ++w.entries;
    ++entries_;
  }
  auto crossed = [&](auto& group, uint32_t threshold, Time& quiet) {
    // Reported within the window: nothing to check (and no walk per attempt).
    if (threshold == 0 || group.size() < threshold || now < quiet) return false;
    const size_t dropped = pruneGroup(group, now);
    w.entries -= std::min(w.entries, dropped);
    entries_ -= std::min(entries_, dropped);
    return group.size() >= threshold;
  };
  auto report = [&](ScanKind kind, auto& group, Time& quiet) {
    ScanFinding f;
    f.kind = kind;
    f.workload = e.workload;
    f.app = e.app;
    f.distinct = uint32_t(group.size());
    f.port = portName(port);
    f.dst = e.dst;
    f.trigger = e;
    std::vector<std::string> all;
    for (const auto& [k, t] : group) {
      if constexpr (std::is_same_v<std::decay_t<decltype(k)>, policy::IpAddr>) {
        all.push_back(k.toString());
      } else {
        all.push_back(portName(k));
      }
    }
    std::sort(all.begin(), all.end());
    all.resize(std::min(all.size(), options_.sample));
    f.sample = std::move(all);
    quiet = now + options_.window;
    found = std::move(f);
  };
  if (crossed(hosts, options_.hosts, w.quietHosts)) {
    report(ScanKind::kHosts, hosts, w.quietHosts);
  } else if (crossed(ports, options_.ports, w.quietPorts)) {
    report(ScanKind::kPorts, ports, w.quietPorts);
  }
  enforceBound(now);
  return found;
}

}  // namespace bulkhead::agent
