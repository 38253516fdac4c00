// Private to the policy library: typed access to a yamltree::Document with
// every problem reported as a Diagnostic at the offending node's position.
#pragma once

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bulkhead/policy/model.h"
#include "yaml_tree.h"

namespace bulkhead::policy::yamltree {

class Walker {
 public:
  using FieldFn = std::function<void(std::string_view key, const Node& keyNode, const Node& value)>;
  using ItemFn = std::function<void(const Node& item)>;

  Walker(const Document& doc, const std::string& file, std::vector<Diagnostic>& errors)
      : doc_(doc), file_(file), errors_(errors) {}

  const Node& root() const { return doc_.at(doc_.root); }
  SourceLoc loc(const Node& n) const { return SourceLoc{file_, n.line, n.column}; }
  void error(const Node& n, std::string message);
  // For "did parsing this part report anything?".
  size_t errorCount() const { return errors_.size(); }

  // Calls `fn` for each field of a map. Fields not in `allowed`, duplicate
  // fields and non-string keys are errors. A null node is an empty map.
  // Returns false (after an error) when `node` is not a map.
  bool fields(const Node& node, std::string_view context,
              std::initializer_list<std::string_view> allowed, const FieldFn& fn);
  // Calls `fn` for each item of a list, at most `limit` of them (more is an
  // error). A null node is an empty list. False when not a list.
  bool items(const Node& node, std::string_view field, size_t limit, const ItemFn& fn);

  std::optional<std::string> string(const Node& node, std::string_view field);
  // A list entry that must be a string.
  std::optional<std::string> entry(const Node& item, std::string_view field);
  std::vector<std::string> strings(const Node& node, std::string_view field, size_t limit);
  std::vector<NameRef> names(const Node& node, std::string_view field, size_t limit);
  std::vector<PortSpec> ports(const Node& node, std::string_view field);
  std::vector<Cidr> cidrs(const Node& node, std::string_view field, size_t limit);
  // A map of strings to strings, at most limits::kMaxLabels entries.
  Labels labels(const Node& node, std::string_view field);
  std::optional<Selector> selector(const Node& node, std::string_view field);

 private:
  const Document& doc_;
  const std::string& file_;
  std::vector<Diagnostic>& errors_;
};

// A user's string in double quotes, control characters masked, cut at 80.
std::string quote(std::string_view s);
// "a, b or c"
std::string joinAlternatives(std::initializer_list<std::string_view> words);

}  // namespace bulkhead::policy::yamltree
