// What the controller commands print (docs/cli.md, "Talking to a
// controller"): fleet status and fleet workloads as tables or JSON, and a
// rollout's progress and outcome. Pure functions of the controller's
// answers, so tests check them byte for byte.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "bulkhead/v1/controller.pb.h"
#include "output.h"

namespace bulkhead::cli {

// "applied", "pending", "failed", "disconnected", "unknown".
const char* rolloutStateName(v1::HostRollout::State state);

// The terminal's progress line: "hosts acked 2/3".
std::string progressLine(const v1::RolloutProgress& p);

// The plain lines of a progress message: one per host whose state differs
// from `before` (the previous message; empty at first) and is final
// ("HOST: applied revision R", "HOST: failed: ERROR").
std::vector<std::string> progressChanges(const v1::RolloutProgress& before,
                                         const v1::RolloutProgress& now);

// The hosts of the last progress message that did not apply it, one line
// each ("HOST: timed out, no ack within 60 s"); empty when every host did.
std::vector<std::string> rolloutFailures(const v1::RolloutProgress& last, int waitSeconds);

Json rolloutJson(const v1::RolloutProgress& p);
Json fleetStatusJson(const std::string& address, const v1::FleetStatus& st);
void printFleetStatus(const std::string& address, const v1::FleetStatus& st, std::ostream& out);

// Fleet workloads: HOST NAME APP ADDRESSES LABELS SOURCE, or JSON.
Json fleetWorkloadsJson(const v1::ListWorkloadsResponse& list);
void printFleetWorkloads(const v1::ListWorkloadsResponse& list, std::ostream& out);

// A workload's source as the CLI prints it ("api", "remote", ...).
const char* sourceName(v1::Workload::Source s);

// "a=1,b=2" (sorted by key), or "-".
std::string labelsText(const google::protobuf::Map<std::string, std::string>& labels);

}  // namespace bulkhead::cli
