// The command line's grammar (src/cli/command_tree.cpp): `--help` of every
// command and subcommand, flags before or after the command, and the exit
// code and message of every kind of bad command line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "bulkhead/cli/commands.h"
#include "bulkhead/cli/help.h"
#include "support/cli_run.h"

namespace bulkhead::cli {
namespace {

using testing::CliRun;
using testing::contains;
using testing::run;

std::set<std::string> flagsIn(const std::string& text) {
  static const std::regex re("(--[a-z][a-z-]*[a-z])");
  std::set<std::string> flags;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it)
    flags.insert((*it)[1].str());
  return flags;
}

const std::string kDemo = std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo";
const std::set<std::string> kAgentFlags = {"--agent",   "--tls-ca",          "--tls-cert",
                                           "--tls-key", "--tls-server-name", "--timeout"};

std::set<std::string> withAgentFlags(std::set<std::string> flags) {
  flags.insert(kAgentFlags.begin(), kAgentFlags.end());
  return flags;
}

// Every command and subcommand, and the flags its page names.
const std::map<std::string, std::set<std::string>> kPages = {
    {"validate", {}},
    {"plan", {"--workloads", "--table", "--log-group", "--workload-interfaces"}},
    {"push", withAgentFlags({"--version", "--dry-run", "--json", "--controller", "--wait"})},
    {"workload add", withAgentFlags({"--app", "--iface", "--addr", "--label"})},
    {"workload rm", withAgentFlags({})},
    {"workload ls", withAgentFlags({"--json", "--controller"})},
    {"status", withAgentFlags({"--json", "--controller"})},
    {"quarantine ls", withAgentFlags({"--json"})},
    {"flows", withAgentFlags({"--follow", "--json", "--app", "--workload"})},
    {"suggest", withAgentFlags({"--since", "--policies", "--app", "--max-rules", "--output"})},
    {"graph", {"--flows", "--format", "--output"}},
};

std::vector<std::string> words(const std::string& path) {
  std::istringstream in(path);
  std::vector<std::string> out;
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

TEST(CliHelp, EveryCommandAndSubcommandHasItsOwnPage) {
  for (const auto& [path, flags] : kPages) {
    auto argv = words(path);
    argv.push_back("--help");
    const auto r = run(argv);
    EXPECT_EQ(r.code, kExitOk) << path;
    EXPECT_EQ(r.err, "") << path;
    EXPECT_EQ(r.out.rfind("usage: bulkhead " + path, 0), 0u) << path << ":\n" << r.out;
    EXPECT_EQ(flagsIn(r.out), flags) << path << ":\n" << r.out;
    EXPECT_TRUE(contains(r.out, "exit codes: 0 success")) << path;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      EXPECT_LE(line.size(), 80u) << path << ": " << line;
  }
}

TEST(CliHelp, GroupPagesShowEachSubcommand) {
  const auto workload = run({"workload", "--help"});
  ASSERT_EQ(workload.code, kExitOk);
  for (const char* sub : {"bulkhead workload add NAME --app APP --iface IF [--iface IF]...",
                          "bulkhead workload rm NAME", "bulkhead workload ls [--json]"})
    EXPECT_TRUE(contains(workload.out, sub)) << sub << "\n" << workload.out;
  const auto quarantine = run({"quarantine", "--help"});
  EXPECT_EQ(quarantine.out.rfind("usage: bulkhead quarantine NAME [--release]\n", 0), 0u)
      << quarantine.out;
  EXPECT_TRUE(contains(quarantine.out, "       bulkhead quarantine ls [--json]\n"))
      << quarantine.out;
  EXPECT_NE(run({"workload", "add", "--help"}).out, workload.out);
}

TEST(CliHelp, HelpIsTheSameBeforeOrAfterTheCommandAndWinsOverMissingArguments) {
  EXPECT_EQ(run({"--help", "status"}).out, run({"status", "--help"}).out);
  EXPECT_EQ(run({"--help", "workload", "add"}).out, run({"workload", "add", "--help"}).out);
  // A page even when what the command needs is missing or wrong.
  EXPECT_EQ(run({"workload", "add", "--help"}).code, kExitOk);
  EXPECT_EQ(run({"status", "--dry-run", "--help"}).code, kExitOk);
  // The overview: every command, the agent flags, the version flag.
  const auto top = run({"--help"});
  EXPECT_EQ(top.code, kExitOk);
  EXPECT_EQ(top.out, usage());
  for (const char* c :
       {"  validate ", "  plan ", "  push ", "  workload add ", "  workload rm ", "  workload ls ",
        "  status ", "  quarantine NAME", "  quarantine ls ", "  flows ", "  suggest ", "  graph "})
    EXPECT_TRUE(contains(top.out, c)) << c;
  for (const auto& f : kAgentFlags)
    EXPECT_TRUE(contains(top.out, f)) << f;
  EXPECT_TRUE(contains(top.out, "--version"));
  // An unknown command with --help: the overview.
  EXPECT_EQ(run({"frobnicate", "--help"}).out, top.out);
  EXPECT_EQ(commandHelp("frobnicate"), "");
  EXPECT_EQ(commandHelp("status"), run({"status", "--help"}).out);
}

TEST(CliHelp, NoCommandPrintsTheOverviewOnStderrAndExitsTwo) {
  const auto r = run({});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, usage());
}

TEST(CliHelp, VersionIsTheProgramsExceptAfterPush) {
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"--version"}, {"status", "--version"}, {"--version", "plan"}}) {
    const auto r = run(argv);
    EXPECT_EQ(r.code, kExitOk);
    EXPECT_EQ(r.out, "bulkhead 0.1.0\n");
  }
  // After push it names the bundle's version, and needs one.
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"push", kDemo, "--version"}, {"push", kDemo, "--version", "--json"}}) {
    const auto r = run(argv);
    EXPECT_EQ(r.code, kExitBadInput);
    EXPECT_TRUE(contains(r.err, "--version needs a value")) << r.err;
  }
}

