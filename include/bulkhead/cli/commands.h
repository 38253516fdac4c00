// The `bulkhead` command line (docs/cli.md), as a library so tests can drive it
// in-process; src/bulkhead/main.cpp only forwards argv.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "bulkhead/common/defaults.h"

namespace bulkhead::cli {

// Exit codes (docs/cli.md): common/defaults.h.
using common::kExitBadInput;
using common::kExitOk;
using common::kExitRuntime;

// argv split into the subcommand words and flags. Flags are accepted before
// or after the subcommand ("bulkhead --agent X status" == "bulkhead status
// --agent X"); a flag may repeat; "--flag=value" and "--flag value" both work.
struct Args {
  std::vector<std::string> words;  // subcommand and positional arguments
  std::map<std::string, std::vector<std::string>> flags;

  bool has(const std::string& flag) const { return flags.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = {}) const;
};

// Parses argv (without argv[0]). On an unknown flag or a missing value returns
// false with a message in *error.
bool parseArgs(const std::vector<std::string>& argv, Args* out, std::string* error);

int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

}  // namespace bulkhead::cli
