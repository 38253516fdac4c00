// `bulkhead suggest`: egress policy from observed flow events (usually the
// would-be-denied flows of an app in audit mode). For each app with flows:
// its complete App document, existing egress kept, one suggested rule per
// destination with its evidence as a comment; new Service documents for
// destinations the policy does not know. Destinations are named preferring
// an existing Service that covers them, then the App whose workload holds
// them, then a new Service of exact host prefixes and exact ports (a prefix
// only when every address in it was seen). Never broader than what was
// seen. Same input, same bytes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "bulkhead/common/flat_table.h"
#include "bulkhead/insight/destinations.h"
#include "bulkhead/insight/flow_log.h"
#include "bulkhead/insight/time_text.h"
#include "bulkhead/policy/model.h"

namespace bulkhead::insight {

struct SuggestOptions {
  std::string app;       // only this app; "": every app with flows
  size_t maxRules = 20;  // per app; the rest are listed commented out
};

// What a suggested rule rests on.
struct Evidence {
  static constexpr size_t kMaxSources = 10000;  // counted exactly up to here
  uint64_t attempts = 0;
  std::vector<policy::IpAddr> sources;  // sorted, no duplicates
  std::string first, last;              // RFC 3339 times as the events carry them

  void add(const FlowRecord& r);
  void addSource(const policy::IpAddr& a);  // up to kMaxSources
  void merge(const Evidence& o);
  std::string describe() const;  // "12 attempts from 1 source, first ..., last ..."
};

// Evidence as it adds up over many flows (suggest's aggregation): the same
// counts and sources, the times kept packed until the evidence is written.
struct EvidenceSum {
  uint64_t attempts = 0;
  std::vector<policy::IpAddr> sources;  // as Evidence::sources
  TimeText first, last;

  void merge(const EvidenceSum& o);  // as Evidence::merge
  Evidence evidence() &&;
};

struct SuggestSummary {
  uint64_t flows = 0;               // distinct (app, destination, port) seen
  uint64_t covered = 0;             // by a suggested (not commented-out) rule
  uint64_t left = 0;                // over --max-rules, or not expressible
  uint64_t ignoredEvents = 0;       // actions other than deny/audit, other apps
  uint64_t unattributedEvents = 0;  // no app, or an app name that is not valid
  uint64_t unexpressibleFlows = 0;  // protocols a policy cannot name (sctp, numbers)
  std::map<std::string, std::pair<size_t, size_t>> rulesPerApp;  // app -> (rules, commented)
  std::vector<std::string> newServices;

  std::string text() const;  // for stderr
};

struct Suggestion {
  std::string yaml;
  SuggestSummary summary;
};

class Suggester {
 public:
  Suggester(const policy::Bundle& bundle, SuggestOptions options);
  void add(const FlowRecord& r);
  // Once, after the last add(): the flows' memory is released as soon as
  // they are aggregated, before the YAML is written.
  Suggestion finish();

 private:
  // Compact per-flow state (the worst case holds about a million flows):
  // the app as an index into apps_, one source inline (more in a set only
  // when a flow has several), times inline when short.
  // Plain bytes, so it lives in a flat table (no node per flow).
  struct FlowKey {
    uint32_t app = 0;
    policy::IpAddr dst;
    policy::PortSpec port;
    bool operator==(const FlowKey&) const = default;
  };
  static uint64_t hashOf(const FlowKey& k);
  struct FlowStats {
    uint64_t attempts = 0;
    policy::IpAddr source;
    bool hasSource = false;
    std::unique_ptr<std::vector<policy::IpAddr>> more;  // every source, sorted, once two
    TimeText first, last;
    void add(const FlowRecord& r);
    // Into a rule's or a destination's sum: no allocation when the flow has
    // few sources, times compared as numbers.
    void mergeInto(EvidenceSum& e) const;
  };
  uint32_t appId(const std::string& app);
  // finish()'s steps (suggest.cpp): the flows by app name, destination and
  // port; each flow's destination named by the policy or unknown; the
  // flows' memory released.
  struct Destinations;
  std::vector<uint32_t> flowOrder() const;
  Destinations attribute(const std::vector<uint32_t>& order) const;
  void releaseFlows();

  const policy::Bundle& bundle_;
  SuggestOptions options_;
  DestinationIndex index_;
  std::vector<std::string> apps_;                     // app id -> name
  std::unordered_map<std::string, uint32_t> appIds_;  // name -> app id
  // Flows: key -> index into stats, kept in fixed chunks (no copy as they
  // grow); keys in the same order, for finish() to sort.
  static constexpr size_t kChunk = 1 << 16;
  FlowStats& stats(uint32_t i) const { return chunks_[i / kChunk][i % kChunk]; }
  FlatTable<FlowKey, uint32_t> flowIds_{SIZE_MAX, 1024};
  std::vector<FlowKey> keys_;
  std::vector<std::unique_ptr<FlowStats[]>> chunks_;
  std::map<std::string, std::set<std::string>> unexpressible_;  // app -> "dst/proto"
  uint64_t ignored_ = 0, unattributed_ = 0;
};

// Replaces (or adds) the suggested App documents in `bundle`, adds the new
// Services, and validates the result as `bulkhead validate` would: the
// errors, none when the suggestion can be used as it is.
std::vector<policy::Diagnostic> checkSuggestion(const policy::Bundle& bundle,
                                                const std::string& yaml);

// Host prefixes merged into the shortest prefixes whose every address is in
// the input (exposed for tests).
std::vector<policy::Cidr> aggregateHosts(const std::set<policy::IpAddr>& hosts);

}  // namespace bulkhead::insight
