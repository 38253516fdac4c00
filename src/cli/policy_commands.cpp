// validate, plan and push (docs/cli.md): the policy bundle, checked locally,
// compiled for show, or sent to agents.
#include <algorithm>
#include <charconv>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>

#include "agent_connection.h"
#include "bulkhead/compiler/compiler.h"
#include "bulkhead/compiler/render.h"
#include "bulkhead/policy/loader.h"
#include "command_groups.h"
#include "output.h"

namespace bulkhead::cli {

namespace {

void printDiagnostics(const policy::LoadResult& r, std::ostream& err) {
  for (const auto& d : r.errors)
    err << d.toString() << "\n";
  for (const auto& d : r.warnings)
    err << "warning: " << d.toString() << "\n";
}

// plan's --table, --log-group and --workload-interfaces.
bool readPlanOptions(const Args& args, compiler::CompileOptions* options, std::ostream& err) {
  options->table = args.get("--table", options->table);
  if (!policy::isValidName(options->table)) {
    err << "bulkhead plan: --table: not a valid table name\n";
    return false;
  }
  if (args.has("--log-group")) {
    const std::string g = args.get("--log-group");
    unsigned v = 0;
    auto [p, ec] = std::from_chars(g.data(), g.data() + g.size(), v);
    if (ec != std::errc() || p != g.data() + g.size() || v > 65535) {
      err << "bulkhead plan: --log-group must be 0-65535\n";
      return false;
    }
    options->logGroup = uint16_t(v);
  }
  if (!args.has("--workload-interfaces")) return true;
  for (const auto& v : args.flags.at("--workload-interfaces")) {
    for (size_t start = 0; start <= v.size();) {
      const size_t comma = std::min(v.find(',', start), v.size());
      const std::string p = v.substr(start, comma - start);
      if (auto st = compiler::validateInterfacePattern(p); !st) {
        err << "bulkhead plan: --workload-interfaces: " << st.error().message << "\n";
        return false;
      }
      options->workloadInterfacePatterns.push_back(p);
      start = comma + 1;
    }
  }
  return true;
}

struct PushOutcome {
  int code = kExitOk;
  std::string out, err;
};

void printPushed(const std::string& address, const v1::ApplyPolicyRequest& request,
                 const v1::ApplyPolicyResponse& response, bool json, std::ostream& out) {
  if (json) {
    Json o = {{"agent", address},
              {"ok", true},
              {"version", response.version()},
              {"changed", response.changed()},
              {"dry_run", request.dry_run()},
              {"change", changeJson(response.change())},
              {"warnings", jsonStrings(response.warnings())}};
    if (request.dry_run()) o["plan"] = response.plan();
    out << jsonLine(o) << "\n";
  } else if (request.dry_run()) {
    if (response.changed())
      out << address << ": dry run: version " << response.version() << " would change the table ("
          << describeChange(response.change()) << ")\n";
    else
      out << address << ": dry run: version " << response.version()
          << " is already in force; unchanged\n";
  } else if (response.changed()) {
    out << address << ": applied version " << response.version() << " ("
        << describeChange(response.change()) << ")\n";
  } else {
    out << address << ": unchanged: version " << response.version() << " already in force\n";
  }
}

PushOutcome pushOne(const std::string& address, const AgentOptions& o,
                    const v1::ApplyPolicyRequest& request, const std::set<std::string>& known,
                    bool json) {
  PushOutcome r;
  std::ostringstream out, err;
  const Connection c = connect(address, o);
  v1::ApplyPolicyResponse response;
  const grpc::Status s = invoke(c, &v1::Agent::Stub::ApplyPolicy, request, &response, o.timeout);
  if (!s.ok()) {
    r.code = reportFailure(c, s, err);
    if (json)
      out << jsonLine({{"agent", address},
                       {"ok", false},
                       {"code", statusCodeName(s.error_code())},
                       {"error", s.error_message()}})
          << "\n";
  } else {
    for (const std::string& w : response.warnings())
      if (!known.count(w)) err << address << ": warning: " << w << "\n";
    printPushed(address, request, response, json, out);
  }
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace

int validateCommand(const Args& args, std::ostream& out, std::ostream& err) {
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

int planCommand(const Args& args, std::ostream& out, std::ostream& err) {
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
  if (!readPlanOptions(args, &options, err)) return kExitBadInput;
  auto rs = compiler::compile(r.bundle, extra, options);
  if (!rs) {
    err << "bulkhead plan: " << rs.error().describe() << "\n";
    return kExitBadInput;
  }
  out << compiler::renderRuleset(*rs);
  return kExitOk;
}

bool pushWordsOk(const Args& args, std::ostream& err) {
  if (args.words.size() < 2) {
    err << "bulkhead push: name at least one policy file or directory\n";
    return false;
  }
  if (args.has("--version") && args.get("--version").empty()) {
    err << "bulkhead push: --version needs a value\n";
    return false;
  }
  return true;
}

bool loadForPush(const Args& args, google::protobuf::RepeatedPtrField<v1::PolicyFile>* files,
                 std::set<std::string>* known, std::ostream& err) {
  std::vector<policy::Diagnostic> errors;
  const auto sources = policy::readSourceFiles({args.words.begin() + 1, args.words.end()}, errors);
  auto loaded = policy::loadFiles(sources);
  for (auto& e : loaded.errors)
    errors.push_back(std::move(e));
  for (const auto& e : errors)
    err << e.toString() << "\n";
  for (const auto& w : loaded.warnings) {
    known->insert(w.toString());
    err << "warning: " << w.toString() << "\n";
  }
  if (!errors.empty()) {
    err << "bulkhead push: " << errors.size() << " error(s); nothing sent\n";
    return false;
  }
  for (const auto& f : sources) {
    auto* pf = files->Add();
    pf->set_name(f.name);
    pf->set_content(f.content);
  }
  return true;
}

int pushCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                std::ostream& err) {
  if (!pushWordsOk(args, err)) return kExitBadInput;
  AgentOptions o;
  if (!readAgentOptions(args, envAgent, "push", &o, err)) return kExitBadInput;
  // Validate locally first: an invalid bundle is never sent.
  v1::ApplyPolicyRequest request;
  std::set<std::string> known;
  if (!loadForPush(args, request.mutable_files(), &known, err)) return kExitBadInput;
  request.set_version(args.get("--version"));
  request.set_dry_run(args.has("--dry-run"));
  const bool json = args.has("--json");

  // Every agent at once; reports in the order the agents were named.
  std::vector<PushOutcome> outcomes(o.addresses.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < o.addresses.size(); ++i)
    threads.emplace_back(
        [&, i] { outcomes[i] = pushOne(o.addresses[i], o, request, known, json); });
  for (auto& t : threads)
    t.join();
  int code = kExitOk;
  for (const auto& r : outcomes) {
    out << r.out;
    err << r.err;
    code = std::max(code, r.code);  // bad input (2) outranks runtime (1)
  }
  return code;
}

}  // namespace bulkhead::cli
