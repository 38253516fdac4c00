// Cross-document checks of a bundle (names, references, limits), for bundles from
// YAML and from the API alike. The YAML parser reports type and syntax errors
// of fields; everything the model itself can express is checked here, once.
#include <map>
#include <set>

#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/loader.h"
#include "loader_internal.h"
#include "yaml_walker.h"

namespace bulkhead::policy {

namespace {

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Kubernetes-like label syntax: alphanumerics and -_./ inside (no / in values).
bool isValidLabelText(std::string_view s, bool allowSlash) {
  if (s.empty()) return true;
  if (!isAlnum(s.front()) || !isAlnum(s.back())) return false;
  for (char c : s) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.' && !(allowSlash && c == '/')) return false;
  }
  return true;
}

class Validator {
 public:
  Validator(std::vector<Diagnostic>& errors, std::vector<Diagnostic>& warnings)
      : errors_(errors), warnings_(warnings) {}

  // Names that `to:` may use: every Service and App.
  void collectTargets(const Bundle& bundle) {
    for (const Service& s : bundle.services)
      targets_.insert(s.name);
    for (const App& a : bundle.apps)
      targets_.insert(a.name);
  }

  void error(const SourceLoc& loc, std::string message) {
    errors_.push_back(Diagnostic{loc, std::move(message)});
  }
  void warn(const SourceLoc& loc, std::string message) {
    warnings_.push_back(Diagnostic{loc, std::move(message)});
  }

  void name(std::string_view kind, const std::string& name, const SourceLoc& loc) {
    if (isValidName(name)) return;
    std::string why = name.size() > limits::kMaxNameLength
                          ? "longer than " + std::to_string(limits::kMaxNameLength) + " characters"
                          : "a name is a DNS label: lower-case letters, digits and '-', starting "
                            "and ending with a letter or digit";
    error(loc, "invalid " + std::string(kind) + " name " + yamltree::quote(name) + ": " + why);
  }

  // `what` names the owner in messages, e.g. "app billing: labels".
  void labels(const std::string& what, const Labels& labels, const SourceLoc& loc) {
    if (labels.size() > limits::kMaxLabels) {
      error(loc, what + ": " + std::to_string(labels.size()) + " labels (the limit is " +
                     std::to_string(limits::kMaxLabels) + ")");
    }
    for (const auto& [key, value] : labels) {
      if (key.empty() || key.size() > limits::kMaxLabelKeyLength || !isValidLabelText(key, true)) {
        error(loc, what + ": invalid label key " + yamltree::quote(key) + ": 1-" +
                       std::to_string(limits::kMaxLabelKeyLength) +
                       " of letters, digits and -_./, starting and ending with a letter or digit");
      }
      if (value.size() > limits::kMaxLabelValueLength || !isValidLabelText(value, false)) {
        error(loc, what + ": invalid value " + yamltree::quote(value) + " of label " +
                       yamltree::quote(key) + ": 0-" +
                       std::to_string(limits::kMaxLabelValueLength) +
                       " of letters, digits and -_., starting and ending with a letter or digit");
      }
    }
  }

  void count(const std::string& what, size_t n, size_t limit, const SourceLoc& loc) {
    if (n > limit) {
      error(loc, what + ": " + std::to_string(n) + " entries (the limit is " +
                     std::to_string(limit) + ")");
    }
  }

  void refs(const std::vector<NameRef>& to, const std::string& where) {
    for (const NameRef& ref : to) {
      if (targets_.count(ref.name) > 0) continue;
      std::string message = "unknown service or app " + yamltree::quote(ref.name);
      if (ref.loc.line == 0) message += " (in " + where + ")";
      error(ref.loc, std::move(message));
    }
  }

  // Duplicate names within one kind: an error at the second definition.
  template <class T>
  void duplicates(std::string_view kind, const std::vector<T>& objects) {
    std::map<std::string_view, const SourceLoc*> first;
    for (const T& o : objects) {
      auto [it, inserted] = first.emplace(o.name, &o.loc);
      if (inserted) continue;
      error(o.loc,
            "duplicate " + std::string(kind) + " " + yamltree::quote(o.name) + " (first defined" +
                (it->second->toString().empty() ? "" : " at " + it->second->toString()) + ")");
    }
  }

