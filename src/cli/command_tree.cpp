#include "command_tree.h"

#include "bulkhead/common/agent_address.h"
#include "help_format.h"

namespace bulkhead::cli {

namespace {

using Policy = CLI::MultiOptionPolicy;

CLI::App* command(CLI::App& parent, const std::string& name, const std::string& summary,
                  const std::string& text) {
  CLI::App* c = parent.add_subcommand(name, summary);
  c->footer(text);
  return c;
}

// The command's words, shown as `metavar` in its usage; "" when it takes none.
void words(CLI::App* c, const std::string& metavar) {
  // At least one expected: with none, CLI11 hands the words after "--" back
  // to the parent command instead of this one.
  CLI::Option* o = c->add_option(kWords, "the command's words")
                       ->expected(1, CLI::detail::expected_max_vector_size)
                       ->allow_extra_args()
                       ->type_name(metavar);
  if (metavar.empty()) o->group("");
}

CLI::Option* flag(CLI::App* c, const std::string& name, const std::string& description) {
  return c->add_flag(name)->description(description)->group(kOwnGroup);
}

// A flag with a value; given twice, the last one counts.
CLI::Option* value(CLI::App* c, const std::string& name, const std::string& metavar,
                   const std::string& description) {
  return c->add_option(name, description)
      ->type_name(metavar)
      ->multi_option_policy(Policy::TakeLast)
      ->group(kOwnGroup);
}

// A flag that may be repeated: every value counts.
CLI::Option* values(CLI::App* c, const std::string& name, const std::string& metavar,
                    const std::string& description) {
  return value(c, name, metavar, description)->multi_option_policy(Policy::TakeAll);
}

enum class Agents { kOne, kSeveral };

// push, status and workload ls: also served by a controller.
void controllerFlag(CLI::App* c) {
  value(c, "--controller", "URL",
        "talk to this bulkhead-controller instead of an agent: unix:///path or "
        "tcp://host:port; default $BULKHEAD_CONTROLLER unless --agent is given");
}

void agentFlags(CLI::App* c, Agents agents) {
  const std::string where = std::string(
                                "unix:///path or tcp://host:port; default $BULKHEAD_AGENT, "
                                "else ") +
                            common::kDefaultAgent;
  if (agents == Agents::kSeveral)
    values(c, "--agent", "ADDR", "an agent, repeatable: push to several at once; " + where);
  else
    value(c, "--agent", "ADDR", where)->group(kAgentGroup);
  value(c, "--tls-ca", "FILE", "PEM CA that signed the agent's certificate (required for tcp://)")
      ->group(kAgentGroup);
  value(c, "--tls-cert", "FILE",
        "PEM client certificate (with --tls-key) for the agent's mutual TLS")
      ->group(kAgentGroup);
  value(c, "--tls-key", "FILE", "its PEM private key")->group(kAgentGroup);
  value(c, "--tls-server-name", "N",
        "name to expect in the agent's certificate (default: host of ADDR)")
      ->group(kAgentGroup);
  value(c, "--timeout", "SECONDS", "deadline of each call, 1-86400 (default 30)")
      ->group(kAgentGroup);
}

void addValidate(CLI::App& app) {
  CLI::App* c =
      command(app, "validate", "check policy files; exit 2 with file:line:col errors",
              R"(Loads the policy files (directories recursively, *.yaml and *.yml, sorted by
path) as one bundle and checks it. Prints "valid: N services, N apps, N
global policies, N workloads", or every error as file:line:column: message
on stderr and exits 2. Warnings do not fail. Needs no root and no agent.)");
  words(c, "PATH...");
}

void addPlan(CLI::App& app) {
  CLI::App* c =
      command(app, "plan", "print the nftables ruleset it would apply (no root, no agent)",
              "Prints the nftables ruleset (nft syntax) an agent would apply for the bundle.\n"
              "Needs no root and no agent.");
  words(c, "PATH...");
  values(c, "--workloads", "FILE", "Workload documents added as if registered through the API");
  value(c, "--table", "NAME", "table name, inet NAME (default bulkhead)");
  value(c, "--log-group", "N", "NFLOG group of the logging rules, 0-65535 (default 1771)");
  values(c, "--workload-interfaces", "PATTERN[,PATTERN...]",
         "as the agent's flag: interfaces of these names that no workload registered are "
         "dropped (e.g. veth*,vnet*)");
}

void addPush(CLI::App& app) {
  CLI::App* c =
      command(app, "push", "validate, then send the bundle to each agent",
              R"(Validates the bundle locally (nothing is sent if it is invalid), then sends it
to every --agent at once and prints one line per agent: the version applied,
unchanged, or the error. The exit code is the worst of the agents'.
With --controller, sends it to the controller instead, which stores it under
its next revision and rolls it out to every host; --wait follows the rollout
and exits 1 naming each host that did not apply it.)");
  words(c, "PATH...");
  agentFlags(c, Agents::kSeveral);
  value(c, "--version", "V", "the bundle's version (default: sha256 of its files)");
  flag(c, "--dry-run", "ask each agent what would change; change nothing");
  flag(c, "--json", "one JSON object per agent per line");
  controllerFlag(c);
  flag(c, "--wait",
       "with --controller: wait until every host acked the revision (--timeout, default 60); "
       "exit 1 naming those that did not");
}

void addWorkload(CLI::App& app) {
  CLI::App* w = command(app, "workload", "register, remove and list workloads",
                        R"(add registers (or replaces, by name) a workload: its app, its host-side
interfaces (a container's veth, a VM's tap) and its addresses (IPv4 or IPv6).
rm removes a workload registered through the API (unknown name: exit 2).
ls lists every workload, from the API and from the bundle, and those of
other hosts a controller sent (source remote); with --controller, the
fleet's workloads with their hosts.)");
  words(w, "");
  CLI::App* add = command(*w, "add", "register (or replace) a workload", "");
  words(add, "NAME");
  value(add, "--app", "APP", "the workload's app (exactly once)")->required();
  values(add, "--iface", "IF", "a host-side interface (1-16)")->required();
  values(add, "--addr", "IP", "an address of the workload (1-64)")->required();
  values(add, "--label", "KEY=VALUE", "a label (repeatable)");
  agentFlags(add, Agents::kOne);
  CLI::App* rm = command(*w, "rm", "remove a workload registered through the API", "");
  words(rm, "NAME");
  agentFlags(rm, Agents::kOne);
  CLI::App* ls = command(*w, "ls", "list every workload", "");
  words(ls, "");
  flag(ls, "--json", "JSON output");
  controllerFlag(ls);
  agentFlags(ls, Agents::kOne);
}

void addStatus(CLI::App& app) {
  CLI::App* c = command(app, "status", "the agent's policy version, table, counters, latencies",
                        R"(The agent's policy version and when it was applied, its table, policy and
ruleset counts, push and workload-change latencies, drift repairs, the flow
feed's counters and the last error. With --controller, the fleet: every
host, connected or not, the revision it acked, its workloads, its last
error and its lag.)");
  words(c, "");
  flag(c, "--json", "one JSON object; every count an integer");
  controllerFlag(c);
  agentFlags(c, Agents::kOne);
}

void addQuarantine(CLI::App& app) {
  CLI::App* q = command(app, "quarantine", "drop everything a workload sends (or release it)",
                        R"(Quarantines a workload: everything it sends is logged and dropped before
connection tracking, and its live connections are cut. With --release,
releases it. Quarantine is remembered across pushes and agent restarts.
`quarantine ls` lists the quarantines in force: who, why (manual, or
auto/scan/... by the agent's scan detection), since and until.)");
  words(q, "NAME");
  flag(q, "--release", "lift the quarantine");
  agentFlags(q, Agents::kOne);
  CLI::App* ls = command(*q, "ls", "quarantines in force: who, why, since, until", "");
  words(ls, "");
  flag(ls, "--json", "one JSON object");
  agentFlags(ls, Agents::kOne);
}

void addFlows(CLI::App& app) {
  CLI::App* c =
      command(app, "flows", "denied flows as the agent exports them",
              R"(Denied (and audited) flows as the agent exports them, one per line. Without
--follow, prints what arrives within one second.)");
  words(c, "");
  flag(c, "--follow", "keep printing until interrupted");
  flag(c, "--json", "one JSON object per line");
  value(c, "--app", "APP", "only this app's flows");
  value(c, "--workload", "NAME", "only this workload's flows");
  agentFlags(c, Agents::kOne);
}

void addSuggest(CLI::App& app) {
  CLI::App* c = command(app, "suggest", "egress policy from observed flows",
                        R"(Egress policy from observed flows: the flow events of FLOWS.jsonl (the
agent's json format; - reads standard input), or what the agent exports
for --since. Prints, as YAML, the complete App document of each app with
flows (its existing egress kept, additions marked) and any new Service,
naming existing Services and Apps first; never broader than what was seen.
Each rule carries its evidence as a comment. Deterministic.)");
  words(c, "[FLOWS.jsonl...]");
  value(c, "--since", "DURATION", "with --agent: how long to listen (90s, 10m, 1h; default 10m)");
  values(c, "--policies", "DIR", "the bundle in force (repeatable), to name what exists");
  value(c, "--app", "APP", "only this app");
  value(c, "--max-rules", "N", "rules per app; the rest are listed commented out (default 20)");
  value(c, "-o,--output", "FILE", "write the YAML there");
  agentFlags(c, Agents::kOne);
}

void addGraph(CLI::App& app) {
  CLI::App* c = command(app, "graph", "who may reach whom, and what was denied",
                        R"(Apps, services and external networks as nodes; edges for what the policy
allows (solid), what GlobalPolicies forbid (dashed) and, with --flows, what
was observed and denied (red, with counts). SVG through Graphviz's dot.)");
  words(c, "POLICY...");
  values(c, "--flows", "FLOWS.jsonl", "flow events (JSON lines), repeatable");
  value(c, "--format", "dot|svg|mermaid", "the output's format (default dot)");
  value(c, "-o,--output", "FILE", "write there instead of standard output");
}

}  // namespace

std::unique_ptr<CLI::App> makeCommandTree() {
  auto app = std::make_unique<CLI::App>("", "bulkhead");
  // Before the commands: they inherit the formatter and the help flag.
  app->formatter(std::make_shared<HelpFormatter>());
  app->set_help_flag("--help", "this help");
  app->add_flag("--version")->description("the program's version")->group(kOwnGroup);
  app->footer(
      "flags are accepted before or after the command; `bulkhead COMMAND --help`\n"
      "describes one command, bulkhead(8) all of them; --version prints the version.");
  addValidate(*app);
  addPlan(*app);
  addPush(*app);
  addWorkload(*app);
  addStatus(*app);
  addQuarantine(*app);
  addFlows(*app);
  addSuggest(*app);
  addGraph(*app);
  return app;
}

CLI::App* findCommand(CLI::App& app, const std::vector<std::string>& path) {
  CLI::App* c = &app;
  for (const auto& name : path) {
    std::vector<CLI::App*> found =
        c->get_subcommands([&name](CLI::App* sub) { return sub->get_name() == name; });
    if (found.empty()) return nullptr;
    c = found.front();
  }
  return c;
}

std::string commandPath(const CLI::App& command) {
  std::string path;
  for (const CLI::App* c = &command; c->get_parent() != nullptr; c = c->get_parent())
    path = c->get_name() + (path.empty() ? "" : " " + path);
  return path;
}

bool ignoresOtherFlags(const CLI::App& command) {
  const std::string path = commandPath(command);
  return path == "validate" || path == "plan";
}

}  // namespace bulkhead::cli
