// The `bulkhead` command line run in-process (cli::run) for the unit tests
// of its commands: the exit code and everything it wrote. Header-only: the
// unit tests do not link the privileged tests' support library.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "bulkhead/cli/commands.h"

namespace bulkhead::testing {

struct CliRun {
  int code;
  std::string out, err;
};

inline CliRun run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = cli::run(args, out, err);
  return {code, out.str(), err.str()};
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace bulkhead::testing
