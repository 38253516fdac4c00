#include "bulkhead/nft/objects.h"

#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <memory>

#include "bulkhead/nft/exprs.h"

namespace bulkhead::nft {

namespace {

using compiler::KeyField;

// nft's byteorder enum (nftables src/datatype.h): what `nft list` uses to
// print a single-field key. Concatenations carry 0, as nft writes them.
constexpr uint32_t kByteorderInvalid = 0, kByteorderHost = 1, kByteorderBig = 2;

uint32_t keyByteorder(const std::vector<KeyField>& fields) {
  if (fields.size() != 1) return kByteorderInvalid;
  switch (fields[0]) {
    case KeyField::kIfname:
    case KeyField::kInetProto:
      return kByteorderHost;
    default:
      return kByteorderBig;
  }
}

}  // namespace

uint32_t datatypeId(KeyField field) {
  switch (field) {
    case KeyField::kIfname:
      return kTypeIfname;
    case KeyField::kIpv4Addr:
      return kTypeIpv4Addr;
    case KeyField::kIpv6Addr:
      return kTypeIpv6Addr;
    case KeyField::kInetProto:
      return kTypeInetProto;
    case KeyField::kInetService:
      return kTypeInetService;
  }
  return 0;
}

uint32_t setKeyType(const std::vector<KeyField>& fields) {
  uint32_t type = 0;
  for (KeyField f : fields)
    type = (type << kConcatTypeBits) | datatypeId(f);
  return type;
}

uint32_t setKeyLength(const std::vector<KeyField>& fields) {
  uint32_t len = 0;
  for (KeyField f : fields)
    len += static_cast<uint32_t>(compiler::fieldRegisterLength(f));
  return len;
}

TablePtr makeTable(const std::string& name) {
  TablePtr t(nftnl_table_alloc());
  if (!t) return t;
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
  return t;
}

ChainPtr makeChainRef(const std::string& table, const std::string& name) {
  ChainPtr c(nftnl_chain_alloc());
  if (!c) return c;
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
  return c;
}

ChainPtr makeChain(const std::string& table, const compiler::Chain& chain) {
  ChainPtr c = makeChainRef(table, chain.name);
  if (!c || !chain.base) return c;
  uint32_t hook = NF_INET_FORWARD;
  if (chain.base->hook == compiler::BaseHook::Hook::kInput) hook = NF_INET_LOCAL_IN;
  if (chain.base->hook == compiler::BaseHook::Hook::kPrerouting) hook = NF_INET_PRE_ROUTING;
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook);
  nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, chain.base->priority);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  return c;
}

SetPtr makeSetRef(const std::string& table, const std::string& name) {
  SetPtr s(nftnl_set_alloc());
  if (!s) return s;
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name.c_str());
  return s;
}

namespace {

// What the kernel cannot hold: a key of no or too many fields, or too long.
Status checkSetKey(const compiler::Set& set) {
  if (set.fields.empty() || set.fields.size() > NFT_REG32_COUNT) {
    return makeError(ErrorCode::kInvalidInput, "set " + set.name + " has no usable key fields");
  }
  // Only the pipapo backend takes KEY_END ranges, and it wants >= 2 fields.
  if (set.interval && set.fields.size() < 2) {
    return makeError(ErrorCode::kInvalidInput,
                     "interval set " + set.name + " needs a concatenated key");
  }
  if (setKeyLength(set.fields) > compiler::kMaxKeyBytes) {
    return makeError(ErrorCode::kInvalidInput, "set " + set.name + " key is too long");
  }
  return {};
}

uint32_t setFlags(const compiler::Set& set) {
  uint32_t flags = 0;
  if (set.fields.size() > 1) flags |= NFT_SET_CONCAT;
  if (set.interval) flags |= NFT_SET_INTERVAL;
  if (set.verdictMap) flags |= NFT_SET_MAP;
  // A set rules `update` from the datapath must say so (NFT_SET_EVAL, nft's
  // "dynamic"): the kernel then picks a backend that can insert from the
  // packet path. Elements expire only in a set flagged timeout.
  if (set.dynamic) flags |= NFT_SET_EVAL;
  if (set.timeoutSeconds) flags |= NFT_SET_TIMEOUT;
  return flags;
}

// The key's type and length, and the data a verdict map maps to.
void setKeyAndData(nftnl_set* s, const compiler::Set& set) {
  nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, setKeyType(set.fields));
  nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, setKeyLength(set.fields));
  if (set.verdictMap) {
    nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
    nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, sizeof(uint32_t) * 4);
  }
  if (set.fields.size() > 1) {
    // The kernel needs each field's length to split a concatenated key.
    uint8_t lens[NFT_REG32_COUNT] = {};
    for (size_t i = 0; i < set.fields.size(); ++i)
      lens[i] = static_cast<uint8_t>(compiler::fieldLength(set.fields[i]));
    nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, lens, static_cast<uint32_t>(set.fields.size()));
  }
}

