#include "bulkhead/hooks/cni.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "bulkhead/common/agent_address.h"
#include "bulkhead/policy/address.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::hooks {

namespace {

// Ordered: prevResult goes back out with its keys as they came.
using Json = nlohmann::ordered_json;

constexpr const char* kLatestVersion = "1.1.0";

std::string envOr(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool supported(const std::string& version) {
  return std::find(std::begin(kCniVersions), std::end(kCniVersions), version) !=
         std::end(kCniVersions);
}

CniOutcome fail(const std::string& version, CniCode code, const std::string& msg,
                const std::string& details = "") {
  Json e;
  e["cniVersion"] = supported(version) ? version : kLatestVersion;
  e["code"] = int(code);
  e["msg"] = msg;
  if (!details.empty()) e["details"] = details;
  return CniOutcome{1, e.dump() + "\n",
                    "bulkhead-cni: " + msg + (details.empty() ? "" : ": " + details) + "\n"};
}

// The network configuration, as far as bulkhead-cni reads it.
struct NetConf {
  Json raw;
  std::string version, network, agent, app, appLabel;
};

Result<NetConf> parseConf(const std::string& text) {
  NetConf c;
  if (text.size() > kMaxInputBytes)
    return makeError(ErrorCode::kInvalidInput, "stdin is larger than 16 MB");
  try {
    c.raw = Json::parse(text);
  } catch (const Json::parse_error& e) {
    return makeError(ErrorCode::kInvalidInput, std::string("stdin is not JSON: ") + e.what());
  }
  if (!c.raw.is_object()) return makeError(ErrorCode::kInvalidInput, "stdin is not a JSON object");
  auto str = [&](const char* key, std::string* out) -> Status {
    if (!c.raw.contains(key)) return {};
    if (!c.raw[key].is_string())
      return makeError(ErrorCode::kInvalidInput, std::string("\"") + key + "\" is not a string");
    *out = c.raw[key].get<std::string>();
    return {};
  };
  for (auto [key, out] :
       {std::pair{"cniVersion", &c.version}, std::pair{"name", &c.network},
        std::pair{"agent", &c.agent}, std::pair{"app", &c.app}, std::pair{"appLabel", &c.appLabel}})
    if (auto st = str(key, out); !st) return st.takeError();
  return c;
}

// CNI_ARGS: "K=V;K=V" (IgnoreUnknown=1 among them).
std::map<std::string, std::string> parseArgs(const std::string& args) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= args.size()) {
    size_t end = args.find(';', start);
    if (end == std::string::npos) end = args.size();
    const std::string kv = args.substr(start, end - start);
    if (const auto eq = kv.find('='); eq != std::string::npos && eq > 0)
      out[kv.substr(0, eq)] = kv.substr(eq + 1);
    start = end + 1;
  }
  return out;
}

// The app: CNI_ARGS BULKHEAD_APP, the config's `app`, or the label the
// config's `appLabel` names, from args.cni.labels ([{key, value}]),
// args.labels ({key: value}) or CNI_ARGS.
Result<std::string> findApp(const NetConf& c, const std::map<std::string, std::string>& args) {
  if (auto it = args.find("BULKHEAD_APP"); it != args.end() && !it->second.empty())
    return it->second;
  if (!c.app.empty()) return c.app;
  if (!c.appLabel.empty()) {
    const Json& a = c.raw.contains("args") ? c.raw["args"] : Json();
    if (a.is_object() && a.contains("cni") && a["cni"].is_object() && a["cni"].contains("labels") &&
        a["cni"]["labels"].is_array())
      for (const Json& l : a["cni"]["labels"])
        if (l.is_object() && l.value("key", "") == c.appLabel && l.contains("value") &&
            l["value"].is_string())
          return l["value"].get<std::string>();
    if (a.is_object() && a.contains("labels") && a["labels"].is_object() &&
        a["labels"].contains(c.appLabel) && a["labels"][c.appLabel].is_string())
      return a["labels"][c.appLabel].get<std::string>();
    if (auto it = args.find(c.appLabel); it != args.end() && !it->second.empty()) return it->second;
  }
  return makeError(
      ErrorCode::kInvalidInput,
      "no app for the workload: set BULKHEAD_APP in CNI_ARGS, \"app\" in the "
      "network configuration, or \"appLabel\" naming a label passed in "
      "args.cni.labels, args.labels or CNI_ARGS" +
          (c.appLabel.empty() ? std::string() : " (no label \"" + c.appLabel + "\" was passed)"));
}

