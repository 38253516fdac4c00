#include "yaml_tree.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <sstream>

#include "bulkhead/policy/limits.h"

namespace bulkhead::policy::yamltree {

const Node& Document::at(uint32_t index) const {
  const Node* n = &nodes[index];
  // Aliases always point at a finished, non-alias node (see Builder::onAlias).
  if (n->kind == NodeKind::kAlias) n = &nodes[n->valueOffset];
  return *n;
}

namespace {

// Thrown by the Builder through yaml-cpp's parser to stop reading a file that
// broke a limit (depth, size, aliases): nothing after it is worth the work.
struct StopParsing {};

class Builder : public YAML::EventHandler {
 public:
  Builder(const std::string& fileName, std::vector<Diagnostic>& errors, uint64_t* aliasNodesLeft)
      : fileName_(fileName), errors_(errors), aliasNodesLeft_(aliasNodesLeft) {}

  void reset(Document* doc) {
    doc_ = doc;
    stack_.clear();
    anchors_.clear();
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    doc_->line = mark.line + 1;
    doc_->column = mark.column + 1;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Node n;
    n.kind = NodeKind::kNull;
    add(mark, n, anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (anchor >= anchors_.size() || anchors_[anchor] == kNoNode) {
      fail(mark, "alias refers to an anchor that is not defined");
    }
    const uint32_t target = anchors_[anchor];
    for (const Frame& f : stack_) {
      if (f.index == target) fail(mark, "alias refers to an enclosing node (a cycle)");
    }
    Node n;
    n.kind = NodeKind::kAlias;
    n.valueOffset = target;
    n.expanded = doc_->nodes[target].expanded;
    // Per document, checkSize bounds the expansion; a bundle of many such
    // documents is bounded here, whatever its number of documents or files.
    if (aliasNodesLeft_) {
      if (*aliasNodesLeft_ < n.expanded) {
        *aliasNodesLeft_ = 0;
        fail(mark, "YAML aliases expand to more than " +
                       std::to_string(limits::kMaxAliasNodesPerBundle) +
                       " nodes in this bundle (all documents of all files)");
      }
      *aliasNodesLeft_ -= n.expanded;
    }
    add(mark, n, 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    Node n;
    n.kind = NodeKind::kScalar;
    n.valueOffset = uint32_t(doc_->arena.size());
    n.valueLength = uint32_t(value.size());
    doc_->arena += value;
    add(mark, n, anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, NodeKind::kSequence, anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, NodeKind::kMap, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    uint32_t index;
    uint32_t lastChild = kNoNode;
    uint64_t expandedSum = 0;
  };

  [[noreturn]] void fail(const YAML::Mark& mark, std::string message) {
    errors_.push_back(
        Diagnostic{SourceLoc{fileName_, mark.line + 1, mark.column + 1}, std::move(message)});
    throw StopParsing{};
  }

  uint32_t add(const YAML::Mark& mark, Node n, YAML::anchor_t anchor) {
    n.line = mark.line + 1;
    n.column = mark.column + 1;
    const uint32_t index = uint32_t(doc_->nodes.size());
    doc_->nodes.push_back(n);
    if (anchor != 0) {
      if (anchors_.size() <= anchor) anchors_.resize(anchor + 1, kNoNode);
      anchors_[anchor] = index;
    }
    if (stack_.empty()) {
      doc_->root = index;
    } else {
      Frame& parent = stack_.back();
      Node& p = doc_->nodes[parent.index];
      if (parent.lastChild == kNoNode) {
        p.firstChild = index;
      } else {
        doc_->nodes[parent.lastChild].nextSibling = index;
      }
      parent.lastChild = index;
      ++p.childCount;
      parent.expandedSum = std::min(parent.expandedSum + n.expanded, kMaxExpandedNodes + 1);
    }
    checkSize(mark, n.expanded);
    return index;
  }

  void checkSize(const YAML::Mark& mark, uint64_t expanded) {
    // Finished subtrees are in their parents' sums; open nodes count 1 each.
    uint64_t total = stack_.empty() ? expanded : 0;
    for (const Frame& f : stack_)
      total += f.expandedSum + 1;
    // Cheap bound first: the raw node count.
    if (doc_->nodes.size() > kMaxExpandedNodes || total > kMaxExpandedNodes) {
      fail(mark, "document too large: more than " + std::to_string(kMaxExpandedNodes) +
                     " YAML nodes (counting what aliases expand to)");
    }
  }

  void open(const YAML::Mark& mark, NodeKind kind, YAML::anchor_t anchor) {
    if (stack_.size() >= limits::kMaxYamlDepth) {
      fail(mark, "nesting deeper than " + std::to_string(limits::kMaxYamlDepth) + " levels");
    }
    Node n;
    n.kind = kind;
    n.expanded = 1;
    // An alias to a node that is still open is a cycle; OnAlias rejects it.
    const uint32_t index = add(mark, n, anchor);
    stack_.push_back(Frame{index});
  }

  void close() {
    const Frame f = stack_.back();
    stack_.pop_back();
    doc_->nodes[f.index].expanded = f.expandedSum + 1;
    if (!stack_.empty()) {
      // The parent counted this node as 1 when it was added.
      Frame& parent = stack_.back();
      parent.expandedSum = std::min(parent.expandedSum + f.expandedSum, kMaxExpandedNodes + 1);
    }
  }

  const std::string& fileName_;
  std::vector<Diagnostic>& errors_;
  uint64_t* aliasNodesLeft_;
  Document* doc_ = nullptr;
  std::vector<Frame> stack_;
  std::vector<uint32_t> anchors_;
};

}  // namespace

bool parseDocuments(std::string_view text, const std::string& fileName, size_t maxDocuments,
                    const std::function<void(const Document&)>& onDocument,
                    std::vector<Diagnostic>& errors, uint64_t* aliasNodesLeft) {
  std::istringstream in{std::string(text)};
  Builder builder(fileName, errors, aliasNodesLeft);
  size_t count = 0;
  try {
    YAML::Parser parser(in);
    for (;;) {
      Document doc;
      builder.reset(&doc);
      if (!parser.HandleNextDocument(builder)) break;
      if (++count > maxDocuments) {
        errors.push_back(Diagnostic{SourceLoc{fileName, doc.line, doc.column},
                                    "too many YAML documents (the limit is " +
                                        std::to_string(maxDocuments) + " in a bundle)"});
        return false;
      }
      if (doc.root == kNoNode) continue;
      if (doc.nodes[doc.root].kind == NodeKind::kNull) continue;  // empty document
      onDocument(doc);
    }
  } catch (const StopParsing&) {
    return false;
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    const int column = e.mark.is_null() ? 0 : e.mark.column + 1;
    errors.push_back(Diagnostic{SourceLoc{fileName, line, column}, "invalid YAML: " + e.msg});
    return false;
  } catch (const std::exception& e) {
    errors.push_back(
        Diagnostic{SourceLoc{fileName, 0, 0}, std::string("invalid YAML: ") + e.what()});
    return false;
  }
  return true;
}

}  // namespace bulkhead::policy::yamltree