  void service(const Service& s, bool broken) {
    const std::string what = "service " + s.name;
    name("service", s.name, s.loc);
    labels(what, s.labels, s.loc);
    if (broken) {
      // Its document's errors are reported; its structure is not checked again.
    } else if (s.appSelector && !s.endpoints.empty()) {
      error(s.loc, what + ": has both endpoints and appSelector; use one");
    } else if (!s.appSelector && s.endpoints.empty()) {
      error(s.loc, what + ": needs endpoints or appSelector");
    }
    if (s.appSelector) labels(what + ": appSelector", s.appSelector->matchLabels, s.loc);
    if (!s.endpoints.empty() && !s.ports.empty()) {
      error(s.loc, what + ": ports of a service with endpoints belong in each endpoint");
    }
    count(what + ": ports", s.ports.size(), limits::kMaxPortsPerList, s.loc);
    count(what + ": endpoints", s.endpoints.size(), limits::kMaxEndpoints, s.loc);
    size_t cidrs = 0;
    for (size_t i = 0; i < s.endpoints.size(); ++i) {
      const Endpoint& e = s.endpoints[i];
      const std::string ewhat = what + ": endpoint " + std::to_string(i + 1);
      if (e.cidrs.empty()) error(s.loc, ewhat + ": needs cidrs");
      count(ewhat + ": ports", e.ports.size(), limits::kMaxPortsPerList, s.loc);
      cidrs += e.cidrs.size();
    }
    count(what + ": cidrs over all endpoints", cidrs, limits::kMaxCidrsPerService, s.loc);
  }

  void app(const App& a) {
    const std::string what = "app " + a.name;
    name("app", a.name, a.loc);
    labels(what, a.labels, a.loc);
    if (auto it = a.labels.find("app"); it != a.labels.end() && it->second != a.name) {
      error(a.loc, what + ": label \"app\" is implicitly the app's name; it cannot be " +
                       yamltree::quote(it->second));
    }
    count(what + ": egress", a.egress.size(), limits::kMaxRulesPerObject, a.loc);
    for (size_t i = 0; i < a.egress.size(); ++i) {
      const EgressRule& r = a.egress[i];
      const std::string rwhat = what + ": egress rule " + std::to_string(i + 1);
      const SourceLoc& loc = r.loc.line > 0 ? r.loc : a.loc;
      if (r.to.empty() && r.toCIDRs.empty()) error(loc, rwhat + ": needs to or toCIDRs");
      count(rwhat + ": to", r.to.size(), limits::kMaxRefsPerRule, loc);
      count(rwhat + ": toCIDRs", r.toCIDRs.size(), limits::kMaxCidrsPerRule, loc);
      count(rwhat + ": ports", r.ports.size(), limits::kMaxPortsPerList, loc);
      refs(r.to, rwhat);
    }
  }

  void globalPolicy(const GlobalPolicy& g) {
    const std::string what = "globalpolicy " + g.name;
    name("globalpolicy", g.name, g.loc);
    labels(what, g.labels, g.loc);
    count(what + ": rules", g.rules.size(), limits::kMaxRulesPerObject, g.loc);
    for (size_t i = 0; i < g.rules.size(); ++i) {
      const GlobalRule& r = g.rules[i];
      const std::string rwhat = what + ": rule " + std::to_string(i + 1);
      const SourceLoc& loc = r.loc.line > 0 ? r.loc : g.loc;
      if (r.to.empty() && !r.toSelector && r.toCIDRs.empty()) {
        error(loc, rwhat + ": needs to, toSelector or toCIDRs");
      }
      labels(rwhat + ": from", r.from.matchLabels, loc);
      if (r.toSelector) labels(rwhat + ": toSelector", r.toSelector->matchLabels, loc);
      count(rwhat + ": to", r.to.size(), limits::kMaxRefsPerRule, loc);
      count(rwhat + ": toCIDRs", r.toCIDRs.size(), limits::kMaxCidrsPerRule, loc);
      count(rwhat + ": ports", r.ports.size(), limits::kMaxPortsPerList, loc);
      refs(r.to, rwhat);
    }
  }

 private:
  std::vector<Diagnostic>& errors_;
  std::vector<Diagnostic>& warnings_;
  std::set<std::string_view, std::less<>> targets_;
};

}  // namespace

bool isValidName(std::string_view name) {
  if (name.empty() || name.size() > limits::kMaxNameLength) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!ok(name.front()) || !ok(name.back())) return false;
  for (char c : name) {
    if (!ok(c) && c != '-') return false;
  }
  return true;
}

