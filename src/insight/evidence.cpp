// A suggested rule's evidence: attempts, distinct sources (sorted, capped)
// and first and last times, as a rule shows it and as it adds up over flows.
#include <algorithm>
#include <iterator>

#include "bulkhead/insight/suggest.h"

namespace bulkhead::insight {

using policy::IpAddr;

void Evidence::add(const FlowRecord& r) {
  attempts += r.count;
  if (r.hasSrc) addSource(r.src);
  if (!r.time.empty()) {
    if (first.empty() || r.time < first) first = r.time;
    if (last.empty() || r.time > last) last = r.time;
  }
}

namespace {

// Evidence's sources: sorted, no duplicates, at most kMaxSources.
void addSourceTo(std::vector<IpAddr>& sources, const IpAddr& a) {
  if (sources.size() >= Evidence::kMaxSources) return;
  auto at = std::lower_bound(sources.begin(), sources.end(), a);
  if (at == sources.end() || *at != a) sources.insert(at, a);
}

void mergeSources(std::vector<IpAddr>& sources, const std::vector<IpAddr>& o) {
  if (sources.size() + o.size() <= Evidence::kMaxSources) {
    std::vector<IpAddr> both;
    both.reserve(sources.size() + o.size());
    std::set_union(sources.begin(), sources.end(), o.begin(), o.end(), std::back_inserter(both));
    sources = std::move(both);
  } else {
    for (const auto& s : o) {
      if (sources.size() >= Evidence::kMaxSources) break;
      addSourceTo(sources, s);
    }
  }
}

}  // namespace

void Evidence::addSource(const IpAddr& a) {
  addSourceTo(sources, a);
}

void Evidence::merge(const Evidence& o) {
  attempts += o.attempts;
  mergeSources(sources, o.sources);
  if (!o.first.empty() && (first.empty() || o.first < first)) first = o.first;
  if (!o.last.empty() && (last.empty() || o.last > last)) last = o.last;
}

void EvidenceSum::merge(const EvidenceSum& o) {
  attempts += o.attempts;
  mergeSources(sources, o.sources);
  if (!o.first.empty() && (first.empty() || o.first < first)) first.assign(o.first);
  if (!o.last.empty() && (last.empty() || last < o.last)) last.assign(o.last);
}

Evidence EvidenceSum::evidence() && {
  Evidence e;
  e.attempts = attempts;
  e.sources = std::move(sources);
  e.first = first.str();
  e.last = last.str();
  return e;
}

std::string Evidence::describe() const {
  std::string out = std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
  out += " from " + std::to_string(sources.size()) + (sources.size() >= kMaxSources ? "+" : "") +
         (sources.size() == 1 ? " source" : " sources");
  if (!first.empty()) out += ", first " + first + ", last " + last;
  return out;
}

void Suggester::FlowStats::mergeInto(EvidenceSum& e) const {
  constexpr size_t kFew = 8;
  e.attempts += attempts;
  // What merging this flow's sources would do, source by source when few
  // (a sorted union either way).
  if (more && more->size() > kFew) {
    mergeSources(e.sources, *more);
  } else if (more) {
    for (const auto& s : *more)
      addSourceTo(e.sources, s);
  } else if (hasSource) {
    addSourceTo(e.sources, source);
  }
  if (!first.empty() && (e.first.empty() || first < e.first)) e.first.assign(first);
  if (!last.empty() && (e.last.empty() || e.last < last)) e.last.assign(last);
}

}  // namespace bulkhead::insight
