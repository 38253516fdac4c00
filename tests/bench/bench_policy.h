// The benchmarks' generated policy: a bundle of a given number of workloads
// with the shape docs/benchmarks.md describes ("The generated policy"),
// built as values (bench_apply, bench_datapath). bench_agent writes the same
// shape as YAML, as a controller would push it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bench_util.h"
#include "bulkhead/policy/loader.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::bench {

inline policy::IpAddr v4(uint32_t n) {
  policy::IpAddr a;
  a.bytes[0] = uint8_t(n >> 24);
  a.bytes[1] = uint8_t(n >> 16);
  a.bytes[2] = uint8_t(n >> 8);
  a.bytes[3] = uint8_t(n);
  return a;
}

// 2001:db8:<g2>:<g3>::<low as the last 32 bits>
inline policy::IpAddr v6(uint16_t g2, uint16_t g3, uint32_t low) {
  policy::IpAddr a;
  a.family = policy::Family::kIpv6;
  const uint8_t head[] = {
      0x20, 0x01, 0x0d, 0xb8, uint8_t(g2 >> 8), uint8_t(g2), uint8_t(g3 >> 8), uint8_t(g3)};
  std::copy(std::begin(head), std::end(head), a.bytes.begin());
  a.bytes[12] = uint8_t(low >> 24);
  a.bytes[13] = uint8_t(low >> 16);
  a.bytes[14] = uint8_t(low >> 8);
  a.bytes[15] = uint8_t(low);
  return a;
}

inline policy::Cidr cidr(const policy::IpAddr& a, uint8_t len) {
  return policy::Cidr{a, len};
}

inline policy::PortSpec port(uint8_t proto, uint16_t p) {
  return policy::PortSpec{proto, proto, p, p};
}

// Synthetic address plan (no packet is ever sent; these are set data):
//   services        100.64.0.0/14    one /24 each: a /28 and a /27 in it; 2001:db8:5:<s>::/64
//   workloads       100.96.0.0/16    every 4th address; 2001:db8:1::<4w>
//   added by bench  100.112.0.0/16 (ours), 100.116.0.0/16 (nft -f); 2001:db8:2::, 2001:db8:3::
// Spacing addresses by 4 keeps adjacent addresses from merging into ranges,
// so every workload address stays its own set element.
inline constexpr uint32_t kServiceBase = 0x64400000u;   // 100.64.0.0
inline constexpr uint32_t kWorkloadBase = 0x64600000u;  // 100.96.0.0
inline constexpr uint32_t kOursAddBase = 0x64700000u;   // 100.112.0.0
inline constexpr uint32_t kNftAddBase = 0x64740000u;    // 100.116.0.0

inline std::string appName(int i) {
  return "app" + std::to_string(i);
}

// A scaled policy: `workloads` workloads over workloads/10 apps and twice as
// many services (half of them CIDR services, half backed by an app's
// workloads). Each app reaches 10 CIDR services and one app-backed service;
// two GlobalPolicies select by label. At 10,000 workloads this gives about
// 120,000 set elements:
//   dispatch, src4, src6                 3 x 10,000
//   a4_/a6_ per app: 10 services x ~7    ~70 per app (2 v4 CIDRs x 2-3 ports + 1 v6 CIDR x 2-3)
//                    + the next app's 10 workloads x (v4 + v6) on tcp/8443: 20 per app
//   GlobalPolicy sets                    ~1,000
inline policy::Bundle generateBundle(int workloads) {
  using namespace policy;
  const int apps = std::max(1, workloads / 10);
  Bundle b;
  for (int s = 0; s < apps; ++s) {
    Service svc;
    svc.name = "svc" + std::to_string(s);
    if (s % 10 == 0) svc.labels["zone"] = "pci";
    if (s % 20 == 5) svc.labels["shared"] = "true";
    Endpoint ep;
    const uint32_t base = kServiceBase + uint32_t(s) * 256;
    ep.cidrs = {cidr(v4(base), 28), cidr(v4(base + 128), 27), cidr(v6(5, uint16_t(s), 0), 64)};
    ep.ports = {port(kProtoTcp, 443), port(kProtoTcp, uint16_t(10000 + s))};
    if (s % 3 == 0) ep.ports.push_back(port(kProtoUdp, uint16_t(20000 + s)));
    svc.endpoints.push_back(std::move(ep));
    b.services.push_back(std::move(svc));
  }
  for (int a = 0; a < apps; ++a) {
    Service api;
    api.name = "api" + std::to_string(a);
    api.appSelector = policy::Selector{{{"app", appName(a)}}};
    api.ports = {port(kProtoTcp, 8443)};
    b.services.push_back(std::move(api));
  }
  const int stride = apps / 10 + 1;  // 10 distinct services per app
  for (int i = 0; i < apps; ++i) {
    App app;
    app.name = appName(i);
    app.labels = {{"env", i % 2 ? "prod" : "dev"}, {"team", "t" + std::to_string(i % 50)}};
    if (i % 10 == 9) app.mode = Mode::kAudit;
    if (i % 7 == 3) app.denyAction = DenyAction::kDrop;
    EgressRule r;
    for (int k = 0; k < std::min(10, apps); ++k)
      r.to.push_back(NameRef{"svc" + std::to_string((i * 7 + k * stride) % apps), {}});
    r.to.push_back(NameRef{"api" + std::to_string((i + 1) % apps), {}});
    app.egress.push_back(std::move(r));
    b.apps.push_back(std::move(app));
  }

  GlobalPolicy pci;
  pci.name = "pci-isolation";
  pci.order = 100;
  GlobalRule deny;
  deny.action = RuleAction::kDeny;
  deny.from = policy::Selector{{{"env", "dev"}}};
  deny.toSelector = policy::Selector{{{"zone", "pci"}}};
  pci.rules.push_back(std::move(deny));
  b.globalPolicies.push_back(std::move(pci));

  GlobalPolicy shared;
  shared.name = "shared-infra";
  shared.order = 200;
  GlobalRule toShared;
  toShared.action = RuleAction::kAllow;
  toShared.toSelector = policy::Selector{{{"shared", "true"}}};
  GlobalRule dns;
  dns.action = RuleAction::kAllow;
  dns.toCIDRs = {cidr(v4(0x64646435u), 32), cidr(v6(0x53, 0, 0x53), 128)};  // 100.100.100.53
  dns.ports = {port(kProtoUdp, 53), port(kProtoTcp, 53)};
  GlobalRule audit;
  audit.action = RuleAction::kLog;
  audit.from = policy::Selector{{{"team", "t7"}}};
  audit.toCIDRs = {cidr(v4(0xC6336400u), 24)};  // 198.51.100.0/24
  shared.rules = {std::move(toShared), std::move(dns), std::move(audit)};
  b.globalPolicies.push_back(std::move(shared));

  for (int w = 0; w < workloads; ++w) {
    Workload wl;
    wl.name = "w" + std::to_string(w);
    wl.app = appName(w % apps);
    wl.interfaces = {"v" + std::to_string(w)};
    wl.addresses = {v4(kWorkloadBase + uint32_t(w) * 4), v6(1, 0, uint32_t(w) * 4)};
    b.workloads.push_back(std::move(wl));
  }

  std::vector<Diagnostic> errors, warnings;
  validateBundle(b, errors, warnings);
  if (!errors.empty())
    throw Failure("generated bundle is invalid: " + errors.front().toString() + " (and " +
                  std::to_string(errors.size() - 1) + " more)");
  return b;
}

}  // namespace bulkhead::bench
