// What the Debian package ships, checked without root: the example policies
// (valid, compiled, documentation addresses only, the segmentation they
// claim), the shipped agent.yaml (accepted by the agent's parser, every
// commented key too), the man pages against `--help` and the parsers, and
// the bash completion against the help. The package itself is built and
// installed by tests/package/deb_test.sh (privileged).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "bulkhead/agent/config.h"
#include "bulkhead/cli/commands.h"
#include "bulkhead/cli/help.h"
#include "support/cli_run.h"
#include "support/source_tree.h"

namespace bulkhead {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = testing::kSourceDir;

// stdout of a shell command, and its exit status.
std::pair<int, std::string> shell(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::set<std::string> flagsIn(const std::string& text, const std::regex& re) {
  std::set<std::string> flags;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it)
    flags.insert((*it)[1].str());
  return flags;
}

// `--flag` in plain text; `\-\-flag` (roff's escaped hyphens) in a man page.
std::set<std::string> plainFlags(const std::string& text) {
  static const std::regex re("(--[a-z][a-z-]*[a-z])");
  return flagsIn(text, re);
}
std::set<std::string> manFlags(const std::string& roff) {
  static const std::regex re(R"(\\-\\-([a-z][a-z\\-]*[a-z]))");
  std::set<std::string> out;
  for (auto f : flagsIn(roff, re)) {
    f = std::regex_replace(f, std::regex(R"(\\-)"), "-");
    out.insert("--" + f);
  }
  return out;
}

// The man page's text from `.SS <heading>` to the next section heading.
std::string manSection(const std::string& roff, const std::string& heading) {
  const auto start = roff.find("\n.SS " + heading);
  if (start == std::string::npos) return {};
  auto end = roff.find("\n.S", start + 1);
  return roff.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// ---------------------------------------------------------------------------
// Example policies

std::vector<fs::path> policyDirs() {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(kSource / "policies"))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(ExamplePolicies, TheDirectoriesTheReadmeNamesExist) {
  std::set<std::string> names;
  for (const auto& d : policyDirs())
    names.insert(d.filename().string());
  for (const char* want :
       {"demo", "environments", "banking", "atm-hr", "shared-services", "audit-rollout"})
    EXPECT_TRUE(names.count(want)) << "policies/" << want;
  const auto readme = testing::readText(kSource / "policies/README.md");
  for (const auto& n : names)
    EXPECT_NE(readme.find("`" + n + "/`"), std::string::npos) << n << " not in policies/README.md";
}

TEST(ExamplePolicies, EveryDirectoryValidatesWithoutWarningsAndCompiles) {
  for (const auto& dir : policyDirs()) {
    const auto v = testing::run({"validate", dir.string()});
    EXPECT_EQ(v.code, 0) << dir << "\n" << v.err;
    EXPECT_EQ(v.err, "") << dir;
    EXPECT_EQ(v.out.rfind("valid: ", 0), 0u) << dir;
    const auto p = testing::run({"plan", dir.string()});
    EXPECT_EQ(p.code, 0) << dir << "\n" << p.err;
    EXPECT_NE(p.out.find("table inet bulkhead"), std::string::npos) << dir;
  }
}

TEST(ExamplePolicies, EveryYamlFileBelongsToADirectoryBundle) {
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(kSource / "policies")) {
    const auto ext = e.path().extension();
    if (ext != ".yaml" && ext != ".yml") continue;
    ++files;
    EXPECT_NE(e.path().parent_path(), kSource / "policies")
        << e.path() << ": a file outside every example directory is validated by nothing";
  }
  EXPECT_GE(files, 20);
}

TEST(ExamplePolicies, OnlyDocumentationAddresses) {
  const std::regex v4(R"((\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}))");
  const std::regex v6(R"(\b[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{0,4}){2,7})");
  for (const auto& e : fs::recursive_directory_iterator(kSource / "policies")) {
    if (!e.is_regular_file()) continue;
    const auto text = testing::readText(e.path());
    for (auto it = std::sregex_iterator(text.begin(), text.end(), v4); it != std::sregex_iterator();
         ++it) {
      const auto a = it->str();
      const bool doc = a.rfind("192.0.2.", 0) == 0 || a.rfind("198.51.100.", 0) == 0 ||
                       a.rfind("203.0.113.", 0) == 0;
      EXPECT_TRUE(doc) << e.path() << ": " << a;
    }
    for (auto it = std::sregex_iterator(text.begin(), text.end(), v6); it != std::sregex_iterator();
         ++it) {
      const auto a = it->str();
      EXPECT_TRUE(a.rfind("2001:db8:", 0) == 0 || a.rfind("2001:db8::", 0) == 0)
          << e.path() << ": " << a;
    }
  }
}

// The set of a GlobalPolicy rule in `plan`'s output.
std::string planSet(const std::string& dir, const std::string& set) {
  const auto p = testing::run({"plan", (kSource / "policies" / dir).string()});
  const auto start = p.out.find("set " + set + " {");
  if (start == std::string::npos) return {};
  return p.out.substr(start, p.out.find('}', start) - start);
}

TEST(ExamplePolicies, TheSegmentationTheyClaimIsInTheRuleset) {
  // No dev program reaches the prod database (notebook declares it).
  EXPECT_NE(planSet("environments", "g4_environments_0").find("198.51.100.10 . tcp . 5432"),
            std::string::npos);
  // The information barrier covers the customer database from investment banking.
  EXPECT_NE(planSet("banking", "g4_information-barrier_1").find("198.51.100.10 . tcp . 5432"),
            std::string::npos);
  // HR never reaches the ATM network, by label and by address.
  EXPECT_NE(planSet("atm-hr", "g4_atm-hr-separation_1").find("198.51.100.0/25"), std::string::npos);
  EXPECT_NE(planSet("atm-hr", "g6_atm-hr-separation_2").find("2001:db8:a7::/64"),
            std::string::npos);
  // Shared services: DNS/NTP and the labelled command-and-control services.
  const auto shared = planSet("shared-services", "g4_shared-services_2");
  for (const char* s : {"198.51.100.100 . tcp . 8834", "198.51.100.110 . tcp . 443"})
    EXPECT_NE(shared.find(s), std::string::npos) << s;
  EXPECT_NE(planSet("shared-services", "g4_shared-services_1").find("198.51.100.123 . udp . 123"),
            std::string::npos);
  // Audit: the app's default logs as audit and accepts; the PCI deny holds.
  const auto audit = testing::run({"plan", (kSource / "policies/audit-rollout").string()}).out;
  const auto chain = audit.substr(audit.find("chain app_reporting {"));
  const auto body = chain.substr(0, chain.find("\n\t}"));  // rules hold braces too (meters)
  EXPECT_NE(body.find("bh:audit:default"), std::string::npos);
  EXPECT_NE(body.find("bh:deny:globalpolicy/pci-zone/0"), std::string::npos);
}

// ---------------------------------------------------------------------------
// The shipped config

const fs::path kShippedConfig = kSource / "packaging/agent.yaml";

TEST(ShippedConfig, IsAcceptedByTheAgentsParser) {
  auto c = agent::parseAgentArgs({"--config", kShippedConfig.string()});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->listen, std::vector<std::string>{agent::kDefaultListen});
  EXPECT_EQ(c->socketGroup, "bulkhead");
  EXPECT_EQ(c->stateDir, "/var/lib/bulkhead");
  EXPECT_EQ(c->table, "bulkhead");
}

