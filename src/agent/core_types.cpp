#include "bulkhead/agent/core_types.h"

namespace bulkhead::agent {

ChangeCounts ChangeCounts::of(const compiler::RulesetDiff& diff) {
  ChangeCounts c;
  for (const auto& e : diff.elements) {
    c.elementAdds += e.add.size();
    c.elementRemoves += e.remove.size();
  }
  for (const auto& s : diff.addSets)
    c.elementAdds += s.elements.size();
  c.setsAdded = uint32_t(diff.addSets.size());
  c.setsDeleted = uint32_t(diff.deleteSets.size());
  c.chainsAdded = uint32_t(diff.addChains.size());
  c.chainsRewritten = uint32_t(diff.replaceChains.size());
  c.chainsDeleted = uint32_t(diff.deleteChains.size());
  c.summary = diff.summary();
  return c;
}

}  // namespace bulkhead::agent
