#include "bulkhead/cli/help.h"

#include <sstream>

#include "command_tree.h"
#include "help_format.h"

namespace bulkhead::cli {

namespace {

constexpr size_t kWidth = 79;
constexpr size_t kFlagColumn = 24;     // where a flag's description starts
constexpr size_t kSummaryColumn = 38;  // where a command's summary starts (overview)

constexpr std::string_view kExitCodes =
    "exit codes: 0 success, 1 runtime failure (agent unreachable, kernel refused),\n"
    "2 bad input (bad flag, invalid policy, unknown workload).\n";

// `text` broken into lines of at most kWidth columns, the first starting at
// column `at` (already written), the others indented by `indent`.
std::string wrap(const std::string& text, size_t at, size_t indent) {
  std::string out;
  size_t column = at;
  std::istringstream words(text);
  for (std::string w; words >> w;) {
    if (!out.empty() && column + 1 + w.size() > kWidth) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else if (!out.empty()) {
      out += ' ';
      ++column;
    }
    out += w;
    column += w.size();
  }
  return out;
}

// Synopsis tokens, each kept on one line: "--iface IF [--iface IF]...".
std::string flagToken(const CLI::Option& o) {
  const std::string name = "--" + o.get_lnames().front();
  const std::string one = takesValue(o) ? name + " " + o.get_type_name() : name;
  const bool repeatable = o.get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll;
  if (o.get_required()) return repeatable ? one + " [" + one + "]..." : one;
  return "[" + one + "]" + (repeatable ? "..." : "");
}

const CLI::Option* wordsOf(const CLI::App& c) {
  for (const CLI::Option* o : c.get_options())
    if (o->get_positional()) return o;
  return nullptr;
}

// The command's words and own flags, after its path.
std::vector<std::string> synopsisTokens(const CLI::App& c) {
  std::vector<std::string> tokens;
  const CLI::Option* w = wordsOf(c);
  if (w != nullptr && !w->get_group().empty()) tokens.push_back(w->get_type_name());
  for (const CLI::Option* o : c.get_options())
    if (o->get_group() == kOwnGroup && o != c.get_help_ptr()) tokens.push_back(flagToken(*o));
  return tokens;
}

bool hasSynopsis(const CLI::App& c) {
  return !synopsisTokens(c).empty() || commandsOf(c).empty();
}

std::string synopsis(const CLI::App& c, const std::string& lead, size_t indent) {
  std::string out = lead + commandPath(c);
  size_t column = out.size();
  for (const auto& t : synopsisTokens(c)) {
    if (column + 1 + t.size() > kWidth) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else {
      out += ' ';
      ++column;
    }
    out += t;
    column += t.size();
  }
  return out;
}

std::string flagLines(const CLI::App& c, const std::string& group) {
  std::string out;
  for (const CLI::Option* o : c.get_options()) {
    if (o->get_group() != group || o == c.get_help_ptr()) continue;
    std::string head = "  ";
    for (const auto& s : o->get_snames())
      head += "-" + s + ", ";
    head += "--" + o->get_lnames().front();
    if (takesValue(*o)) head += " " + o->get_type_name();
    if (head.size() + 2 > kFlagColumn)
      head += "\n" + std::string(kFlagColumn, ' ');
    else
      head += std::string(kFlagColumn - head.size(), ' ');
    out += head + wrap(o->get_description(), kFlagColumn, kFlagColumn) + "\n";
  }
  return out;
}

// The agent flags of `c` or, for a group such as `workload`, of its first
// command that has them.
std::string agentFlagLines(const CLI::App& c) {
  std::string lines = flagLines(c, kAgentGroup);
  for (const CLI::App* sub : commandsOf(c))
    if (lines.empty()) lines = flagLines(*sub, kAgentGroup);
  return lines;
}

std::string commandPage(const CLI::App& c) {
  std::string out;
  const char* lead = "usage: bulkhead ";
  if (hasSynopsis(c)) out += synopsis(c, lead, 7 + 9 + commandPath(c).size() + 1) + "\n";
  for (const CLI::App* sub : commandsOf(c)) {
    out += synopsis(*sub, out.empty() ? lead : "       bulkhead ",
                    7 + 9 + commandPath(*sub).size() + 1) +
           "\n";
  }
  const std::string text = c.get_footer().empty() ? c.get_description() : c.get_footer();
  out += "\n" + text + "\n";
  if (const std::string own = flagLines(c, kOwnGroup); !own.empty()) out += "\nflags:\n" + own;
  for (const CLI::App* sub : commandsOf(c))
    if (const std::string own = flagLines(*sub, kOwnGroup); !own.empty())
      out += "\nflags of " + commandPath(*sub) + ":\n" + own;
  if (const std::string agent = agentFlagLines(c); !agent.empty())
    out += "\nagent flags:\n" + agent;
  return out + "\n" + std::string(kExitCodes);
}

// One line (or more) of the overview: the synopsis, then the summary.
std::string overviewEntry(const CLI::App& c) {
  std::string entry = synopsis(c, "  ", 6 + commandPath(c).size() + 1);
  const size_t lastLine = entry.size() - (entry.rfind('\n') + 1);
  if (lastLine + 2 > kSummaryColumn)
    entry += "\n" + std::string(kSummaryColumn, ' ');
  else
    entry += std::string(kSummaryColumn - lastLine, ' ');
  return entry + wrap(c.get_description(), kSummaryColumn, kSummaryColumn) + "\n";
}

std::string overview(const CLI::App& root) {
  std::string out = "usage: bulkhead COMMAND [ARGS] [FLAGS]\n\ncommands:\n";
  std::string agent;
  for (const CLI::App* c : commandsOf(root)) {
    if (hasSynopsis(*c)) out += overviewEntry(*c);
    for (const CLI::App* sub : commandsOf(*c))
      out += overviewEntry(*sub);
    // The fullest list: push lists its --agent among its own flags.
    if (const std::string lines = agentFlagLines(*c); lines.size() > agent.size()) agent = lines;
  }
  out += "\nagent flags (every command that talks to an agent):\n" + agent;
  return out + "\n" + root.get_footer() + "\n" + std::string(kExitCodes);
}

}  // namespace

std::string HelpFormatter::make_help(const CLI::App* app, std::string, CLI::AppFormatMode) const {
  return app->get_parent() == nullptr ? overview(*app) : commandPage(*app);
}

std::vector<const CLI::App*> commandsOf(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App*) { return true; });
}

bool takesValue(const CLI::Option& flag) {
  return flag.get_expected_max() > 0;
}

std::string usage() {
  return makeCommandTree()->help();
}

std::string commandHelp(std::string_view command) {
  auto tree = makeCommandTree();
  CLI::App* c = findCommand(*tree, {std::string(command)});
  return c == nullptr ? std::string() : c->help();
}

}  // namespace bulkhead::cli