// Userdata is for nft only: it prints keys and comments from it.
Status setUserdata(nftnl_set* s, const compiler::Set& set) {
  UdataPtr ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
  if (!ud) return makeError(ErrorCode::kInternal, "cannot allocate nftnl udata");
  bool okUd = nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, keyByteorder(set.fields));
  if (set.verdictMap) {
    okUd = okUd && nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, kByteorderInvalid);
  }
  if (!set.comment.empty()) {
    if (set.comment.size() >= NFTNL_UDATA_COMMENT_MAXLEN) {
      return makeError(ErrorCode::kInvalidInput, "set " + set.name + " comment is too long");
    }
    okUd = okUd && nftnl_udata_put_strz(ud.get(), NFTNL_UDATA_SET_COMMENT, set.comment.c_str());
  }
  if (!okUd) return makeError(ErrorCode::kInternal, "set " + set.name + " userdata too long");
  nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()),
                     nftnl_udata_buf_len(ud.get()));
  return {};
}

}  // namespace

Result<SetPtr> makeSet(const std::string& table, const compiler::Set& set, uint32_t setId) {
  if (Status st = checkSetKey(set); !st.ok()) return st.error();
  SetPtr s = makeSetRef(table, set.name);
  if (!s) return makeError(ErrorCode::kInternal, "cannot allocate nftnl set");
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, setFlags(set));
  if (set.timeoutSeconds)
    nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT, uint64_t{set.timeoutSeconds} * 1000);  // ms
  if (set.size) nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, set.size);
  setKeyAndData(s.get(), set);
  if (setId != 0) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, setId);
  if (Status st = setUserdata(s.get(), set); !st.ok()) return st.error();
  return s;
}

size_t elementWireBytes(const compiler::Set& decl, const compiler::Element& element) {
  // list nest + key nest + value attr (+ the same for KEY_END) + flags, with
  // generous headroom for alignment.
  const size_t keyAttr = 4 + 4 + element.key.len + 4;
  size_t bytes = 4 + keyAttr + 8;
  if (decl.interval) bytes += keyAttr;
  if (decl.verdictMap) bytes += 4 + 4 + 8 + 4 + element.verdict.chain.size() + 1 + 4;
  return bytes;
}

Status addElements(nftnl_set* target, const compiler::Set& decl,
                   std::span<const compiler::Element> elements) {
  // An inferred declaration (see buildBatch) has no fields: the elements
  // then only need to agree with each other.
  const uint32_t keyLen = decl.fields.empty() ? (elements.empty() ? 0 : elements[0].key.len)
                                              : setKeyLength(decl.fields);
  for (const compiler::Element& el : elements) {
    if (el.key.len == 0 || el.key.len != keyLen || (decl.interval && el.keyEnd.len != keyLen)) {
      return makeError(ErrorCode::kInvalidInput, "element of set " + decl.name + " has a key of " +
                                                     std::to_string(el.key.len) +
                                                     " bytes, the set takes " +
                                                     std::to_string(keyLen));
    }
    SetElemPtr owned(nftnl_set_elem_alloc());
    if (!owned) return makeError(ErrorCode::kInternal, "cannot allocate nftnl set element");
    nftnl_set_elem* e = owned.get();
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, el.key.bytes.data(), el.key.len);
    if (decl.interval) {
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY_END, el.keyEnd.bytes.data(), el.keyEnd.len);
    }
    if (decl.verdictMap) {
      nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, verdictCode(el.verdict.kind));
      if (!el.verdict.chain.empty()) {
        nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, el.verdict.chain.c_str());
      }
    }
    nftnl_set_elem_add(target, owned.release());  // the set owns it now
  }
  return {};
}

Result<RulePtr> makeRule(const std::string& table, const std::string& chain,
                         const compiler::Rule& rule, const SetIds& setIds) {
  RulePtr r(nftnl_rule_alloc());
  if (!r) return makeError(ErrorCode::kInternal, "cannot allocate nftnl rule");
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
  for (const compiler::Expr& e : rule.exprs) {
    if (Status s = addExpr(r.get(), e, setIds); !s) return s.takeError();
  }
  if (!rule.comment.empty()) {
    if (rule.comment.size() >= NFTNL_UDATA_COMMENT_MAXLEN) {
      return makeError(ErrorCode::kInvalidInput, "rule comment longer than 127 bytes in chain " +
                                                     chain + ": " + rule.comment);
    }
    UdataPtr ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
    if (!ud || !nftnl_udata_put_strz(ud.get(), NFTNL_UDATA_RULE_COMMENT, rule.comment.c_str())) {
      return makeError(ErrorCode::kInternal, "cannot build rule userdata");
    }
    nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud.get()),
                        nftnl_udata_buf_len(ud.get()));
  }
  return r;
}

}  // namespace bulkhead::nft
