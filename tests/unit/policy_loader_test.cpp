// The YAML loader and validator: every error with its exact position, and the
// The documented policy example loading into the right model values.
#include <gtest/gtest.h>

#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/loader.h"
#include "policy_test_util.h"

namespace bulkhead::policy {
namespace {

using testing_util::errorsOf;
using testing_util::strings;

// The product's policy example, verbatim.
constexpr const char* kSpecExample = R"(apiVersion: bulkhead/v1
kind: Service                 # a named destination
metadata:
  name: postgres-prod
  labels: {env: prod, org: consumer-banking}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32, "2001:db8:10::/64"]
      ports: [tcp/5432]
---
apiVersion: bulkhead/v1
kind: Service                 # a destination backed by other apps' workloads
metadata: {name: payments-api}
spec:
  appSelector: {app: payments}   # resolves to the addresses of every registered workload of matching apps
  ports: [tcp/8443]
---
apiVersion: bulkhead/v1
kind: App                     # a group of workloads with one egress policy
metadata:
  name: billing
  labels: {env: prod, org: consumer-banking}
spec:
  mode: enforce               # enforce | audit (audit: log what would be denied, allow it)
  denyAction: reject          # reject (fast ICMP admin-prohibited / TCP reset) | drop
  egress:
    - to: [postgres-prod, payments-api, dns]
    - toCIDRs: [203.0.113.0/24]
      ports: [tcp/443]
---
apiVersion: bulkhead/v1
kind: GlobalPolicy            # macro segmentation and shared services, across apps
metadata: {name: baseline}
spec:
  order: 100                  # lower runs first
  rules:
    - action: deny            # deny | allow | log
      from: {env: dev}        # label selector over Apps; {} = every app
      toSelector: {env: prod} # label selector over Services and Apps
    - action: allow
      from: {}
      to: [dns, ntp]
---
apiVersion: bulkhead/v1
kind: Workload                # normally registered by orchestration through the API;
metadata: {name: billing-7f9c}   # static files are for hosts without orchestration
spec:
  app: billing
  interfaces: [veth1a2b3c]    # host-side veth of a container, or tap of a VM
  addresses: [192.0.2.10, "2001:db8:2::10"]
)";

// The services the example refers to but does not define.
constexpr const char* kDnsNtp = R"(---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: dns}
spec:
  endpoints:
    - cidrs: [192.0.2.53, "2001:db8::53"]
      ports: [udp/53, tcp/53]
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: ntp}
spec:
  endpoints: [{cidrs: [192.0.2.123], ports: [udp/123]}]
---
)";

std::vector<std::string> portStrings(const std::vector<PortSpec>& ports) {
  std::vector<std::string> out;
  for (const PortSpec& p : ports)
    out.push_back(p.toString());
  return out;
}

std::vector<std::string> cidrStrings(const std::vector<Cidr>& cidrs) {
  std::vector<std::string> out;
  for (const Cidr& c : cidrs)
    out.push_back(c.toString());
  return out;
}

using Strings = std::vector<std::string>;

