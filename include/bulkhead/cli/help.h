// Help texts of `bulkhead`: the overview (`bulkhead --help`) and one page per
// command (`bulkhead COMMAND --help`), written from the command tree
// (src/cli/command_tree.cpp). They follow the man page,
// packaging/man/bulkhead.8; a unit test checks that the two agree.
#pragma once

#include <string>
#include <string_view>

namespace bulkhead::cli {

// The overview: every command and the flags shared by the agent commands.
std::string usage();

// The help of one command ("validate", "plan", "push", "workload",
// "status", "quarantine", "flows", "suggest", "graph"); empty for an
// unknown command.
std::string commandHelp(std::string_view command);

}  // namespace bulkhead::cli