// Every commented-out "# key: value" (and "#   - item" below an empty key)
// made live: the result must parse, so no example in the file is stale.
TEST(ShippedConfig, EveryCommentedKeyIsAValidSetting) {
  std::istringstream in(testing::readText(kShippedConfig));
  const std::regex keyLine(R"(^# ?([a-z][a-z-]*):(?:\s+(\S.*?))?\s*(#.*)?$)");
  const std::regex itemLine(R"(^#\s+- (\S+)\s*(#.*)?$)");
  std::string line, live, openKey;
  std::set<std::string> keys;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, keyLine)) {
      keys.insert(m[1]);
      openKey = m[2].matched ? "" : m[1].str();
      // tcp:// listeners need TLS files that exist: checked by the agent at
      // start, not by the parser.
      live += m[1].str() + ":" + (m[2].matched ? " " + m[2].str() : "") + "\n";
    } else if (!openKey.empty() && std::regex_match(line, m, itemLine)) {
      live += "  - " + m[1].str() + "\n";
    } else if (line.rfind("#", 0) != 0) {
      openKey.clear();
      if (!line.empty() && line[0] != ' ') keys.insert(line.substr(0, line.find(':')));
    }
  }
  EXPECT_GE(keys.size(), 19u) << "every setting should be in the shipped file";
  const fs::path tmp = fs::temp_directory_path() / ("bh-shipped-" + std::to_string(getpid()));
  std::ofstream(tmp) << live;
  auto c = agent::parseAgentArgs({"--config", tmp.string()});
  fs::remove(tmp);
  ASSERT_TRUE(c.ok()) << c.error().message << "\n" << live;
  EXPECT_EQ(c->syslog.size(), 3u);
  // Every key of the file is an option of the man page and of --help.
  const auto man = manFlags(testing::readText(kSource / "packaging/man/bulkhead-agent.8"));
  const auto help = plainFlags(std::string(agent::agentUsage()));
  for (const auto& k : keys) {
    EXPECT_TRUE(man.count("--" + k)) << k << " not in bulkhead-agent.8";
    EXPECT_TRUE(help.count("--" + k)) << k << " not in bulkhead-agent --help";
  }
}

