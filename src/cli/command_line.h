// argv read against the command tree (command_tree.cpp): what `bulkhead`
// is asked to do.
#pragma once

#include <string>
#include <vector>

#include "bulkhead/cli/commands.h"

namespace bulkhead::cli {

struct CommandLine {
  enum class Action {
    kRun,      // run `args`
    kHelp,     // print `text` (a help page) to stdout, exit 0
    kVersion,  // print the program's version, exit 0
    kUsage,    // no command: print `text` (the overview) to stderr, exit 2
    kError,    // print `text` to stderr, exit 2
  };
  Action action = Action::kRun;
  Args args;
  std::string text;
};

CommandLine readCommandLine(const std::vector<std::string>& argv);

}  // namespace bulkhead::cli
