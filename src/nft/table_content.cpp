#include "bulkhead/nft/table_content.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <endian.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "bulkhead/common/escape.h"
#include "bulkhead/compiler/diff.h"
#include "bulkhead/nft/kernel.h"
#include "bulkhead/nft/objects.h"
#include "bulkhead/nft/writer.h"

namespace bulkhead::nft {

namespace {

// Canonical texts carry raw bytes; this separates their fields.
constexpr char kSep = '\x1f';

void putBytes(std::string& out, const void* data, uint32_t len) {
  out.append(reinterpret_cast<const char*>(&len), sizeof len);
  out.append(static_cast<const char*>(data), len);
}

void putNumber(std::string& out, const char* name, uint64_t value) {
  out += name;
  out += '=';
  out += std::to_string(value);
  out += kSep;
}

template <typename Obj, typename Get>
void putAttr(std::string& out, const char* name, Obj* obj, uint16_t attr, Get get) {
  uint32_t len = 0;
  const void* data = get(obj, attr, &len);
  if (data == nullptr) return;
  out += name;
  out += '=';
  putBytes(out, data, len);
  out += kSep;
}

std::string chainDeclaration(const nftnl_chain* c) {
  std::string out;
  if (nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE)) out += nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE);
  out += kSep;
  if (nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM))
    putNumber(out, "hook", nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM));
  if (nftnl_chain_is_set(c, NFTNL_CHAIN_PRIO))
    putNumber(out, "prio", uint32_t(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO)));
  if (nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY))
    putNumber(out, "policy", nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY));
  if (nftnl_chain_is_set(c, NFTNL_CHAIN_DEV)) out += nftnl_chain_get_str(c, NFTNL_CHAIN_DEV);
  return out;
}

std::string setDeclaration(const nftnl_set* s) {
  std::string out;
  // NFTNL_SET_ID (batch only), handle and the kernel's use count are not
  // part of what the set is.
  // The kernel leaves out flags that are 0.
  if (nftnl_set_is_set(s, NFTNL_SET_FLAGS) && nftnl_set_get_u32(s, NFTNL_SET_FLAGS) != 0)
    putNumber(out, "flags", nftnl_set_get_u32(s, NFTNL_SET_FLAGS));
  for (auto [name, attr] : {std::pair{"ktype", NFTNL_SET_KEY_TYPE},
                            {"klen", NFTNL_SET_KEY_LEN},
                            {"dtype", NFTNL_SET_DATA_TYPE},
                            {"dlen", NFTNL_SET_DATA_LEN},
                            {"objtype", NFTNL_SET_OBJ_TYPE},
                            {"size", NFTNL_SET_DESC_SIZE},
                            {"gc", NFTNL_SET_GC_INTERVAL}}) {
    if (nftnl_set_is_set(s, attr)) putNumber(out, name, nftnl_set_get_u32(s, attr));
  }
  if (nftnl_set_is_set(s, NFTNL_SET_TIMEOUT))
    putNumber(out, "timeout", nftnl_set_get_u64(s, NFTNL_SET_TIMEOUT));
  // The kernel reports the performance policy by leaving it out.
  if (nftnl_set_is_set(s, NFTNL_SET_POLICY) &&
      nftnl_set_get_u32(s, NFTNL_SET_POLICY) != NFT_SET_POL_PERFORMANCE)
    putNumber(out, "policy", nftnl_set_get_u32(s, NFTNL_SET_POLICY));
  putAttr(out, "fields", s, NFTNL_SET_DESC_CONCAT, nftnl_set_get_data);
  putAttr(out, "udata", s, NFTNL_SET_USERDATA, nftnl_set_get_data);
  return out;
}

// Element messages are read with libmnl, not libnftnl: libnftnl numbers
// the elements it builds 1, 2, 3... as attribute types (the kernel ignores
// the type) but its own parser accepts only NFTA_LIST_ELEM (1), so it
// cannot read back a batch of several elements.
using Attrs = std::vector<const nlattr*>;

// Calls fn for each attribute in [start, start + len) (libmnl's iteration
// macros do not compile as C++).
template <typename Fn>
void forEachAttr(const void* start, size_t len, Fn fn) {
  const auto* attr = static_cast<const nlattr*>(start);
  int left = static_cast<int>(len);
  while (mnl_attr_ok(attr, left)) {
    fn(attr);
    left -= MNL_ALIGN(attr->nla_len);
    attr = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(attr) +
                                           MNL_ALIGN(attr->nla_len));
  }
}

Attrs indexAttrs(const void* start, size_t len, uint16_t max) {
  Attrs tb(max + 1, nullptr);
  forEachAttr(start, len, [&](const nlattr* attr) {
    const uint16_t type = mnl_attr_get_type(attr);
    if (type <= max) tb[type] = attr;
  });
  return tb;
}