TEST(PolicyLoaderTest, SpecExampleLoads) {
  LoadResult r = loadText(std::string(kSpecExample) + kDnsNtp, "spec.yaml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(strings(r.errors));
  EXPECT_TRUE(r.warnings.empty()) << testing::PrintToString(strings(r.warnings));
  const Bundle& b = r.bundle;
  ASSERT_EQ(b.services.size(), 4u);
  ASSERT_EQ(b.apps.size(), 1u);
  ASSERT_EQ(b.globalPolicies.size(), 1u);
  ASSERT_EQ(b.workloads.size(), 1u);

  const Service* pg = b.findService("postgres-prod");
  ASSERT_NE(pg, nullptr);
  EXPECT_EQ(pg->loc.toString(), "spec.yaml:4:9");
  EXPECT_EQ(pg->labels, (Labels{{"env", "prod"}, {"org", "consumer-banking"}}));
  ASSERT_EQ(pg->endpoints.size(), 1u);
  EXPECT_EQ(cidrStrings(pg->endpoints[0].cidrs), (Strings{"198.51.100.10/32", "2001:db8:10::/64"}));
  EXPECT_EQ(pg->endpoints[0].cidrs[0].addr.family, Family::kIpv4);
  EXPECT_EQ(pg->endpoints[0].cidrs[1].addr.family, Family::kIpv6);
  EXPECT_EQ(portStrings(pg->endpoints[0].ports), (Strings{"tcp/5432"}));
  EXPECT_FALSE(pg->appSelector);

  const Service* pay = b.findService("payments-api");
  ASSERT_NE(pay, nullptr);
  EXPECT_EQ(pay->loc.toString(), "spec.yaml:13:18");
  ASSERT_TRUE(pay->appSelector);
  EXPECT_EQ(pay->appSelector->matchLabels, (Labels{{"app", "payments"}}));
  EXPECT_EQ(portStrings(pay->ports), (Strings{"tcp/8443"}));
  EXPECT_TRUE(pay->endpoints.empty());

  const App* billing = b.findApp("billing");
  ASSERT_NE(billing, nullptr);
  EXPECT_EQ(billing->mode, Mode::kEnforce);
  EXPECT_EQ(billing->denyAction, DenyAction::kReject);
  EXPECT_FALSE(billing->implicit);
  EXPECT_EQ(billing->effectiveLabels(),
            (Labels{{"app", "billing"}, {"env", "prod"}, {"org", "consumer-banking"}}));
  ASSERT_EQ(billing->egress.size(), 2u);
  const EgressRule& e0 = billing->egress[0];
  EXPECT_EQ(e0.loc.toString(), "spec.yaml:27:7");
  ASSERT_EQ(e0.to.size(), 3u);
  EXPECT_EQ(e0.to[0].name, "postgres-prod");
  EXPECT_EQ(e0.to[0].loc.toString(), "spec.yaml:27:12");
  EXPECT_EQ(e0.to[1].name, "payments-api");
  EXPECT_EQ(e0.to[2].name, "dns");
  EXPECT_EQ(e0.to[2].loc.toString(), "spec.yaml:27:41");
  const EgressRule& e1 = billing->egress[1];
  EXPECT_EQ(e1.loc.toString(), "spec.yaml:28:7");
  EXPECT_TRUE(e1.to.empty());
  EXPECT_EQ(cidrStrings(e1.toCIDRs), (Strings{"203.0.113.0/24"}));
  EXPECT_EQ(portStrings(e1.ports), (Strings{"tcp/443"}));

  const GlobalPolicy& g = b.globalPolicies[0];
  EXPECT_EQ(g.name, "baseline");
  EXPECT_EQ(g.order, 100);
  ASSERT_EQ(g.rules.size(), 2u);
  EXPECT_EQ(g.rules[0].loc.toString(), "spec.yaml:37:7");
  EXPECT_EQ(g.rules[0].action, RuleAction::kDeny);
  EXPECT_EQ(g.rules[0].from.matchLabels, (Labels{{"env", "dev"}}));
  ASSERT_TRUE(g.rules[0].toSelector);
  EXPECT_EQ(g.rules[0].toSelector->matchLabels, (Labels{{"env", "prod"}}));
  EXPECT_EQ(g.rules[1].action, RuleAction::kAllow);
  EXPECT_TRUE(g.rules[1].from.matchLabels.empty());
  EXPECT_FALSE(g.rules[1].toSelector);
  ASSERT_EQ(g.rules[1].to.size(), 2u);
  EXPECT_EQ(g.rules[1].to[1].name, "ntp");
  EXPECT_EQ(g.rules[1].to[1].loc.toString(), "spec.yaml:42:17");

  const Workload& w = b.workloads[0];
  EXPECT_EQ(w.name, "billing-7f9c");
  EXPECT_EQ(w.loc.toString(), "spec.yaml:46:18");
  EXPECT_EQ(w.app, "billing");
  EXPECT_EQ(w.interfaces, (Strings{"veth1a2b3c"}));
  ASSERT_EQ(w.addresses.size(), 2u);
  EXPECT_EQ(w.addresses[0].toString(), "192.0.2.10");
  EXPECT_EQ(w.addresses[0].family, Family::kIpv4);
  EXPECT_EQ(w.addresses[1].toString(), "2001:db8:2::10");
  EXPECT_EQ(w.addresses[1].family, Family::kIpv6);
  EXPECT_FALSE(w.quarantined);

  const Service* dns = b.findService("dns");
  ASSERT_NE(dns, nullptr);
  EXPECT_EQ(portStrings(dns->endpoints[0].ports), (Strings{"udp/53", "tcp/53"}));
}

TEST(PolicyLoaderTest, SpecExampleAloneNamesItsMissingServices) {
  EXPECT_EQ(errorsOf(kSpecExample), (Strings{
                                        "t.yaml:27:41: unknown service or app \"dns\"",
                                        "t.yaml:42:12: unknown service or app \"dns\"",
                                        "t.yaml:42:17: unknown service or app \"ntp\"",
                                    }));
}

TEST(PolicyLoaderTest, EveryPortForm) {
  LoadResult r = loadText(R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: a}
spec:
  mode: audit
  denyAction: drop
  egress:
    - toCIDRs: [0.0.0.0/0, "::/0"]
      ports: [tcp/5432, udp/53, tcp/8000-8100, tcp, icmp, icmpv6, any]
)",
                          "t.yaml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(strings(r.errors));
  const App& a = r.bundle.apps[0];
  EXPECT_EQ(a.mode, Mode::kAudit);
  EXPECT_EQ(a.denyAction, DenyAction::kDrop);
  EXPECT_EQ(portStrings(a.egress[0].ports),
            (Strings{"tcp/5432", "udp/53", "tcp/8000-8100", "tcp", "icmp", "icmpv6", "any"}));
  EXPECT_EQ(cidrStrings(a.egress[0].toCIDRs), (Strings{"0.0.0.0/0", "::/0"}));
}

