#include "bulkhead/cli/commands.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <ostream>
#include <set>

#include "bulkhead/cli/client.h"
#include "bulkhead/cli/help.h"
#include "bulkhead/cli/insight.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/render.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::cli {

namespace {

enum class FlagValue { kNone, kRequired, kOptional };

// Flags and whether they take a value. "--version" alone prints the program's
// version; "push --version V" names the bundle's version, so its value is
// optional: the next argument, unless that is a flag.
const std::map<std::string, FlagValue> kFlags = {
    {"--agent", FlagValue::kRequired},
    {"--workloads", FlagValue::kRequired},
    {"--table", FlagValue::kRequired},
    {"--log-group", FlagValue::kRequired},
    {"--workload-interfaces", FlagValue::kRequired},
    {"--json", FlagValue::kNone},
    {"--help", FlagValue::kNone},
    {"--version", FlagValue::kOptional},
    {"--dry-run", FlagValue::kNone},
    {"--follow", FlagValue::kNone},
    {"--release", FlagValue::kNone},
    {"--app", FlagValue::kRequired},
    {"--workload", FlagValue::kRequired},
    {"--iface", FlagValue::kRequired},
    {"--addr", FlagValue::kRequired},
    {"--label", FlagValue::kRequired},
    {"--tls-ca", FlagValue::kRequired},
    {"--tls-cert", FlagValue::kRequired},
    {"--tls-key", FlagValue::kRequired},
    {"--tls-server-name", FlagValue::kRequired},
    {"--timeout", FlagValue::kRequired},
    {"--policies", FlagValue::kRequired},
    {"--since", FlagValue::kRequired},
    {"--max-rules", FlagValue::kRequired},
    {"--output", FlagValue::kRequired},
    {"--flows", FlagValue::kRequired},
    {"--format", FlagValue::kRequired},
};

void printDiagnostics(const policy::LoadResult& r, std::ostream& err) {
  for (const auto& d : r.errors)
    err << d.toString() << "\n";
  for (const auto& d : r.warnings)
    err << "warning: " << d.toString() << "\n";
}

int validate(const Args& args, std::ostream& out, std::ostream& err) {
  if (args.words.size() < 2) {
    err << "bulkhead validate: name at least one policy file or directory\n";
    return kExitBadInput;
  }
  const auto r = policy::loadPaths({args.words.begin() + 1, args.words.end()});
  printDiagnostics(r, err);
  if (!r.ok()) {
    err << "bulkhead validate: " << r.errors.size() << " error(s); nothing is valid\n";
    return kExitBadInput;
  }
  out << "valid: " << r.bundle.services.size() << " services, " << r.bundle.apps.size() << " apps, "
      << r.bundle.globalPolicies.size() << " global policies, " << r.bundle.workloads.size()
      << " workloads\n";
  return kExitOk;
}

int plan(const Args& args, std::ostream& out, std::ostream& err) {
  if (args.words.size() < 2) {
    err << "bulkhead plan: name at least one policy file or directory\n";
    return kExitBadInput;
  }
  auto r = policy::loadPaths({args.words.begin() + 1, args.words.end()});
  std::vector<policy::Workload> extra;
  if (args.has("--workloads")) {
    auto w = policy::loadPaths(args.flags.at("--workloads"));
    for (const auto& d : w.errors)
      r.errors.push_back(d);
    const bool other =
        !w.bundle.services.empty() || !w.bundle.apps.empty() || !w.bundle.globalPolicies.empty();
    if (other)
      r.errors.push_back(
          {{args.get("--workloads"), 0, 0}, "--workloads takes Workload documents only"});
    extra = std::move(w.bundle.workloads);
  }
  printDiagnostics(r, err);
  if (!r.ok()) return kExitBadInput;

  compiler::CompileOptions options;
  options.table = args.get("--table", options.table);
  if (!policy::isValidName(options.table)) {
    err << "bulkhead plan: --table: not a valid table name\n";
    return kExitBadInput;
  }
  if (args.has("--log-group")) {
    const std::string g = args.get("--log-group");
    unsigned v = 0;
    auto [p, ec] = std::from_chars(g.data(), g.data() + g.size(), v);
    if (ec != std::errc() || p != g.data() + g.size() || v > 65535) {
      err << "bulkhead plan: --log-group must be 0-65535\n";
      return kExitBadInput;
    }
    options.logGroup = uint16_t(v);
  }
  if (args.has("--workload-interfaces")) {
    for (const auto& v : args.flags.at("--workload-interfaces")) {
      for (size_t start = 0; start <= v.size();) {
        const size_t comma = std::min(v.find(',', start), v.size());
        const std::string p = v.substr(start, comma - start);
        if (auto st = compiler::validateInterfacePattern(p); !st) {
          err << "bulkhead plan: --workload-interfaces: " << st.error().message << "\n";
          return kExitBadInput;
        }
        options.workloadInterfacePatterns.push_back(p);
        start = comma + 1;
      }
    }
  }
  auto rs = compiler::compile(r.bundle, extra, options);
  if (!rs) {
    err << "bulkhead plan: " << rs.error().describe() << "\n";
    return kExitBadInput;
  }
  out << compiler::renderRuleset(*rs);
  return kExitOk;
}

}  // namespace

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  auto it = flags.find(flag);
  return it == flags.end() || it->second.empty() ? fallback : it->second.back();
}

