#include "bulkhead/agent/config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <functional>
#include <map>

#include "bulkhead/policy/loader.h"

namespace bulkhead::agent {

namespace {

Error bad(const std::string& message) {
  return makeError(ErrorCode::kInvalidInput, message);
}

Status parseUint(const std::string& flag, const std::string& v, uint32_t max, uint32_t* out) {
  uint32_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n > max)
    return bad(flag + ": must be a number from 0 to " + std::to_string(max));
  *out = n;
  return {};
}

Status parseBool(const std::string& flag, const std::string& v, bool* out) {
  if (v == "true" || v == "yes" || v == "on" || v == "1") {
    *out = true;
  } else if (v == "false" || v == "no" || v == "off" || v == "0") {
    *out = false;
  } else {
    return bad(flag + ": expected true or false, got \"" + v + "\"");
  }
  return {};
}

// Flags that stand alone ("--auto-quarantine") or take true/false.
bool isSwitch(const std::string& name) {
  return name == "auto-quarantine" || name == "autoQuarantine" || name == "scan-detection";
}

Status parseAtLeastOne(const std::string& flag, const std::string& v, uint32_t max, uint32_t* out) {
  auto st = parseUint(flag, v, max, out);
  if (st && *out == 0) return bad(flag + ": must be a number from 1 to " + std::to_string(max));
  return st;
}

// One setter per key; shared by flags and the config file.
using Setter = std::function<Status(AgentConfig&, const std::string&)>;

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> kSetters = {
      {"listen",
       [](AgentConfig& c, const std::string& v) -> Status {
         if (v.rfind("unix://", 0) != 0 && v.rfind("tcp://", 0) != 0)
           return bad("--listen: expected unix:///path or tcp://host:port, got \"" + v + "\"");
         c.listen.push_back(v);
         return {};
       }},
      {"tls-cert",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.tlsCert = v;
         return {};
       }},
      {"tls-key",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.tlsKey = v;
         return {};
       }},
      {"tls-client-ca",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.tlsClientCa = v;
         return {};
       }},
      {"state-dir",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.stateDir = v;
         return {};
       }},
      {"table",
       [](AgentConfig& c, const std::string& v) -> Status {
         if (!policy::isValidName(v)) return bad("--table: not a valid table name: \"" + v + "\"");
         c.table = v;
         return {};
       }},
      {"log-group",
       [](AgentConfig& c, const std::string& v) -> Status {
         uint32_t n = 0;
         if (auto st = parseUint("--log-group", v, 65535, &n); !st) return st;
         c.logGroup = uint16_t(n);
         return {};
       }},
      {"log-rate",
       [](AgentConfig& c, const std::string& v) -> Status {
         auto st = parseUint("--log-rate", v, 1000000, &c.logRate);
         if (st && c.logRate == 0) return bad("--log-rate: must be a number from 1 to 1000000");
         return st;
       }},
      {"flow-workload-rate",
       [](AgentConfig& c, const std::string& v) -> Status {
         auto st = parseUint("--flow-workload-rate", v, 1000000, &c.flowWorkloadRate);
         if (st && c.flowWorkloadRate == 0)
           return bad("--flow-workload-rate: must be a number from 1 to 1000000");
         return st;
       }},
      {"syslog",
       [](AgentConfig& c, const std::string& v) -> Status {
         if (v.rfind("unix://", 0) != 0 && v.rfind("udp://", 0) != 0 && v.rfind("tcp://", 0) != 0 &&
             v.rfind("tls://", 0) != 0 && v != "journald")
           return bad("--syslog: expected unix://, udp://, tcp://, tls:// or journald, got \"" + v +
                      "\"");
         c.syslog.push_back(v);
         return {};
       }},
      {"syslog-tls-ca",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.syslogTlsCa = v;
         return {};
       }},
      {"syslog-tls-cert",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.syslogTlsCert = v;
         return {};
       }},
      {"syslog-tls-key",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.syslogTlsKey = v;
         return {};
       }},
      {"flow-format",
       [](AgentConfig& c, const std::string& v) -> Status {
         if (v != "rfc5424" && v != "json" && v != "cef")
           return bad("--flow-format: expected rfc5424, json or cef");
         c.flowFormat = v;
         return {};
       }},
      {"policies",
       [](AgentConfig& c, const std::string& v) -> Status {
         c.policiesDir = v;
         return {};
       }},
      {"max-bundle-bytes",
       [](AgentConfig& c, const std::string& v) -> Status {
         uint32_t bytes = 0;
         // Given in bytes; kept within what one gRPC message can carry.
         auto st = parseUint("--max-bundle-bytes", v, 1u << 30, &bytes);
         if (st) c.maxBundleBytes = bytes;
         return st;
       }},
      {"flow-summary-seconds",
       [](AgentConfig& c, const std::string& v) -> Status {
         auto st = parseUint("--flow-summary-seconds", v, 86400, &c.flowSummarySeconds);
         if (st && c.flowSummarySeconds == 0)
           return bad("--flow-summary-seconds: must be a number from 1 to 86400");
         return st;
       }},
      {"scan-detection",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseBool("--scan-detection", v, &c.scanDetection);
       }},
      {"auto-quarantine",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseBool("--auto-quarantine", v, &c.autoQuarantine);
       }},
      {"autoQuarantine",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseBool("autoQuarantine", v, &c.autoQuarantine);
       }},
      {"scan-hosts",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseAtLeastOne("--scan-hosts", v, 65536, &c.scanHosts);
       }},
      {"scan-ports",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseAtLeastOne("--scan-ports", v, 65536, &c.scanPorts);
       }},
      {"scan-window",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseAtLeastOne("--scan-window", v, 86400, &c.scanWindowSeconds);
       }},
      {"quarantine-seconds",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseAtLeastOne("--quarantine-seconds", v, 30 * 86400, &c.quarantineSeconds);
       }},
      {"resync-seconds",
       [](AgentConfig& c, const std::string& v) -> Status {
         return parseUint("--resync-seconds", v, 86400, &c.resyncSeconds);
       }},
  };
  return kSetters;
}

