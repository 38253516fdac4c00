// Span filtering: which other hosts' workloads a host needs. A host needs a
// remote workload when some policy of an app present on it can select the
// workload's app: an appSelector service its egress names, an App it names
// (`to: <App>`), or a GlobalPolicy rule that applies to it (`from`) and
// names or selects (`toSelector`) the app or such a service. Selection is
// over apps, with the compiler's own rule (policy::Selector over an app's
// effective labels, App documents' labels plus `app: <name>`); a workload
// counts through its app. Pure: no controller, no I/O.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "bulkhead/policy/model.h"

namespace bulkhead::controller {

// What the apps of one host can select.
struct Interest {
  std::set<std::string> apps;               // named directly (`to: <App>`)
  std::vector<policy::Selector> selectors;  // over apps' effective labels
  bool operator==(const Interest&) const = default;
};

class SpanIndex {
 public:
  SpanIndex() = default;
  explicit SpanIndex(policy::Bundle bundle);

  // What the apps in `localApps` (documented or not) can select.
  Interest interestOf(const std::set<std::string>& localApps) const;
  // True when a workload of `app` is selected by `interest`.
  bool wants(const Interest& interest, const std::string& app) const;
  // The effective labels of `app`: its App document's plus `app: <name>`,
  // or only `app: <name>` for an app without a document.
  policy::Labels appLabels(const std::string& app) const;

 private:
  void addRef(const std::string& name, Interest& out) const;
  void addSelector(const policy::Selector& selector, Interest& out) const;

  policy::Bundle bundle_;
};

}  // namespace bulkhead::controller
