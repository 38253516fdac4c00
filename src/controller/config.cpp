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

// "http://HOST:PORT" or "https://HOST:PORT", comma-separated.
Status etcdEndpoints(ControllerConfig& c, const std::string& v) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = v.find(',', start);
    const std::string url = v.substr(start, comma == std::string::npos ? comma : comma - start);
    const size_t scheme = url.find("://");
    const std::string s = scheme == std::string::npos ? "" : url.substr(0, scheme);
    const std::string rest = scheme == std::string::npos ? "" : url.substr(scheme + 3);
    const size_t colon = rest.rfind(':');
    if ((s != "http" && s != "https") || colon == std::string::npos || colon == 0 ||
        colon + 1 == rest.size() ||
        rest.find_first_not_of("0123456789", colon + 1) != std::string::npos ||
        rest.find('/') != std::string::npos)
      return bad("--etcd: \"" + escapeForLog(url) +
                 "\" is not http://HOST:PORT or https://HOST:PORT");
    out.push_back(url);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  c.etcdEndpoints = std::move(out);
  return {};
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
      {"state-dir",
       [](ControllerConfig& c, const std::string& v) -> Status {
         if (v.empty()) return bad("a path must not be empty");
         c.stateDir = v;
         c.stateDirSet = true;
         return {};
       }},
      {"etcd", etcdEndpoints},
      {"etcd-ca", path(&ControllerConfig::etcdCa)},
      {"etcd-cert", path(&ControllerConfig::etcdCert)},
      {"etcd-key", path(&ControllerConfig::etcdKey)},
      {"etcd-prefix",
       [](ControllerConfig& c, const std::string& v) -> Status {
         if (v.empty() || v.front() != '/' || v.back() != '/' || v.size() > 256)
           return bad("--etcd-prefix: must start and end with '/' (e.g. /bulkhead/)");
         c.etcdPrefix = v;
         return {};
       }},
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
  if (!c.etcdEndpoints.empty() && c.stateDirSet)
    return bad("--etcd and --state-dir exclude each other: the store is etcd or the directory");
  if (c.etcdCert.empty() != c.etcdKey.empty())
    return bad("--etcd-cert and --etcd-key go together (etcd's client certificate and key)");
  if (c.etcdEndpoints.empty() && (!c.etcdCa.empty() || !c.etcdCert.empty()))
    return bad("--etcd-ca, --etcd-cert and --etcd-key need --etcd");
  return c;
}

const char* controllerUsage() {
  return R"(usage: bulkhead-controller [--config FILE] [--listen tcp://HOST:PORT | unix:///PATH]
                           [--tls-cert F --tls-key F --tls-client-ca F]
                           [--state-dir DIR | --etcd URL[,URL...] [--etcd-ca F]
                            [--etcd-cert F --etcd-key F] [--etcd-prefix /bulkhead/]]
                           [--policies DIR] [--host-ttl SECONDS]

Holds the fleet's policy bundle and every host's workloads; agents dial it
(bulkhead-agent --controller). See docs/controller.md.

  --config FILE          YAML settings; keys mirror the flags (flags win)
  --listen ENDPOINT      default tcp://0.0.0.0:7444; tcp:// is always mutual TLS
  --tls-cert FILE        the controller's certificate chain (PEM)
  --tls-key FILE         its private key (PEM)
  --tls-client-ca FILE   CA that signs the agents' and operators' certificates
  --state-dir DIR        bundle, revision and inventory (default /var/lib/bulkhead-controller)
  --etcd URLS            etcd v3 endpoints (http:// or https://, comma-separated):
                         the shared store of several controllers, instead of --state-dir
  --etcd-ca FILE         CA of etcd's server certificates (https://)
  --etcd-cert FILE       client certificate towards etcd (PEM), with --etcd-key
  --etcd-key FILE        its private key (PEM)
  --etcd-prefix PREFIX   keys under this prefix (default /bulkhead/)
  --policies DIR         bundle pushed at start when it differs from the stored one
  --host-ttl SECONDS     a host away longer has its workloads withdrawn (default 300)
  --max-bundle-bytes N   largest bundle accepted (default 67108864)
  --help, --version
)";
}

}  // namespace bulkhead::controller
