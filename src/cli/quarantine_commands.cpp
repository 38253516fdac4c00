// quarantine NAME [--release] and quarantine ls (docs/cli.md).
#include <chrono>
#include <ostream>

#include "bulkhead/common/time_format.h"
#include "command_groups.h"
#include "output.h"

namespace bulkhead::cli {

namespace {

// Seconds since the epoch as RFC 3339 ("-" for none).
std::string unixTime(int64_t t) {
  if (t == 0) return "-";
  return common::formatRfc3339(common::WallClock::time_point(std::chrono::seconds(t)),
                               common::TimePrecision::kSeconds);
}

}  // namespace

int quarantineCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                      std::ostream& err) {
  if (args.words.size() != 2) {
    err << "bulkhead quarantine: name exactly one workload\n";
    return kExitBadInput;
  }
  v1::QuarantineRequest request;
  request.set_name(args.words[1]);
  request.set_release(args.has("--release"));
  v1::QuarantineResponse response;
  if (int code = callOne(o, &v1::Agent::Stub::Quarantine, request, &response, err)) return code;
  out << o.addresses[0] << ": workload " << request.name()
      << (request.release() ? " released" : " quarantined") << " ("
      << describeChange(response.change());
  if (!request.release()) out << "; " << response.flushed_flows() << " tracked connections cut";
  out << ")\n";
  for (const auto& w : response.warnings())
    err << "warning: " << w << "\n";
  return kExitOk;
}

int quarantineLsCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                        std::ostream& err) {
  if (args.words.size() != 2) {
    err << "bulkhead quarantine ls: takes no arguments\n";
    return kExitBadInput;
  }
  v1::ListQuarantinesResponse response;
  if (int code = callOne(o, &v1::Agent::Stub::ListQuarantines, v1::ListQuarantinesRequest(),
                         &response, err))
    return code;
  if (args.has("--json")) {
    Json list = Json::array();
    for (const auto& q : response.quarantines()) {
      Json j = {{"workload", q.workload()},
                {"reason", q.reason()},
                {"since", unixTime(q.since_unix())},
                {"until", nullptr}};
      if (q.until_unix() != 0) {
        j["until"] = unixTime(q.until_unix());
        j["seconds"] = q.seconds();
      }
      list.push_back(j);
    }
    out << jsonLine({{"quarantines", list}}) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"WORKLOAD", "REASON", "SINCE", "UNTIL"}};
  for (const auto& q : response.quarantines())
    rows.push_back({q.workload(), q.reason(), unixTime(q.since_unix()),
                    q.until_unix() ? unixTime(q.until_unix()) : "released by hand"});
  printTable(rows, out);
  return kExitOk;
}

}  // namespace bulkhead::cli
