#include "bulkhead/cli/commands.h"

#include <cstdlib>
#include <ostream>

#include "bulkhead/cli/client.h"
#include "bulkhead/cli/insight.h"
#include "command_groups.h"
#include "command_line.h"

namespace bulkhead::cli {

namespace {

// $BULKHEAD_AGENT, "" when unset.
std::string envAgent() {
  const char* env = std::getenv("BULKHEAD_AGENT");
  return env ? env : "";
}

int runCommand(const Args& args, std::ostream& out, std::ostream& err) {
  const std::string& top = args.words.at(0);
  if (top == "validate") return validateCommand(args, out, err);
  if (top == "plan") return planCommand(args, out, err);
  if (top == "graph") return graphCommand(args, out, err);
  if (top == "suggest") return suggestCommand(args, envAgent(), out, err);
  return runClientCommand(args, envAgent(), out, err);
}

}  // namespace

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  auto it = flags.find(flag);
  return it == flags.end() || it->second.empty() ? fallback : it->second.back();
}

int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  const CommandLine line = readCommandLine(argv);
  switch (line.action) {
    case CommandLine::Action::kRun:
      return runCommand(line.args, out, err);
    case CommandLine::Action::kHelp:
      out << line.text;
      return kExitOk;
    case CommandLine::Action::kVersion:
      out << "bulkhead 0.1.0\n";
      return kExitOk;
    case CommandLine::Action::kUsage:
    case CommandLine::Action::kError:
      err << line.text;
      return kExitBadInput;
  }
  return kExitBadInput;
}

}  // namespace bulkhead::cli