Attrs nestedAttrs(const nlattr* nest, uint16_t max) {
  return indexAttrs(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest), max);
}

// NFTA_DATA_VALUE bytes, or a verdict (code and chain), of a data nest.
void putData(std::string& out, const char* name, const nlattr* nest) {
  if (nest == nullptr) return;
  Attrs data = nestedAttrs(nest, NFTA_DATA_MAX);
  out += name;
  out += '=';
  if (const nlattr* v = data[NFTA_DATA_VALUE]) {
    putBytes(out, mnl_attr_get_payload(v), mnl_attr_get_payload_len(v));
  } else if (const nlattr* verdict = data[NFTA_DATA_VERDICT]) {
    Attrs vt = nestedAttrs(verdict, NFTA_VERDICT_MAX);
    if (vt[NFTA_VERDICT_CODE] && mnl_attr_get_payload_len(vt[NFTA_VERDICT_CODE]) == 4)
      out += "verdict " + std::to_string(int32_t(be32toh(mnl_attr_get_u32(vt[NFTA_VERDICT_CODE]))));
    if (vt[NFTA_VERDICT_CHAIN] &&
        mnl_attr_validate(vt[NFTA_VERDICT_CHAIN], MNL_TYPE_NUL_STRING) >= 0)
      out += std::string(" ") + mnl_attr_get_str(vt[NFTA_VERDICT_CHAIN]);
  }
  out += kSep;
}

std::string elementText(const nlattr* element) {
  Attrs tb = nestedAttrs(element, NFTA_SET_ELEM_MAX);
  std::string out;
  putData(out, "k", tb[NFTA_SET_ELEM_KEY]);
  putData(out, "ke", tb[NFTA_SET_ELEM_KEY_END]);
  putData(out, "d", tb[NFTA_SET_ELEM_DATA]);
  if (const nlattr* o = tb[NFTA_SET_ELEM_OBJREF]) {
    out += "o=";
    putBytes(out, mnl_attr_get_payload(o), mnl_attr_get_payload_len(o));
  }
  // The interval-end flag is what an element is in rbtree sets; other
  // flags (and timeouts, expirations) are the datapath's.
  if (const nlattr* f = tb[NFTA_SET_ELEM_FLAGS]; f && mnl_attr_get_payload_len(f) == 4)
    putNumber(out, "f", be32toh(mnl_attr_get_u32(f)) & NFT_SET_ELEM_INTERVAL_END);
  return out;
}

// The kernel keeps registers as 32-bit slots and reports one that starts a
// 128-bit register by the old name (NFT_REG32_00 = 8 as NFT_REG_1 = 1, 12 as
// 2, ...; nft_dump_register()); the writer names 32-bit registers. Every
// "reg N" / "reg_xxx N" of libnftnl's text is reported the kernel's way.
std::string kernelRegisters(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t at = text.find("reg", i);
    if (at == std::string::npos) break;
    size_t j = at + 3;
    while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_'))
      ++j;
    size_t k = j;
    while (k < text.size() && text[k] == ' ')
      ++k;
    size_t end = k;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])))
      ++end;
    out.append(text, i, k - i);
    i = k;
    if (end == k || end - k > 3) continue;
    const int reg = std::stoi(text.substr(k, end - k));
    if (reg >= NFT_REG32_00 && (reg - NFT_REG32_00) % 4 == 0) {
      out += std::to_string((reg - NFT_REG32_00) / 4 + NFT_REG_1);
    } else {
      out.append(text, k, end - k);
    }
    i = end;
  }
  out.append(text, i, std::string::npos);
  return out;
}

// One expression as libnftnl prints it, state zeroed (what a counter or a
// quota has seen is not part of the rule), attributes the kernel always
// reports filled in with their defaults, registers named the kernel's way.
std::string exprText(nftnl_expr* e) {
  const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  const std::string kind = name ? name : "?";
  if (kind == "counter") {
    nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_PACKETS, 0);
    nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_BYTES, 0);
  } else if (kind == "quota") {
    nftnl_expr_set_u64(e, NFTNL_EXPR_QUOTA_CONSUMED, 0);
  } else if (kind == "lookup" && !nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS)) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, 0);
  } else if (kind == "dynset" && !nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_TIMEOUT)) {
    // The kernel always reports a dynset's timeout, 0 when none was given.
    nftnl_expr_set_u64(e, NFTNL_EXPR_DYNSET_TIMEOUT, 0);
  }
  char buf[1024];
  const int n = nftnl_expr_snprintf(buf, sizeof buf, e, NFTNL_OUTPUT_DEFAULT, 0);
  std::string out = kind + " ";
  if (n > 0) out.append(buf, std::min<size_t>(size_t(n), sizeof buf - 1));
  return kernelRegisters(out);
}

