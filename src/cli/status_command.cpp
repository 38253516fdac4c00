// status (docs/cli.md): the agent's AgentStatus as a table or one JSON object.
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>

#include "command_groups.h"
#include "output.h"

namespace bulkhead::cli {

namespace {

Json latencyJson(const v1::Latency& l) {
  return {
      {"count", l.count()}, {"p50_ms", l.p50_ms()}, {"p99_ms", l.p99_ms()}, {"max_ms", l.max_ms()}};
}

Json flowsJson(const v1::FlowCounters& f) {
  Json byCause = Json::object();
  for (const auto& [cause, n] : std::map<std::string, uint64_t>(f.suppressed_by_cause().begin(),
                                                                f.suppressed_by_cause().end()))
    byCause[cause] = n;
  return {{"seen", f.seen()},
          {"exported", f.exported()},
          {"suppressed", f.suppressed()},
          {"suppressed_by_cause", byCause}};
}

// The link to --controller; null without one.
Json controllerJson(const v1::AgentStatus& st) {
  if (!st.has_controller()) return nullptr;
  const auto& c = st.controller();
  return {{"connected", c.connected()},
          {"url", c.url()},
          {"last_error", c.last_error()},
          {"sessions", c.sessions()}};
}

// Every field, always (docs/cli.md lists them in this order).
Json statusJson(const v1::AgentStatus& st) {
  return {{"version", st.version()},
          {"table", st.table()},
          {"apps", st.apps()},
          {"services", st.services()},
          {"global_policies", st.global_policies()},
          {"workloads", st.workloads()},
          {"set_elements", st.set_elements()},
          {"chains", st.chains()},
          {"last_error", st.last_error()},
          {"last_error_time", st.last_error_time()},
          {"apply_latency", latencyJson(st.apply_latency())},
          {"workload_latency", latencyJson(st.workload_latency())},
          {"drift_repairs", st.drift_repairs()},
          {"last_drift_check", st.last_drift_check()},
          {"last_drift_check_time", st.last_drift_check_time()},
          {"last_applied_time", st.last_applied_time()},
          {"flows", flowsJson(st.flows())},
          {"pushes", st.pushes()},
          {"workload_changes", st.workload_changes()},
          {"host", st.host()},
          {"staged_interfaces", st.staged_interfaces()},
          {"promotions", st.promotions()},
          {"promotion_latency", latencyJson(st.promotion_latency())},
          {"applied_revision", st.applied_revision()},
          {"remote_workloads", st.remote_workloads()},
          {"controller", controllerJson(st)}};
}

// "URL, connected (revision R, N sessions, M remote workloads)", or "not
// connected: WHY" in its place.
std::string describeController(const v1::AgentStatus& st) {
  const auto& c = st.controller();
  std::string out = c.url().empty() ? "(none tried yet)" : c.url();
  if (c.connected()) {
    out += ", connected";
  } else {
    out += ", not connected";
    if (!c.last_error().empty()) out += ": " + c.last_error();
  }
  return out + " (revision " + std::to_string(st.applied_revision()) + ", " +
         std::to_string(c.sessions()) + (c.sessions() == 1 ? " session, " : " sessions, ") +
         std::to_string(st.remote_workloads()) + " remote workloads)";
}

std::string describeLatency(uint64_t operations, const v1::Latency& l) {
  std::ostringstream s;
  s << operations;
  if (l.count() == 0) return s.str();
  s << std::fixed << std::setprecision(2) << " (latency p50 " << l.p50_ms() << " ms, p99 "
    << l.p99_ms() << " ms, max " << l.max_ms() << " ms over " << l.count() << ")";
  return s.str();
}

std::string describeFlows(const v1::FlowCounters& f) {
  std::string flows = "seen " + std::to_string(f.seen()) + ", exported " +
                      std::to_string(f.exported()) + ", suppressed " +
                      std::to_string(f.suppressed());
  if (f.suppressed_by_cause().empty()) return flows;
  std::map<std::string, uint64_t> causes(f.suppressed_by_cause().begin(),
                                         f.suppressed_by_cause().end());
  std::string list;
  for (const auto& [cause, n] : causes)
    list += (list.empty() ? "" : ", ") + cause + ": " + std::to_string(n);
  return flows + " (" + list + ")";
}

void printStatus(const std::string& address, const v1::AgentStatus& st, std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"agent:", address});
  if (!st.host().empty()) rows.push_back({"host:", st.host()});
  rows.push_back({"version:", st.version().empty() ? "(no policy pushed yet)" : st.version()});
  if (!st.last_applied_time().empty()) rows.push_back({"applied:", st.last_applied_time()});
  if (st.has_controller()) rows.push_back({"controller:", describeController(st)});
  rows.push_back({"table:", "inet " + st.table()});
  rows.push_back({"policy:", std::to_string(st.apps()) + " apps, " + std::to_string(st.services()) +
                                 " services, " + std::to_string(st.global_policies()) +
                                 " global policies, " + std::to_string(st.workloads()) +
                                 " workloads"});
  rows.push_back({"ruleset:", std::to_string(st.chains()) + " chains, " +
                                  std::to_string(st.set_elements()) + " set elements"});
  rows.push_back({"pushes:", describeLatency(st.pushes(), st.apply_latency())});
  rows.push_back(
      {"workload changes:", describeLatency(st.workload_changes(), st.workload_latency())});
  rows.push_back({"staged interfaces:", std::to_string(st.staged_interfaces())});
  rows.push_back({"promotions:", describeLatency(st.promotions(), st.promotion_latency())});
  rows.push_back({"drift repairs:", std::to_string(st.drift_repairs())});
  if (!st.last_drift_check_time().empty())
    rows.push_back({"drift check:", st.last_drift_check_time() + " " + st.last_drift_check()});
  rows.push_back({"flows:", describeFlows(st.flows())});
  rows.push_back({"last error:", st.last_error().empty()
                                     ? "none"
                                     : (st.last_error_time().empty()
                                            ? st.last_error()
                                            : st.last_error_time() + " " + st.last_error())});
  printTable(rows, out);
}

}  // namespace

int statusCommand(const Args& args, const AgentOptions& o, std::ostream& out, std::ostream& err) {
  if (args.words.size() != 1) {
    err << "bulkhead status: takes no arguments\n";
    return kExitBadInput;
  }
  v1::AgentStatus st;
  if (int code = callOne(o, &v1::Agent::Stub::GetStatus, v1::GetStatusRequest(), &st, err))
    return code;
  if (args.has("--json"))
    out << jsonLine(statusJson(st)) << "\n";
  else
    printStatus(o.addresses[0], st, out);
  return kExitOk;
}

}  // namespace bulkhead::cli
