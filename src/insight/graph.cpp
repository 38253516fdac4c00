#include "bulkhead/insight/graph.h"

#include "bulkhead/policy/loader.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

extern char** environ;

namespace bulkhead::insight {

namespace {

std::string portsLabel(const std::vector<policy::PortSpec>& ports) {
  std::string out;
  for (const auto& p : ports)
    out += (out.empty() ? "" : ",") + p.toString();
  return out;
}

std::string dotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string mermaidText(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '"' ? std::string("#quot;") : std::string(1, c);
  return "\"" + out + "\"";
}

}  // namespace

GraphBuilder::GraphBuilder(const policy::Bundle& bundle) : bundle_(bundle), index_(bundle) {}

void GraphBuilder::addFlow(const FlowRecord& r) {
  if (r.hasSrc) index_.learnSource(r.src, r.app);
  if ((r.action != "deny" && r.action != "audit") || r.app.empty() || !policy::isValidName(r.app))
    return;
  std::string to;
  auto port = portOf(r);
  if (port)
    if (const auto* s = index_.serviceFor(r.dst, *port)) to = "svc:" + s->name;
  if (to.empty()) {
    const std::string app = index_.appFor(r.dst);
    if (!app.empty()) to = "app:" + app;
  }
  if (to.empty()) {
    const std::string a = r.dst.toString();
    to = "net:" + a;
    if (flowNodes_.size() < 10000) flowNodes_.emplace(to, a);
    if (!flowNodes_.count(to)) to = "net:other";
  }
  denied_[{"app:" + r.app, to}] += r.count;
}

namespace {

// The graph being built from a bundle: nodes and edges by key, each once.
class GraphParts {
 public:
  explicit GraphParts(const policy::Bundle& bundle) : bundle_(bundle) {
    for (const auto& a : bundle_.apps)
      nodes_["app:" + a.name] = {"app:" + a.name, a.name, NodeKind::kApp};
    for (const auto& s : bundle_.services)
      nodes_["svc:" + s.name] = {"svc:" + s.name, s.name, NodeKind::kService};
  }

  // Each App's egress rules: allowed edges.
  void addEgress() {
    for (const auto& a : bundle_.apps) {
      for (const auto& r : a.egress) {
        for (const auto& n : r.to)
          edge("app:" + a.name, nodeFor(n.name), EdgeKind::kAllowed, portsLabel(r.ports));
        for (const auto& c : r.toCIDRs)
          edge("app:" + a.name, netNode(c), EdgeKind::kAllowed, portsLabel(r.ports));
      }
    }
  }

  // GlobalPolicy allow and deny rules, from every app they select.
  void addGlobalPolicies() {
    for (const auto& gp : bundle_.globalPolicies) {
      for (const auto& rule : gp.rules) {
        if (rule.action == policy::RuleAction::kLog) continue;
        const EdgeKind kind =
            rule.action == policy::RuleAction::kDeny ? EdgeKind::kForbidden : EdgeKind::kAllowed;
        const std::vector<std::string> targets = targetsOf(rule);
        const std::string label =
            gp.name + (rule.ports.empty() ? "" : " " + portsLabel(rule.ports));
        for (const auto& a : bundle_.apps) {
          if (!rule.from.matches(a.effectiveLabels())) continue;
          for (const auto& t : targets)
            if (t != "app:" + a.name) edge("app:" + a.name, t, kind, label);
        }
      }
    }
  }

  // Denied flows: (app, node id) -> attempts; `flowNodes` labels addresses.
  void addDenied(const std::map<std::pair<std::string, std::string>, uint64_t>& denied,
                 const std::map<std::string, std::string>& flowNodes) {
    for (const auto& [key, count] : denied) {
      const auto& [from, to] = key;
      nodes_.try_emplace(from, GraphNode{from, from.substr(4), NodeKind::kApp});
      if (!nodes_.count(to)) {
        auto it = flowNodes.find(to);
        const std::string label = it != flowNodes.end() ? it->second : to.substr(4);
        nodes_[to] = {to, label, to.rfind("app:", 0) == 0 ? NodeKind::kApp : NodeKind::kNetwork};
      }
      auto& e = edges_[{from, to, EdgeKind::kDenied}];
      e.from = from;
      e.to = to;
      e.kind = EdgeKind::kDenied;
      e.count = count;
      e.label = std::to_string(count) + " denied";
    }
  }

  Graph graph() const {
    Graph g;
    for (const auto& [id, n] : nodes_)
      g.nodes.push_back(n);
    for (const auto& [k, e] : edges_)
      g.edges.push_back(e);
    return g;
  }

 private:
  std::string nodeFor(const std::string& name) const {
    return bundle_.findService(name) ? "svc:" + name : "app:" + name;
  }

  std::string netNode(const policy::Cidr& c) {
    const std::string id = "net:" + c.toString();
    nodes_.try_emplace(id, GraphNode{id, c.toString(), NodeKind::kNetwork});
    return id;
  }

  void edge(const std::string& from, const std::string& to, EdgeKind kind,
            const std::string& label) {
    auto& e = edges_[{from, to, kind}];
    e.from = from;
    e.to = to;
    e.kind = kind;
    if (!label.empty() && e.label.find(label) == std::string::npos)
      e.label += (e.label.empty() ? "" : "; ") + label;
  }

