#include "bulkhead/cli/help.h"

#include <map>

namespace bulkhead::cli {

namespace {

constexpr std::string_view kUsage = R"(usage: bulkhead COMMAND [ARGS] [FLAGS]

commands:
  validate PATH...                    check policy files; exit 2 with file:line:col errors
  plan PATH... [--workloads FILE]     print the nftables ruleset it would apply (no root needed)
             [--table NAME] [--log-group N] [--workload-interfaces PATTERN[,PATTERN...]]
  push PATH... [--agent ADDR]...      validate, then send the bundle to each agent
             [--version V] [--dry-run] [--json]
  workload add NAME --app APP --iface IF [--iface IF]... --addr IP [--addr IP]...
             [--label KEY=VALUE]...   register (or replace) a workload
  workload rm NAME                    remove a workload registered through the API
  workload ls [--json]                list every workload
  status [--json]                     the agent's policy version, table, counters, latencies
  quarantine NAME [--release]         drop everything a workload sends (or release it)
  quarantine ls [--json]              quarantines in force: who, why, since, until
  flows [--follow] [--json]           denied flows as the agent exports them
             [--app APP] [--workload NAME]
  suggest [FLOWS.jsonl...] [--agent ADDR --since 10m] [--policies DIR] [--app APP]
             [--max-rules 20] [--output FILE]   egress policy from observed flows
  graph POLICY... [--flows FLOWS.jsonl] [--format dot|svg|mermaid] [--output FILE]
                                      who may reach whom, and what was denied

agent flags (every command that talks to an agent):
  --agent ADDR          unix:///path or tcp://host:port; default $BULKHEAD_AGENT,
                        else unix:///run/bulkhead/agent.sock
  --tls-ca F            CA that signed the agent's certificate (required for tcp://)
  --tls-cert F --tls-key F   client certificate and key (mutual TLS)
  --tls-server-name N   name to expect in the agent's certificate (default: host of ADDR)
  --timeout SECONDS     deadline of each call (default 30)

flags are accepted before or after the command; `bulkhead COMMAND --help`
describes one command, bulkhead(8) all of them.
exit codes: 0 success, 1 runtime failure (agent unreachable, kernel refused), 2 bad input.
)";

constexpr std::string_view kAgentFlags = R"(
agent flags:
  --agent ADDR          unix:///path or tcp://host:port; default $BULKHEAD_AGENT,
                        else unix:///run/bulkhead/agent.sock
  --tls-ca FILE         PEM CA that signed the agent's certificate (required for tcp://)
  --tls-cert FILE       PEM client certificate (with --tls-key) for the agent's mutual TLS
  --tls-key FILE        its PEM private key
  --tls-server-name N   name to expect in the agent's certificate (default: host of ADDR)
  --timeout SECONDS     deadline of each call, 1-86400 (default 30)
)";

constexpr std::string_view kExitCodes =
    "\nexit codes: 0 success, 1 runtime failure (agent unreachable, kernel refused),\n"
    "2 bad input (bad flag, invalid policy, unknown workload).\n";

struct Page {
  std::string_view text;
  bool agentFlags;  // the command talks to an agent
};

