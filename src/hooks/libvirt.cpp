#include "bulkhead/hooks/libvirt.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "bulkhead/common/agent_address.h"
#include "bulkhead/policy/address.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::hooks {

namespace {

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using Doc = std::unique_ptr<xmlDoc, DocFree>;

bool named(const xmlNode* n, const char* name) {
  return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name);
}

bool inBulkheadNs(const xmlNode* n) {
  return n->ns && n->ns->href && xmlStrEqual(n->ns->href, BAD_CAST kMetadataNamespace);
}

// Children in no namespace (libvirt's own elements).
std::vector<xmlNode*> children(const xmlNode* parent, const char* name) {
  std::vector<xmlNode*> out;
  for (xmlNode* c = parent ? parent->children : nullptr; c; c = c->next)
    if (named(c, name) && !inBulkheadNs(c)) out.push_back(c);
  return out;
}

xmlNode* child(const xmlNode* parent, const char* name) {
  auto all = children(parent, name);
  return all.empty() ? nullptr : all.front();
}

std::string attr(const xmlNode* n, const char* name) {
  if (!n) return "";
  xmlChar* v = xmlGetNoNsProp(n, BAD_CAST name);
  if (!v) return "";
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

std::string text(const xmlNode* n) {
  xmlChar* v = xmlNodeGetContent(n);
  if (!v) return "";
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  const auto b = out.find_first_not_of(" \t\r\n"), e = out.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : out.substr(b, e - b + 1);
}

Result<Doc> parse(const std::string& xml) {
  if (xml.size() > kMaxInputBytes)
    return makeError(ErrorCode::kInvalidInput, "domain XML larger than 16 MB");
  // No network access, no entity expansion, no DTD loading: the XML is data.
  Doc doc(xmlReadMemory(xml.data(), int(xml.size()), "domain.xml", nullptr,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc) {
    const xmlError* e = xmlGetLastError();
    std::string why = e && e->message ? e->message : "unknown error";
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    return makeError(ErrorCode::kInvalidInput, "domain XML does not parse: line " +
                                                   std::to_string(e ? e->line : 0) + ", column " +
                                                   std::to_string(e ? e->int2 : 0) + ": " + why);
  }
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!root || !named(root, "domain"))
    return makeError(ErrorCode::kInvalidInput, "domain XML: the root element is not <domain>");
  return doc;
}

// The guest's address of an <ip>: `peer` when libvirt names it, else `address`.
Status addAddress(const std::string& raw, const std::string& where, v1::Workload* w) {
  const std::string a = raw.substr(0, raw.find('/'));
  auto ip = policy::IpAddr::parse(a);
  if (!ip) return makeError(ErrorCode::kInvalidInput, where + ": bad address \"" + raw + "\"");
  const std::string s = ip->toString();
  if (std::find(w->addresses().begin(), w->addresses().end(), s) == w->addresses().end())
    w->add_addresses(s);
  return {};
}

Status readInterfaces(const xmlNode* root, v1::Workload* w, std::vector<std::string>* notes) {
  for (const xmlNode* i : children(child(root, "devices"), "interface")) {
    const std::string type = attr(i, "type");
    const std::string dev = attr(child(i, "target"), "dev");
    if (type != "ethernet" || dev.empty()) {
      if (notes)
        notes->push_back("interface " + (dev.empty() ? std::string("(no target dev)") : dev) +
                         " of type " + type + " is not a routed tap; not registered");
      continue;
    }
    w->add_interfaces(dev);
    for (const xmlNode* ip : children(i, "ip")) {
      const std::string peer = attr(ip, "peer"), address = attr(ip, "address");
      if (peer.empty() && address.empty()) continue;
      if (auto st = addAddress(peer.empty() ? address : peer, "interface " + dev + " <ip>", w); !st)
        return st;
    }
  }
  return {};
}

}  // namespace