bool parseArgs(const std::vector<std::string>& argv, Args* out, std::string* error) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string a = argv[i] == "-o" ? std::string("--output") : argv[i];
    if (a.size() < 2 || a.compare(0, 2, "--") != 0) {
      out->words.push_back(a);
      continue;
    }
    const auto eq = a.find('=');
    const std::string name = a.substr(0, eq);
    auto it = kFlags.find(name);
    if (it == kFlags.end()) {
      *error = "unknown flag " + name;
      return false;
    }
    if (it->second == FlagValue::kOptional && eq == std::string::npos) {
      auto& values = out->flags[name];
      if (i + 1 < argv.size() && !argv[i + 1].empty() && argv[i + 1][0] != '-')
        values.push_back(argv[++i]);
      continue;
    }
    if (it->second == FlagValue::kNone) {
      if (eq != std::string::npos) {
        *error = name + " takes no value";
        return false;
      }
      out->flags[name];
      continue;
    }
    if (eq != std::string::npos) {
      out->flags[name].push_back(a.substr(eq + 1));
    } else if (i + 1 < argv.size()) {
      out->flags[name].push_back(argv[++i]);
    } else {
      *error = name + " needs a value";
      return false;
    }
  }
  return true;
}

int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  Args args;
  std::string error;
  if (!parseArgs(argv, &args, &error)) {
    err << "bulkhead: " << error << "\n" << usage();
    return kExitBadInput;
  }
  // "push --version V" names the bundle; anywhere else "--version" asks for ours.
  if (args.has("--version") && (args.words.empty() || args.words[0] != "push")) {
    out << "bulkhead 0.1.0\n";
    return kExitOk;
  }
  if (args.has("--help") && !args.words.empty() && !commandHelp(args.words[0]).empty()) {
    out << commandHelp(args.words[0]);
    return kExitOk;
  }
  if (args.has("--help") || args.words.empty()) {
    (args.words.empty() && !args.has("--help") ? err : out) << usage();
    return args.has("--help") ? kExitOk : kExitBadInput;
  }
  const std::string& cmd = args.words[0];
  if (cmd == "validate") return validate(args, out, err);
  if (cmd == "plan") return plan(args, out, err);
  if (cmd == "graph") return graphCommand(args, out, err);
  if (cmd == "suggest") {
    const char* env = std::getenv("BULKHEAD_AGENT");
    return suggestCommand(args, env ? env : "", out, err);
  }
  if (isClientCommand(cmd)) {
    const char* env = std::getenv("BULKHEAD_AGENT");
    return runClientCommand(args, env ? env : "", out, err);
  }
  err << "bulkhead: unknown command \"" << cmd << "\"\n" << usage();
  return kExitBadInput;
}

}  // namespace bulkhead::cli
