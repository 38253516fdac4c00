// What one table holds, in a canonical form that both the writer's batch and
// the kernel's dump reduce to, so the drift check compares the two by content.
// Both sides are read with the same libnftnl parsers: a new expression kind
// the writer learns is compared without any change here.
//
// Canonical form: chains by name (type, hook, priority, policy, device) with
// their rules in order; a rule is the text libnftnl prints for each of its
// expressions plus its userdata, with counter values zeroed (handles and
// positions are not part of it); sets by name (flags, key and data types and
// lengths, field lengths, userdata) with their elements as raw bytes (key,
// key end, verdict and chain, data). Elements of sets the datapath fills
// itself (dynamic or timeout sets: meters) are not compared.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/compiler/ruleset.h"

struct nlmsghdr;

namespace bulkhead::nft {

class Batch;

struct ChainContent {
  std::string declaration;
  std::vector<std::string> rules;
  bool operator==(const ChainContent&) const = default;
};

struct SetContent {
  std::string declaration;
  bool dynamic = false;  // filled by the datapath: elements not compared
  // Sorted by normalize(); a sorted vector is several times cheaper to
  // fill and compare than a tree at 100k elements.
  std::vector<std::string> elements;
  bool operator==(const SetContent&) const = default;
};

class TableContent {
 public:
  explicit TableContent(std::string table = {}) : table_(std::move(table)) {}

  // Applies one nf_tables message of `inet <table>`: NEW/DEL of table,
  // chain, set, element and rule (a DELRULE without handle flushes the
  // chain; one with a handle is not modelled). Messages of other tables or
  // families, and other kinds, are ignored.
  Status apply(const nlmsghdr* nlh);
  // Applies every nf_tables message of a batch, in order.
  Status apply(const Batch& batch);

  // Sorts every set's elements (after the last apply, before comparing).
  void normalize();

  // nullopt when `actual` holds the same as this; else a short account of
  // the first differences ("chain x: 0 rules, expected 5; ..."). Both must
  // be normalized.
  std::optional<std::string> differences(const TableContent& actual) const;

  const std::string& table() const { return table_; }
  bool exists = false;
  std::map<std::string, ChainContent> chains;
  std::map<std::string, SetContent> sets;

 private:
  Status applyChain(const nlmsghdr* nlh, bool add);
  Status applySet(const nlmsghdr* nlh, bool add);
  Status applyElements(const nlmsghdr* nlh, bool add);
  Status applyRule(const nlmsghdr* nlh, bool add);

  std::string table_;
};

// What the writer builds for a full apply of `ruleset`, as a TableContent.
Result<TableContent> expectedContent(const compiler::Ruleset& ruleset);

}  // namespace bulkhead::nft