bool isValidWorkloadName(std::string_view name) {
  if (isValidName(name)) return true;
  if (name.empty() || name.size() > limits::kMaxWorkloadNameLength) return false;
  const auto slash = name.find('/');
  if (slash == std::string_view::npos) return false;
  auto part = [](std::string_view p) {
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (p.empty() || !alnum(p.front()) || !alnum(p.back())) return false;
    for (char c : p)
      if (!alnum(c) && c != '-' && c != '.' && c != '_') return false;
    return true;
  };
  return part(name.substr(0, slash)) && part(name.substr(slash + 1));
}

bool isValidInterfaceName(std::string_view name) {
  if (name.empty() || name.size() > limits::kMaxInterfaceNameLength) return false;
  if (name == "." || name == "..") return false;
  for (char c : name) {
    if (!isAlnum(c) && c != '_' && c != '.' && c != '@' && c != ':' && c != '-') return false;
  }
  return true;
}

namespace {

void checkWorkload(const Workload& w, bool remote, std::vector<Diagnostic>& errors) {
  std::vector<Diagnostic> unused;
  Validator v(errors, unused);
  const std::string what = "workload " + w.name;
  if (!isValidWorkloadName(w.name))
    v.error(w.loc, "invalid workload name " + yamltree::quote(w.name) +
                       ": a DNS label, or two parts joined by '/' (\"<namespace>/<pod>\"), each "
                       "of lower-case letters, digits and -._, starting and ending with a letter "
                       "or digit; at most " +
                       std::to_string(limits::kMaxWorkloadNameLength) + " characters");
  v.labels(what, w.labels, w.loc);
  if (w.app.empty()) {
    v.error(w.loc, what + ": needs an app");
  } else if (!isValidName(w.app)) {
    v.error(w.loc, what + ": invalid app name " + yamltree::quote(w.app));
  }
  if (remote && !w.interfaces.empty())
    v.error(w.loc, what + ": a remote workload has no interfaces on this host");
  if (!remote && w.interfaces.empty()) v.error(w.loc, what + ": needs at least one interface");
  v.count(what + ": interfaces", w.interfaces.size(), limits::kMaxInterfaces, w.loc);
  std::set<std::string_view> interfaces;
  for (const std::string& i : w.interfaces) {
    if (!isValidInterfaceName(i)) {
      v.error(w.loc, what + ": invalid interface name " + yamltree::quote(i) + ": 1-" +
                         std::to_string(limits::kMaxInterfaceNameLength) +
                         " of letters, digits and _.@:-");
    } else if (!interfaces.insert(i).second) {
      v.error(w.loc, what + ": interface " + yamltree::quote(i) + " listed twice");
    }
  }
  if (w.addresses.empty()) v.error(w.loc, what + ": needs at least one address");
  v.count(what + ": addresses", w.addresses.size(), limits::kMaxAddresses, w.loc);
  std::set<IpAddr> addresses;
  for (const IpAddr& a : w.addresses) {
    if (!addresses.insert(a).second) {
      v.error(w.loc, what + ": address " + a.toString() + " listed twice");
    }
  }
}

}  // namespace

void validateWorkload(const Workload& w, std::vector<Diagnostic>& errors) {
  checkWorkload(w, /*remote=*/false, errors);
}

void validateRemoteWorkload(const Workload& w, std::vector<Diagnostic>& errors) {
  checkWorkload(w, /*remote=*/true, errors);
}

std::string workloadErrors(const Workload& w, bool remote) {
  std::vector<Diagnostic> errors;
  checkWorkload(w, remote, errors);
  std::string msg;
  for (const auto& e : errors)
    msg += (msg.empty() ? "" : "; ") + e.message;
  return msg;
}

namespace {

// Whether `service` serves none of `ports` (an endpoint without ports, or a
// service without any, serves every port): what the compiler's narrowing
// leaves of it is nothing.
bool servesNone(const Service& service, const std::vector<PortSpec>& ports) {
  std::vector<PortSpec> served = service.ports;
  for (const Endpoint& e : service.endpoints) {
    if (e.ports.empty()) return false;
    served.insert(served.end(), e.ports.begin(), e.ports.end());
  }
  return narrowPorts(served, ports).empty();
}

std::string portList(const std::vector<PortSpec>& ports) {
  std::string out;
  for (const PortSpec& p : ports)
    out += (out.empty() ? "" : ", ") + p.toString();
  return out;
}

}  // namespace