// "<K8S_POD_NAMESPACE>/<K8S_POD_NAME>", else "<container id, 12>/<ifname>".
Result<std::string> workloadName(const CniEnv& env,
                                 const std::map<std::string, std::string>& args) {
  std::string name;
  const auto ns = args.find("K8S_POD_NAMESPACE"), pod = args.find("K8S_POD_NAME");
  if (ns != args.end() && pod != args.end() && !ns->second.empty() && !pod->second.empty()) {
    name = ns->second + "/" + pod->second;
  } else {
    std::string id = env.containerId.substr(0, 12);
    std::transform(id.begin(), id.end(), id.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    name = id + "/" + env.ifname;
  }
  if (!policy::isValidWorkloadName(name))
    return makeError(ErrorCode::kInvalidInput,
                     "workload name \"" + name +
                         "\" is not valid: two parts joined by '/', each of lower-case letters, "
                         "digits and -._, starting and ending with a letter or digit");
  return name;
}

// The workload the prevResult describes: the host-side interfaces (empty
// sandbox) and the container's addresses as host addresses.
Status readPrevResult(const Json& prev, v1::Workload* w) {
  if (!prev.is_object())
    return makeError(ErrorCode::kInvalidInput,
                     "no prevResult: bulkhead-cni is a chained plugin; list it after an interface "
                     "plugin such as ptp in a conflist");
  const Json& ifaces = prev.contains("interfaces") ? prev["interfaces"] : Json::array();
  if (!ifaces.is_array())
    return makeError(ErrorCode::kInvalidInput, "prevResult.interfaces is not a list");
  std::set<size_t> hostSide;
  for (size_t i = 0; i < ifaces.size(); ++i) {
    const Json& f = ifaces[i];
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string())
      return makeError(ErrorCode::kInvalidInput,
                       "prevResult.interfaces[" + std::to_string(i) + "] has no name");
    const bool sandboxed = f.contains("sandbox") && f["sandbox"].is_string() &&
                           !f["sandbox"].get<std::string>().empty();
    if (sandboxed) continue;
    hostSide.insert(i);
    w->add_interfaces(f["name"].get<std::string>());
  }
  if (hostSide.empty())
    return makeError(ErrorCode::kInvalidInput,
                     "prevResult has no host-side interface (an interface with an empty "
                     "sandbox): chain bulkhead-cni after a plugin that makes a routed host-side "
                     "veth, such as ptp");
  const Json& ips = prev.contains("ips") ? prev["ips"] : Json::array();
  if (!ips.is_array()) return makeError(ErrorCode::kInvalidInput, "prevResult.ips is not a list");
  for (size_t i = 0; i < ips.size(); ++i) {
    const std::string where = "prevResult.ips[" + std::to_string(i) + "]";
    const Json& ip = ips[i];
    if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string())
      return makeError(ErrorCode::kInvalidInput, where + " has no address");
    // An address on the host side (e.g. a gateway) is not the workload's.
    if (ip.contains("interface")) {
      if (!ip["interface"].is_number_unsigned() || ip["interface"].get<size_t>() >= ifaces.size())
        return makeError(ErrorCode::kInvalidInput,
                         where + ".interface is not an index into interfaces");
      if (hostSide.count(ip["interface"].get<size_t>())) continue;
    }
    // IPAM gives the subnet's prefix; the workload is the one address.
    std::string text = ip["address"].get<std::string>();
    text = text.substr(0, text.find('/'));
    auto parsed = policy::IpAddr::parse(text);
    if (!parsed)
      return makeError(ErrorCode::kInvalidInput,
                       where + ": bad address \"" + ip["address"].get<std::string>() + "\"");
    w->add_addresses(parsed->toString());
  }
  if (w->addresses_size() == 0)
    return makeError(ErrorCode::kInvalidInput,
                     "prevResult has no address for the container (ips is empty): chain "
                     "bulkhead-cni after a plugin with IPAM");
  return {};
}

// The registration ADD makes (and CHECK expects).
struct Expected {
  v1::Workload workload;
  Json prevResult;
};

std::string ownerOf(const NetConf& c, const CniEnv& env) {
  return c.network + "/" + env.containerId + "/" + env.ifname;
}

