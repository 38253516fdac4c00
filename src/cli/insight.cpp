#include "bulkhead/cli/insight.h"

#include <charconv>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bulkhead/cli/client.h"
#include "bulkhead/insight/graph.h"
#include "bulkhead/insight/suggest.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::cli {

namespace {

// Reads every flow file ("-": standard input) into `sink`; false (and a
// message) when one cannot be opened.
bool readFlowFiles(const std::vector<std::string>& files,
                   const std::function<void(const insight::FlowRecord&)>& sink,
                   insight::ReadStats& stats, const std::string& command, std::ostream& err) {
  for (const auto& f : files) {
    if (f == "-") {
      insight::readFlowLines(std::cin, "<stdin>", sink, stats);
      continue;
    }
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      err << "bulkhead " << command << ": cannot read " << f << "\n";
      return false;
    }
    insight::readFlowLines(in, f, sink, stats);
    if (in.bad()) {
      err << "bulkhead " << command << ": error reading " << f << "\n";
      return false;
    }
  }
  return true;
}

void reportSkipped(const insight::ReadStats& stats, const std::string& command, std::ostream& err) {
  if (stats.skipped == 0) return;
  err << "bulkhead " << command << ": skipped " << stats.skipped << " of " << stats.lines
      << " lines that are not flow events:\n";
  for (const auto& e : stats.firstErrors)
    err << "  " << e << "\n";
  if (stats.skipped > stats.firstErrors.size()) err << "  ...\n";
}

// Writes `text` to -o FILE, or to `out`.
int emit(const Args& args, const std::string& text, const std::string& command, std::ostream& out,
         std::ostream& err) {
  if (!args.has("--output")) {
    out << text;
    return kExitOk;
  }
  const std::string path = args.get("--output");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f.flush()) {
      err << "bulkhead " << command << ": cannot write " << path << "\n";
      return kExitRuntime;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err << "bulkhead " << command << ": cannot write " << path << "\n";
    return kExitRuntime;
  }
  return kExitOk;
}

bool loadBundle(const std::vector<std::string>& paths, policy::Bundle* bundle,
                const std::string& command, std::ostream& err) {
  auto r = policy::loadPaths(paths);
  for (const auto& d : r.errors)
    err << d.toString() << "\n";
  if (!r.ok()) {
    err << "bulkhead " << command << ": the policy has " << r.errors.size() << " error(s)\n";
    return false;
  }
  *bundle = std::move(r.bundle);
  return true;
}

}  // namespace

long parseDurationMs(const std::string& text) {
  long n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n < 0 || p == text.data()) return -1;
  const std::string unit(p, text.data() + text.size());
  long scale;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60000;
  } else if (unit == "h") {
    scale = 3600000;
  } else {
    return -1;
  }
  if (n > 7L * 24 * 3600 * 1000 / scale) return -1;  // a week at most
  return n * scale;
}

int suggestCommand(const Args& args, const std::string& envAgent, std::ostream& out,
                   std::ostream& err) {
  const std::vector<std::string> files(args.words.begin() + 1, args.words.end());
  if (files.empty() && !args.has("--agent")) {
    err << "bulkhead suggest: name flow files (JSON lines, - for stdin) or --agent ADDR --since "
           "DURATION\n";
    return kExitBadInput;
  }
  insight::SuggestOptions options;
  options.app = args.get("--app");
  if (args.has("--max-rules")) {
    const std::string v = args.get("--max-rules");
    size_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n > 100000) {
      err << "bulkhead suggest: --max-rules must be a number from 0 to 100000\n";
      return kExitBadInput;
    }
    options.maxRules = n;
  }
  policy::Bundle bundle;
  if (args.has("--policies") && !loadBundle(args.flags.at("--policies"), &bundle, "suggest", err))
    return kExitBadInput;
  insight::Suggester suggester(bundle, options);
  insight::ReadStats stats;
  auto sink = [&](const insight::FlowRecord& r) { suggester.add(r); };
  if (!readFlowFiles(files, sink, stats, "suggest", err)) return kExitBadInput;
  if (args.has("--agent")) {
    const long ms = parseDurationMs(args.get("--since", "10m"));
    if (ms <= 0) {
      err << "bulkhead suggest: --since: expected a duration such as 90s, 10m or 1h\n";
      return kExitBadInput;
    }
    err << "bulkhead suggest: listening to the agent's flows for " << args.get("--since", "10m")
        << " (Ctrl-C to stop early)\n";
    const int rc = watchFlowsFor(
        args, envAgent, "suggest", ms,
        [&](const std::string& line) {
          std::istringstream in(line);
          insight::readFlowLines(in, "agent", sink, stats);
        },
        err);
    if (rc != kExitOk) return rc;
  }
  reportSkipped(stats, "suggest", err);
  if (stats.events == 0) {
    err << "bulkhead suggest: no flow events in the input\n";
    return kExitBadInput;
  }
  const insight::Suggestion s = suggester.finish();
  const auto problems = insight::checkSuggestion(bundle, s.yaml);
  if (!problems.empty()) {
    err << "bulkhead suggest: internal error, the suggestion does not validate:\n";
    for (const auto& d : problems)
      err << "  " << d.toString() << "\n";
    return kExitRuntime;
  }
  err << "bulkhead suggest: read " << stats.events << " flow events\n" << s.summary.text();
  return emit(args, s.yaml, "suggest", out, err);
}

int graphCommand(const Args& args, std::ostream& out, std::ostream& err) {
  if (args.words.size() < 2) {
    err << "bulkhead graph: name at least one policy file or directory\n";
    return kExitBadInput;
  }
  const std::string format = args.get("--format", "dot");
  if (format != "dot" && format != "svg" && format != "mermaid") {
    err << "bulkhead graph: --format must be dot, svg or mermaid\n";
    return kExitBadInput;
  }
  policy::Bundle bundle;
  if (!loadBundle({args.words.begin() + 1, args.words.end()}, &bundle, "graph", err))
    return kExitBadInput;
  insight::GraphBuilder builder(bundle);
  if (args.has("--flows")) {
    insight::ReadStats stats;
    if (!readFlowFiles(
            args.flags.at("--flows"), [&](const insight::FlowRecord& r) { builder.addFlow(r); },
            stats, "graph", err))
      return kExitBadInput;
    reportSkipped(stats, "graph", err);
  }
  const insight::Graph g = builder.build();
  if (format == "mermaid") return emit(args, insight::toMermaid(g), "graph", out, err);
  const std::string dot = insight::toDot(g);
  if (format == "dot") return emit(args, dot, "graph", out, err);
  auto svg = insight::dotToSvg(dot);
  if (!svg) {
    err << "bulkhead graph: " << svg.error().message << "\n";
    return kExitRuntime;
  }
  return emit(args, *svg, "graph", out, err);
}

}  // namespace bulkhead::cli