TEST(CliFlags, FlagsGoBeforeOrAfterTheCommandAndItsArguments) {
  const auto after = run({"plan", kDemo, "--table", "seg", "--log-group", "7"});
  ASSERT_EQ(after.code, kExitOk) << after.err;
  for (const auto& argv :
       std::vector<std::vector<std::string>>{{"--table", "seg", "--log-group", "7", "plan", kDemo},
                                             {"--table=seg", "plan", "--log-group=7", kDemo},
                                             {"plan", "--log-group", "7", kDemo, "--table=seg"}}) {
    const auto r = run(argv);
    EXPECT_EQ(r.code, kExitOk) << r.err;
    EXPECT_EQ(r.out, after.out);
  }
  // An agent command: the same failure wherever --agent and --timeout are.
  const std::string nowhere = "unix:///nonexistent/bh-cli-flags.sock";
  const auto a = run({"--agent", nowhere, "--timeout", "1", "workload", "ls", "--json"});
  const auto b = run({"workload", "--json", "ls", "--timeout=1", "--agent=" + nowhere});
  EXPECT_EQ(a.code, kExitRuntime);
  EXPECT_EQ(b.code, kExitRuntime);
  EXPECT_TRUE(contains(a.err, nowhere + ": cannot reach the agent")) << a.err;
  EXPECT_TRUE(contains(b.err, nowhere + ": cannot reach the agent")) << b.err;
}

TEST(CliFlags, AValueMayStartWithADashAndAnArgumentMayToo) {
  // The value of a flag is the next word, whatever it looks like.
  const auto r = run({"plan", kDemo, "--table", "--json"});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_TRUE(contains(r.err, "--table: not a valid table name")) << r.err;
  // A word starting with '-' is an argument (a path here), not a flag.
  const auto v = run({"validate", "-no-such-file.yaml"});
  EXPECT_EQ(v.code, kExitBadInput);
  EXPECT_TRUE(contains(v.err, "-no-such-file.yaml")) << v.err;
  EXPECT_FALSE(contains(v.err, "unknown flag")) << v.err;
}

