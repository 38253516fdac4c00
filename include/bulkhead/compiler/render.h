// Renders a Ruleset as nft syntax that `nft -f` accepts: what `bulkhead plan`
// prints. Output is stable: the same Ruleset always renders the same text.
#pragma once

#include <string>

#include "bulkhead/compiler/ruleset.h"

namespace bulkhead::compiler {

std::string renderRuleset(const Ruleset& ruleset);
std::string renderElement(const Set& set, const Element& element);
std::string renderExpr(const Expr& expr);
std::string renderRule(const Rule& rule);

}  // namespace bulkhead::compiler
