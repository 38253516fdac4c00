#include "yaml_tree.h"

#include <yaml.h>

#include <algorithm>
#include <cstdio>
#include <new>
#include <unordered_map>

#include "bulkhead/policy/limits.h"

namespace bulkhead::policy::yamltree {

const Node& Document::at(uint32_t index) const {
  const Node* n = &nodes[index];
  // Aliases always point at a finished, non-alias node (see Builder::onAlias).
  if (n->kind == NodeKind::kAlias) n = &nodes[n->valueOffset];
  return *n;
}

namespace {

// A 1-based position in the file; libyaml's marks are 0-based.
struct Mark {
  int line = 0;
  int column = 0;
};

Mark markOf(const yaml_mark_t& m) {
  return Mark{int(m.line) + 1, int(m.column) + 1};
}

// Owns one libyaml event; the parser fills it, the destructor frees it.
class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { yaml_event_delete(&event_); }  // a no-op on a zeroed event

  yaml_event_t* reset() {
    yaml_event_delete(&event_);
    return &event_;
  }
  const yaml_event_t& operator*() const { return event_; }
  const yaml_event_t* operator->() const { return &event_; }

 private:
  yaml_event_t event_{};
};

// Owns a libyaml parser reading `text` in place: the text must outlive it.
class EventParser {
 public:
  explicit EventParser(std::string_view text) {
    if (!yaml_parser_initialize(&parser_)) throw std::bad_alloc();
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
  }
  EventParser(const EventParser&) = delete;
  EventParser& operator=(const EventParser&) = delete;
  ~EventParser() { yaml_parser_delete(&parser_); }

  // The next event into `event`; false on malformed input (see state()).
  bool next(Event& event) { return yaml_parser_parse(&parser_, event.reset()) != 0; }
  const yaml_parser_t& state() const { return parser_; }

