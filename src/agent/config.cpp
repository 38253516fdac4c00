#include "bulkhead/agent/config.h"
#include "bulkhead/common/config_keys.h"

#include <grp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>

#include "bulkhead/common/endpoint.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/flows/exporter.h"
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

// How one key's value is read and stored; shared by flags and the config
// file. `flag` ("--key") names the setting in messages.
using Setter = std::function<Status(AgentConfig&, const std::string& flag, const std::string& v)>;

// The value as it is (a path, a PEM file, a directory).
Setter text(std::string AgentConfig::*field) {
  return [field](AgentConfig& c, const std::string&, const std::string& v) -> Status {
    c.*field = v;
    return {};
  };
}

// A number from 0 to max.
Setter number(uint32_t max, uint32_t AgentConfig::*field) {
  return [max, field](AgentConfig& c, const std::string& flag, const std::string& v) {
    return parseUint(flag, v, max, &(c.*field));
  };
}

// A number from 1 to max.
Setter positive(uint32_t max, uint32_t AgentConfig::*field) {
  return [max, field](AgentConfig& c, const std::string& flag, const std::string& v) {
    return parseAtLeastOne(flag, v, max, &(c.*field));
  };
}

Setter onOff(bool AgentConfig::*field) {
  return [field](AgentConfig& c, const std::string& flag, const std::string& v) {
    return parseBool(flag, v, &(c.*field));
  };
}

// Calls `each` for every item of "ITEM[,ITEM...]", empty items included.
Status forEachListed(const std::string& v, const std::function<Status(std::string)>& each) {
  for (size_t start = 0; start <= v.size();) {
    const size_t comma = std::min(v.find(',', start), v.size());
    if (auto st = each(v.substr(start, comma - start)); !st) return st;
    start = comma + 1;
  }
  return {};
}

Status setListen(AgentConfig& c, const std::string& flag, const std::string& v) {
  auto endpoint = common::parseEndpoint(v, kListenSchemes, flag);
  if (!endpoint) return endpoint.takeError();
  c.listen.push_back(v);
  return {};
}

Status setSyslog(AgentConfig& c, const std::string& flag, const std::string& v) {
  auto endpoint = common::parseEndpoint(v, flows::kFlowTargetSchemes, flag);
  if (!endpoint) return endpoint.takeError();
  c.syslog.push_back(v);
  return {};
}

// URL[,URL...]; repeatable, and a list in the config file.
Status setControllers(AgentConfig& c, const std::string& flag, const std::string& v) {
  return forEachListed(v, [&](std::string url) -> Status {
    auto endpoint = common::parseEndpoint(url, kControllerSchemes, flag);
    if (!endpoint) return endpoint.takeError();
    c.controllers.push_back(std::move(url));
    return {};
  });
}

Status setTable(AgentConfig& c, const std::string& flag, const std::string& v) {
  if (!policy::isValidName(v))
    return bad(flag + ": not a valid table name: \"" + escapeForLog(v) + "\"");
  c.table = v;
  return {};
}

Status setLogGroup(AgentConfig& c, const std::string& flag, const std::string& v) {
  uint32_t n = 0;
  if (auto st = parseUint(flag, v, 65535, &n); !st) return st;
  c.logGroup = uint16_t(n);
  return {};
}

// Given in bytes; kept within what one gRPC message can carry.
Status setMaxBundleBytes(AgentConfig& c, const std::string& flag, const std::string& v) {
  uint32_t bytes = 0;
  auto st = parseUint(flag, v, 1u << 30, &bytes);
  if (st) c.maxBundleBytes = bytes;
  return st;
}

Status setFlowFormat(AgentConfig& c, const std::string& flag, const std::string& v) {
  if (v != "rfc5424" && v != "json" && v != "cef")
    return bad(flag + ": expected rfc5424, json or cef");
  c.flowFormat = v;
  return {};
}

// Only the form here: whether the host knows the group is checkHostNames()'s
// (a config written for hosts with the package's group must parse anywhere).
Status setSocketGroup(AgentConfig& c, const std::string& flag, const std::string& v) {
  if (v.empty() || v.size() > 32 || v.find_first_of(":/ \t\n") != std::string::npos)
    return bad(flag + ": not a group name: \"" + v + "\"");
  c.socketGroup = v;
  return {};
}