TEST(CliFlags, BadCommandLinesExitTwoWithAClearMessage) {
  const std::map<std::vector<std::string>, std::string> cases = {
      {{"status", "--bogus"}, "bulkhead: unknown flag --bogus\n"},
      {{"--bogus", "status"}, "bulkhead: unknown flag --bogus\n"},
      {{"status", "-x"}, "bulkhead status: takes no arguments\n"},
      {{"status", "--json=yes"}, "bulkhead: --json takes no value\n"},
      {{"status", "--agent"}, "bulkhead: --agent needs a value\n"},
      {{"status", "--dry-run"}, "bulkhead status: --dry-run does not apply to this command\n"},
      {{"--release", "workload", "ls"},
       "bulkhead workload ls: --release does not apply to this command\n"},
      {{"graph", kDemo, "--agent", "unix:///x"},
       "bulkhead graph: --agent does not apply to this command\n"},
      {{"frobnicate"}, "bulkhead: unknown command \"frobnicate\"\n"},
      {{"workload"}, "bulkhead workload: expected add, rm or ls\n"},
      {{"workload", "frob"}, "bulkhead workload: expected add, rm or ls\n"},
      {{"--", "status"}, "bulkhead: unknown flag --\n"},
  };
  for (const auto& [argv, message] : cases) {
    const auto r = run(argv);
    EXPECT_EQ(r.code, kExitBadInput) << argv.front();
    EXPECT_EQ(r.out, "") << argv.front();
    EXPECT_EQ(r.err.substr(0, message.size()), message) << r.err;
  }
  // A missing flag the command needs is named.
  const auto add = run({"workload", "add", "w", "--iface", "v", "--addr", "192.0.2.1"});
  EXPECT_EQ(add.code, kExitBadInput);
  EXPECT_TRUE(contains(add.err, "--app")) << add.err;
}

TEST(CliFlags, ValidateAndPlanIgnoreFlagsOfOtherCommands) {
  const auto plain = run({"plan", kDemo});
  ASSERT_EQ(plain.code, kExitOk) << plain.err;
  const auto r = run({"--agent", "unix:///x", "plan", kDemo, "--json", "--app", "web"});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, plain.out);
  EXPECT_EQ(run({"validate", kDemo, "--dry-run"}).code, kExitOk);
  // Still: a flag no command knows is refused.
  EXPECT_EQ(run({"validate", kDemo, "--bogus"}).code, kExitBadInput);
}

TEST(CliFlags, ParseArgsGivesTheCommandItsWordsAndFlags) {
  Args args;
  std::string error;
  ASSERT_TRUE(parseArgs({"--agent", "unix:///a", "workload", "add", "w1", "--iface", "v1",
                         "--iface=v2", "--app", "web", "--addr", "192.0.2.1", "--agent=unix:///b"},
                        &args, &error))
      << error;
  EXPECT_EQ(args.command, "workload add");
  EXPECT_EQ(args.words, (std::vector<std::string>{"workload", "add", "w1"}));
  EXPECT_EQ(args.flags.at("--iface"), (std::vector<std::string>{"v1", "v2"}));
  EXPECT_EQ(args.flags.at("--agent"), (std::vector<std::string>{"unix:///a", "unix:///b"}));
  EXPECT_EQ(args.get("--agent"), "unix:///b") << "the last one counts";
  EXPECT_FALSE(args.has("--json"));
  ASSERT_TRUE(parseArgs({"quarantine", "ls", "--json"}, &args, &error)) << error;
  EXPECT_EQ(args.command, "quarantine ls");
  EXPECT_TRUE(args.has("--json"));
  ASSERT_TRUE(parseArgs({"suggest", "-", "-o", "out.yaml"}, &args, &error)) << error;
  EXPECT_EQ(args.words, (std::vector<std::string>{"suggest", "-"}));
  EXPECT_EQ(args.get("--output"), "out.yaml");
  EXPECT_FALSE(parseArgs({"status", "--nope"}, &args, &error));
  EXPECT_TRUE(contains(error, "unknown flag --nope")) << error;
}

}  // namespace
}  // namespace bulkhead::cli
