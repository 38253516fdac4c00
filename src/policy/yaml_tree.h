// Private to the policy library: a compact YAML document tree built from
// libyaml's event stream, one document at a time.
//
// A generic YAML DOM costs a few hundred bytes per node and materialises
// every document of a file before we could count them. Building our own tree
// from parser events lets us enforce limits while parsing: nesting depth,
// documents per file, and the size of a document with its aliases expanded
// (so "billion laughs" inputs cost nothing). libyaml's event parser reads the
// text in place and is several times faster than yaml-cpp's on large bundles.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bulkhead/policy/model.h"

namespace bulkhead::policy::yamltree {

inline constexpr uint32_t kNoNode = UINT32_MAX;
// Nodes of one document, counting every alias as the nodes it stands for.
// Far above what any document within the per-object limits needs in practice.
inline constexpr uint64_t kMaxExpandedNodes = 4u << 20;

enum class NodeKind : uint8_t { kNull, kScalar, kSequence, kMap, kAlias };

struct Node {
  NodeKind kind = NodeKind::kNull;
  int line = 0;              // 1-based
  int column = 0;            // 1-based
  uint32_t valueOffset = 0;  // scalars: into Document::arena; aliases: the target node
  uint32_t valueLength = 0;
  uint32_t firstChild = kNoNode;  // maps: key, value, key, value, ...
  uint32_t nextSibling = kNoNode;
  uint32_t childCount = 0;
  uint64_t expanded = 1;  // size of the subtree with aliases expanded
};

struct Document {
  std::vector<Node> nodes;
  std::string arena;
  uint32_t root = kNoNode;
  int line = 0;  // where the document starts, 1-based
  int column = 0;

  // Follows an alias to the node it stands for.
  const Node& at(uint32_t index) const;
  std::string_view scalar(const Node& node) const {
    return std::string_view(arena).substr(node.valueOffset, node.valueLength);
  }
};

// Parses `text` document by document. For each complete document that built
// without errors, calls `onDocument`; empty documents are skipped. Returns
// false when parsing stopped early (malformed YAML, too many documents).
// Errors carry `fileName` and 1-based positions. `aliasNodesLeft`, when
// given, is the bundle's budget of nodes that aliases may stand for: each
// alias takes the size of its target from it, across calls; parsing stops
// with an error once it is spent.
bool parseDocuments(std::string_view text, const std::string& fileName, size_t maxDocuments,
                    const std::function<void(const Document&)>& onDocument,
                    std::vector<Diagnostic>& errors, uint64_t* aliasNodesLeft = nullptr);

}  // namespace bulkhead::policy::yamltree