// ---------------------------------------------------------------------------
// Man pages and --help

TEST(ManPages, AgentOptionsMatchTheParserAndHelp) {
  const auto man = manFlags(testing::readText(kSource / "packaging/man/bulkhead-agent.8"));
  const auto help = plainFlags(std::string(agent::agentUsage()));
  EXPECT_EQ(man, help);
  for (const auto& f : man) {
    if (f == "--help" || f == "--version") continue;
    auto r = agent::parseAgentArgs({f, "x"});
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.find("unknown flag"), std::string::npos) << f;
    }
  }
  EXPECT_FALSE(agent::parseAgentArgs({"--no-such-flag", "x"}).ok());
}

TEST(ManPages, BulkheadFlagsAreAllAccepted) {
  const auto roff = testing::readText(kSource / "packaging/man/bulkhead.8");
  const auto man = manFlags(roff);
  for (const auto& f : man) {
    cli::Args args;
    std::string error;
    if (!cli::parseArgs({f + "=1"}, &args, &error)) {
      EXPECT_EQ(error.find("unknown flag"), std::string::npos) << f << ": " << error;
    }
  }
  // Every flag the overview mentions is in the man page, and the other way round.
  EXPECT_EQ(plainFlags(std::string(cli::usage())), man);
}

// The flags of each command, as the CLI accepts them (src/cli/command_tree.cpp).
const std::map<std::string, std::set<std::string>> kCommandFlags = {
    {"validate", {}},
    {"plan", {"--workloads", "--table", "--log-group", "--workload-interfaces"}},
    {"push", {"--agent", "--version", "--dry-run", "--json", "--controller", "--wait"}},
    {"workload", {"--app", "--iface", "--addr", "--label", "--json", "--controller"}},
    {"status", {"--json", "--controller"}},
    {"quarantine", {"--release", "--json"}},
    {"flows", {"--follow", "--json", "--app", "--workload"}},
    {"suggest", {"--since", "--policies", "--app", "--max-rules", "--output"}},
    {"graph", {"--flows", "--format", "--output"}},
};
const std::set<std::string> kAgentFlags = {"--agent",   "--tls-ca",          "--tls-cert",
                                           "--tls-key", "--tls-server-name", "--timeout"};