Status needEnv(const CniEnv& env) {
  if (env.containerId.empty())
    return makeError(ErrorCode::kInvalidInput, "CNI_CONTAINERID is not set");
  if (env.ifname.empty()) return makeError(ErrorCode::kInvalidInput, "CNI_IFNAME is not set");
  return {};
}

class Run {
 public:
  Run(const CniEnv& env, NetConf conf, const AgentConnector& connect)
      : env_(env), conf_(std::move(conf)), connect_(connect), args_(parseArgs(env.args)) {}

  CniOutcome add() {
    auto w = expected();
    if (!w) return bad(w.error());
    auto link = open();
    if (!link) return fail(conf_.version, CniCode::kBadConfig, link.error().message);
    if (auto st = (*link)->upsert(*w); !st)
      return agentFailure(st.error(), "the workload is not registered");
    // The result is the previous plugin's, unchanged.
    return CniOutcome{0, conf_.raw["prevResult"].dump() + "\n", ""};
  }

  CniOutcome del() {
    if (auto st = needEnv(env_); !st)
      return fail(conf_.version, CniCode::kBadEnvironment, st.error().message);
    auto name = workloadName(env_, args_);
    if (!name) return bad(name.error());
    auto link = open();
    if (!link) return fail(conf_.version, CniCode::kBadConfig, link.error().message);
    auto st = (*link)->remove(*name, ownerOf(conf_, env_));
    // Best effort and idempotent: gone already, or the agent is gone.
    if (!st && st.error().code != ErrorCode::kNotFound)
      return CniOutcome{0, "", "bulkhead-cni: DEL " + *name + ": " + st.error().message + "\n"};
    return CniOutcome{};
  }

  CniOutcome check() {
    auto want = expected();
    if (!want) return bad(want.error());
    auto link = open();
    if (!link) return fail(conf_.version, CniCode::kBadConfig, link.error().message);
    auto held = (*link)->list(want->name());
    if (!held) return agentFailure(held.error(), "cannot check");
    if (held->empty())
      return fail(conf_.version, CniCode::kNotRegistered,
                  "workload " + want->name() + " is not registered with the agent");
    const v1::Workload& got = held->front();
    std::string why;
    auto sorted = [](const auto& v) { return std::multiset<std::string>(v.begin(), v.end()); };
    if (got.source() != v1::Workload::SOURCE_CNI || got.owner() != want->owner())
      why = "registered by " + (got.owner().empty() ? std::string("another source") : got.owner());
    else if (got.app() != want->app())
      why = "app is " + got.app() + ", not " + want->app();
    else if (sorted(got.interfaces()) != sorted(want->interfaces()))
      why = "its interfaces differ from prevResult's host-side interfaces";
    else if (sorted(got.addresses()) != sorted(want->addresses()))
      why = "its addresses differ from prevResult's";
    if (!why.empty())
      return fail(conf_.version, CniCode::kNotRegistered,
                  "workload " + want->name() + " is not registered as ADD left it", why);
    return CniOutcome{};
  }

  CniOutcome status() {
    auto link = open();
    if (!link) return fail(conf_.version, CniCode::kBadConfig, link.error().message);
    if (auto st = (*link)->ping(); !st)
      return fail(conf_.version, CniCode::kNotAvailable, "the bulkhead agent is unreachable",
                  st.error().message);
    return CniOutcome{};
  }

  CniOutcome gc() {
    const Json& valid = conf_.raw.contains("cni.dev/valid-attachments")
                            ? conf_.raw["cni.dev/valid-attachments"]
                            : Json();
    if (!valid.is_array())
      return fail(conf_.version, CniCode::kBadConfig,
                  "GC needs \"cni.dev/valid-attachments\" (a list)");
    std::set<std::string> keep;
    for (const Json& a : valid)
      if (a.is_object() && a.value("containerID", "") != "" && a.value("ifname", "") != "")
        keep.insert(conf_.network + "/" + a["containerID"].get<std::string>() + "/" +
                    a["ifname"].get<std::string>());
    auto link = open();
    if (!link) return fail(conf_.version, CniCode::kBadConfig, link.error().message);
    auto all = (*link)->list("");
    if (!all) return agentFailure(all.error(), "nothing collected");
    const std::string mine = conf_.network + "/";
    for (const auto& w : *all) {
      if (w.source() != v1::Workload::SOURCE_CNI || w.owner().rfind(mine, 0) != 0) continue;
      if (keep.count(w.owner())) continue;
      auto st = (*link)->remove(w.name(), w.owner());
      if (!st && st.error().code != ErrorCode::kNotFound)
        return agentFailure(st.error(), "stale workload " + w.name() + " not removed");
    }
    return CniOutcome{};
  }

