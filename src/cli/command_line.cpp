#include "command_line.h"

#include <optional>

#include "command_tree.h"
#include "help_format.h"

namespace bulkhead::cli {

namespace {

// One flag as written: its definition somewhere in the tree, its name, its value.
struct Flag {
  const CLI::Option* option;
  std::string name;
  std::optional<std::string> value;
};

struct Split {
  std::vector<std::string> words;  // in order: the command's path, then its arguments
  std::vector<Flag> flags;
  std::string error;
};

// The definition of flag `name` ("--agent", "-o") in `scope` or below it.
const CLI::Option* findFlag(const CLI::App& scope, const std::string& name) {
  const bool isLong = name.rfind("--", 0) == 0;
  for (const CLI::Option* o : scope.get_options())
    if (isLong ? o->check_lname(name.substr(2)) : o->check_sname(name.substr(1))) return o;
  for (const CLI::App* sub : commandsOf(scope))
    if (const CLI::Option* o = findFlag(*sub, name)) return o;
  return nullptr;
}

// "--anything", or a short flag the tree defines ("-o"); other words that
// start with '-' ("-" for standard input) are arguments.
bool isFlag(const std::string& word, const CLI::App& root) {
  if (word.rfind("--", 0) == 0) return true;
  return word.size() == 2 && word[0] == '-' && findFlag(root, word) != nullptr;
}

// CLI11 reads a command's flags only after the command's name; bulkhead
// takes them anywhere ("bulkhead --agent X status"), as "--flag value" or
// "--flag=value". Words and flags are told apart here, with the tree's
// knowledge of which flags take a value; a flag's definition is looked for
// in `scope` first, as `--version` takes a value only after push.
Split split(const std::vector<std::string>& argv, const CLI::App& root, const CLI::App& scope) {
  Split s;
  for (size_t i = 0; i < argv.size() && s.error.empty(); ++i) {
    const std::string& a = argv[i];
    if (!isFlag(a, root)) {
      s.words.push_back(a);
      continue;
    }
    const size_t eq = a.find('=');
    Flag f{findFlag(scope, a.substr(0, eq)), a.substr(0, eq), std::nullopt};
    if (f.option == nullptr) f.option = findFlag(root, f.name);
    if (f.option == nullptr) {
      s.error = "unknown flag " + f.name;
    } else if (!takesValue(*f.option)) {
      if (eq != std::string::npos) s.error = f.name + " takes no value";
    } else if (eq != std::string::npos) {
      f.value = a.substr(eq + 1);
    } else if (i + 1 < argv.size() && !(f.name == "--version" && argv[i + 1].rfind('-', 0) == 0)) {
      // push's --version V never takes a flag for its value: "push P --version
      // --json" lacks the version, as it always has.
      f.value = argv[++i];
    } else {
      s.error = f.name + " needs a value";
    }
    s.flags.push_back(std::move(f));
  }
  return s;
}

bool given(const Split& s, const std::string& name) {
  for (const Flag& f : s.flags)
    if (f.name == name) return true;
  return false;
}

CommandLine answer(CommandLine::Action action, std::string text) {
  CommandLine line;
  line.action = action;
  line.text = std::move(text);
  return line;
}

// The command's argv in CLI11's order: its path, the flags that apply to it,
// then "--" and its arguments (so that an argument starting with '-' stays
// one). A flag of another command is refused, or ignored by validate and plan.
std::optional<std::string> cliArgv(const Split& s, size_t pathLength, const CLI::App& command,
                                   std::vector<std::string>* out) {
  out->assign(s.words.begin(), s.words.begin() + long(pathLength));
  for (const Flag& f : s.flags) {
    const std::string name = "--" + f.option->get_lnames().front();
    if (command.get_option_no_throw(name) == nullptr) {
      if (ignoresOtherFlags(command)) continue;
      return "bulkhead " + commandPath(command) + ": " + name + " does not apply to this command\n";
    }
    out->push_back(name);
    if (f.value) out->push_back(*f.value);
  }
  if (pathLength < s.words.size()) out->push_back("--");
  out->insert(out->end(), s.words.begin() + long(pathLength), s.words.end());
  return std::nullopt;
}

// What CLI11 read, as Args: the path and words, each flag given with its values.
Args argsOf(const CLI::App& command, const std::vector<std::string>& path) {
  Args args;
  args.command = commandPath(command);
  args.words = path;
  for (const CLI::Option* o : command.get_options()) {
    if (o->count() == 0 || o == command.get_help_ptr()) continue;
    if (o->get_positional()) {  // the words (get_name() is "" when hidden)
      args.words.insert(args.words.end(), o->results().begin(), o->results().end());
      continue;
    }
    auto& values = args.flags["--" + o->get_lnames().front()];
    if (takesValue(*o)) values = o->results();
  }
  return args;
}

// The commands that take other commands and no words of their own
// (`workload`) need one of those.
std::optional<std::string> missingSubcommand(const CLI::App& command) {
  const auto subs = command.get_subcommands([](const CLI::App*) { return true; });
  const CLI::Option* words = command.get_option_no_throw(kWords);
  if (subs.empty() || (words != nullptr && !words->get_group().empty())) return std::nullopt;
  std::string names;
  for (size_t i = 0; i < subs.size(); ++i)
    names += (i == 0 ? "" : i + 1 == subs.size() ? " or " : ", ") + subs[i]->get_name();
  return "bulkhead " + commandPath(command) + ": expected " + names + "\n";
}

}  // namespace

CommandLine readCommandLine(const std::vector<std::string>& argv) {
  auto tree = makeCommandTree();
  Split s = split(argv, *tree, *tree);
  if (s.error.empty() && !s.words.empty())
    if (const CLI::App* scope = findCommand(*tree, {s.words[0]})) s = split(argv, *tree, *scope);
  if (!s.error.empty())
    return answer(CommandLine::Action::kError, "bulkhead: " + s.error + "\n" + tree->help());
  // "push --version V" names the bundle; anywhere else --version asks for ours.
  for (const Flag& f : s.flags)
    if (f.option == tree->get_option_no_throw("--version"))
      return answer(CommandLine::Action::kVersion, "");
  CLI::App* command = tree.get();
  size_t pathLength = 0;
  for (; pathLength < s.words.size(); ++pathLength) {
    CLI::App* sub = findCommand(*command, {s.words[pathLength]});
    if (sub == nullptr) break;
    command = sub;
  }
  if (given(s, "--help")) return answer(CommandLine::Action::kHelp, command->help());
  if (s.words.empty()) return answer(CommandLine::Action::kUsage, tree->help());
  if (pathLength == 0)
    return answer(CommandLine::Action::kError,
                  "bulkhead: unknown command \"" + s.words[0] + "\"\n" + tree->help());
  if (auto e = missingSubcommand(*command)) return answer(CommandLine::Action::kError, *e);
  std::vector<std::string> args;
  if (auto e = cliArgv(s, pathLength, *command, &args))
    return answer(CommandLine::Action::kError, *e);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    tree->parse(args);
  } catch (const CLI::ParseError& e) {
    return answer(CommandLine::Action::kError,
                  "bulkhead " + commandPath(*command) + ": " + e.what() + "\n");
  }
  CommandLine line;
  line.args = argsOf(*command, {s.words.begin(), s.words.begin() + long(pathLength)});
  return line;
}

bool parseArgs(const std::vector<std::string>& argv, Args* out, std::string* error) {
  CommandLine line = readCommandLine(argv);
  if (line.action == CommandLine::Action::kError) {
    *error = line.text;
    return false;
  }
  *out = std::move(line.args);
  return true;
}

}  // namespace bulkhead::cli
