// workload add | rm | ls (docs/cli.md).
#include <ostream>

#include "bulkhead/common/host_address.h"
#include "bulkhead/policy/address.h"
#include "bulkhead/policy/loader.h"
#include "command_groups.h"
#include "fleet_output.h"
#include "output.h"

namespace bulkhead::cli {

namespace {

const char* kAddPrefix = "bulkhead workload add: ";

// --addr values as the agent reads them: a host address, optionally with
// /32 or /128. False after printing what is wrong.
bool readAddresses(const Args& args, v1::Workload* w, policy::Workload* local, std::ostream& err) {
  bool ok = true;
  if (!args.has("--addr")) return ok;
  for (const auto& a : args.flags.at("--addr")) {
    const std::string index = std::to_string(w->addresses_size());
    w->add_addresses(a);
    std::string why;
    const auto host = common::hostAddressText(a, &why);
    if (!host) {
      err << kAddPrefix << "workload.addresses[" << index << "]: \"" << a << "\" " << why << "\n";
      ok = false;
      continue;
    }
    if (auto ip = policy::IpAddr::parse(*host)) {
      local->addresses.push_back(*ip);
    } else {
      err << kAddPrefix << "workload.addresses[" << index << "]: bad address \"" << a
          << "\" (--addr takes an IPv4 or IPv6 host address)\n";
      ok = false;
    }
  }
  return ok;
}

bool readLabels(const Args& args, v1::Workload* w, policy::Workload* local, std::ostream& err) {
  bool ok = true;
  if (!args.has("--label")) return ok;
  for (const auto& l : args.flags.at("--label")) {
    const auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      err << kAddPrefix << "--label " << l << ": expected KEY=VALUE\n";
      ok = false;
      continue;
    }
    const std::string key = l.substr(0, eq);
    if (local->labels.count(key)) {
      err << kAddPrefix << "--label " << key << " given twice\n";
      ok = false;
      continue;
    }
    local->labels[key] = l.substr(eq + 1);
    (*w->mutable_labels())[key] = l.substr(eq + 1);
  }
  return ok;
}

// The workload of `workload add`, with the checks the agent makes, so that
// a typo costs no round trip. False after printing every problem.
bool readWorkload(const Args& args, v1::Workload* w, std::ostream& err) {
  if (args.words.size() != 3) {
    err << kAddPrefix
        << "name exactly one workload: workload add NAME --app APP --iface IF --addr IP\n";
    return false;
  }
  w->set_name(args.words[2]);
  if (!args.has("--app") || args.flags.at("--app").size() != 1) {
    err << kAddPrefix << "needs one --app\n";
    return false;
  }
  w->set_app(args.get("--app"));
  policy::Workload local;
  local.name = w->name();
  local.app = w->app();
  if (args.has("--iface"))
    for (const auto& i : args.flags.at("--iface")) {
      w->add_interfaces(i);
      local.interfaces.push_back(i);
    }
  const bool addressesOk = readAddresses(args, w, &local, err);
  const bool labelsOk = readLabels(args, w, &local, err);
  std::vector<policy::Diagnostic> errors;
  policy::validateWorkload(local, errors);
  for (const auto& e : errors)
    err << kAddPrefix << e.toString() << "\n";
  return addressesOk && labelsOk && errors.empty();
}

}  // namespace

int workloadAddCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                       std::ostream& err) {
  v1::Workload w;
  if (!readWorkload(args, &w, err)) return kExitBadInput;
  v1::UpsertWorkloadRequest request;
  *request.mutable_workload() = w;
  v1::UpsertWorkloadResponse response;
  if (int code = callOne(o, &v1::Agent::Stub::UpsertWorkload, request, &response, err)) return code;
  const std::string& address = o.addresses[0];
  for (const auto& warning : response.warnings())
    err << address << ": warning: " << warning << "\n";
  out << address << ": workload " << w.name() << " registered ("
      << describeChange(response.change()) << ")\n";
  return kExitOk;
}

int workloadRmCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                      std::ostream& err) {
  if (args.words.size() != 3) {
    err << "bulkhead workload rm: name exactly one workload\n";
    return kExitBadInput;
  }
  v1::DeleteWorkloadRequest request;
  request.set_name(args.words[2]);
  v1::DeleteWorkloadResponse response;
  if (int code = callOne(o, &v1::Agent::Stub::DeleteWorkload, request, &response, err)) return code;
  out << o.addresses[0] << ": workload " << request.name() << " removed ("
      << describeChange(response.change()) << ")\n";
  return kExitOk;
}

int workloadLsCommand(const Args& args, const AgentOptions& o, std::ostream& out,
                      std::ostream& err) {
  if (args.words.size() != 2) {
    err << "bulkhead workload ls: takes no arguments\n";
    return kExitBadInput;
  }
  v1::ListWorkloadsResponse response;
  if (int code =
          callOne(o, &v1::Agent::Stub::ListWorkloads, v1::ListWorkloadsRequest(), &response, err))
    return code;
  if (args.has("--json")) {
    Json list = Json::array();
    for (const auto& w : response.workloads())
      list.push_back({{"name", w.name()},
                      {"app", w.app()},
                      {"interfaces", jsonStrings(w.interfaces())},
                      {"addresses", jsonStrings(w.addresses())},
                      {"labels", jsonStringMap(w.labels())},
                      {"source", sourceName(w.source())},
                      {"owner", w.owner()},
                      {"quarantined", w.quarantined()},
                      {"host", w.host()}});
    out << jsonLine({{"workloads", list}}) << "\n";
    return kExitOk;
  }
  // Another host's workloads (sent by the controller) add a HOST column.
  bool remote = false;
  for (const auto& w : response.workloads())
    remote = remote || !w.host().empty();
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "APP", "INTERFACES", "ADDRESSES", "SOURCE", "OWNER", "QUARANTINED"}};
  if (remote) rows[0].push_back("HOST");
  for (const auto& w : response.workloads()) {
    rows.push_back({w.name(), w.app(), joined(w.interfaces()), joined(w.addresses()),
                    sourceName(w.source()), w.owner().empty() ? "-" : w.owner(),
                    w.quarantined() ? "yes" : "no"});
    if (remote) rows.back().push_back(w.host().empty() ? "-" : w.host());
  }
  printTable(rows, out);
  return kExitOk;
}

}  // namespace bulkhead::cli