 private:
  Result<v1::Workload> expected() {
    if (auto st = needEnv(env_); !st) return makeError(ErrorCode::kNotFound, st.error().message);
    v1::Workload w;
    auto name = workloadName(env_, args_);
    if (!name) return name.takeError();
    w.set_name(*name);
    auto app = findApp(conf_, args_);
    if (!app) return app.takeError();
    w.set_app(*app);
    if (auto st =
            readPrevResult(conf_.raw.contains("prevResult") ? conf_.raw["prevResult"] : Json(), &w);
        !st)
      return st.takeError();
    w.set_source(v1::Workload::SOURCE_CNI);
    w.set_owner(ownerOf(conf_, env_));
    return w;
  }

  // Fails only on a bad address: a configuration error.
  Result<std::unique_ptr<AgentLink>> open() {
    const std::string address = !conf_.agent.empty()  ? conf_.agent
                                : !env_.agent.empty() ? env_.agent
                                                      : std::string(common::kDefaultAgent);
    return connect_(address);
  }

  // kNotFound from expected() marks a missing environment variable.
  CniOutcome bad(const Error& e) {
    return fail(conf_.version,
                e.code == ErrorCode::kNotFound ? CniCode::kBadEnvironment : CniCode::kBadConfig,
                e.message);
  }

  CniOutcome agentFailure(const Error& e, const std::string& consequence) {
    switch (e.code) {
      case ErrorCode::kInvalidInput:
        return fail(conf_.version, CniCode::kAgentRefused, "the agent refused: " + consequence,
                    e.message);
      case ErrorCode::kUnavailable:
        return fail(conf_.version, CniCode::kTryAgainLater,
                    "the bulkhead agent is unreachable: " + consequence, e.message);
      default:
        return fail(conf_.version, CniCode::kAgentRefused, "the agent failed: " + consequence,
                    e.message);
    }
  }

  const CniEnv& env_;
  NetConf conf_;
  const AgentConnector& connect_;
  std::map<std::string, std::string> args_;
};

CniOutcome version(const std::string& stdinText) {
  std::string asked = kLatestVersion;
  if (auto c = parseConf(stdinText); c && supported(c->version)) asked = c->version;
  Json v;
  v["cniVersion"] = asked;
  v["supportedVersions"] = Json::array();
  for (const char* s : kCniVersions)
    v["supportedVersions"].push_back(s);
  return CniOutcome{0, v.dump() + "\n", ""};
}

}  // namespace

CniEnv CniEnv::fromProcess() {
  return CniEnv{envOr("CNI_COMMAND"), envOr("CNI_CONTAINERID"), envOr("CNI_NETNS"),
                envOr("CNI_IFNAME"),  envOr("CNI_ARGS"),        envOr("BULKHEAD_AGENT")};
}

CniOutcome runCni(const CniEnv& env, const std::string& config, const AgentConnector& connect) {
  if (env.command == "VERSION") return version(config);
  auto conf = parseConf(config);
  if (!conf) return fail(kLatestVersion, CniCode::kDecode, conf.error().message);
  if (conf->version.empty())
    return fail(kLatestVersion, CniCode::kBadConfig, "the network configuration has no cniVersion");
  if (!supported(conf->version))
    return fail(kLatestVersion, CniCode::kIncompatibleVersion,
                "CNI version " + conf->version + " is not supported",
                "bulkhead-cni supports 1.0.0 and 1.1.0");
  Run run(env, std::move(*conf), connect);
  if (env.command == "ADD") return run.add();
  if (env.command == "DEL") return run.del();
  if (env.command == "CHECK") return run.check();
  if (env.command == "STATUS") return run.status();
  if (env.command == "GC") return run.gc();
  return fail(
      kLatestVersion, CniCode::kBadEnvironment,
      "CNI_COMMAND \"" + env.command + "\" is not one of ADD, DEL, CHECK, VERSION, STATUS, GC");
}

}  // namespace bulkhead::hooks
