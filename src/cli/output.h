// What the agent commands print: JSON lines (nlohmann-json values in the
// order built) and aligned tables, and the one-line summary of a ruleset
// change (docs/cli.md).
#pragma once

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::cli {

// Keys stay in the order they were added, as docs/cli.md lists them.
using Json = nlohmann::ordered_json;

// `value` on one line: {"key": value, "key": [a, b]}. Counts are JSON
// integers (proto3's JSON mapping would print a uint64 as a string).
std::string jsonLine(const Json& value);

Json jsonStrings(const google::protobuf::RepeatedPtrField<std::string>& values);

// A string map, sorted by key.
template <class Map>
Json jsonStringMap(const Map& map) {
  Json object = Json::object();
  for (const auto& [k, v] : std::map<std::string, std::string>(map.begin(), map.end()))
    object[k] = v;
  return object;
}

// Rows of cells, each column as wide as its widest cell, two spaces apart.
void printTable(const std::vector<std::vector<std::string>>& rows, std::ostream& out);

// "a,b", or "-" when empty.
std::string joined(const google::protobuf::RepeatedPtrField<std::string>& values);

// The agent's summary of a change, else its non-zero counts.
std::string describeChange(const v1::RulesetChange& c);
Json changeJson(const v1::RulesetChange& c);

}  // namespace bulkhead::cli
