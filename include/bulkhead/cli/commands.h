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

// What the command line asks of one command, as read against the command
// tree (src/cli/command_tree.cpp). Flags are accepted before or after the
// command ("bulkhead --agent X status" == "bulkhead status --agent X"); a
// flag may repeat; "--flag=value" and "--flag value" both work.
struct Args {
  std::string command;             // its path: "status", "workload add"
  std::vector<std::string> words;  // the command's path ("workload", "add"), then its arguments
  std::map<std::string, std::vector<std::string>> flags;  // by long name; a switch has no values

  bool has(const std::string& flag) const { return flags.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = {}) const;
};

// Reads argv (without argv[0]). On an unknown flag, a missing value, a flag
// that does not apply or an unknown command returns false with a message in
// *error. --help and --version leave *out empty.
bool parseArgs(const std::vector<std::string>& argv, Args* out, std::string* error);

int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

}  // namespace bulkhead::cli
