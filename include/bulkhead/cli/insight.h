// `bulkhead suggest` and `bulkhead graph` (docs/cli.md): the command-line
// side of the insight library (flow files, --policies, output files).
#pragma once

#include <iosfwd>
#include <string>

#include "bulkhead/cli/commands.h"

namespace bulkhead::cli {

int suggestCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                   std::ostream& err);
int graphCommand(const Args& args, std::ostream& out, std::ostream& err);

// "90s", "10m", "1h", "500ms" or plain seconds, in milliseconds; -1 if bad.
long parseDurationMs(const std::string& text);

}  // namespace bulkhead::cli
