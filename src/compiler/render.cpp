#include "bulkhead/compiler/render.h"

#include <sstream>

#include "bulkhead/compiler/intervals.h"

namespace bulkhead::compiler {

namespace {

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s)
    if (c != '"' && c != '\\' && c != '\n') out += c;
  return out + "\"";
}

const char* typeName(KeyField f) {
  switch (f) {
    case KeyField::kIfname:
      return "ifname";
    case KeyField::kIpv4Addr:
      return "ipv4_addr";
    case KeyField::kIpv6Addr:
      return "ipv6_addr";
    case KeyField::kInetProto:
      return "inet_proto";
    case KeyField::kInetService:
      return "inet_service";
  }
  return "?";
}

const char* selectorName(PacketField s) {
  switch (s) {
    case PacketField::kIifname:
      return "iifname";
    case PacketField::kIpSaddr:
      return "ip saddr";
    case PacketField::kIpDaddr:
      return "ip daddr";
    case PacketField::kIp6Saddr:
      return "ip6 saddr";
    case PacketField::kIp6Daddr:
      return "ip6 daddr";
    case PacketField::kL4proto:
      return "meta l4proto";
    case PacketField::kThDport:
      return "th dport";
  }
  return "?";
}

std::string joinSelectors(const std::vector<PacketField>& sels) {
  std::string out;
  for (size_t i = 0; i < sels.size(); ++i)
    out += (i ? " . " : "") + std::string(selectorName(sels[i]));
  return out;
}

std::string protoName(uint8_t p) {
  switch (p) {
    case policy::kProtoTcp:
      return "tcp";
    case policy::kProtoUdp:
      return "udp";
    case policy::kProtoIcmp:
      return "icmp";
    case policy::kProtoIcmpv6:
      return "ipv6-icmp";
  }
  return std::to_string(p);
}

std::string verdictText(const Verdict& v) {
  switch (v.kind) {
    case Verdict::Kind::kAccept:
      return "accept";
    case Verdict::Kind::kDrop:
      return "drop";
    case Verdict::Kind::kReturn:
      return "return";
    case Verdict::Kind::kJump:
      return "jump " + v.chain.str();
    case Verdict::Kind::kGoto:
      return "goto " + v.chain.str();
  }
  return "?";
}

uint32_t readBe(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v = (v << 8) | p[i];
  return v;
}

std::string numberRange(uint32_t lo, uint32_t hi) {
  return lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi);
}

// One field of an element, from its offset in the register layout.
std::string renderField(KeyField f, const uint8_t* lo, const uint8_t* hi) {
  switch (f) {
    case KeyField::kIfname: {
      std::string name(reinterpret_cast<const char*>(lo), 16);
      return quote(name.substr(0, name.find('\0')));
    }
    case KeyField::kIpv4Addr:
    case KeyField::kIpv6Addr: {
      AddrRange r;
      r.lo.family = r.hi.family = f == KeyField::kIpv4Addr ? Family::kIpv4 : Family::kIpv6;
      std::copy(lo, lo + fieldLength(f), r.lo.bytes.begin());
      std::copy(hi, hi + fieldLength(f), r.hi.bytes.begin());
      if (r.lo == r.hi) return r.lo.toString();
      if (auto p = asPrefix(r)) return p->toString();
      return r.lo.toString() + "-" + r.hi.toString();
    }
    case KeyField::kInetProto:
      return lo[0] == hi[0] ? protoName(lo[0]) : numberRange(lo[0], hi[0]);
    case KeyField::kInetService:
      return numberRange(readBe(lo, 2), readBe(hi, 2));
  }
  return "?";
}

// nft's duration format: 90 -> "1m30s", 3600 -> "1h".
std::string duration(uint32_t seconds) {
  if (seconds == 0) return "0s";
  std::string out;
  const std::pair<uint32_t, const char*> units[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  for (auto [unit, name] : units)
    if (seconds >= unit) {
      out += std::to_string(seconds / unit) + name;
      seconds %= unit;
    }
  return out;
}

const char* hookName(BaseHook::Hook hook) {
  switch (hook) {
    case BaseHook::Hook::kInput:
      return "input";
    case BaseHook::Hook::kForward:
      return "forward";
    case BaseHook::Hook::kPrerouting:
      return "prerouting";
  }
  return "?";
}

std::string priorityName(int32_t priority) {
  if (priority == 0) return "filter";
  if (priority == -300) return "raw";
  return std::to_string(priority);
}

std::string setFlags(const Set& s) {
  std::string out;
  if (s.dynamic) out += "dynamic";
  if (s.interval) out += (out.empty() ? "" : ",") + std::string("interval");
  if (s.timeoutSeconds) out += (out.empty() ? "" : ",") + std::string("timeout");
  return out;
}

}  // namespace

std::string renderElement(const Set& set, const Element& e) {
  std::string out;
  size_t off = 0;
  for (size_t i = 0; i < set.fields.size(); ++i) {
    if (i) out += " . ";
    out += renderField(set.fields[i], e.key.bytes.data() + off, e.keyEnd.bytes.data() + off);
    off += fieldRegisterLength(set.fields[i]);
  }
  if (set.verdictMap) out += " : " + verdictText(e.verdict);
  return out;
}

