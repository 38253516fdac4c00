// The Ruleset: a plain value describing everything bulkhead puts in its one
// nftables table. The compiler produces it, `plan` renders it as nft text,
// the diff compares two of them and the nft layer turns either into one
// netlink transaction. No netlink headers here: only the data model.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "bulkhead/policy/address.h"

namespace bulkhead::compiler {

using policy::Family;

// --- set keys -------------------------------------------------------------

// The nftables data types bulkhead keys sets on.
enum class KeyField : uint8_t { kIfname, kIpv4Addr, kIpv6Addr, kInetProto, kInetService };

// Bytes of the value itself (ifname 16, ipv4 4, ipv6 16, proto 1, port 2).
size_t fieldLength(KeyField field);
// Bytes it takes in a concatenated key: each field is padded to 4 bytes, as
// the kernel lays concatenations out in its 32-bit registers.
size_t fieldRegisterLength(KeyField field);

inline constexpr size_t kMaxKeyBytes = 32;  // ifname . ipv6_addr

// A key in the kernel's register layout: fields in order, each zero-padded to
// a multiple of 4 bytes; addresses and ports in network byte order, ifnames
// NUL-padded to 16 bytes, the protocol one byte followed by three zeros.
struct Key {
  std::array<uint8_t, kMaxKeyBytes> bytes{};
  uint8_t len = 0;

  auto operator<=>(const Key&) const = default;
};

// --- verdicts ---------------------------------------------------------------

// A chain's name, interned: equal names share one immutable string kept
// for the life of the process (one per distinct chain name ever used: a
// few per app). A Verdict, and so an Element, is then trivially copyable
// (an Element is 88 bytes rather than 112), and inserting into the middle
// of a set of 10,000 elements moves plain bytes instead of a std::string
// per element. Thread-safe.
class ChainName {
 public:
  // Implicit, so that a name is written as a string wherever a chain is.
  ChainName() = default;  // no chain
  ChainName(std::string_view name);
  ChainName(const std::string& name) : ChainName(std::string_view(name)) {}
  ChainName(const char* name) : ChainName(std::string_view(name)) {}

  const std::string& str() const;
  const char* c_str() const { return str().c_str(); }
  size_t size() const { return str().size(); }
  bool empty() const { return name_ == nullptr; }

  // Interned, so one name is one pointer.
  friend bool operator==(ChainName a, ChainName b) { return a.name_ == b.name_; }
  friend std::strong_ordering operator<=>(ChainName a, ChainName b) {
    if (a.name_ == b.name_) return std::strong_ordering::equal;
    return a.str().compare(b.str()) <=> 0;
  }

 private:
  const std::string* name_ = nullptr;  // nullptr: the empty name
};

struct Verdict {
  enum class Kind : uint8_t { kAccept, kDrop, kReturn, kJump, kGoto };
  Kind kind = Kind::kAccept;
  ChainName chain;  // for kJump / kGoto

  auto operator<=>(const Verdict&) const = default;
};

// --- sets and maps ----------------------------------------------------------

struct Element {
  Key key;
  Key keyEnd;       // last key covered (inclusive) for interval sets; == key otherwise
  Verdict verdict;  // for verdict maps only

  auto operator<=>(const Element&) const = default;
};
// Sets hold 100,000 of these and insert into the middle of them: moves must
// stay plain byte copies.
static_assert(std::is_trivially_copyable_v<Element>);

struct Set {
  std::string name;
  std::vector<KeyField> fields;  // one field, or a concatenation
  bool interval = false;         // ranges per field (the kernel's pipapo set; needs >1 field)
  bool verdictMap = false;       // key : verdict
  std::string comment;
  // Sorted, unique; for interval sets also disjoint (the kernel rejects overlaps).
  std::vector<Element> elements;
  // A set the datapath fills itself (`update @set { ... }`, flags dynamic):
  // it holds no declared elements, and what the kernel adds expires after
  // `timeoutSeconds` without use (0: never). `size` bounds it (0: no bound).
  bool dynamic = false;
  uint32_t timeoutSeconds = 0;
  uint32_t size = 0;
  // One of the few sets whose elements most workload changes touch (not a
  // per-app one): the writer creates these first (nft/writer.cpp), since
  // the kernel finds a set by name by walking the table's list of sets.
  // Placement only: not part of the declaration.
  bool lookedUpOften = false;
  // (A field added here is copied by Ruleset::declarations() too.)

