#include "bulkhead/compiler/intervals.h"

#include <algorithm>
#include <tuple>

namespace bulkhead::compiler {

namespace {

using policy::IpAddr;

// addr + 1; false on overflow (addr was the family's last address).
bool increment(IpAddr& addr) {
  for (int i = int(addr.size()) - 1; i >= 0; --i) {
    if (++addr.bytes[i] != 0) return true;
  }
  return false;
}

// True when `b` starts right after (or inside) `a`: the two can merge.
bool touches(const IpAddr& aHi, const IpAddr& bLo) {
  if (bLo <= aHi) return true;
  IpAddr next = aHi;
  return increment(next) && next == bLo;
}

struct PortSlice {
  uint32_t lo, hi;
  std::vector<AddrRange> addrs;
};

// For boxes that all cover one protocol slice: port slices with the merged
// addresses allowed in each, adjacent slices with equal addresses merged.
std::vector<PortSlice> slicePorts(std::vector<const DestBox*> boxes) {
  std::vector<uint32_t> bounds;
  bounds.reserve(boxes.size() * 2);
  for (const auto* b : boxes) {
    bounds.push_back(b->portLo);
    bounds.push_back(uint32_t(b->portHi) + 1);
  }
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  std::sort(boxes.begin(), boxes.end(),
            [](const DestBox* a, const DestBox* b) { return a->portLo < b->portLo; });

  std::vector<PortSlice> out;
  std::vector<const DestBox*> active;
  size_t next = 0;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const uint32_t lo = bounds[i], hi = bounds[i + 1] - 1;
    while (next < boxes.size() && boxes[next]->portLo <= lo)
      active.push_back(boxes[next++]);
    std::erase_if(active, [&](const DestBox* b) { return b->portHi < lo; });
    if (active.empty()) continue;
    std::vector<AddrRange> ranges;
    ranges.reserve(active.size());
    for (const auto* b : active)
      ranges.push_back(b->addrs);
    ranges = mergeRanges(std::move(ranges));
    if (!out.empty() && out.back().hi + 1 == lo && out.back().addrs == ranges) {
      out.back().hi = hi;
    } else {
      out.push_back(PortSlice{lo, hi, std::move(ranges)});
    }
  }
  return out;
}

bool sameSlices(const std::vector<PortSlice>& a, const std::vector<PortSlice>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].lo != b[i].lo || a[i].hi != b[i].hi || a[i].addrs != b[i].addrs) return false;
  }
  return true;
}

}  // namespace

AddrRange toRange(const policy::Cidr& cidr) {
  return AddrRange{cidr.addr, cidr.last()};
}