void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors,
                    std::vector<Diagnostic>& warnings) {
  internal::validateBundle(bundle, errors, warnings, internal::ParseNotes{});
}

void internal::validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors,
                              std::vector<Diagnostic>& warnings, const ParseNotes& notes) {
  Validator v(errors, warnings);
  v.collectTargets(bundle);
  for (size_t i = 0; i < bundle.services.size(); ++i) {
    v.service(bundle.services[i], notes.brokenServices.count(i) > 0);
  }
  for (const App& a : bundle.apps)
    v.app(a);
  for (const GlobalPolicy& g : bundle.globalPolicies)
    v.globalPolicy(g);
  for (const Workload& w : bundle.workloads)
    validateWorkload(w, errors);

  v.duplicates("service", bundle.services);
  v.duplicates("app", bundle.apps);
  v.duplicates("globalpolicy", bundle.globalPolicies);
  v.duplicates("workload", bundle.workloads);
  // Services and Apps share one namespace: the names in `to:`.
  std::map<std::string_view, const Service*> services;
  for (const Service& s : bundle.services)
    services.emplace(s.name, &s);
  std::set<std::string_view> apps;
  for (const App& a : bundle.apps) {
    apps.insert(a.name);
    if (auto it = services.find(a.name); it != services.end()) {
      const Service* s = it->second;
      const std::string first = s->loc.toString();
      v.error(a.loc, "app " + yamltree::quote(a.name) + " has the same name as service " +
                         yamltree::quote(s->name) + (first.empty() ? "" : " (at " + first + ")") +
                         "; names in \"to\" must be unambiguous");
    }
  }

  // `ports` next to `to` narrows each named service to them: one that serves
  // none of them is not reached at all. Legal, and most likely a mistake.
  auto narrowedAway = [&](const std::vector<NameRef>& to, const std::vector<PortSpec>& ports,
                          const std::string& what, const SourceLoc& loc) {
    if (ports.empty()) return;
    for (const NameRef& ref : to) {
      auto it = services.find(ref.name);
      if (it == services.end() || !servesNone(*it->second, ports)) continue;
      v.warn(ref.loc.line > 0 ? ref.loc : loc, what + ": service " + ref.name +
                                                   " serves none of the ports " + portList(ports) +
                                                   "; the rule reaches nothing of it");
    }
  };
  for (const App& a : bundle.apps)
    for (size_t i = 0; i < a.egress.size(); ++i)
      narrowedAway(a.egress[i].to, a.egress[i].ports,
                   "app " + a.name + ": egress rule " + std::to_string(i + 1),
                   a.egress[i].loc.line > 0 ? a.egress[i].loc : a.loc);
  for (const GlobalPolicy& g : bundle.globalPolicies)
    for (size_t i = 0; i < g.rules.size(); ++i)
      narrowedAway(g.rules[i].to, g.rules[i].ports,
                   "globalpolicy " + g.name + ": rule " + std::to_string(i + 1),
                   g.rules[i].loc.line > 0 ? g.rules[i].loc : g.loc);

  std::map<std::string_view, const Workload*> interfaceOwner;
  std::map<IpAddr, const Workload*> addressOwner;
  for (const Workload& w : bundle.workloads) {
    for (const std::string& i : w.interfaces) {
      auto [it, inserted] = interfaceOwner.emplace(i, &w);
      if (inserted || it->second == &w) continue;
      const std::string first = it->second->loc.toString();
      v.error(w.loc, "workload " + w.name + ": interface " + yamltree::quote(i) +
                         " is already claimed by workload " + it->second->name +
                         (first.empty() ? "" : " (at " + first + ")"));
    }
    for (const IpAddr& a : w.addresses) {
      auto [it, inserted] = addressOwner.emplace(a, &w);
      if (inserted || it->second == &w) continue;
      const std::string first = it->second->loc.toString();
      v.error(w.loc, "workload " + w.name + ": address " + a.toString() +
                         " is already claimed by workload " + it->second->name +
                         (first.empty() ? "" : " (at " + first + ")"));
    }
    if (!w.app.empty() && apps.count(w.app) == 0) {
      v.warn(w.loc, "workload " + w.name + ": app " + w.app +
                        " has no App document; it gets default deny");
    }
  }
}

}  // namespace bulkhead::policy
