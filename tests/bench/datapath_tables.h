// The tables bench_datapath measures: bulkhead's own (the generated
// policy plus the rig's client, and two variants of it), conntrack only
// with and without pieces of bulkhead's table (--breakdown), and the
// iptables + ipset equivalent.
#pragma once

#include <algorithm>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench_policy.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/render.h"
#include "datapath_rig.h"
#include "iptables_equivalent.h"

namespace bulkhead::bench::datapath {

// The generated bundle plus the real client: its app may reach the server's
// echo and sink ports and kSpoofTargetPort, nothing else.
inline compiler::Ruleset bulkheadTable(int workloads, const std::string& clientIface) {
  using namespace policy;
  Bundle b = generateBundle(workloads);
  Service server;
  server.name = "bench-server";
  Endpoint ep;
  ep.cidrs = {Cidr{*IpAddr::parse(kServerV4), 32}};
  ep.ports = {port(kProtoTcp, kEchoPort), port(kProtoTcp, kSinkPort),
              port(kProtoTcp, kSpoofTargetPort)};
  server.endpoints.push_back(ep);
  b.services.push_back(server);
  App app;
  app.name = "bench-client";
  EgressRule r;
  r.to.push_back(NameRef{"bench-server", {}});
  app.egress.push_back(r);
  b.apps.push_back(app);
  Workload w;
  w.name = "bench-client-1";
  w.app = "bench-client";
  w.interfaces = {clientIface};
  w.addresses = {*IpAddr::parse(kClientV4)};
  b.workloads.push_back(w);
  auto rs = compiler::compile(b, {}, compiler::CompileOptions{});
  if (!rs) throw Failure("compile: " + rs.error().describe());
  return std::move(*rs);
}

// The same table without the base chains that run before conntrack.
inline compiler::Ruleset withoutPreConntrack(compiler::Ruleset rs) {
  std::erase_if(rs.chains, [](const compiler::Chain& c) { return c.base && c.base->priority < 0; });
  return rs;
}

// Two designs the agent does not load, measured to know what they would
// gain. checksAtIngress: the same pre-conntrack chain, lookups and all,
// hooked at ingress on the workload's interface instead of prerouting, so
// that no base chain runs on packets from other interfaces (the server's
// answers here). The table as nft text, with the hook line replaced.
inline std::string checksAtIngress(const compiler::Ruleset& rs, const std::string& device) {
  std::string text = compiler::renderRuleset(rs);
  const std::string hook = "type filter hook prerouting priority raw;";
  const size_t at = text.find(hook);
  if (at == std::string::npos) throw Failure("no pre-conntrack chain in the table");
  text.replace(at, hook.size(), "type filter hook ingress device \"" + device + "\" priority 0;");
  return text;
}

// checksPerInterface: one ingress chain per workload interface (only the
// client's carries traffic here, so only it is made), holding that
// workload's own addresses as constants: a packet from its own address
// ends the check with one comparison and no set lookup; anything else goes
// to the same quarantine, exemption and spoof rules as today.
inline std::string checksPerInterface(compiler::Ruleset rs, const std::string& device,
                                      const std::vector<policy::IpAddr>& own) {
  using namespace compiler;
  auto pre = std::find_if(rs.chains.begin(), rs.chains.end(),
                          [](const Chain& c) { return c.name == kPreroutingChain; });
  if (pre == rs.chains.end()) throw Failure("no pre-conntrack chain in the table");
  pre->rules.clear();
  for (const auto& addr : own)
    pre->rules.push_back({{expr::SaddrPrefix{addr, uint8_t(addr.size() * 8)},
                           expr::VerdictStatement{{Verdict::Kind::kAccept, {}}}},
                          "own source"});
  pre->rules.push_back({{expr::VerdictStatement{{Verdict::Kind::kGoto, kRawChain}}}, ""});
  return checksAtIngress(rs, device);
}

// A table holding `ct state established,related accept` in forward, then
// `forward`'s rules; `sets`; and with `pre` a base chain before conntrack
// (prerouting, priority raw) holding those rules. {} is conntrack only;
// {.pre = ""} adds the empty hook that bulkhead's pre-conntrack checks
// need: what that hook itself costs every packet, before any rule in it.
struct CtTable {
  std::string sets;
  std::optional<std::string> pre;
  std::string forward;
};

inline std::string conntrackTable(const CtTable& t) {
  std::string text = "table inet bhbench {\n" + t.sets +
                     "  chain forward {\n"
                     "    type filter hook forward priority filter; policy accept;\n"
                     "    ct state established,related accept\n" +
                     t.forward + "  }\n";
  if (t.pre)
    text +=
        "  chain prerouting {\n"
        "    type filter hook prerouting priority raw; policy accept;\n" +
        *t.pre + "  }\n";
  return text + "}\n";
}

// --breakdown: conntrack only plus one piece of what bulkhead's table does,
// to cost each piece alone. Per packet, both directions (bulkhead's
// pre-conntrack chain: a workload's packet ends at its first lookup,
// `iifname . ip saddr @src4`; the server's answers miss it and
// `@registered`), in sets of the client's entry and 10,000 others, like the
// 10,000-workload table. Per new connection (bulkhead's app chain: one
// lookup in the app's egress set, 8 entries here, a hash or an interval
// set, which the kernel keeps as pipapo); and the interval set at 10,000
// entries, to show whether pipapo's cost grows with its entries.
inline std::vector<std::pair<std::string, CtTable>> breakdownTables() {
  const std::string client = "\"" + std::string(kClientIface) + "\"";
  std::string ifnames = client, addrs = kClientV4, pairs = client + " . " + kClientV4;
  for (uint32_t i = 0; i < 10000; ++i) {
    const std::string a = v4(kWorkloadBase + i * 4).toString();
    const std::string name = "\"v" + std::to_string(i) + "\"";
    ifnames += ", " + name;
    addrs += ", " + a;
    pairs += ", " + name + " . " + a;
  }
  std::string dsts = std::string(kServerV4) + " . tcp . " + std::to_string(kEchoPort), fewDsts;
  for (uint32_t i = 0; i < 10000; ++i) {
    dsts += ", " + v4(kServiceBase + i).toString() + " . tcp . 443";
    if (i == 6) fewDsts = dsts;
  }
  auto set = [](const std::string& name, const std::string& type, const std::string& elements,
                bool interval = false) {
    return "  set " + name + " {\n    type " + type + "\n" +
           (interval ? "    flags interval\n" : "") + "    elements = { " + elements + " }\n  }\n";
  };
  const std::string destType = "ipv4_addr . inet_proto . inet_service";
  const std::string destRule = "    ip daddr . meta l4proto . th dport @d accept\n";
  return {
      {"conntrack + address lookup per packet",
       {set("s", "ipv4_addr", addrs), "    ip saddr @s accept\n", ""}},
      {"conntrack + interface lookup per packet",
       {set("s", "ifname", ifnames), "    iifname @s accept\n", ""}},
      {"conntrack + ifname.addr lookup per packet",
       {set("s", "ifname . ipv4_addr", pairs), "    iifname . ip saddr @s accept\n", ""}},
      {"conntrack + hash lookup per connection",
       {set("d", destType, fewDsts), std::nullopt, destRule}},
      {"conntrack + interval lookup per connection",
       {set("d", destType, fewDsts, true), std::nullopt, destRule}},
      {"conntrack + interval lookup, 10,000 entries",
       {set("d", destType, dsts, true), std::nullopt, destRule}},
  };
}

// The iptables + ipset equivalent of `rs` (iptables_equivalent.h), loaded
// the way those systems load it: ipset restore, then iptables-restore.
inline void loadIptables(const Netns& hv, const compiler::Ruleset& rs, const std::string& dir) {
  const auto r = iptables::translate(rs);
  std::ofstream(dir + "/ipset") << r.ipset;
  std::ofstream(dir + "/iptables") << r.iptables;
  const auto out = hv.exec("ipset restore < " + dir + "/ipset && iptables-legacy-restore < " + dir +
                           "/iptables");
  if (!out.ok()) throw Failure("loading the iptables baseline: " + out.out.substr(0, 2000));
}

}  // namespace bulkhead::bench::datapath
