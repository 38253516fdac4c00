#include "yaml_walker.h"

#include <algorithm>

#include "bulkhead/policy/limits.h"

namespace bulkhead::policy::yamltree {

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    if (c == '"' || c == '\\') out += '\\';
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

std::string joinAlternatives(std::initializer_list<std::string_view> words) {
  std::string out;
  size_t i = 0;
  for (std::string_view w : words) {
    if (i > 0) out += (i + 1 == words.size()) ? " or " : ", ";
    out += w;
    ++i;
  }
  return out;
}

void Walker::error(const Node& n, std::string message) {
  errors_.push_back(Diagnostic{loc(n), std::move(message)});
}

bool Walker::fields(const Node& node, std::string_view context,
                    std::initializer_list<std::string_view> allowed, const FieldFn& fn) {
  if (node.kind == NodeKind::kNull) return true;
  if (node.kind != NodeKind::kMap) {
    error(node, std::string(context) + " must be a map");
    return false;
  }
  std::vector<std::string_view> seen;
  for (uint32_t k = node.firstChild; k != kNoNode;) {
    const uint32_t v = doc_.nodes[k].nextSibling;
    const Node& key = doc_.at(k);
    const Node& value = doc_.at(v);
    k = doc_.nodes[v].nextSibling;
    if (key.kind != NodeKind::kScalar) {
      error(key, "field names in " + std::string(context) + " must be strings");
      continue;
    }
    const std::string_view name = doc_.scalar(key);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      error(key, "unknown field " + quote(name) + " in " + std::string(context) + " (expected " +
                     joinAlternatives(allowed) + ")");
      continue;
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      error(key, "duplicate field " + quote(name));
      continue;
    }
    seen.push_back(name);
    fn(name, key, value);
  }
  return true;
}

bool Walker::items(const Node& node, std::string_view field, size_t limit, const ItemFn& fn) {
  if (node.kind == NodeKind::kNull) return true;
  if (node.kind != NodeKind::kSequence) {
    error(node, quote(field) + " must be a list");
    return false;
  }
  if (node.childCount > limit) {
    error(node, "too many entries in " + quote(field) + ": " + std::to_string(node.childCount) +
                    " (the limit is " + std::to_string(limit) + ")");
  }
  size_t taken = 0;
  for (uint32_t i = node.firstChild; i != kNoNode && taken < limit;
       i = doc_.nodes[i].nextSibling, ++taken) {
    fn(doc_.at(i));
  }
  return true;
}

std::optional<std::string> Walker::string(const Node& node, std::string_view field) {
  if (node.kind != NodeKind::kScalar) {
    error(node, quote(field) + " must be a string");
    return std::nullopt;
  }
  return std::string(doc_.scalar(node));
}

std::optional<std::string> Walker::entry(const Node& item, std::string_view field) {
  if (item.kind != NodeKind::kScalar) {
    error(item, "entries of " + quote(field) + " must be strings");
    return std::nullopt;
  }
  return std::string(doc_.scalar(item));
}

std::vector<std::string> Walker::strings(const Node& node, std::string_view field, size_t limit) {
  std::vector<std::string> out;
  items(node, field, limit, [&](const Node& item) {
    if (auto s = entry(item, field)) out.push_back(std::move(*s));
  });
  return out;
}

std::vector<NameRef> Walker::names(const Node& node, std::string_view field, size_t limit) {
  std::vector<NameRef> out;
  items(node, field, limit, [&](const Node& item) {
    if (auto s = entry(item, field)) {
      out.push_back(NameRef{std::move(*s), loc(item)});
    }
  });
  return out;
}

std::vector<PortSpec> Walker::ports(const Node& node, std::string_view field) {
  std::vector<PortSpec> out;
  items(node, field, limits::kMaxPortsPerList, [&](const Node& item) {
    auto s = entry(item, field);
    if (!s) return;
    std::string why;
    if (auto p = PortSpec::parse(*s, &why)) {
      out.push_back(*p);
    } else {
      error(item, "bad port " + quote(*s) + ": " + why);
    }
  });
  return out;
}

std::vector<Cidr> Walker::cidrs(const Node& node, std::string_view field, size_t limit) {
  std::vector<Cidr> out;
  items(node, field, limit, [&](const Node& item) {
    auto s = entry(item, field);
    if (!s) return;
    std::string why;
    if (auto c = Cidr::parse(*s, &why)) {
      out.push_back(*c);
    } else {
      error(item, "bad CIDR " + quote(*s) + ": " + why);
    }
  });
  return out;
}

Labels Walker::labels(const Node& node, std::string_view field) {
  Labels out;
  if (node.kind == NodeKind::kNull) return out;
  if (node.kind != NodeKind::kMap) {
    error(node, quote(field) + " must be a map of strings");
    return out;
  }
  if (node.childCount / 2 > limits::kMaxLabels) {
    error(node, "too many labels in " + quote(field) + ": " + std::to_string(node.childCount / 2) +
                    " (the limit is " + std::to_string(limits::kMaxLabels) + ")");
  }
  for (uint32_t k = node.firstChild; k != kNoNode && out.size() < limits::kMaxLabels;) {
    const uint32_t v = doc_.nodes[k].nextSibling;
    const Node& key = doc_.at(k);
    const Node& value = doc_.at(v);
    k = doc_.nodes[v].nextSibling;
    if (key.kind != NodeKind::kScalar) {
      error(key, quote(field) + " must be a map of strings: keys must be strings");
      continue;
    }
    const std::string name(doc_.scalar(key));
    if (value.kind != NodeKind::kScalar) {
      error(value, quote(field) + " must be a map of strings: the value of " + quote(name) +
                       " is not a string");
      continue;
    }
    if (!out.emplace(name, std::string(doc_.scalar(value))).second) {
      error(key, "duplicate label " + quote(name) + " in " + quote(field));
    }
  }
  return out;
}

std::optional<Selector> Walker::selector(const Node& node, std::string_view field) {
  if (node.kind != NodeKind::kMap) {
    error(node, quote(field) + " must be a map of strings (a label selector; {} selects all)");
    return std::nullopt;
  }
  return Selector{labels(node, field)};
}

}  // namespace bulkhead::policy::yamltree