// NAME[,NAME...] (DNS or URI names, or CNs), blanks around each trimmed;
// repeatable, and a list in the config file.
Status setTlsAllowedNames(AgentConfig& c, const std::string& flag, const std::string& v) {
  return forEachListed(v, [&](std::string name) -> Status {
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    const bool control = std::any_of(name.begin(), name.end(), [](char ch) {
      return uint8_t(ch) < 0x20 || uint8_t(ch) == 0x7f;
    });
    if (name.empty() || name.size() > 1024 || control)
      return bad(flag + ": expected NAME[,NAME...] (DNS or URI names, or CNs)");
    c.tlsAllowedNames.push_back(std::move(name));
    return {};
  });
}

// PATTERN[,PATTERN...]; repeated flags and config lists add up.
Status setWorkloadInterfaces(AgentConfig& c, const std::string& flag, const std::string& v) {
  return forEachListed(v, [&](std::string pattern) -> Status {
    if (auto st = compiler::validateInterfacePattern(pattern); !st)
      return bad(flag + ": " + st.error().message);
    c.workloadInterfaces.push_back(std::move(pattern));
    return {};
  });
}

// What a certificate's DNS name can say: the controller compares the two.
Status setHost(AgentConfig& c, const std::string& flag, const std::string& v) {
  const bool ok = !v.empty() && v.size() <= 253 && v.front() != '-' &&
                  std::all_of(v.begin(), v.end(), [](char ch) {
                    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                           (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
                  });
  if (!ok)
    return bad(flag + ": \"" + escapeForLog(v) +
               "\" is not a host name (1-253 letters, digits, '-', '_', '.')");
  c.host = v;
  return {};
}

Status setDriftEvents(AgentConfig& c, const std::string& flag, const std::string& v) {
  if (v != "true" && v != "false") return bad(flag + ": expected true or false");
  c.driftEvents = v == "true";
  return {};
}

// Every key the agent takes, as a flag ("--key") or in the config file.
const std::map<std::string, Setter>& setters() {
  using C = AgentConfig;
  static const std::map<std::string, Setter> kSetters = {
      {"listen", setListen},
      {"tls-cert", text(&C::tlsCert)},
      {"tls-key", text(&C::tlsKey)},
      {"tls-client-ca", text(&C::tlsClientCa)},
      {"tls-allowed-names", setTlsAllowedNames},
      {"socket-group", setSocketGroup},
      {"state-dir", text(&C::stateDir)},
      {"table", setTable},
      {"policies", text(&C::policiesDir)},
      {"max-bundle-bytes", setMaxBundleBytes},
      {"workload-interfaces", setWorkloadInterfaces},
      {"resync-seconds", number(86400, &C::resyncSeconds)},
      {"drift-events", setDriftEvents},
      {"log-group", setLogGroup},
      {"log-rate", positive(1000000, &C::logRate)},
      {"flow-workload-rate", positive(1000000, &C::flowWorkloadRate)},
      {"flow-summary-seconds", positive(86400, &C::flowSummarySeconds)},
      {"flow-format", setFlowFormat},
      {"syslog", setSyslog},
      {"syslog-tls-ca", text(&C::syslogTlsCa)},
      {"syslog-tls-cert", text(&C::syslogTlsCert)},
      {"syslog-tls-key", text(&C::syslogTlsKey)},
      {"scan-detection", onOff(&C::scanDetection)},
      {"auto-quarantine", onOff(&C::autoQuarantine)},
      {"scan-hosts", positive(65536, &C::scanHosts)},
      {"scan-ports", positive(65536, &C::scanPorts)},
      {"scan-window", positive(86400, &C::scanWindowSeconds)},
      {"quarantine-seconds", positive(30 * 86400, &C::quarantineSeconds)},
      {"controller", setControllers},
      {"controller-ca", text(&C::controllerCa)},
      {"controller-cert", text(&C::controllerCert)},
      {"controller-key", text(&C::controllerKey)},
      {"host", setHost},
  };
  return kSetters;
}

std::string at(const std::string& path, const YAML::Mark& mark) {
  if (mark.is_null()) return path + ":0:0";
  return path + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// Every node a setting may hold: a scalar, or a list of scalars. Anything
// else (a map, a nested list, null, a non-scalar key) is refused with its
// position, never thrown at the caller.
Status applySetting(const std::string& path, const YAML::Node& key, const YAML::Node& value,
                    AgentConfig& c) {
  if (!key.IsScalar()) return bad(at(path, key.Mark()) + ": a setting's name must be a plain word");
  const std::string name = key.Scalar();
  auto it = setters().find(common::dashedKey(name));
  if (it == setters().end() ||
      (name.find('-') != std::string::npos && common::dashedKey(name) != name))
    return bad(at(path, key.Mark()) + ": unknown setting \"" + escapeForLog(name) + "\"");
  std::vector<std::pair<std::string, YAML::Mark>> values;
  if (value.IsSequence()) {
    for (const auto& v : value) {
      if (!v.IsScalar())
        return bad(at(path, v.Mark()) + ": \"" + name + "\" must be a value or a list of values");
      values.emplace_back(v.Scalar(), v.Mark());
    }
  } else if (value.IsScalar()) {
    values.emplace_back(value.Scalar(), value.Mark());
  } else {
    return bad(at(path, value.IsNull() ? key.Mark() : value.Mark()) + ": \"" + name +
               "\" must be a value or a list of values");
  }
  for (const auto& [v, mark] : values) {
    if (hasControlChars(v))
      return bad(at(path, mark) + ": \"" + name + "\": control characters are not allowed");
    if (auto st = it->second(c, "--" + it->first, v); !st)
      return bad(at(path, mark) + ": " + st.error().message);
  }
  return {};
}

Status loadConfigFile(const std::string& path, AgentConfig& c) {
  try {
    const YAML::Node root = YAML::LoadFile(path);
    if (root.IsNull()) return {};
    if (!root.IsMap()) return bad(at(path, root.Mark()) + ": expected a map of settings");
    for (const auto& kv : root)
      if (auto st = applySetting(path, kv.first, kv.second, c); !st) return st;
  } catch (const YAML::BadFile&) {
    return bad(path + ": cannot read the config file");
  } catch (const YAML::Exception& e) {
    return bad(at(path, e.mark) + ": " + e.msg);
  } catch (const std::exception& e) {
    return bad(path + ":0:0: " + e.what());
  }
  return {};
}

// The controller settings together: TLS for every tcp:// controller.
Status checkControllerSettings(const AgentConfig& c) {
  const bool anyTls =
      !c.controllerCa.empty() || !c.controllerCert.empty() || !c.controllerKey.empty();
  if (c.controllers.empty()) {
    if (anyTls) return bad("--controller-ca, --controller-cert, --controller-key: no --controller");
    return {};
  }
  for (const auto& url : c.controllers) {
    if (url.rfind("tcp://", 0) != 0) continue;
    if (c.controllerCa.empty() || c.controllerCert.empty() || c.controllerKey.empty())
      return bad("--controller " + escapeForLog(url) +
                 ": TCP is always TLS; give --controller-ca (the CA of the controller's "
                 "certificate), --controller-cert and --controller-key (this agent's)");
  }
  if (c.controllerCert.empty() != c.controllerKey.empty())
    return bad("--controller-cert and --controller-key go together");
  return {};
}

}  // namespace

Result<AgentConfig> parseAgentArgs(const std::vector<std::string>& argv) {
  AgentConfig c;
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0) return bad("unexpected argument \"" + escapeForLog(a) + "\"");
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
      return bad("--" + escapeForLog(name) + " needs a value");
    }
    if (name != "config" && !setters().count(name))
      return bad("unknown flag --" + escapeForLog(name));
    flags.emplace_back(name, value);
  }
  for (const auto& [name, value] : flags)
    if (name == "config") c.configFile = value;
  if (!c.configFile.empty())
    if (auto st = loadConfigFile(c.configFile, c); !st) return st.takeError();
  bool listenFromFlags = false, syslogFromFlags = false, namesFromFlags = false,
       controllersFromFlags = false;
  for (const auto& [name, value] : flags) {
    if (name == "config") continue;
    if (name == "listen" && !listenFromFlags) {
      c.listen.clear();  // flags replace the file's list
      listenFromFlags = true;
    }
    if (name == "tls-allowed-names" && !namesFromFlags) {
      c.tlsAllowedNames.clear();
      namesFromFlags = true;
    }
    if (name == "controller" && !controllersFromFlags) {
      c.controllers.clear();
      controllersFromFlags = true;
    }
    if (name == "syslog" && !syslogFromFlags) {
      c.syslog.clear();
      syslogFromFlags = true;
    }
    if (auto st = setters().at(name)(c, "--" + name, value); !st) return st.takeError();
  }
  if (c.listen.empty()) c.listen.push_back(kDefaultListen);
  if (auto st = checkControllerSettings(c); !st) return st.takeError();
  return c;
}

Status checkHostNames(const AgentConfig& config) {
  if (!config.socketGroup.empty() && ::getgrnam(config.socketGroup.c_str()) == nullptr)
    return bad("--socket-group: no group named \"" + config.socketGroup + "\" on this host");
  return {};
}

}  // namespace bulkhead::agent