 private:
  yaml_parser_t parser_;
};

// The 1-based position of byte `offset`; columns count characters, as
// libyaml's marks do (UTF-8 continuation bytes do not start one).
Mark positionOf(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  const size_t lineStart = text.rfind('\n', offset == 0 ? std::string_view::npos : offset - 1);
  const size_t from = lineStart == std::string_view::npos ? 0 : lineStart + 1;
  Mark m{int(std::count(text.begin(), text.begin() + from, '\n')) + 1, 1};
  for (size_t i = from; i < offset; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++m.column;
  }
  return m;
}

// libyaml's description of why it stopped, at the offending position.
Diagnostic syntaxError(const yaml_parser_t& p, std::string_view text, const std::string& file) {
  std::string message = "invalid YAML: ";
  message += p.problem != nullptr ? p.problem : "cannot parse";
  Mark at = markOf(p.problem_mark);
  switch (p.error) {
    case YAML_MEMORY_ERROR:
      message = "invalid YAML: out of memory";
      break;
    case YAML_READER_ERROR: {
      // Undecodable input (bad UTF-8, control characters such as NUL): the
      // reader knows only the byte offset.
      at = positionOf(text, p.problem_offset);
      if (p.problem_value >= 0) {
        char value[16];
        snprintf(value, sizeof value, " (0x%02X)", unsigned(p.problem_value));
        message += value;
      }
      break;
    }
    default:
      if (p.context != nullptr) {
        const Mark c = markOf(p.context_mark);
        message += " (" + std::string(p.context) + " at line " + std::to_string(c.line) +
                   ", column " + std::to_string(c.column) + ")";
      }
      break;
  }
  return Diagnostic{SourceLoc{file, at.line, at.column}, std::move(message)};
}

// Null as the policy format has always read it (yaml-cpp's rule): the plain
// spellings of the core schema and the empty value; quoted or tagged ones are
// strings.
bool isNull(const yaml_event_t& e) {
  const auto& s = e.data.scalar;
  if (s.style != YAML_PLAIN_SCALAR_STYLE || s.tag != nullptr) return false;
  const std::string_view v(reinterpret_cast<const char*>(s.value), s.length);
  return v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL";
}

const char* anchorOf(const yaml_event_t& e) {
  switch (e.type) {
    case YAML_SCALAR_EVENT:
      return reinterpret_cast<const char*>(e.data.scalar.anchor);
    case YAML_SEQUENCE_START_EVENT:
      return reinterpret_cast<const char*>(e.data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
      return reinterpret_cast<const char*>(e.data.mapping_start.anchor);
    default:
      return nullptr;
  }
}

// Thrown by the Builder to stop reading a file that broke a limit (depth,
// size, aliases): nothing after it is worth the work.
struct StopParsing {};

// Builds one Document from the events between a document's start and end.
class Builder {
 public:
  Builder(const std::string& fileName, std::vector<Diagnostic>& errors, uint64_t* aliasNodesLeft)
      : fileName_(fileName), errors_(errors), aliasNodesLeft_(aliasNodesLeft) {}

  void reset(Document* doc, Mark start) {
    doc_ = doc;
    doc_->nodes.clear();
    doc_->arena.clear();
    doc_->root = kNoNode;
    doc_->line = start.line;
    doc_->column = start.column;
    stack_.clear();
    anchors_.clear();
    pendingEmpty_ = kNoNode;
  }

  // An empty node (`key:` with no value) is placed where the next event
  // starts, as yaml-cpp placed it: libyaml puts it right after the colon.
  void settle(Mark next) {
    if (pendingEmpty_ == kNoNode) return;
    doc_->nodes[pendingEmpty_].line = next.line;
    doc_->nodes[pendingEmpty_].column = next.column;
    pendingEmpty_ = kNoNode;
  }

  // One node event of the document (scalar, alias, collection start or end).
  void onEvent(const yaml_event_t& e) {
    const Mark mark = markOf(e.start_mark);
    switch (e.type) {
      case YAML_SCALAR_EVENT:
        if (isNull(e)) {
          const uint32_t index = add(mark, Node{}, anchorOf(e));
          if (e.start_mark.index == e.end_mark.index) pendingEmpty_ = index;
        } else {
          onScalar(mark, e);
        }
        break;
      case YAML_ALIAS_EVENT:
        onAlias(mark, reinterpret_cast<const char*>(e.data.alias.anchor));
        break;
      case YAML_SEQUENCE_START_EVENT:
        open(mark, NodeKind::kSequence, anchorOf(e));
        break;
      case YAML_MAPPING_START_EVENT:
        open(mark, NodeKind::kMap, anchorOf(e));
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        close();
        break;
      default:
        break;
    }
  }

 private:
  struct Frame {
    uint32_t index;
    uint32_t lastChild = kNoNode;
    uint64_t expandedSum = 0;
  };

  [[noreturn]] void fail(Mark mark, std::string message) {
    errors_.push_back(Diagnostic{SourceLoc{fileName_, mark.line, mark.column}, std::move(message)});
    throw StopParsing{};
  }

  void onScalar(Mark mark, const yaml_event_t& e) {
    Node n;
    n.kind = NodeKind::kScalar;
    n.valueOffset = uint32_t(doc_->arena.size());
    n.valueLength = uint32_t(e.data.scalar.length);
    doc_->arena.append(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
    add(mark, n, anchorOf(e));
  }

  void onAlias(Mark mark, const char* name) {
    // libyaml's event parser leaves anchors to its caller.
    const auto it = anchors_.find(name);
    if (it == anchors_.end()) fail(mark, "invalid YAML: the referenced anchor is not defined");
    const uint32_t target = it->second;
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
    add(mark, n, nullptr);
  }

  uint32_t add(Mark mark, Node n, const char* anchor) {
    n.line = mark.line;
    n.column = mark.column;
    const uint32_t index = uint32_t(doc_->nodes.size());
    doc_->nodes.push_back(n);
    // A later anchor of the same name replaces the earlier one.
    if (anchor != nullptr) anchors_[anchor] = index;
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

  void checkSize(Mark mark, uint64_t expanded) {
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

  void open(Mark mark, NodeKind kind, const char* anchor) {
    if (stack_.size() >= limits::kMaxYamlDepth) {
      fail(mark, "nesting deeper than " + std::to_string(limits::kMaxYamlDepth) + " levels");
    }
    Node n;
    n.kind = kind;
    n.expanded = 1;
    // An alias to a node that is still open is a cycle; onAlias rejects it.
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
  std::unordered_map<std::string, uint32_t> anchors_;
  uint32_t pendingEmpty_ = kNoNode;
};

// Reads every event of `text`; throws StopParsing once a limit is broken.
bool readEvents(std::string_view text, const std::string& fileName, size_t maxDocuments,
                const std::function<void(const Document&)>& onDocument,
                std::vector<Diagnostic>& errors, Builder& builder) {
  EventParser parser(text);
  Event event;
  Document doc;
  size_t count = 0;
  for (;;) {
    if (!parser.next(event)) {
      errors.push_back(syntaxError(parser.state(), text, fileName));
      return false;
    }
    builder.settle(markOf(event->start_mark));
    switch (event->type) {
      case YAML_STREAM_END_EVENT:
        return true;
      case YAML_DOCUMENT_START_EVENT: {
        const Mark start = markOf(event->start_mark);
        if (++count > maxDocuments) {
          errors.push_back(Diagnostic{SourceLoc{fileName, start.line, start.column},
                                      "too many YAML documents (the limit is " +
                                          std::to_string(maxDocuments) + " in a bundle)"});
          return false;
        }
        builder.reset(&doc, start);
        break;
      }
      case YAML_DOCUMENT_END_EVENT:
        if (doc.root != kNoNode && doc.nodes[doc.root].kind != NodeKind::kNull) onDocument(doc);
        break;  // an empty document is skipped
      default:
        builder.onEvent(*event);
        break;
    }
  }
}

}  // namespace

bool parseDocuments(std::string_view text, const std::string& fileName, size_t maxDocuments,
                    const std::function<void(const Document&)>& onDocument,
                    std::vector<Diagnostic>& errors, uint64_t* aliasNodesLeft) {
  Builder builder(fileName, errors, aliasNodesLeft);
  try {
    return readEvents(text, fileName, maxDocuments, onDocument, errors, builder);
  } catch (const StopParsing&) {
    return false;
  } catch (const std::bad_alloc&) {
    errors.push_back(Diagnostic{SourceLoc{fileName, 0, 0}, "invalid YAML: out of memory"});
    return false;
  }
}

}  // namespace bulkhead::policy::yamltree
