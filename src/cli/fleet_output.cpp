#include "fleet_output.h"

#include <cstdio>
#include <map>
#include <ostream>

namespace bulkhead::cli {

namespace {

using v1::HostRollout;

const HostRollout* findHost(const v1::RolloutProgress& p, const std::string& host) {
  for (const auto& h : p.hosts())
    if (h.host() == host) return &h;
  return nullptr;
}

// "0 s" in sync; else seconds with one decimal.
std::string lagText(double seconds) {
  if (seconds <= 0) return "0 s";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  return buf;
}

Json hostStatusJson(const v1::HostStatus& h) {
  return {{"host", h.host()},
          {"connected", h.connected()},
          {"acked_revision", h.acked_revision()},
          {"workloads", h.workloads()},
          {"last_error", h.last_error()},
          {"lag_seconds", h.lag_seconds()},
          {"last_seen", h.last_seen()},
          {"agent_version", h.agent_version()},
          {"address", h.address()}};
}

}  // namespace

const char* rolloutStateName(HostRollout::State state) {
  switch (state) {
    case HostRollout::STATE_PENDING:
      return "pending";
    case HostRollout::STATE_APPLIED:
      return "applied";
    case HostRollout::STATE_FAILED:
      return "failed";
    case HostRollout::STATE_DISCONNECTED:
      return "disconnected";
    default:
      return "unknown";
  }
}

const char* sourceName(v1::Workload::Source s) {
  switch (s) {
    case v1::Workload::SOURCE_API:
      return "api";
    case v1::Workload::SOURCE_BUNDLE:
      return "bundle";
    case v1::Workload::SOURCE_CNI:
      return "cni";
    case v1::Workload::SOURCE_LIBVIRT:
      return "libvirt";
    case v1::Workload::SOURCE_REMOTE:
      return "remote";
    default:
      return "-";
  }
}

std::string labelsText(const google::protobuf::Map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : std::map<std::string, std::string>(labels.begin(), labels.end()))
    out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "-" : out;
}

std::string progressLine(const v1::RolloutProgress& p) {
  return "hosts acked " + std::to_string(p.acked()) + "/" + std::to_string(p.total());
}

std::vector<std::string> progressChanges(const v1::RolloutProgress& before,
                                         const v1::RolloutProgress& now) {
  std::vector<std::string> lines;
  for (const auto& h : now.hosts()) {
    const HostRollout* old = findHost(before, h.host());
    if (old != nullptr && old->state() == h.state() && old->error() == h.error()) continue;
    if (h.state() == HostRollout::STATE_APPLIED)
      lines.push_back(h.host() + ": applied revision " + std::to_string(now.revision()));
    else if (h.state() == HostRollout::STATE_FAILED)
      lines.push_back(h.host() + ": failed: " + (h.error().empty() ? "-" : h.error()));
  }
  return lines;
}

std::vector<std::string> rolloutFailures(const v1::RolloutProgress& last, int waitSeconds) {
  std::vector<std::string> lines;
  const std::string revision = std::to_string(last.revision());
  for (const auto& h : last.hosts()) {
    switch (h.state()) {
      case HostRollout::STATE_APPLIED:
        break;
      case HostRollout::STATE_FAILED:
        lines.push_back(h.host() + ": failed: " + (h.error().empty() ? "-" : h.error()));
        break;
      case HostRollout::STATE_DISCONNECTED:
        lines.push_back(h.host() + ": disconnected (gets revision " + revision +
                        " when it reconnects)");
        break;
      default:
        lines.push_back(h.host() + ": timed out, no ack within " + std::to_string(waitSeconds) +
                        " s");
    }
  }
  return lines;
}

Json rolloutJson(const v1::RolloutProgress& p) {
  Json hosts = Json::array();
  for (const auto& h : p.hosts())
    hosts.push_back(
        {{"host", h.host()}, {"state", rolloutStateName(h.state())}, {"error", h.error()}});
  return {{"revision", p.revision()},
          {"acked", p.acked()},
          {"total", p.total()},
          {"done", p.done()},
          {"hosts", hosts}};
}

Json fleetStatusJson(const std::string& address, const v1::FleetStatus& st) {
  Json hosts = Json::array();
  for (const auto& h : st.hosts())
    hosts.push_back(hostStatusJson(h));
  return {{"controller", address},
          {"name", st.controller()},
          {"revision", st.revision()},
          {"version", st.version()},
          {"hosts", hosts}};
}

void printFleetStatus(const std::string& address, const v1::FleetStatus& st, std::ostream& out) {
  size_t connected = 0;
  for (const auto& h : st.hosts())
    connected += h.connected() ? 1 : 0;
  std::vector<std::vector<std::string>> head = {
      {"controller:", address + (st.controller().empty() ? "" : " (" + st.controller() + ")")},
      {"revision:", st.revision() == 0
                        ? "none (no policy pushed yet)"
                        : std::to_string(st.revision()) + " (version " + st.version() + ")"},
      {"hosts:", std::to_string(connected) + " connected of " + std::to_string(st.hosts_size())}};
  printTable(head, out);
  if (st.hosts().empty()) return;
  out << "\n";
  std::vector<std::vector<std::string>> rows = {
      {"HOST", "CONNECTED", "ACKED", "WORKLOADS", "LAG", "LAST SEEN", "LAST ERROR"}};
  for (const auto& h : st.hosts())
    rows.push_back({h.host(), h.connected() ? "yes" : "no", std::to_string(h.acked_revision()),
                    std::to_string(h.workloads()), lagText(h.lag_seconds()),
                    h.last_seen().empty() ? "-" : h.last_seen(),
                    h.last_error().empty() ? "-" : h.last_error()});
  printTable(rows, out);
}

Json fleetWorkloadsJson(const v1::ListWorkloadsResponse& list) {
  Json workloads = Json::array();
  for (const auto& w : list.workloads())
    workloads.push_back({{"host", w.host()},
                         {"name", w.name()},
                         {"app", w.app()},
                         {"addresses", jsonStrings(w.addresses())},
                         {"labels", jsonStringMap(w.labels())},
                         {"source", sourceName(w.source())}});
  return {{"workloads", workloads}};
}

void printFleetWorkloads(const v1::ListWorkloadsResponse& list, std::ostream& out) {
  std::vector<std::vector<std::string>> rows = {
      {"HOST", "NAME", "APP", "ADDRESSES", "LABELS", "SOURCE"}};
  for (const auto& w : list.workloads())
    rows.push_back({w.host().empty() ? "-" : w.host(), w.name(), w.app(), joined(w.addresses()),
                    labelsText(w.labels()), sourceName(w.source())});
  printTable(rows, out);
}

}  // namespace bulkhead::cli