  // The nodes a GlobalPolicy rule's destinations name or select.
  std::vector<std::string> targetsOf(const policy::GlobalRule& rule) {
    std::vector<std::string> targets;
    for (const auto& n : rule.to)
      targets.push_back(nodeFor(n.name));
    if (rule.toSelector) {
      for (const auto& s : bundle_.services)
        if (rule.toSelector->matches(s.labels)) targets.push_back("svc:" + s.name);
      for (const auto& x : bundle_.apps)
        if (rule.toSelector->matches(x.effectiveLabels())) targets.push_back("app:" + x.name);
    }
    for (const auto& c : rule.toCIDRs)
      targets.push_back(netNode(c));
    return targets;
  }

  const policy::Bundle& bundle_;
  std::map<std::string, GraphNode> nodes_;
  std::map<std::tuple<std::string, std::string, EdgeKind>, GraphEdge> edges_;
};

}  // namespace

Graph GraphBuilder::build() const {
  GraphParts parts(bundle_);
  parts.addEgress();
  parts.addGlobalPolicies();
  parts.addDenied(denied_, flowNodes_);
  return parts.graph();
}

std::string toDot(const Graph& g) {
  std::string out = "digraph bulkhead {\n  rankdir=LR;\n";
  out +=
      "  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", "
      "fontsize=9];\n";
  for (const auto& n : g.nodes) {
    const char* shape =
        n.kind == NodeKind::kApp ? "shape=box, style=\"rounded,filled\", fillcolor=\"#dbe9f6\""
        : n.kind == NodeKind::kService ? "shape=ellipse, style=filled, fillcolor=\"#e8f5e9\""
                                       : "shape=note, style=filled, fillcolor=\"#f5f5f5\"";
    out += "  " + dotQuote(n.id) + " [label=" + dotQuote(n.label) + ", " + shape + "];\n";
  }
  for (const auto& e : g.edges) {
    out += "  " + dotQuote(e.from) + " -> " + dotQuote(e.to) + " [";
    switch (e.kind) {
      case EdgeKind::kAllowed:
        out += "color=\"#2e7d32\"";
        break;
      case EdgeKind::kForbidden:
        out += "style=dashed, color=\"#616161\", arrowhead=tee";
        break;
      case EdgeKind::kDenied:
        out += "color=red, fontcolor=red, penwidth=2";
        break;
    }
    if (!e.label.empty()) out += ", label=" + dotQuote(e.label);
    out += "];\n";
  }
  return out + "}\n";
}

std::string toMermaid(const Graph& g) {
  std::map<std::string, std::string> ids;
  std::string out = "flowchart LR\n";
  size_t nets = 0;
  for (const auto& n : g.nodes) {
    std::string id;
    if (n.kind == NodeKind::kNetwork) {
      id = "net" + std::to_string(++nets);
    } else {
      id = n.id.substr(0, 3) + "_" + n.id.substr(4);
      std::replace(id.begin(), id.end(), '-', '_');
    }
    ids[n.id] = id;
    const std::string text = mermaidText(n.label);
    if (n.kind == NodeKind::kApp) out += "  " + id + "[" + text + "]\n";
    if (n.kind == NodeKind::kService) out += "  " + id + "([" + text + "])\n";
    if (n.kind == NodeKind::kNetwork) out += "  " + id + "[/" + text + "/]\n";
  }
  std::vector<size_t> red;
  size_t index = 0;
  for (const auto& e : g.edges) {
    const std::string arrow = e.kind == EdgeKind::kForbidden ? "-.-x" : "-->";
    out += "  " + ids[e.from] + " " + arrow;
    if (!e.label.empty()) out += "|" + mermaidText(e.label) + "|";
    out += " " + ids[e.to] + "\n";
    if (e.kind == EdgeKind::kDenied) red.push_back(index);
    ++index;
  }
  for (size_t i : red)
    out += "  linkStyle " + std::to_string(i) + " stroke:red,color:red,stroke-width:2px\n";
  return out;
}

Result<std::string> dotToSvg(const std::string& dot) {
  char in[] = "/tmp/bulkhead-graph-XXXXXX";
  const int fd = mkstemp(in);
  if (fd < 0) return makeError(ErrorCode::kIo, "creating a temporary file", errno);
  const std::string inPath = in, outPath = inPath + ".svg";
  struct Cleanup {
    std::string a, b;
    ~Cleanup() {
      ::unlink(a.c_str());
      ::unlink(b.c_str());
    }
  } cleanup{inPath, outPath};
  const bool written = ::write(fd, dot.data(), dot.size()) == ssize_t(dot.size());
  ::close(fd);
  if (!written) return makeError(ErrorCode::kIo, "writing " + inPath, errno);
  std::vector<std::string> args = {"dot", "-Tsvg", inPath, "-o", outPath};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "dot", nullptr, nullptr, argv.data(), environ);
  if (rc != 0)
    return makeError(ErrorCode::kUnavailable,
                     "cannot run Graphviz's `dot` (install the graphviz package): " +
                         std::string(std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return makeError(ErrorCode::kInternal, "`dot -Tsvg` failed (exit status " +
                                               std::to_string(WEXITSTATUS(status)) + ")");
  std::ifstream f(outPath, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace bulkhead::insight