std::set<std::string> expectedFlags(const std::string& command) {
  auto flags = kCommandFlags.at(command);
  if (command != "validate" && command != "plan" && command != "graph")
    flags.insert(kAgentFlags.begin(), kAgentFlags.end());
  return flags;
}

TEST(Help, EveryCommandHasItsOwnHelpMatchingTheManPage) {
  const auto roff = testing::readText(kSource / "packaging/man/bulkhead.8");
  const auto agentStart = roff.find(".SH AGENT FLAGS");
  const auto agentSection =
      manFlags(roff.substr(agentStart, roff.find("\n.SH", agentStart + 1) - agentStart));
  for (const auto& [command, own] : kCommandFlags) {
    const auto r = testing::run({command, "--help"});
    EXPECT_EQ(r.code, 0) << command;
    EXPECT_EQ(r.out.rfind("usage: bulkhead " + command, 0), 0u) << command << ":\n" << r.out;
    EXPECT_EQ(plainFlags(r.out), expectedFlags(command)) << command << ":\n" << r.out;
    // The man page describes the same flags in the command's section(s).
    std::set<std::string> inMan;
    for (const auto& heading : {command + " ", command + "\n"}) {
      auto s = manFlags(manSection(roff, heading));
      inMan.insert(s.begin(), s.end());
    }
    if (command == "workload")
      for (const char* sub : {"workload add", "workload rm", "workload ls"}) {
        auto s = manFlags(manSection(roff, sub));
        inMan.insert(s.begin(), s.end());
      }
    if (command == "quarantine") {
      auto s = manFlags(manSection(roff, "quarantine ls"));
      inMan.insert(s.begin(), s.end());
    }
    if (command != "validate" && command != "plan" && command != "graph")
      inMan.insert(agentSection.begin(), agentSection.end());
    EXPECT_EQ(inMan, expectedFlags(command)) << command;
  }
  // Help of a subcommand, and before the command.
  EXPECT_EQ(
      testing::run({"workload", "add", "--help"}).out.rfind("usage: bulkhead workload add", 0), 0u);
  EXPECT_EQ(testing::run({"--help", "status"}).out, testing::run({"status", "--help"}).out);
  const auto top = testing::run({"--help"});
  EXPECT_EQ(top.code, 0);
  for (const auto& [command, _] : kCommandFlags)
    EXPECT_NE(top.out.find("  " + command + " "), std::string::npos) << command;
}

// The flags the parser lets each command take (every other one is refused
// with "does not apply") are exactly those its --help names.
TEST(Help, NamesExactlyTheFlagsEachCommandAccepts) {
  const auto all = manFlags(testing::readText(kSource / "packaging/man/bulkhead.8"));
  const std::set<std::string> noValue = {"--json", "--dry-run", "--follow", "--release", "--wait"};
  const std::string demo = (kSource / "policies/demo").string();
  const std::map<std::string, std::vector<std::vector<std::string>>> invocations = {
      {"push", {{"push", demo}}},
      {"workload", {{"workload", "add", "w"}, {"workload", "rm", "w"}, {"workload", "ls"}}},
      {"status", {{"status"}}},
      {"quarantine", {{"quarantine", "w"}, {"quarantine", "ls"}}},
      {"flows", {{"flows"}}},
      {"suggest", {{"suggest", "/nonexistent/bh-packaging-test.jsonl"}}},
      {"graph", {{"graph", demo}}},
  };
  for (const auto& [command, runs] : invocations) {
    std::set<std::string> accepted;
    for (const auto& words : runs)
      for (const auto& flag : all) {
        // --version is the program's version, except after push (the bundle's).
        if (flag == "--help" || (flag == "--version" && command != "push")) continue;
        auto argv = words;
        argv.push_back(flag);
        // A value for --output names a file that must not land in the
        // directory the test runs from.
        const std::string value =
            flag == "--output" || flag == "-o"
                ? (fs::temp_directory_path() / ("bh-help-" + std::to_string(getpid()))).string()
                : "1";
        if (!noValue.count(flag)) argv.push_back(value);
        if (command != "graph")  // the one command here that talks to no agent
          for (const char* a :
               {"--agent", "unix:///nonexistent/bh-packaging-test", "--timeout", "1"})
            argv.push_back(a);
        if (testing::run(argv).err.find("does not apply") == std::string::npos)
          accepted.insert(flag);
        fs::remove(fs::temp_directory_path() / ("bh-help-" + std::to_string(getpid())));
      }
    auto named = plainFlags(cli::commandHelp(command));
    EXPECT_EQ(accepted, named) << command;
  }
}