std::vector<AddrRange> mergeRanges(std::vector<AddrRange> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<AddrRange> out;
  out.reserve(ranges.size());
  for (auto& r : ranges) {
    if (!out.empty() && touches(out.back().hi, r.lo)) {
      out.back().hi = std::max(out.back().hi, r.hi);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

namespace {

bool contains(const DestBox& outer, const DestBox& inner) {
  return outer.addrs.lo <= inner.addrs.lo && inner.addrs.hi <= outer.addrs.hi &&
         outer.protoLo <= inner.protoLo && inner.protoHi <= outer.protoHi &&
         outer.portLo <= inner.portLo && inner.portHi <= outer.portHi;
}

// Boxes whose address ranges overlap one another: cut the protocol axis at
// every box edge, then the port axis within each protocol slice; addresses
// are merged per (protocol, port) cell, and slices with identical contents
// are merged back.
void sliceCluster(const std::vector<DestBox>& boxes, std::vector<DestBox>& out) {
  std::vector<uint32_t> protoBounds;
  for (const auto& b : boxes) {
    protoBounds.push_back(b.protoLo);
    protoBounds.push_back(uint32_t(b.protoHi) + 1);
  }
  std::sort(protoBounds.begin(), protoBounds.end());
  protoBounds.erase(std::unique(protoBounds.begin(), protoBounds.end()), protoBounds.end());

  struct ProtoSlice {
    uint32_t lo, hi;
    std::vector<PortSlice> ports;
  };
  std::vector<ProtoSlice> protos;
  for (size_t i = 0; i + 1 < protoBounds.size(); ++i) {
    const uint32_t lo = protoBounds[i], hi = protoBounds[i + 1] - 1;
    std::vector<const DestBox*> covering;
    for (const auto& b : boxes)
      if (b.protoLo <= lo && b.protoHi >= hi) covering.push_back(&b);
    if (covering.empty()) continue;
    auto ports = slicePorts(std::move(covering));
    if (!protos.empty() && protos.back().hi + 1 == lo && sameSlices(protos.back().ports, ports)) {
      protos.back().hi = hi;
    } else {
      protos.push_back(ProtoSlice{lo, hi, std::move(ports)});
    }
  }
  for (const auto& p : protos)
    for (const auto& q : p.ports)
      for (const auto& a : q.addrs)
        out.push_back(DestBox{a, uint8_t(p.lo), uint8_t(p.hi), uint16_t(q.lo), uint16_t(q.hi)});
}

// A cluster sliceCluster would return as it is: boxes over one address
// range, each of one protocol, whose port ranges within a protocol neither
// overlap nor touch, and no two of adjacent protocols (those slices could
// merge). One service's ports on one CIDR look like this; slicing them
// allocated a dozen vectors per cluster, a fifth of a compile at 10,000
// workloads. Quadratic, so only for small clusters.
bool alreadyDisjoint(const std::vector<DestBox>& boxes) {
  constexpr size_t kMostChecked = 32;
  if (boxes.size() > kMostChecked) return false;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const DestBox& a = boxes[i];
    if (a.addrs != boxes[0].addrs || a.protoLo != a.protoHi) return false;
    for (size_t j = i + 1; j < boxes.size(); ++j) {
      const DestBox& b = boxes[j];
      if (a.protoLo + 1 == b.protoLo || b.protoLo + 1 == a.protoLo) return false;
      if (a.protoLo != b.protoLo) continue;
      const bool apart = uint32_t(a.portHi) + 1 < b.portLo || uint32_t(b.portHi) + 1 < a.portLo;
      if (!apart) return false;
    }
  }
  return true;
}

}  // namespace

std::vector<DestBox> disjointBoxes(const std::vector<DestBox>& boxes) {
  // 1. Boxes with the same protocols and ports: merge their addresses
  // (sorted by ports, then addresses, each group is one pass).
  auto ports = [](const DestBox& b) { return std::tie(b.protoLo, b.protoHi, b.portLo, b.portHi); };
  std::vector<DestBox> sorted = boxes;
  std::sort(sorted.begin(), sorted.end(), [&](const DestBox& a, const DestBox& b) {
    return ports(a) != ports(b) ? ports(a) < ports(b) : a.addrs < b.addrs;
  });
  std::vector<DestBox> merged;
  merged.reserve(sorted.size());
  for (const auto& b : sorted) {
    if (!merged.empty() && ports(merged.back()) == ports(b) &&
        touches(merged.back().addrs.hi, b.addrs.lo)) {
      merged.back().addrs.hi = std::max(merged.back().addrs.hi, b.addrs.hi);
    } else {
      merged.push_back(b);
    }
  }

  // 2. Clusters of boxes whose address ranges overlap; a box alone in its
  // cluster is disjoint from every other already. Only clusters are cut, so
  // one wide rule does not fragment every unrelated address.
  std::sort(merged.begin(), merged.end());
  std::vector<DestBox> out;
  std::vector<DestBox> cluster;
  auto flush = [&] {
    if (cluster.size() == 1 || alreadyDisjoint(cluster)) {
      out.insert(out.end(), cluster.begin(), cluster.end());
    } else if (!cluster.empty()) {
      // Drop boxes inside another box first (bounded: it is quadratic).
      if (cluster.size() <= 512) {
        std::vector<DestBox> kept;
        for (size_t i = 0; i < cluster.size(); ++i) {
          bool inside = false;
          for (size_t j = 0; j < cluster.size() && !inside; ++j)
            inside = j != i && contains(cluster[j], cluster[i]) &&
                     (!contains(cluster[i], cluster[j]) || j < i);
          if (!inside) kept.push_back(cluster[i]);
        }
        cluster.swap(kept);
      }
      if (cluster.size() == 1) {
        out.push_back(cluster[0]);
      } else {
        sliceCluster(cluster, out);
      }
    }
    cluster.clear();
  };
  policy::IpAddr clusterHi;
  for (const auto& b : merged) {
    if (cluster.empty() || b.addrs.lo > clusterHi) {
      flush();
      clusterHi = b.addrs.hi;
    } else {
      clusterHi = std::max(clusterHi, b.addrs.hi);
    }
    cluster.push_back(b);
  }
  flush();
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<policy::Cidr> asPrefix(const AddrRange& range) {
  const size_t n = range.lo.size();
  unsigned prefix = 0;
  bool inHost = false;
  for (size_t bit = 0; bit < n * 8; ++bit) {
    const uint8_t mask = uint8_t(0x80u >> (bit % 8));
    const bool l = range.lo.bytes[bit / 8] & mask, h = range.hi.bytes[bit / 8] & mask;
    if (!inHost) {
      if (l == h) {
        ++prefix;
        continue;
      }
      inHost = true;
    }
    if (l || !h) return std::nullopt;  // host part must run 0..0 to 1..1
  }
  return policy::Cidr{range.lo, uint8_t(prefix)};
}

}  // namespace bulkhead::compiler
