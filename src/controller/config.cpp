#include "bulkhead/controller/config.h"
#include "bulkhead/common/config_keys.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <functional>
#include <map>

#include "bulkhead/common/escape.h"

namespace bulkhead::controller {

namespace {

Error bad(const std::string& message) {
  return makeError(ErrorCode::kInvalidInput, message);
}

using Setter = std::function<Status(ControllerConfig&, const std::string&)>;

Setter path(std::string ControllerConfig::*field) {
  return [field](ControllerConfig& c, const std::string& v) -> Status {
    if (v.empty()) return bad("a path must not be empty");
    c.*field = v;
    return {};
  };
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> kSetters = {
      {"listen",
       [](ControllerConfig& c, const std::string& v) -> Status {
         auto e = common::parseEndpoint(v, kControllerListenSchemes, "--listen");
         if (!e) return e.takeError();
         c.listen = v;
         return {};
       }},
      {"tls-cert", path(&ControllerConfig::tlsCert)},
      {"tls-key", path(&ControllerConfig::tlsKey)},
      {"tls-client-ca", path(&ControllerConfig::tlsClientCa)},
      {"state-dir", path(&ControllerConfig::stateDir)},
      {"policies", path(&ControllerConfig::policiesDir)},
      {"host-ttl",
       [](ControllerConfig& c, const std::string& v) -> Status {
         uint32_t n = 0;
         auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
         if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n == 0 || n > 30 * 86400)
           return bad("--host-ttl: must be a number of seconds from 1 to 2592000");
         c.hostTtlSeconds = n;
         return {};
       }},
      {"max-bundle-bytes",
       [](ControllerConfig& c, const std::string& v) -> Status {
         uint32_t n = 0;
         auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
         if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n == 0 || n > (1u << 30))
           return bad("--max-bundle-bytes: must be a number from 1 to 1073741824");
         c.maxBundleBytes = n;
         return {};
       }},
  };
  return kSetters;
}

std::string at(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null()) return file + ":0:0";
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

Status loadConfigFile(const std::string& file, ControllerConfig& c) {
  try {
    const YAML::Node root = YAML::LoadFile(file);
    if (root.IsNull()) return {};
    if (!root.IsMap()) return bad(at(file, root.Mark()) + ": expected a map of settings");
    for (const auto& kv : root) {
      if (!kv.first.IsScalar())
        return bad(at(file, kv.first.Mark()) + ": a setting's name must be a plain word");
      const std::string name = kv.first.Scalar();
      auto it = setters().find(common::dashedKey(name));
      if (it == setters().end())
        return bad(at(file, kv.first.Mark()) + ": unknown setting \"" + escapeForLog(name) + "\"");
      if (!kv.second.IsScalar())
        return bad(at(file, kv.second.Mark()) + ": \"" + escapeForLog(name) + "\" must be a value");
      const std::string v = kv.second.Scalar();
      if (hasControlChars(v))
        return bad(at(file, kv.second.Mark()) + ": control characters are not allowed");
      if (auto st = it->second(c, v); !st)
        return bad(at(file, kv.second.Mark()) + ": " + st.error().message);
    }
  } catch (const YAML::BadFile&) {
    return bad(file + ": cannot read the config file");
  } catch (const YAML::Exception& e) {
    return bad(at(file, e.mark) + ": " + e.msg);
  }
  return {};
}

}  // namespace

Result<ControllerConfig> parseControllerArgs(const std::vector<std::string>& argv) {
  ControllerConfig c;
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0) return bad("unexpected argument \"" + escapeForLog(a) + "\"");
    const auto eq = a.find('=');
    const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (name != "config" && !setters().count(name))
      return bad("unknown flag --" + escapeForLog(name));
    if (eq != std::string::npos) {
      flags.emplace_back(name, a.substr(eq + 1));
    } else if (i + 1 < argv.size()) {
      flags.emplace_back(name, argv[++i]);
    } else {
      return bad("--" + escapeForLog(name) + " needs a value");
    }
  }
  for (const auto& [name, value] : flags)
    if (name == "config") c.configFile = value;
  if (!c.configFile.empty())
    if (auto st = loadConfigFile(c.configFile, c); !st) return st.takeError();
  for (const auto& [name, value] : flags) {
    if (name == "config") continue;
    if (auto st = setters().at(name)(c, value); !st) {
      if (st.error().message.rfind("--", 0) == 0) return st.takeError();
      return bad("--" + name + ": " + st.error().message);
    }
  }
  auto listen = common::parseEndpoint(c.listen, kControllerListenSchemes, "--listen");
  if (!listen) return listen.takeError();
  if (listen->scheme == common::Scheme::kTcp &&
      (c.tlsCert.empty() || c.tlsKey.empty() || c.tlsClientCa.empty()))
    return bad("--listen " + c.listen +
               ": TCP listeners need --tls-cert, --tls-key and --tls-client-ca (mutual TLS)");
  return c;
}

const char* controllerUsage() {
  return R"(usage: bulkhead-controller [--config FILE] [--listen tcp://HOST:PORT | unix:///PATH]
                           [--tls-cert F --tls-key F --tls-client-ca F]
                           [--state-dir DIR] [--policies DIR] [--host-ttl SECONDS]

Holds the fleet's policy bundle and every host's workloads; agents dial it
(bulkhead-agent --controller). See docs/controller.md.

  --config FILE          YAML settings; keys mirror the flags (flags win)
  --listen ENDPOINT      default tcp://0.0.0.0:7444; tcp:// is always mutual TLS
  --tls-cert FILE        the controller's certificate chain (PEM)
  --tls-key FILE         its private key (PEM)
  --tls-client-ca FILE   CA that signs the agents' and operators' certificates
  --state-dir DIR        bundle, revision and inventory (default /var/lib/bulkhead-controller)
  --policies DIR         bundle pushed at start when it differs from the stored one
  --host-ttl SECONDS     a host away longer has its workloads withdrawn (default 300)
  --max-bundle-bytes N   largest bundle accepted (default 67108864)
  --help, --version
)";
}

}  // namespace bulkhead::controller