const std::map<std::string_view, Page, std::less<>>& pages() {
  static const std::map<std::string_view, Page, std::less<>> kPages = {
      {"validate",
       {R"(usage: bulkhead validate PATH...

Loads the policy files (directories recursively, *.yaml and *.yml, sorted by
path) as one bundle and checks it. Prints "valid: N services, N apps, N
global policies, N workloads", or every error as file:line:column: message
on stderr and exits 2. Warnings do not fail. Needs no root and no agent.
)",
        false}},
      {"plan",
       {R"(usage: bulkhead plan PATH... [--workloads FILE] [--table NAME] [--log-group N]
                     [--workload-interfaces PATTERN[,PATTERN...]]

Prints the nftables ruleset (nft syntax) an agent would apply for the bundle.
Needs no root and no agent.

flags:
  --workloads FILE      Workload documents added as if registered through the API
  --table NAME          table name, inet NAME (default bulkhead)
  --log-group N         NFLOG group of the logging rules, 0-65535 (default 1771)
  --workload-interfaces PATTERN[,PATTERN...]
                        as the agent's flag: interfaces of these names that no
                        workload registered are dropped (e.g. veth*,vnet*)
)",
        false}},
      {"push",
       {R"(usage: bulkhead push PATH... [--agent ADDR]... [--version V] [--dry-run] [--json]

Validates the bundle locally (nothing is sent if it is invalid), then sends it
to every --agent at once and prints one line per agent: the version applied,
unchanged, or the error. The exit code is the worst of the agents'.

flags:
  --agent ADDR          repeatable: push to several agents
  --version V           the bundle's version (default: sha256 of its files)
  --dry-run             ask each agent what would change; change nothing
  --json                one JSON object per agent per line
)",
        true}},
      {"workload",
       {R"(usage: bulkhead workload add NAME --app APP --iface IF [--iface IF]...
                      --addr IP [--addr IP]... [--label KEY=VALUE]...
       bulkhead workload rm NAME
       bulkhead workload ls [--json]

add registers (or replaces, by name) a workload: its app, its host-side
interfaces (a container's veth, a VM's tap) and its addresses (IPv4 or IPv6).
rm removes a workload registered through the API (unknown name: exit 2).
ls lists every workload, from the API and from the bundle.

flags:
  --app APP             the workload's app (add; exactly once)
  --iface IF            a host-side interface (add; 1-16)
  --addr IP             an address of the workload (add; 1-64)
  --label KEY=VALUE     a label (add; repeatable)
  --json                JSON output (ls)
)",
        true}},
      {"status",
       {R"(usage: bulkhead status [--json]

The agent's policy version and when it was applied, its table, policy and
ruleset counts, push and workload-change latencies, drift repairs, the flow
feed's counters and the last error.

flags:
  --json                one JSON object; every count an integer
)",
        true}},
      {"quarantine",
       {R"(usage: bulkhead quarantine NAME [--release]
       bulkhead quarantine ls [--json]

Quarantines a workload: everything it sends is logged and dropped before
connection tracking, and its live connections are cut. With --release,
releases it. Quarantine is remembered across pushes and agent restarts.
`quarantine ls` lists the quarantines in force: who, why (manual, or
auto/scan/... by the agent's scan detection), since and until.

flags:
  --release             lift the quarantine
  --json                (ls) one JSON object
)",
        true}},
      {"flows",
       {R"(usage: bulkhead flows [--follow] [--json] [--app APP] [--workload NAME]

Denied (and audited) flows as the agent exports them, one per line. Without
--follow, prints what arrives within one second.

flags:
  --follow              keep printing until interrupted
  --json                one JSON object per line
  --app APP             only this app's flows
  --workload NAME       only this workload's flows
)",
        true}},
      {"suggest",
       {R"(usage: bulkhead suggest [FLOWS.jsonl...] [--agent ADDR --since 10m] [--policies DIR]...
                        [--app APP] [--max-rules 20] [--output FILE]

Egress policy from observed flows: the flow events of FLOWS.jsonl (the
agent's json format; - reads standard input), or what the agent exports
for --since. Prints, as YAML, the complete App document of each app with
flows (its existing egress kept, additions marked) and any new Service,
naming existing Services and Apps first; never broader than what was seen.
Each rule carries its evidence as a comment. Deterministic.

flags:
  --since DURATION      with --agent: how long to listen (90s, 10m, 1h; default 10m)
  --policies DIR        the bundle in force (repeatable), to name what exists
  --app APP             only this app
  --max-rules N         rules per app; the rest are listed commented out (default 20)
  --output FILE         write the YAML there (also -o)
)",
        true}},
      {"graph",
       {R"(usage: bulkhead graph POLICY... [--flows FLOWS.jsonl]... [--format dot|svg|mermaid]
                      [--output FILE]

Apps, services and external networks as nodes; edges for what the policy
allows (solid), what GlobalPolicies forbid (dashed) and, with --flows, what
was observed and denied (red, with counts). SVG through Graphviz's dot.

flags:
  --flows FILE          flow events (JSON lines), repeatable
  --format FORMAT       dot (default), svg or mermaid
  --output FILE         write there instead of standard output (also -o)
)",
        false}},
  };
  return kPages;
}

}  // namespace

std::string_view usage() {
  return kUsage;
}

std::string commandHelp(std::string_view command) {
  auto it = pages().find(command);
  if (it == pages().end()) return {};
  std::string text(it->second.text);
  if (it->second.agentFlags) text += kAgentFlags;
  text += kExitCodes;
  return text;
}

}  // namespace bulkhead::cli
