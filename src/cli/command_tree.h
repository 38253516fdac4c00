// The command tree of `bulkhead` (docs/cli.md), declared once with CLI11:
// each command, its positional words and its flags, with their help. The
// parser (command_line.cpp) and the help pages (help.cpp) both read it.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace bulkhead::cli {

// Option groups: a command's own flags, and the flags of every command that
// talks to an agent (listed once in the overview).
inline constexpr const char* kOwnGroup = "flags";
inline constexpr const char* kAgentGroup = "agent flags";

// Every command has one positional option of this name holding its words
// (hidden when the command takes none, so that the command can say so).
inline constexpr const char* kWords = "words";

// A fresh tree; a CLI11 App keeps the state of the last parse, so each
// parse gets its own.
std::unique_ptr<CLI::App> makeCommandTree();

// The commands below `app` named by `path` ("workload", "add"); nullptr
// when a name is not a command there.
CLI::App* findCommand(CLI::App& app, const std::vector<std::string>& path);

// "workload add" for that command (the root: "").
std::string commandPath(const CLI::App& command);

// validate and plan ignore flags that do not concern them (docs/cli.md).
bool ignoresOtherFlags(const CLI::App& command);

}  // namespace bulkhead::cli
