// libnftnl objects of bulkhead's table: RAII owners and builders from the
// compiler's data model. Builders only fill objects; nothing here talks to
// the kernel.
#pragma once

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "bulkhead/common/owned.h"
#include "bulkhead/common/result.h"
#include "bulkhead/compiler/ruleset.h"

namespace bulkhead::nft {

using TablePtr = Owned<nftnl_table, nftnl_table_free>;
using ChainPtr = Owned<nftnl_chain, nftnl_chain_free>;
using SetPtr = Owned<nftnl_set, nftnl_set_free>;
using RulePtr = Owned<nftnl_rule, nftnl_rule_free>;
using ExprPtr = Owned<nftnl_expr, nftnl_expr_free>;
using SetElemPtr = Owned<nftnl_set_elem, nftnl_set_elem_free>;
using UdataPtr = Owned<nftnl_udata_buf, nftnl_udata_buf_free>;

// Names of sets created in the batch being built -> their NFTNL_SET_ID, so a
// rule in the same batch can reference them.
using SetIds = std::map<std::string, uint32_t>;

// nft's datatype ids (nftables src/datatype.h) for the key fields, and the
// concatenation encoding nft uses for NFTA_SET_KEY_TYPE: (t1 << 6 | t2) << 6 | t3.
inline constexpr uint32_t kTypeVerdict = 1, kTypeIpv4Addr = 7, kTypeIpv6Addr = 8,
                          kTypeInetProto = 12, kTypeInetService = 13, kTypeIfname = 41;
inline constexpr uint32_t kConcatTypeBits = 6;
uint32_t datatypeId(compiler::KeyField field);
uint32_t setKeyType(const std::vector<compiler::KeyField>& fields);
// Sum of the fields' register lengths: the key length of the set.
uint32_t setKeyLength(const std::vector<compiler::KeyField>& fields);

// `table inet <name>`.
TablePtr makeTable(const std::string& name);

// A chain with only table and name (for flush / delete), or the whole
// declaration (base chains: type filter, hook, priority, policy accept).
ChainPtr makeChainRef(const std::string& table, const std::string& name);
ChainPtr makeChain(const std::string& table, const compiler::Chain& chain);

// A set with only table and name (delete set, element messages) or the whole
// declaration, without elements. `setId` > 0 is sent as NFTNL_SET_ID.
SetPtr makeSetRef(const std::string& table, const std::string& name);
Result<SetPtr> makeSet(const std::string& table, const compiler::Set& set, uint32_t setId);

// Adds elements to `target` (a set ref) with the key layout of `decl`:
// KEY_END for interval sets, verdict (+ chain) for verdict maps.
Status addElements(nftnl_set* target, const compiler::Set& decl,
                   std::span<const compiler::Element> elements);

// Estimated bytes one element of `decl` takes in a NEWSETELEM message (an
// upper bound, used to split long element lists).
size_t elementWireBytes(const compiler::Set& decl, const compiler::Element& element);

// A rule appended to `chain`, with its comment as NFTNL_UDATA_RULE_COMMENT.
Result<RulePtr> makeRule(const std::string& table, const std::string& chain,
                         const compiler::Rule& rule, const SetIds& setIds);

}  // namespace bulkhead::nft
