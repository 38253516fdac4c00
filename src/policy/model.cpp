#include "bulkhead/policy/model.h"

namespace bulkhead::policy {

std::string SourceLoc::toString() const {
  std::string out = file;
  if (line > 0) {
    if (!out.empty()) out += ':';
    out += std::to_string(line);
    if (column > 0) out += ':' + std::to_string(column);
  }
  return out;
}

std::string Diagnostic::toString() const {
  const std::string where = loc.toString();
  return where.empty() ? message : where + ": " + message;
}

std::string joinDiagnostics(const std::vector<Diagnostic>& diags) {
  std::string out;
  for (const auto& d : diags)
    out += (out.empty() ? "" : "\n") + d.toString();
  return out;
}

bool Selector::matches(const Labels& labels) const {
  for (const auto& [key, value] : matchLabels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

Labels App::effectiveLabels() const {
  Labels out = labels;
  out["app"] = name;  // the implicit label wins (validateBundle rejects a different one)
  return out;
}

const Service* Bundle::findService(const std::string& name) const {
  for (const Service& s : services) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const App* Bundle::findApp(const std::string& name) const {
  for (const App& a : apps) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace bulkhead::policy
