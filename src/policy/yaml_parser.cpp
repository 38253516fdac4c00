// parseText(): policy documents (docs/policy.md) into the policy model. The YAML itself is
// read by yaml_tree.cpp (limits while parsing); typed field access and
// per-field errors live in yaml_walker.cpp.
#include <algorithm>
#include <charconv>

#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/loader.h"
#include "loader_internal.h"
#include "yaml_tree.h"
#include "yaml_walker.h"

namespace bulkhead::policy {

namespace {

using yamltree::Document;
using yamltree::Node;
using yamltree::NodeKind;
using yamltree::quote;
using yamltree::Walker;

constexpr std::string_view kApiVersion = "bulkhead/v1";

// Maps a scalar onto one of `names`; an error naming the alternatives if none.
template <class E>
std::optional<E> parseEnum(Walker& w, const Node& node, std::string_view field,
                           std::initializer_list<std::pair<std::string_view, E>> names) {
  auto s = w.string(node, field);
  if (!s) return std::nullopt;
  std::string alternatives;
  for (const auto& [name, value] : names) {
    if (*s == name) return value;
    alternatives += alternatives.empty() ? "" : " | ";
    alternatives += name;
  }
  w.error(node, quote(field) + " must be " + alternatives + ", not " + quote(*s));
  return std::nullopt;
}

struct Metadata {
  std::optional<std::string> name;
  SourceLoc nameLoc;
  Labels labels;
};

Metadata parseMetadata(Walker& w, const Node* node, const Node& root) {
  Metadata m;
  if (node == nullptr) {
    w.error(root, "missing field \"metadata\"");
    return m;
  }
  bool sawName = false;
  const bool isMap = w.fields(*node, "metadata", {"name", "labels"},
                              [&](std::string_view key, const Node&, const Node& value) {
                                if (key == "name") {
                                  sawName = true;
                                  m.name = w.string(value, "name");
                                  m.nameLoc = w.loc(value);
                                } else {
                                  m.labels = w.labels(value, "labels");
                                }
                              });
  if (isMap && !sawName) w.error(*node, "missing field \"name\" in metadata");
  return m;
}

// Which of endpoints / appSelector a Service has is checked by validateBundle.
// A rule or endpoint with errors is left out of the model (here and below):
// its errors are reported, and validateBundle should not add follow-on ones
// such as "needs cidrs".
void parseService(Walker& w, const Node& spec, Service& s) {
  w.fields(spec, "Service spec", {"endpoints", "appSelector", "ports"},
           [&](std::string_view key, const Node&, const Node& value) {
             if (key == "appSelector") {
               s.appSelector = w.selector(value, "appSelector");
             } else if (key == "ports") {
               s.ports = w.ports(value, "ports");
             } else {
               size_t cidrsLeft = limits::kMaxCidrsPerService;
               w.items(value, "endpoints", limits::kMaxEndpoints, [&](const Node& item) {
                 const size_t errorsBefore = w.errorCount();
                 Endpoint e;
                 w.fields(item, "endpoint", {"cidrs", "ports"},
                          [&](std::string_view k, const Node&, const Node& v) {
                            if (k == "ports") {
                              e.ports = w.ports(v, "ports");
                            } else {
                              e.cidrs = w.cidrs(v, "cidrs", cidrsLeft);
                              cidrsLeft -= e.cidrs.size();
                            }
                          });
                 if (w.errorCount() == errorsBefore) s.endpoints.push_back(std::move(e));
               });
             }
           });
}

void parseApp(Walker& w, const Node& spec, App& a) {
  w.fields(spec, "App spec", {"mode", "denyAction", "egress"},
           [&](std::string_view key, const Node&, const Node& value) {
             if (key == "mode") {
               a.mode = parseEnum<Mode>(w, value, "mode",
                                        {{"enforce", Mode::kEnforce}, {"audit", Mode::kAudit}})
                            .value_or(Mode::kEnforce);
             } else if (key == "denyAction") {
               a.denyAction = parseEnum<DenyAction>(
                                  w, value, "denyAction",
                                  {{"reject", DenyAction::kReject}, {"drop", DenyAction::kDrop}})
                                  .value_or(DenyAction::kReject);
             } else {
               w.items(value, "egress", limits::kMaxRulesPerObject, [&](const Node& item) {
                 const size_t errorsBefore = w.errorCount();
                 EgressRule r;
                 r.loc = w.loc(item);
                 if (!w.fields(item, "egress rule", {"to", "toCIDRs", "ports"},
                               [&](std::string_view k, const Node&, const Node& v) {
                                 if (k == "to") r.to = w.names(v, "to", limits::kMaxRefsPerRule);
                                 if (k == "toCIDRs") {
                                   r.toCIDRs = w.cidrs(v, "toCIDRs", limits::kMaxCidrsPerRule);
                                 }
                                 if (k == "ports") r.ports = w.ports(v, "ports");
                               })) {
                   return;
                 }
                 if (w.errorCount() == errorsBefore) a.egress.push_back(std::move(r));
               });
             }
           });
}

std::optional<int32_t> parseOrder(Walker& w, const Node& node) {
  auto s = w.string(node, "order");
  if (!s) return std::nullopt;
  int32_t v = 0;
  const char* begin = s->data() + (s->starts_with('+') ? 1 : 0);
  auto [ptr, ec] = std::from_chars(begin, s->data() + s->size(), v);
  if (ec != std::errc() || ptr != s->data() + s->size() || s->empty()) {
    w.error(node, "\"order\" must be an integer from -2147483648 to 2147483647, not " + quote(*s));
    return std::nullopt;
  }
  return v;
}

void parseGlobalRule(Walker& w, const Node& item, GlobalPolicy& g) {
  const size_t errorsBefore = w.errorCount();
  GlobalRule r;
  r.loc = w.loc(item);
  bool sawAction = false, sawFrom = false;
  if (!w.fields(item, "GlobalPolicy rule",
                {"action", "from", "to", "toSelector", "toCIDRs", "ports"},
                [&](std::string_view k, const Node&, const Node& v) {
                  if (k == "action") {
                    sawAction = true;
                    r.action = parseEnum<RuleAction>(w, v, "action",
                                                     {{"deny", RuleAction::kDeny},
                                                      {"allow", RuleAction::kAllow},
                                                      {"log", RuleAction::kLog}})
                                   .value_or(RuleAction::kDeny);
                  } else if (k == "from") {
                    sawFrom = true;
                    r.from = w.selector(v, "from").value_or(Selector{});
                  } else if (k == "to") {
                    r.to = w.names(v, "to", limits::kMaxRefsPerRule);
                  } else if (k == "toSelector") {
                    r.toSelector = w.selector(v, "toSelector");
                  } else if (k == "toCIDRs") {
                    r.toCIDRs = w.cidrs(v, "toCIDRs", limits::kMaxCidrsPerRule);
                  } else {
                    r.ports = w.ports(v, "ports");
                  }
                })) {
    return;
  }
  if (!sawAction) w.error(item, "missing field \"action\" in GlobalPolicy rule");
  if (!sawFrom) w.error(item, "missing field \"from\" in GlobalPolicy rule ({} selects every app)");
  if (w.errorCount() == errorsBefore) g.rules.push_back(std::move(r));
}

void parseGlobalPolicy(Walker& w, const Node& spec, GlobalPolicy& g) {
  w.fields(spec, "GlobalPolicy spec", {"order", "rules"},
           [&](std::string_view key, const Node&, const Node& value) {
             if (key == "order") {
               g.order = parseOrder(w, value).value_or(g.order);
             } else {
               w.items(value, "rules", limits::kMaxRulesPerObject,
                       [&](const Node& item) { parseGlobalRule(w, item, g); });
             }
           });
}

void parseWorkload(Walker& w, const Node& spec, Workload& wl) {
  bool sawApp = false;
  const bool isMap = w.fields(
      spec, "Workload spec", {"app", "interfaces", "addresses"},
      [&](std::string_view key, const Node&, const Node& value) {
        if (key == "app") {
          sawApp = true;
          wl.app = w.string(value, "app").value_or("");
        } else if (key == "interfaces") {
          wl.interfaces = w.strings(value, "interfaces", limits::kMaxInterfaces);
        } else {
          w.items(value, "addresses", limits::kMaxAddresses, [&](const Node& item) {
            auto s = w.entry(item, "addresses");
            if (!s) return;
            std::string why;
            auto c = Cidr::parse(*s, &why);
            if (!c) {
              w.error(item, "bad address " + quote(*s) + ": " + why);
            } else if (c->prefixLen != c->addr.size() * 8) {
              w.error(item, "bad address " + quote(*s) +
                                ": a workload address is one host (no prefix, /32 or /128)");
            } else {
              wl.addresses.push_back(c->addr);
            }
          });
        }
      });
  if (isMap && !sawApp) {
    w.error(spec.kind == NodeKind::kNull ? w.root() : spec,
            "missing field \"app\" in Workload spec");
  }
}

// What every document has: apiVersion (checked here), kind, metadata, spec.
struct DocumentHeader {
  const Node* kind = nullptr;
  std::optional<std::string> kindName;  // unset when missing or not a string
  Metadata meta;
  const Node* spec = nullptr;
};

DocumentHeader parseHeader(Walker& w, const Node& root) {
  DocumentHeader h;
  const Node *apiVersion = nullptr, *metadata = nullptr;
  w.fields(root, "document", {"apiVersion", "kind", "metadata", "spec"},
           [&](std::string_view key, const Node&, const Node& value) {
             if (key == "apiVersion") apiVersion = &value;
             if (key == "kind") h.kind = &value;
             if (key == "metadata") metadata = &value;
             if (key == "spec") h.spec = &value;
           });
  if (apiVersion == nullptr) {
    w.error(root, "missing field \"apiVersion\" (expected \"bulkhead/v1\")");
  } else if (auto v = w.string(*apiVersion, "apiVersion"); v && *v != kApiVersion) {
    w.error(*apiVersion, "unsupported apiVersion " + quote(*v) + " (expected \"bulkhead/v1\")");
  }
  if (h.kind == nullptr) {
    w.error(root, "missing field \"kind\"");
  } else {
    h.kindName = w.string(*h.kind, "kind");
  }
  h.meta = parseMetadata(w, metadata, root);
  return h;
}

// The object a document of kind *h.kindName describes, added to `into`.
void parseObject(Walker& w, DocumentHeader& h, Bundle& into, internal::ParseNotes& notes) {
  static const Node kNullNode{};
  const Node& specNode = h.spec != nullptr ? *h.spec : kNullNode;
  const Metadata& meta = h.meta;
  auto fill = [&](auto& object) {
    object.name = meta.name.value_or("");
    object.labels = std::move(h.meta.labels);
    object.loc = meta.name ? meta.nameLoc : w.loc(w.root());
  };
  const std::string& kindName = *h.kindName;
  if (kindName == "Service") {
    const size_t errorsBefore = w.errorCount();
    Service s;
    fill(s);
    parseService(w, specNode, s);
    if (!meta.name) return;
    if (w.errorCount() != errorsBefore) notes.brokenServices.insert(into.services.size());
    into.services.push_back(std::move(s));
  } else if (kindName == "App") {
    App a;
    fill(a);
    parseApp(w, specNode, a);
    if (meta.name) into.apps.push_back(std::move(a));
  } else if (kindName == "GlobalPolicy") {
    GlobalPolicy g;
    fill(g);
    parseGlobalPolicy(w, specNode, g);
    if (meta.name) into.globalPolicies.push_back(std::move(g));
  } else if (kindName == "Workload") {
    // Nothing refers to workloads by name, so one with errors is left out.
    const size_t errorsBefore = w.errorCount();
    Workload wl;
    fill(wl);
    parseWorkload(w, specNode, wl);
    if (meta.name && w.errorCount() == errorsBefore) into.workloads.push_back(std::move(wl));
  } else {
    w.error(*h.kind, "unknown kind " + quote(kindName) +
                         " (expected Service, App, GlobalPolicy or Workload)");
  }
}

void parseDocument(const Document& doc, const std::string& fileName, Bundle& into,
                   std::vector<Diagnostic>& errors, internal::ParseNotes& notes) {
  Walker w(doc, fileName, errors);
  const Node& root = w.root();
  if (root.kind != NodeKind::kMap) {
    w.error(root, "a document must be a map with apiVersion, kind, metadata and spec");
    return;
  }
  DocumentHeader header = parseHeader(w, root);
  // Objects without a name are dropped: their error is already reported and
  // they could only cause follow-on errors.
  if (!header.kindName) return;
  parseObject(w, header, into, notes);
}

}  // namespace

void parseText(std::string_view text, const std::string& fileName, Bundle& into,
               std::vector<Diagnostic>& errors) {
  internal::ParseNotes notes;
  internal::parseText(text, fileName, into, errors, notes);
}

void internal::parseText(std::string_view text, const std::string& fileName, Bundle& into,
                         std::vector<Diagnostic>& errors, ParseNotes& notes) {
  if (text.size() > limits::kMaxFileBytes) {
    errors.push_back(
        Diagnostic{SourceLoc{fileName, 0, 0}, "file too large: " + std::to_string(text.size()) +
                                                  " bytes (the limit is " +
                                                  std::to_string(limits::kMaxFileBytes) + ")"});
    return;
  }
  const size_t have =
      into.services.size() + into.apps.size() + into.globalPolicies.size() + into.workloads.size();
  const size_t left = have >= limits::kMaxDocuments ? 0 : limits::kMaxDocuments - have;
  const size_t first = errors.size();
  yamltree::parseDocuments(
      text, fileName, left,
      [&](const Document& doc) { parseDocument(doc, fileName, into, errors, notes); }, errors,
      &notes.aliasNodesLeft);
  // Report this file's errors top to bottom.
  std::stable_sort(errors.begin() + first, errors.end(), [](const auto& a, const auto& b) {
    return std::pair(a.loc.line, a.loc.column) < std::pair(b.loc.line, b.loc.column);
  });
}

}  // namespace bulkhead::policy