TEST(ManPages, RenderWithoutGroffWarnings) {
  for (const char* page : {"bulkhead.8", "bulkhead-agent.8"}) {
    const auto path = (kSource / "packaging/man" / page).string();
    auto [code, out] = shell("LC_ALL=C groff -man -Tutf8 -ww -z '" + path + "' 2>&1");
    EXPECT_EQ(code, 0) << page;
    EXPECT_EQ(out, "") << page;
  }
}

// ---------------------------------------------------------------------------
// Bash completion

// What the completion offers for the words typed so far (the last one being
// completed), through bash-completion's own machinery.
std::set<std::string> complete(const std::string& line) {
  const auto script = (kSource / "packaging/completion/bulkhead").string();
  const std::string cmd = "bash -c 'source /usr/share/bash-completion/bash_completion && source " +
                          script + " && COMP_LINE=\"" + line +
                          "\" && COMP_POINT=${#COMP_LINE} && " +
                          "read -ra COMP_WORDS <<<\"$COMP_LINE\" && " +
                          "[[ $COMP_LINE == *\" \" ]] && COMP_WORDS+=(\"\"); " +
                          "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _bulkhead && " +
                          "printf \"%s\\n\" \"${COMPREPLY[@]}\"'";
  auto [code, out] = shell(cmd);
  EXPECT_EQ(code, 0) << line;
  std::set<std::string> words;
  std::istringstream in(out);
  for (std::string w; std::getline(in, w);)
    if (!w.empty()) words.insert(w);
  return words;
}

TEST(Completion, OffersTheCommandsAndEachCommandsFlags) {
  ASSERT_TRUE(fs::exists("/usr/share/bash-completion/bash_completion"))
      << "bash-completion is not installed (packaging/install-deps.sh)";
  EXPECT_EQ(complete("bulkhead "),
            (std::set<std::string>{"validate", "plan", "push", "workload", "status", "quarantine",
                                   "flows", "suggest", "graph"}));
  EXPECT_EQ(complete("bulkhead st"), std::set<std::string>{"status"});
  EXPECT_EQ(complete("bulkhead workload "), (std::set<std::string>{"add", "rm", "ls"}));
  for (const auto& [command, _] : kCommandFlags) {
    std::string line = "bulkhead " + command + (command == "workload" ? " add x --" : " --");
    auto expected = expectedFlags(command);
    if (command == "workload" || command == "quarantine") {
      expected.erase("--json");  // ls only
      expected.erase("--controller");
    }
    expected.insert("--help");
    EXPECT_EQ(complete(line), expected) << line;
  }
  EXPECT_EQ(complete("bulkhead workload ls --"),
            (std::set<std::string>{"--json", "--controller", "--agent", "--tls-ca", "--tls-cert",
                                   "--tls-key", "--tls-server-name", "--timeout", "--help"}));
  EXPECT_EQ(complete("bulkhead quarantine ls --"),
            (std::set<std::string>{"--json", "--agent", "--tls-ca", "--tls-cert", "--tls-key",
                                   "--tls-server-name", "--timeout", "--help"}));
  // After a flag that takes a value, the next word is that value, not a command.
  EXPECT_EQ(complete("bulkhead --agent unix:///x st"), std::set<std::string>{"status"});
}

}  // namespace
}  // namespace bulkhead