TEST(PolicyLoaderTest, Defaults) {
  LoadResult r = loadText(R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: a}
---
apiVersion: bulkhead/v1
kind: GlobalPolicy
metadata: {name: g}
spec:
  rules: [{action: log, from: {}, toCIDRs: [10.0.0.0/8]}]
---
---
)",
                          "t.yaml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(strings(r.errors));
  ASSERT_EQ(r.bundle.apps.size(), 1u);
  EXPECT_EQ(r.bundle.apps[0].mode, Mode::kEnforce);
  EXPECT_EQ(r.bundle.apps[0].denyAction, DenyAction::kReject);
  EXPECT_TRUE(r.bundle.apps[0].egress.empty());
  ASSERT_EQ(r.bundle.globalPolicies.size(), 1u);
  EXPECT_EQ(r.bundle.globalPolicies[0].order, 1000);
  EXPECT_EQ(r.bundle.globalPolicies[0].rules[0].action, RuleAction::kLog);
}

TEST(PolicyLoaderTest, AliasesAreExpanded) {
  LoadResult r = loadText(R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: a}
spec:
  egress:
    - toCIDRs: [10.0.0.0/8]
      ports: &web [tcp/80, tcp/443]
    - toCIDRs: [192.0.2.0/24]
      ports: *web
)",
                          "t.yaml");
  ASSERT_TRUE(r.ok()) << testing::PrintToString(strings(r.errors));
  EXPECT_EQ(portStrings(r.bundle.apps[0].egress[1].ports), (Strings{"tcp/80", "tcp/443"}));
}

TEST(PolicyLoaderTest, EmptyInputIsAnEmptyBundle) {
  for (const char* text : {"", "# nothing\n", "---\n", "---\n---\n...\n"}) {
    LoadResult r = loadText(text, "t.yaml");
    EXPECT_TRUE(r.ok()) << text;
    EXPECT_TRUE(r.bundle.services.empty() && r.bundle.apps.empty());
  }
}

