// The help pages of `bulkhead`, written from the command tree
// (command_tree.cpp) in the man page's terms: a usage synopsis per command,
// what it does, its flags, the agent flags and the exit codes.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace bulkhead::cli {

class HelpFormatter : public CLI::Formatter {
 public:
  // The overview for the root, else the page of one command.
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override;
};

// Every command below `app`, in the order they were declared.
std::vector<const CLI::App*> commandsOf(const CLI::App& app);

// Whether a flag takes a value (otherwise it is on or off).
bool takesValue(const CLI::Option& flag);

}  // namespace bulkhead::cli