std::string renderExpr(const Expr& e) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, expr::MetaNfproto>) {
          return x.family == Family::kIpv4 ? "meta nfproto ipv4" : "meta nfproto ipv6";
        } else if constexpr (std::is_same_v<T, expr::MetaL4proto>) {
          return "meta l4proto " + protoName(x.proto);
        } else if constexpr (std::is_same_v<T, expr::CtState>) {
          std::string s;
          const std::pair<uint32_t, const char*> names[] = {
              {expr::CtState::kInvalid, "invalid"},
              {expr::CtState::kEstablished, "established"},
              {expr::CtState::kRelated, "related"},
              {expr::CtState::kNew, "new"}};
          for (auto [bit, name] : names)
            if (x.mask & bit) s += (s.empty() ? "" : ",") + std::string(name);
          return "ct state " + s;
        } else if constexpr (std::is_same_v<T, expr::IcmpV6TypeRange>) {
          return "icmpv6 type " + numberRange(x.lo, x.hi);
        } else if constexpr (std::is_same_v<T, expr::UdpPorts>) {
          std::string s = x.sport ? "udp sport " + std::to_string(x.sport) + " " : "";
          return s + "udp dport " + std::to_string(x.dport);
        } else if constexpr (std::is_same_v<T, expr::Lookup>) {
          return joinSelectors(x.selectors) + (x.invert ? " != @" : " @") + x.set;
        } else if constexpr (std::is_same_v<T, expr::Vmap>) {
          return joinSelectors(x.selectors) + " vmap @" + x.map;
        } else if constexpr (std::is_same_v<T, expr::IfnameMatch>) {
          return "iifname " + quote(x.pattern);
        } else if constexpr (std::is_same_v<T, expr::SaddrPrefix>) {
          const bool v4 = x.addr.family == Family::kIpv4;
          const uint8_t full = v4 ? 32 : 128;
          return std::string(v4 ? "ip saddr " : "ip6 saddr ") + x.addr.toString() +
                 (x.prefixLen == full ? "" : "/" + std::to_string(x.prefixLen));
        } else if constexpr (std::is_same_v<T, expr::Meter>) {
          return "update @" + x.set + " { " + selectorName(x.key) + " limit rate " +
                 std::to_string(x.ratePerSecond) + "/second burst " + std::to_string(x.burst) +
                 " packets }";
        } else if constexpr (std::is_same_v<T, expr::Limit>) {
          return "limit rate " + std::to_string(x.ratePerSecond) + "/second burst " +
                 std::to_string(x.burst) + " packets";
        } else if constexpr (std::is_same_v<T, expr::Log>) {
          return "log prefix " + quote(x.prefix) + " group " + std::to_string(x.group);
        } else if constexpr (std::is_same_v<T, expr::Counter>) {
          return "counter";
        } else if constexpr (std::is_same_v<T, expr::Reject>) {
          return x.kind == expr::Reject::Kind::kTcpReset ? "reject with tcp reset"
                                                         : "reject with icmpx admin-prohibited";
        } else {
          return verdictText(x.verdict);
        }
      },
      e);
}

std::string renderRule(const Rule& rule) {
  std::string out;
  for (const auto& e : rule.exprs)
    out += (out.empty() ? "" : " ") + renderExpr(e);
  if (!rule.comment.empty()) out += " comment " + quote(rule.comment);
  return out;
}

std::string renderRuleset(const Ruleset& rs) {
  std::ostringstream o;
  o << "table inet " << rs.table << " {\n";
  for (const auto& s : rs.sets) {
    o << "\t" << (s.verdictMap ? "map " : "set ") << s.name << " {\n\t\ttype ";
    for (size_t i = 0; i < s.fields.size(); ++i)
      o << (i ? " . " : "") << typeName(s.fields[i]);
    if (s.verdictMap) o << " : verdict";
    o << "\n";
    if (s.size) o << "\t\tsize " << s.size << "\n";
    if (const std::string flags = setFlags(s); !flags.empty()) o << "\t\tflags " << flags << "\n";
    if (s.timeoutSeconds) o << "\t\ttimeout " << duration(s.timeoutSeconds) << "\n";
    if (!s.comment.empty()) o << "\t\tcomment " << quote(s.comment) << "\n";
    if (!s.elements.empty()) {
      o << "\t\telements = {";
      for (size_t i = 0; i < s.elements.size(); ++i)
        o << (i ? ",\n\t\t\t     " : " ") << renderElement(s, s.elements[i]);
      o << " }\n";
    }
    o << "\t}\n\n";
  }
  for (size_t ci = 0; ci < rs.chains.size(); ++ci) {
    const auto& c = rs.chains[ci];
    o << "\tchain " << c.name << " {\n";
    if (c.base) {
      o << "\t\ttype filter hook " << hookName(c.base->hook) << " priority "
        << priorityName(c.base->priority) << "; policy accept;\n";
    }
    for (const auto& r : c.rules)
      o << "\t\t" << renderRule(r) << "\n";
    o << "\t}\n" << (ci + 1 < rs.chains.size() ? "\n" : "");
  }
  o << "}\n";
  return o.str();
}

}  // namespace bulkhead::compiler