TEST(PolicyLoaderTest, WorkloadWithoutAppDocumentIsAWarning) {
  LoadResult r = loadText(R"(apiVersion: bulkhead/v1
kind: Workload
metadata: {name: w1}
spec: {app: ghost, interfaces: [tap0], addresses: [192.0.2.1/32, "2001:db8::1/128"]}
)",
                          "t.yaml");
  EXPECT_TRUE(r.ok()) << testing::PrintToString(strings(r.errors));
  EXPECT_EQ(strings(r.warnings),
            (Strings{"t.yaml:3:18: workload w1: app ghost has no App document; it gets default "
                     "deny"}));
  EXPECT_EQ(r.bundle.workloads[0].addresses[1].toString(), "2001:db8::1");
}

// `ports` that leave nothing of a named service: a warning at the name (the
// compiler then allows nothing of that service).
TEST(PolicyLoaderTest, PortsNoNamedServiceServesAreAWarning) {
  LoadResult r = loadText(R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: db}
spec: {endpoints: [{cidrs: [198.51.100.10/32], ports: [tcp/5432]}]}
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: any}
spec: {endpoints: [{cidrs: [198.51.100.11/32]}]}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: a}
spec:
  egress:
    - to: [db, any]
      ports: [udp/53]
    - to: [db]
      ports: [tcp/5000-6000]
)",
                          "t.yaml");
  EXPECT_TRUE(r.ok()) << testing::PrintToString(strings(r.errors));
  EXPECT_EQ(strings(r.warnings),
            (Strings{"t.yaml:16:12: app a: egress rule 1: service db serves none of the ports "
                     "udp/53; the rule reaches nothing of it"}));
}

// Every error kind, with its exact position. Each text is one whole file.
struct ErrorCase {
  const char* name;
  const char* text;
  std::vector<std::string> want;
};

class PolicyErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(PolicyErrorTest, ReportsExactly) {
  EXPECT_EQ(errorsOf(GetParam().text), GetParam().want) << GetParam().text;
}

#define HEAD "apiVersion: bulkhead/v1\n"

