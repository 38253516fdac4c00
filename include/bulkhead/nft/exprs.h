// One small builder per compiler::Expr kind: each appends the libnftnl
// expressions that implement it to a rule, with the same bytecode nft emits
// for the equivalent nft text (so `nft list` shows it readably).
#pragma once

#include <libnftnl/rule.h>

#include <cstdint>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/ruleset.h"
#include "bulkhead/nft/objects.h"

namespace bulkhead::nft {

// Bytes a selector's value takes in the registers (multiple of 4).
uint32_t selectorRegisterLength(compiler::PacketField selector);
// The kernel's verdict code (NF_ACCEPT, NFT_JUMP, ...) for an immediate or a
// verdict-map element.
uint32_t verdictCode(compiler::Verdict::Kind kind);

// Loads `selectors` into consecutive 32-bit registers from NFT_REG32_00,
// preceded by a `meta nfproto` check when an address selector needs one.
// Returns the first register. Fails on mixed families or too many bytes.
Result<uint32_t> addSelectorLoads(nftnl_rule* rule,
                                  const std::vector<compiler::PacketField>& selectors);

Status addExpr(nftnl_rule* rule, const compiler::expr::MetaNfproto& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::MetaL4proto& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::CtState& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::IcmpV6TypeRange& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::UdpPorts& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::Lookup& e, const SetIds& setIds);
Status addExpr(nftnl_rule* rule, const compiler::expr::Vmap& e, const SetIds& setIds);
Status addExpr(nftnl_rule* rule, const compiler::expr::Limit& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::Log& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::IfnameMatch& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::SaddrPrefix& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::Meter& e, const SetIds& setIds);
Status addExpr(nftnl_rule* rule, const compiler::expr::Counter& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::Reject& e);
Status addExpr(nftnl_rule* rule, const compiler::expr::VerdictStatement& e);

// Dispatches on the alternative.
Status addExpr(nftnl_rule* rule, const compiler::Expr& e, const SetIds& setIds);

}  // namespace bulkhead::nft