std::string ruleText(nftnl_rule* r) {
  std::string out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  if (it != nullptr) {
    for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
      out += exprText(e);
      out += kSep;
    }
    nftnl_expr_iter_destroy(it);
  }
  putAttr(out, "udata", r, NFTNL_RULE_USERDATA, nftnl_rule_get_data);
  return out;
}

bool isOurs(const char* table, uint32_t family, const std::string& want) {
  return family == NFPROTO_INET && table != nullptr && want == table;
}

Error parseError(const char* what) {
  return makeError(ErrorCode::kKernel,
                   std::string("cannot parse an nf_tables ") + what + " message", EPROTO);
}

}  // namespace

Status TableContent::applyChain(const nlmsghdr* nlh, bool add) {
  ChainPtr c(nftnl_chain_alloc());
  if (!c || nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) return parseError("chain");
  if (!isOurs(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE),
              nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY), table_))
    return {};
  const std::string name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
  if (!add) {
    chains.erase(name);
    return {};
  }
  chains[name].declaration = chainDeclaration(c.get());
  return {};
}

Status TableContent::applySet(const nlmsghdr* nlh, bool add) {
  SetPtr s(nftnl_set_alloc());
  if (!s || nftnl_set_nlmsg_parse(nlh, s.get()) < 0) return parseError("set");
  if (!isOurs(nftnl_set_get_str(s.get(), NFTNL_SET_TABLE),
              nftnl_set_get_u32(s.get(), NFTNL_SET_FAMILY), table_))
    return {};
  const std::string name = nftnl_set_get_str(s.get(), NFTNL_SET_NAME);
  if (!add) {
    sets.erase(name);
    return {};
  }
  SetContent& set = sets[name];
  set.declaration = setDeclaration(s.get());
  const uint32_t flags =
      nftnl_set_is_set(s.get(), NFTNL_SET_FLAGS) ? nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS) : 0;
  set.dynamic = (flags & (NFT_SET_EVAL | NFT_SET_TIMEOUT)) != 0;
  return {};
}

Status TableContent::applyElements(const nlmsghdr* nlh, bool add) {
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  const Attrs tb = indexAttrs(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)),
                              nlh->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(sizeof(nfgenmsg)),
                              NFTA_SET_ELEM_LIST_MAX);
  const nlattr* table = tb[NFTA_SET_ELEM_LIST_TABLE];
  const nlattr* setName = tb[NFTA_SET_ELEM_LIST_SET];
  if (!table || !setName || mnl_attr_validate(table, MNL_TYPE_NUL_STRING) < 0 ||
      mnl_attr_validate(setName, MNL_TYPE_NUL_STRING) < 0)
    return parseError("set element");
  if (!isOurs(mnl_attr_get_str(table), nfg->nfgen_family, table_)) return {};
  auto it = sets.find(mnl_attr_get_str(setName));
  if (it == sets.end()) return {};  // as the kernel: no set, no elements
  SetContent& set = it->second;
  if (set.dynamic || !tb[NFTA_SET_ELEM_LIST_ELEMENTS]) return {};
  const nlattr* list = tb[NFTA_SET_ELEM_LIST_ELEMENTS];
  forEachAttr(
      mnl_attr_get_payload(list), mnl_attr_get_payload_len(list), [&](const nlattr* element) {
        if (add) {
          set.elements.push_back(elementText(element));
          return;
        }
        // A removal carries only the key (and key end): match on
        // those. Only diffs remove elements (test kernels apply them).
        const std::string key = elementText(element);
        std::erase_if(set.elements,
                      [&](const std::string& e) { return e.compare(0, key.size(), key) == 0; });
      });
  return {};
}

Status TableContent::applyRule(const nlmsghdr* nlh, bool add) {
  RulePtr r(nftnl_rule_alloc());
  if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return parseError("rule");
  if (!isOurs(nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE),
              nftnl_rule_get_u32(r.get(), NFTNL_RULE_FAMILY), table_))
    return {};
  const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
  if (chain == nullptr) return {};
  auto it = chains.find(chain);
  if (it == chains.end()) return {};
  if (!add) {
    if (!nftnl_rule_is_set(r.get(), NFTNL_RULE_HANDLE)) it->second.rules.clear();
    return {};
  }
  it->second.rules.push_back(ruleText(r.get()));
  return {};
}