const ErrorCase kErrorCases[] = {
    {"UnknownKind",
     HEAD "kind: Servce\nmetadata: {name: a}\n",
     {"t.yaml:2:7: unknown kind \"Servce\" (expected Service, App, GlobalPolicy or Workload)"}},
    {"BadApiVersion",
     "apiVersion: v1\nkind: App\nmetadata: {name: a}\n",
     {"t.yaml:1:13: unsupported apiVersion \"v1\" (expected \"bulkhead/v1\")"}},
    {"MissingApiVersion",
     "kind: App\nmetadata: {name: a}\n",
     {"t.yaml:1:1: missing field \"apiVersion\" (expected \"bulkhead/v1\")"}},
    {"MissingKind", HEAD "metadata: {name: a}\n", {"t.yaml:1:1: missing field \"kind\""}},
    {"MissingMetadata", HEAD "kind: App\n", {"t.yaml:1:1: missing field \"metadata\""}},
    {"MissingName",
     HEAD "kind: App\nmetadata: {labels: {a: b}}\n",
     {"t.yaml:3:11: missing field \"name\" in metadata"}},
    {"NameNotAString",
     HEAD "kind: App\nmetadata: {name: [a]}\n",
     {"t.yaml:3:18: \"name\" must be a string"}},
    {"DocumentNotAMap",
     "- a\n- b\n",
     {"t.yaml:1:1: a document must be a map with apiVersion, kind, metadata and spec"}},
    {"UnknownTopLevelField",
     HEAD "kind: App\nmetadata: {name: a}\nspecs: {}\n",
     {"t.yaml:4:1: unknown field \"specs\" in document (expected apiVersion, kind, metadata or "
      "spec)"}},
    {"UnknownMetadataField",
     HEAD "kind: App\nmetadata: {name: a, namespace: b}\n",
     {"t.yaml:3:21: unknown field \"namespace\" in metadata (expected name or labels)"}},
    {"UnknownAppField",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egres: []\n",
     {"t.yaml:5:3: unknown field \"egres\" in App spec (expected mode, denyAction or egress)"}},
    {"UnknownEgressField",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egress:\n    - toCIDRs: [10.0.0.0/8]\n"
          "      port: [tcp/80]\n",
     {"t.yaml:7:7: unknown field \"port\" in egress rule (expected to, toCIDRs or ports)"}},
    {"UnknownServiceField",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  appSelector: {}\n  selector: {}\n",
     {"t.yaml:6:3: unknown field \"selector\" in Service spec (expected endpoints, appSelector or "
      "ports)"}},
    {"UnknownEndpointField",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  endpoints:\n    - cidrs: [10.0.0.1]\n"
          "      port: [tcp/1]\n",
     {"t.yaml:7:7: unknown field \"port\" in endpoint (expected cidrs or ports)"}},
    {"UnknownRuleField",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n"
          "    - {action: deny, from: {}, toCIDRs: [10.0.0.0/8], protocol: tcp}\n",
     {"t.yaml:6:55: unknown field \"protocol\" in GlobalPolicy rule (expected action, from, to, "
      "toSelector, toCIDRs or ports)"}},
    {"UnknownWorkloadField",
     HEAD "kind: Workload\nmetadata: {name: w}\nspec: {app: a, interfaces: [tap0], addresses: "
          "[10.0.0.1], ip: x}\n",
     {"t.yaml:4:59: unknown field \"ip\" in Workload spec (expected app, interfaces or "
      "addresses)"}},
    {"DuplicateField",
     HEAD "kind: App\nkind: App\nmetadata: {name: a}\n",
     {"t.yaml:3:1: duplicate field \"kind\""}},
    {"BadCidrHostBits",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egress:\n    - toCIDRs: [10.0.0.1/24]\n",
     {"t.yaml:6:17: bad CIDR \"10.0.0.1/24\": host bits set below the prefix length"}},
    {"BadCidrPrefix",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egress:\n    - toCIDRs: [10.0.0.0/8, "
          "10.0.0.0/33]\n",
     {"t.yaml:6:29: bad CIDR \"10.0.0.0/33\": prefix length must be 0-32"}},
    {"BadCidrAddress",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  endpoints:\n    - cidrs: [\"db.local\"]\n",
     {"t.yaml:6:15: bad CIDR \"db.local\": not an IPv4 or IPv6 address"}},
    {"BadPort",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  appSelector: {app: x}\n  ports: "
          "[tcp/65536]\n",
     {"t.yaml:6:11: bad port \"tcp/65536\": port must be 0-65535"}},
    {"ReversedRange",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  endpoints:\n    - cidrs: [10.0.0.1]\n"
          "      ports:\n        - tcp/8100-8000\n",
     {"t.yaml:8:11: bad port \"tcp/8100-8000\": port range ends before it starts"}},
    {"BadProtocol",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  appSelector: {}\n  ports: [sctp/1]\n",
     {"t.yaml:6:11: bad port \"sctp/1\": protocol must be tcp, udp, icmp, icmpv6 or any"}},
    {"PortsNotAList",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  appSelector: {}\n  ports: tcp/1\n",
     {"t.yaml:6:10: \"ports\" must be a list"}},
    {"PortEntryNotAString",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  appSelector: {}\n  ports: [[tcp/1]]\n",
     {"t.yaml:6:11: entries of \"ports\" must be strings"}},
    {"SelectorNotAMap",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n    - action: deny\n"
          "      from: [env]\n      toSelector: {}\n",
     {"t.yaml:7:13: \"from\" must be a map of strings (a label selector; {} selects all)"}},
    {"SelectorValueNotAString",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n    - action: deny\n"
          "      from: {env: [a]}\n      toSelector: {env: prod}\n",
     {"t.yaml:7:19: \"from\" must be a map of strings: the value of \"env\" is not a string"}},
    {"SelectorValueNull",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  appSelector: {app: }\n",
     {"t.yaml:5:22: \"appSelector\" must be a map of strings: the value of \"app\" is not a "
      "string"}},
    {"LabelsNotAMap",
     HEAD "kind: App\nmetadata: {name: a, labels: [x]}\n",
     {"t.yaml:3:29: \"labels\" must be a map of strings"}},
    {"MissingFrom",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n    - action: allow\n"
          "      to: [g2]\n",
     {"t.yaml:6:7: missing field \"from\" in GlobalPolicy rule ({} selects every app)"}},
    {"NullFrom",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n    - action: allow\n"
          "      from:\n      toCIDRs: [10.0.0.0/8]\n",
     {"t.yaml:8:7: \"from\" must be a map of strings (a label selector; {} selects all)"}},
    {"MissingAction",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n    - from: {}\n"
          "      toCIDRs: [10.0.0.0/8]\n",
     {"t.yaml:6:7: missing field \"action\" in GlobalPolicy rule"}},
    {"BadAction",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n    - action: permit\n"
          "      from: {}\n      toCIDRs: [10.0.0.0/8]\n",
     {"t.yaml:6:15: \"action\" must be deny | allow | log, not \"permit\""}},
    {"RuleWithoutDestination",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec:\n  rules:\n    - action: deny\n"
          "      from: {}\n      ports: [tcp/22]\n",
     {"t.yaml:6:7: globalpolicy g: rule 1: needs to, toSelector or toCIDRs"}},
    {"BadOrder",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec: {order: high}\n",
     {"t.yaml:4:15: \"order\" must be an integer from -2147483648 to 2147483647, not \"high\""}},
    {"OrderOutOfRange",
     HEAD "kind: GlobalPolicy\nmetadata: {name: g}\nspec: {order: 2147483648}\n",
     {"t.yaml:4:15: \"order\" must be an integer from -2147483648 to 2147483647, not "
      "\"2147483648\""}},
    {"BadMode",
     HEAD "kind: App\nmetadata: {name: a}\nspec: {mode: enforcing}\n",
     {"t.yaml:4:14: \"mode\" must be enforce | audit, not \"enforcing\""}},
    {"BadDenyAction",
     HEAD "kind: App\nmetadata: {name: a}\nspec: {denyAction: block}\n",
     {"t.yaml:4:20: \"denyAction\" must be reject | drop, not \"block\""}},
    {"EgressRuleWithoutDestination",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egress:\n    - ports: [tcp/443]\n",
     {"t.yaml:6:7: app a: egress rule 1: needs to or toCIDRs"}},
    {"EgressNotAList",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egress: {to: [x]}\n",
     {"t.yaml:5:11: \"egress\" must be a list"}},
    {"EgressRuleNotAMap",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egress: [x]\n",
     {"t.yaml:5:12: egress rule must be a map"}},
    {"ServiceNeitherEndpointsNorSelector",
     HEAD "kind: Service\nmetadata: {name: s}\nspec: {ports: [tcp/1]}\n",
     {"t.yaml:3:18: service s: needs endpoints or appSelector"}},
    {"ServiceWithoutSpec",
     HEAD "kind: Service\nmetadata: {name: s}\n",
     {"t.yaml:3:18: service s: needs endpoints or appSelector"}},
    {"ServiceBothEndpointsAndSelector",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  appSelector: {app: x}\n  endpoints: "
          "[{cidrs: [10.0.0.1]}]\n",
     {"t.yaml:3:18: service s: has both endpoints and appSelector; use one"}},
    {"ServicePortsBesideEndpoints",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  endpoints: [{cidrs: [10.0.0.1]}]\n"
          "  ports: [tcp/1]\n",
     {"t.yaml:3:18: service s: ports of a service with endpoints belong in each endpoint"}},
    {"EndpointWithoutCidrs",
     HEAD "kind: Service\nmetadata: {name: s}\nspec:\n  endpoints: [{ports: [tcp/1]}]\n",
     {"t.yaml:3:18: service s: endpoint 1: needs cidrs"}},
    {"UnknownReference",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  egress:\n    - to: [a, nope]\n",
     {"t.yaml:6:15: unknown service or app \"nope\""}},
    {"InvalidName",
     HEAD "kind: App\nmetadata: {name: Billing_1}\n",
     {"t.yaml:3:18: invalid app name \"Billing_1\": a name is a DNS label: lower-case letters, "
      "digits and '-', starting and ending with a letter or digit"}},
    {"NameEndsWithDash",
     HEAD "kind: App\nmetadata: {name: a-}\n",
     {"t.yaml:3:18: invalid app name \"a-\": a name is a DNS label: lower-case letters, digits "
      "and '-', starting and ending with a letter or digit"}},
    {"EmptyName",
     HEAD "kind: App\nmetadata: {name: \"\"}\n",
     {"t.yaml:3:18: invalid app name \"\": a name is a DNS label: lower-case letters, digits and "
      "'-', starting and ending with a letter or digit"}},
    {"InvalidLabelKey",
     HEAD "kind: App\nmetadata: {name: a, labels: {\"-x\": y}}\n",
     {"t.yaml:3:18: app a: invalid label key \"-x\": 1-63 of letters, digits and -_./, starting "
      "and ending with a letter or digit"}},
    {"InvalidLabelValue",
     HEAD "kind: App\nmetadata: {name: a, labels: {x: \"a b\"}}\n",
     {"t.yaml:3:18: app a: invalid value \"a b\" of label \"x\": 0-63 of letters, digits and -_., "
      "starting and ending with a letter or digit"}},
    {"AppLabelIsImplicit",
     HEAD "kind: App\nmetadata: {name: a, labels: {app: b}}\n",
     {"t.yaml:3:18: app a: label \"app\" is implicitly the app's name; it cannot be \"b\""}},
    {"DuplicateName",
     HEAD "kind: App\nmetadata: {name: a}\n---\n" HEAD "kind: App\nmetadata:\n  name: a\n",
     {"t.yaml:8:9: duplicate app \"a\" (first defined at t.yaml:3:18)"}},
    {"SameNameServiceAndApp",
     HEAD "kind: App\nmetadata: {name: a}\n---\n" HEAD
          "kind: Service\nmetadata: {name: a}\nspec: {appSelector: {}}\n",
     {"t.yaml:3:18: app \"a\" has the same name as service \"a\" (at t.yaml:7:18); names in \"to\" "
      "must be unambiguous"}},
    {"WorkloadAddressWithPrefix",
     HEAD "kind: Workload\nmetadata: {name: w}\nspec: {app: w, interfaces: [tap0], addresses: "
          "[10.0.0.1, 10.0.0.0/24]}\n---\n" HEAD "kind: App\nmetadata: {name: w}\n",
     {"t.yaml:4:58: bad address \"10.0.0.0/24\": a workload address is one host (no prefix, /32 "
      "or /128)"}},
    {"WorkloadBadAddress",
     HEAD "kind: Workload\nmetadata: {name: w}\nspec: {app: w, interfaces: [tap0], addresses: "
          "[10.0.0.300]}\n---\n" HEAD "kind: App\nmetadata: {name: w}\n",
     {"t.yaml:4:48: bad address \"10.0.0.300\": not an IPv4 or IPv6 address"}},
    {"WorkloadMissingApp",
     HEAD "kind: Workload\nmetadata: {name: w}\nspec: {interfaces: [tap0], addresses: "
          "[10.0.0.1]}\n",
     {"t.yaml:4:7: missing field \"app\" in Workload spec"}},
    {"WorkloadBadInterface",
     HEAD "kind: Workload\nmetadata: {name: w}\nspec: {app: w, interfaces: [a-very-long-ifname0], "
          "addresses: [10.0.0.1]}\n---\n" HEAD "kind: App\nmetadata: {name: w}\n",
     {"t.yaml:3:18: workload w: invalid interface name \"a-very-long-ifname0\": 1-15 of letters, "
      "digits and _.@:-"}},
    {"TwoWorkloadsOneInterface",
     HEAD "kind: Workload\nmetadata: {name: w1}\nspec: {app: a, interfaces: [tap0], addresses: "
          "[10.0.0.1]}\n---\n" HEAD
          "kind: Workload\nmetadata: {name: w2}\nspec: {app: a, interfaces: [tap0], addresses: "
          "[10.0.0.2]}\n---\n" HEAD "kind: App\nmetadata: {name: a}\n",
     {"t.yaml:8:18: workload w2: interface \"tap0\" is already claimed by workload w1 (at "
      "t.yaml:3:18)"}},
    {"TwoWorkloadsOneAddress",
     HEAD "kind: Workload\nmetadata: {name: w1}\nspec: {app: a, interfaces: [tap0], addresses: "
          "[\"2001:db8::1\"]}\n---\n" HEAD
          "kind: Workload\nmetadata: {name: w2}\nspec: {app: a, interfaces: [tap1], addresses: "
          "[\"2001:db8::1/128\"]}\n---\n" HEAD "kind: App\nmetadata: {name: a}\n",
     {"t.yaml:8:18: workload w2: address 2001:db8::1 is already claimed by workload w1 (at "
      "t.yaml:3:18)"}},
    {"MalformedYaml",
     HEAD "kind: App\nmetadata: {name: a\nspec: {}\n",
     {"t.yaml:4:5: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping "
      "at line 3, column 11)"}},
    {"MalformedYamlAfterGoodDocument",
     HEAD "kind: App\nmetadata: {name: a}\n---\nkey: [1, 2\nother: 3\n",
     {"t.yaml:6:6: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
      "sequence at line 5, column 6)"}},
    {"TabIndentation",
     HEAD "kind: App\nmetadata:\n\tname: a\n",
     {"t.yaml:4:1: invalid YAML: found character that cannot start any token (while scanning "
      "for the next token at line 4, column 1)"}},
    {"UndefinedAlias",
     HEAD "kind: App\nmetadata: {name: *x}\n",
     {"t.yaml:3:18: invalid YAML: the referenced anchor is not defined"}},
    {"RecursiveAlias",
     HEAD "kind: App\nmetadata: &m {name: a, labels: *m}\n",
     {"t.yaml:3:32: alias refers to an enclosing node (a cycle)"}},
    {"TooDeep",
     HEAD "kind: App\nmetadata: {name: a, labels: "
          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}\n",
     {"t.yaml:3:59: nesting deeper than 32 levels"}},
    {"MergeKeysAreNotSupported",
     HEAD "kind: App\nmetadata: {name: a}\nspec:\n  <<: {mode: audit}\n",
     {"t.yaml:5:3: unknown field \"<<\" in App spec (expected mode, denyAction or egress)"}},
};

INSTANTIATE_TEST_SUITE_P(All, PolicyErrorTest, testing::ValuesIn(kErrorCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(PolicyLoaderTest, ReportsEveryError) {
  const char* text = HEAD R"(kind: App
metadata: {name: billing}
spec:
  mode: enforcing
  egress:
    - to: [nope]
    - toCIDRs: [10.0.0.1/8, 300.0.0.0/8]
      ports: [tcp/0-70000, udp/53]
    - bogus: 1
---
apiVersion: bulkhead/v2
kind: Gadget
metadata: {name: x}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: billing}
)";
  EXPECT_EQ(errorsOf(text),
            (Strings{
                "t.yaml:5:9: \"mode\" must be enforce | audit, not \"enforcing\"",
                "t.yaml:8:17: bad CIDR \"10.0.0.1/8\": host bits set below the prefix length",
                "t.yaml:8:29: bad CIDR \"300.0.0.0/8\": not an IPv4 or IPv6 address",
                "t.yaml:9:15: bad port \"tcp/0-70000\": port must be 0-65535",
                "t.yaml:10:7: unknown field \"bogus\" in egress rule (expected to, toCIDRs or "
                "ports)",
                "t.yaml:12:13: unsupported apiVersion \"bulkhead/v2\" (expected \"bulkhead/v1\")",
                "t.yaml:13:7: unknown kind \"Gadget\" (expected Service, App, GlobalPolicy or "
                "Workload)",
                "t.yaml:7:12: unknown service or app \"nope\"",
                "t.yaml:18:18: duplicate app \"billing\" (first defined at t.yaml:3:18)",
            }));
}

}  // namespace
}  // namespace bulkhead::policy