Result<std::optional<v1::Workload>> workloadFromDomainXml(const std::string& xml,
                                                          std::vector<std::string>* notes) {
  auto doc = parse(xml);
  if (!doc) return doc.takeError();
  const xmlNode* root = xmlDocGetRootElement(doc->get());
  const xmlNode* meta = nullptr;
  for (xmlNode* c = child(root, "metadata") ? child(root, "metadata")->children : nullptr; c;
       c = c->next)
    if (named(c, "workload") && inBulkheadNs(c)) meta = c;
  if (!meta) return std::optional<v1::Workload>();

  const std::string domain = text(child(root, "name"));
  v1::Workload w;
  w.set_source(v1::Workload::SOURCE_LIBVIRT);
  std::string uuid = text(child(root, "uuid"));
  std::transform(uuid.begin(), uuid.end(), uuid.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  w.set_owner(uuid);
  w.set_name(attr(meta, "name").empty() ? domain : attr(meta, "name"));
  w.set_app(attr(meta, "app"));
  const std::string what = "domain " + domain + ": ";
  if (w.app().empty())
    return makeError(ErrorCode::kInvalidInput, what + "<bulkhead:workload> has no app attribute");
  if (!policy::isValidWorkloadName(w.name()))
    return makeError(ErrorCode::kInvalidInput,
                     what + "\"" + w.name() +
                         "\" is not a valid workload name (lower-case letters, digits and '-'); "
                         "set name=\"...\" on <bulkhead:workload>");
  if (auto st = readInterfaces(root, &w, notes); !st)
    return makeError(ErrorCode::kInvalidInput, what + st.error().message);
  for (const xmlNode* c = meta->children; c; c = c->next)
    if (named(c, "address") && inBulkheadNs(c))
      if (auto st = addAddress(text(c), "<bulkhead:address>", &w); !st)
        return makeError(ErrorCode::kInvalidInput, what + st.error().message);
  return std::optional<v1::Workload>(std::move(w));
}

Result<std::string> agentFromHookConfig(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::string();
  try {
    const YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) return makeError(ErrorCode::kInvalidInput, path + ": not a YAML map");
    if (!root["agent"]) return std::string();
    return root["agent"].as<std::string>();
  } catch (const YAML::Exception& e) {
    return makeError(ErrorCode::kInvalidInput, path + ": " + e.what());
  }
}

namespace {

HookOutcome fail(const std::string& what) {
  return HookOutcome{1, "bulkhead-libvirt-hook: " + what + "\n"};
}

// Registration or removal for one domain XML; exit codes as libvirt reads
// them (non-zero on `started` makes libvirt stop the domain).
HookOutcome apply(bool add, const std::string& domainArg, const std::string& xml,
                  const std::string& agent, const AgentConnector& connect) {
  std::vector<std::string> notes;
  auto parsed = workloadFromDomainXml(xml, &notes);
  if (!parsed) return fail(parsed.error().message);
  if (!*parsed)
    return HookOutcome{0, "bulkhead-libvirt-hook: domain " + domainArg +
                              " has no <bulkhead:workload> metadata; left alone\n"};
  const v1::Workload& w = **parsed;
  std::string err;
  for (const auto& n : notes)
    err += "bulkhead-libvirt-hook: domain " + domainArg + ": " + n + "\n";
  auto link = connect(agent);
  if (!link) return fail(link.error().message);
  if (!add) {
    auto st = (*link)->remove(w.name(), w.owner());
    // Best effort: already removed (stopped, then release), or agent gone.
    if (!st && st.error().code != ErrorCode::kNotFound)
      err += "bulkhead-libvirt-hook: " + w.name() + " not removed: " + st.error().message + "\n";
    return HookOutcome{0, err};
  }
  if (w.interfaces_size() == 0)
    return fail("domain " + domainArg +
                " has bulkhead metadata but no routed tap (<interface type='ethernet'> with "
                "<target dev=...>) to police; refusing to start it unpoliced");
  if (w.addresses_size() == 0)
    return fail("domain " + domainArg +
                " has no address: give its interfaces <ip address=... peer=...> or the "
                "metadata <bulkhead:address> children");
  if (auto st = (*link)->upsert(w); !st)
    return fail("domain " + domainArg + " not registered: " + st.error().message);
  return HookOutcome{0, err};
}

}  // namespace

HookOutcome runLibvirtHook(const std::vector<std::string>& args, const std::string& xml,
                           const std::string& envAgent, const std::string& configPath,
                           const AgentConnector& connect) {
  if (args.size() < 3)
    return HookOutcome{2,
                       "usage: bulkhead-libvirt-hook DOMAIN OPERATION SUB-OPERATION [EXTRA] "
                       "(domain XML on stdin), as libvirt's qemu hook\n"};
  const std::string& op = args[1];
  const std::string& sub = args[2];
  const bool add = (op == "started" || op == "reconnect") && sub == "begin";
  const bool remove = (op == "stopped" || op == "release") && sub == "end";
  if (!add && !remove) return HookOutcome{};
  std::string agent = envAgent;
  if (agent.empty()) {
    auto fromFile = agentFromHookConfig(configPath);
    if (!fromFile) return fail(fromFile.error().message);
    agent = fromFile->empty() ? std::string(common::kDefaultAgent) : *fromFile;
  }
  return apply(add, args[0], xml, agent, connect);
}

}  // namespace bulkhead::hooks