Status TableContent::apply(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return {};
  switch (nlh->nlmsg_type & 0xff) {
    case NFT_MSG_NEWTABLE:
    case NFT_MSG_DELTABLE: {
      TablePtr t(nftnl_table_alloc());
      if (!t || nftnl_table_nlmsg_parse(nlh, t.get()) < 0) return parseError("table");
      if (!isOurs(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME),
                  nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY), table_))
        return {};
      if ((nlh->nlmsg_type & 0xff) == NFT_MSG_NEWTABLE) {
        exists = true;
      } else {
        *this = TableContent(table_);
      }
      return {};
    }
    case NFT_MSG_NEWCHAIN:
      return applyChain(nlh, true);
    case NFT_MSG_DELCHAIN:
      return applyChain(nlh, false);
    case NFT_MSG_NEWSET:
      return applySet(nlh, true);
    case NFT_MSG_DELSET:
      return applySet(nlh, false);
    case NFT_MSG_NEWSETELEM:
      return applyElements(nlh, true);
    case NFT_MSG_DELSETELEM:
      return applyElements(nlh, false);
    case NFT_MSG_NEWRULE:
      return applyRule(nlh, true);
    case NFT_MSG_DELRULE:
      return applyRule(nlh, false);
    default:
      return {};
  }
}

Status TableContent::apply(const Batch& batch) {
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data());
  int len = static_cast<int>(batch.bytes.size());
  for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
    if (Status st = apply(nlh); !st) return st;
  }
  return {};
}

namespace {

void listNames(std::string& out, const char* what, const std::vector<std::string>& names) {
  if (names.empty()) return;
  out += out.empty() ? "" : "; ";
  out += what;
  for (size_t i = 0; i < names.size() && i < 3; ++i)
    out += (i ? ", " : " ") + names[i];
  if (names.size() > 3) out += " and " + std::to_string(names.size() - 3) + " more";
}

template <typename Map, typename Same>
void compareMaps(const Map& want, const Map& got, const char* kind, Same same, std::string& out) {
  std::vector<std::string> missing, extra, changed;
  for (const auto& [name, w] : want) {
    auto it = got.find(name);
    if (it == got.end()) {
      missing.push_back(name);
    } else if (std::string why = same(w, it->second); !why.empty()) {
      changed.push_back(name + " (" + why + ")");
    }
  }
  for (const auto& [name, g] : got)
    if (!want.count(name)) extra.push_back(name);
  listNames(out, (std::string(kind) + " missing:").c_str(), missing);
  listNames(out, (std::string("foreign ") + kind + ":").c_str(), extra);
  listNames(out, (std::string(kind) + " changed:").c_str(), changed);
}

std::string chainDiff(const ChainContent& want, const ChainContent& got) {
  if (want.declaration != got.declaration) return "declaration";
  if (want.rules.size() != got.rules.size())
    return std::to_string(got.rules.size()) + " rules, expected " +
           std::to_string(want.rules.size());
  for (size_t i = 0; i < want.rules.size(); ++i)
    if (want.rules[i] != got.rules[i]) {
      // Say what differs, shortened: the message goes to the log and status.
      auto brief = [](const std::string& r) {
        return escapeForLog(r.size() > 300 ? r.substr(0, 300) + "..." : r);
      };
      return "rule " + std::to_string(i + 1) + ": expected [" + brief(want.rules[i]) +
             "], kernel has [" + brief(got.rules[i]) + "]";
    }
  return "";
}

std::string setDiff(const SetContent& want, const SetContent& got) {
  if (want.declaration != got.declaration) return "declaration";
  if (want.dynamic || want.elements == got.elements) return "";
  size_t missing = 0, extra = 0;
  for (const auto& e : want.elements)
    missing += !std::binary_search(got.elements.begin(), got.elements.end(), e);
  for (const auto& e : got.elements)
    extra += !std::binary_search(want.elements.begin(), want.elements.end(), e);
  return std::to_string(missing) + " elements missing, " + std::to_string(extra) + " foreign";
}

}  // namespace

void TableContent::normalize() {
  for (auto& [name, set] : sets)
    std::sort(set.elements.begin(), set.elements.end());
}

std::optional<std::string> TableContent::differences(const TableContent& actual) const {
  if (exists != actual.exists) return actual.exists ? "table present" : "table missing";
  std::string out;
  compareMaps(chains, actual.chains, "chains", chainDiff, out);
  compareMaps(sets, actual.sets, "sets", setDiff, out);
  if (out.empty()) return std::nullopt;
  return out;
}

Result<TableContent> expectedContent(const compiler::Ruleset& ruleset) {
  Result<Batch> batch = buildBatch(compiler::fullRuleset(ruleset), 0, false, &ruleset);
  if (!batch) return batch.takeError();
  TableContent content(ruleset.table);
  if (Status st = content.apply(*batch); !st) return st.takeError();
  content.normalize();
  return content;
}

}  // namespace bulkhead::nft