Status loadConfigFile(const std::string& path, AgentConfig& c) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return bad(path + ":" + std::to_string(e.mark.line + 1) + ":" +
               std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (root.IsNull()) return {};
  if (!root.IsMap()) return bad(path + ": expected a map of settings");
  for (const auto& kv : root) {
    const auto key = kv.first.as<std::string>();
    const auto pos =
        std::to_string(kv.first.Mark().line + 1) + ":" + std::to_string(kv.first.Mark().column + 1);
    auto it = setters().find(key);
    if (it == setters().end()) return bad(path + ":" + pos + ": unknown setting \"" + key + "\"");
    std::vector<std::string> values;
    if (kv.second.IsSequence()) {
      for (const auto& v : kv.second)
        values.push_back(v.as<std::string>());
    } else if (kv.second.IsScalar()) {
      values.push_back(kv.second.as<std::string>());
    } else {
      return bad(path + ":" + pos + ": \"" + key + "\" must be a value or a list");
    }
    for (const auto& v : values)
      if (auto st = it->second(c, v); !st) return bad(path + ":" + pos + ": " + st.error().message);
  }
  return {};
}

}  // namespace

Result<AgentConfig> parseAgentArgs(const std::vector<std::string>& argv) {
  AgentConfig c;
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0) return bad("unexpected argument \"" + a + "\"");
    const auto eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::string value;
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
    } else if (isSwitch(name) && (i + 1 >= argv.size() || argv[i + 1].rfind("--", 0) == 0)) {
      value = "true";
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
    } else {
      return bad("--" + name + " needs a value");
    }
    if (name != "config" && !setters().count(name)) return bad("unknown flag --" + name);
    flags.emplace_back(name, value);
  }
  for (const auto& [name, value] : flags)
    if (name == "config") c.configFile = value;
  if (!c.configFile.empty())
    if (auto st = loadConfigFile(c.configFile, c); !st) return st.takeError();
  bool listenFromFlags = false, syslogFromFlags = false;
  for (const auto& [name, value] : flags) {
    if (name == "config") continue;
    if (name == "listen" && !listenFromFlags) {
      c.listen.clear();  // flags replace the file's list
      listenFromFlags = true;
    }
    if (name == "syslog" && !syslogFromFlags) {
      c.syslog.clear();
      syslogFromFlags = true;
    }
    if (auto st = setters().at(name)(c, value); !st) return st.takeError();
  }
  if (c.listen.empty()) c.listen.push_back(kDefaultListen);
  return c;
}

}  // namespace bulkhead::agent
