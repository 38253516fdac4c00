#include "bulkhead/controller/span.h"

#include <algorithm>

namespace bulkhead::controller {

SpanIndex::SpanIndex(policy::Bundle bundle) : bundle_(std::move(bundle)) {}

policy::Labels SpanIndex::appLabels(const std::string& app) const {
  if (const policy::App* a = bundle_.findApp(app)) return a->effectiveLabels();
  policy::App implicit;
  implicit.name = app;
  return implicit.effectiveLabels();
}

void SpanIndex::addSelector(const policy::Selector& selector, Interest& out) const {
  if (std::find_if(out.selectors.begin(), out.selectors.end(), [&](const policy::Selector& s) {
        return s.matchLabels == selector.matchLabels;
      }) == out.selectors.end())
    out.selectors.push_back(selector);
}

// A name in `to:` is a Service (its appSelector, if any, selects apps; its
// CIDRs need nobody) or else an App.
void SpanIndex::addRef(const std::string& name, Interest& out) const {
  if (const policy::Service* s = bundle_.findService(name)) {
    if (s->appSelector) addSelector(*s->appSelector, out);
    return;
  }
  out.apps.insert(name);
}

Interest SpanIndex::interestOf(const std::set<std::string>& localApps) const {
  Interest out;
  for (const auto& name : localApps) {
    if (const policy::App* app = bundle_.findApp(name))
      for (const auto& rule : app->egress)
        for (const auto& ref : rule.to)
          addRef(ref.name, out);
    const policy::Labels labels = appLabels(name);
    for (const auto& g : bundle_.globalPolicies) {
      for (const auto& rule : g.rules) {
        if (!rule.from.matches(labels)) continue;
        for (const auto& ref : rule.to)
          addRef(ref.name, out);
        if (!rule.toSelector) continue;
        // Over apps directly, and through the services it selects.
        addSelector(*rule.toSelector, out);
        for (const auto& s : bundle_.services)
          if (s.appSelector && rule.toSelector->matches(s.labels)) addSelector(*s.appSelector, out);
      }
    }
  }
  return out;
}

bool SpanIndex::wants(const Interest& interest, const std::string& app) const {
  if (interest.apps.count(app)) return true;
  if (interest.selectors.empty()) return false;
  const policy::Labels labels = appLabels(app);
  return std::any_of(interest.selectors.begin(), interest.selectors.end(),
                     [&](const policy::Selector& s) { return s.matches(labels); });
}

}  // namespace bulkhead::controller