  // Same declaration (type, flags), ignoring elements and comment.
  bool sameDeclaration(const Set& o) const {
    return name == o.name && fields == o.fields && interval == o.interval &&
           verdictMap == o.verdictMap && dynamic == o.dynamic &&
           timeoutSeconds == o.timeoutSeconds && size == o.size;
  }
};

// --- rule expressions ---------------------------------------------------------
// One small struct per kind of match or statement bulkhead uses. Each renders
// to nft text (compiler/render) and builds libnftnl expressions (nft/exprs).

// A value a rule can load into a register for a lookup.
enum class PacketField : uint8_t {
  kIifname,   // meta iifname
  kIpSaddr,   // ip saddr       (implies meta nfproto ipv4)
  kIpDaddr,   // ip daddr
  kIp6Saddr,  // ip6 saddr      (implies meta nfproto ipv6)
  kIp6Daddr,  // ip6 daddr
  kL4proto,   // meta l4proto
  kThDport,   // th dport
};

namespace expr {

struct MetaNfproto {  // meta nfproto ipv4|ipv6
  Family family;
  auto operator<=>(const MetaNfproto&) const = default;
};
struct MetaL4proto {  // meta l4proto <n>
  uint8_t proto;
  auto operator<=>(const MetaL4proto&) const = default;
};
struct CtState {  // ct state <bits>   (bits as NF_CT_STATE_BIT / NFCT_STATE_* of nftables)
  static constexpr uint32_t kInvalid = 1, kEstablished = 2, kRelated = 4, kNew = 8;
  uint32_t mask;
  auto operator<=>(const CtState&) const = default;
};
struct IcmpV6TypeRange {  // icmpv6 type lo-hi   (implies meta l4proto ipv6-icmp)
  uint8_t lo, hi;
  auto operator<=>(const IcmpV6TypeRange&) const = default;
};
struct UdpPorts {  // udp sport S udp dport D   (implies meta l4proto udp)
  uint16_t sport;  // 0: any source port
  uint16_t dport;
  auto operator<=>(const UdpPorts&) const = default;
};
struct IfnameMatch {  // iifname "veth*" (trailing `*`: the bytes before it) | iifname "eth0"
  std::string pattern;
  auto operator<=>(const IfnameMatch&) const = default;
};
struct SaddrPrefix {  // ip saddr A[/N] | ip6 saddr A[/N]   (implies meta nfproto)
  policy::IpAddr addr;
  uint8_t prefixLen;  // 32 / 128: the address itself
  auto operator<=>(const SaddrPrefix&) const = default;
};
struct Lookup {  // a . b . c [!=] @set
  std::vector<PacketField> selectors;
  std::string set;
  bool invert = false;
  auto operator<=>(const Lookup&) const = default;
};
struct Vmap {  // a . b vmap @map
  std::vector<PacketField> selectors;
  std::string map;
  auto operator<=>(const Vmap&) const = default;
};
struct Limit {  // limit rate R/second burst B packets
  uint32_t ratePerSecond;
  uint32_t burst;
  auto operator<=>(const Limit&) const = default;
};
// update @set { iifname limit rate R/second burst B packets }: one limit per
// key, kept in a dynamic set (a meter); over its rate the rule stops here.
struct Meter {
  PacketField key;
  std::string set;
  uint32_t ratePerSecond;
  uint32_t burst;
  auto operator<=>(const Meter&) const = default;
};
struct Log {  // log prefix "P" group G   (prefix at most 127 bytes)
  std::string prefix;
  uint16_t group;
  auto operator<=>(const Log&) const = default;
};
struct Counter {  // counter
  auto operator<=>(const Counter&) const = default;
};
struct Reject {  // reject with tcp reset | reject with icmpx admin-prohibited
  enum class Kind : uint8_t { kTcpReset, kIcmpxAdminProhibited } kind;
  auto operator<=>(const Reject&) const = default;
};
// The statement that ends a rule with a verdict (compiler::Verdict: the
// value, also a verdict map's data).
struct VerdictStatement {  // accept | drop | return | jump C | goto C
  compiler::Verdict verdict;
  auto operator<=>(const VerdictStatement&) const = default;
};

}  // namespace expr

using Expr =
    std::variant<expr::MetaNfproto, expr::MetaL4proto, expr::CtState, expr::IcmpV6TypeRange,
                 expr::UdpPorts, expr::Lookup, expr::Vmap, expr::Limit, expr::Log, expr::Counter,
                 expr::Reject, expr::VerdictStatement, expr::IfnameMatch, expr::SaddrPrefix,
                 expr::Meter>;

struct Rule {
  std::vector<Expr> exprs;
  std::string comment;  // rendered as `comment "..."`, stored as rule userdata

  bool operator==(const Rule&) const = default;
};

// --- chains and the table -------------------------------------------------------

struct BaseHook {
  enum class Hook : uint8_t { kInput, kForward, kPrerouting } hook;
  int32_t priority = 0;  // filter = 0, raw = -300 (before conntrack at -200)
  bool operator==(const BaseHook&) const = default;
};

struct Chain {
  std::string name;
  std::optional<BaseHook> base;  // base chains: type filter, policy accept
  std::vector<Rule> rules;

  bool operator==(const Chain&) const = default;
};

// Everything in `table inet <table>`. Sets are sorted by name. Chains are in
// creation order: regular chains first (sorted by name), then base chains.
struct Ruleset {
  std::string table = "bulkhead";
  std::vector<Set> sets;
  std::vector<Chain> chains;

  const Set* findSet(const std::string& name) const;
  const Chain* findChain(const std::string& name) const;
  size_t elementCount() const;
  // The same table with every set declared but empty: the chains and the
  // sets' declarations, without copying the elements (a tenth of the
  // whole copy's bytes at 10,000 workloads).
  Ruleset declarations() const;
};

// --- key helpers ---------------------------------------------------------------

// Builds keys field by field in the register layout.
class KeyBuilder {
 public:
  KeyBuilder& ifname(std::string_view name);
  KeyBuilder& addr(const policy::IpAddr& addr);
  KeyBuilder& proto(uint8_t proto);
  KeyBuilder& port(uint16_t port);
  Key build() const { return key_; }

 private:
  void append(const uint8_t* data, size_t len, size_t regLen);
  Key key_;
};

}  // namespace bulkhead::compiler
