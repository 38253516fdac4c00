// Model helpers, limits, directory loading and validation of API-built bundles.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/loader.h"
#include "policy_test_util.h"

namespace bulkhead::policy {
namespace {

namespace fs = std::filesystem;
using testing_util::errorsOf;
using testing_util::strings;
using Strings = std::vector<std::string>;

TEST(SourceLocTest, ToString) {
  EXPECT_EQ((SourceLoc{"a.yaml", 3, 7}).toString(), "a.yaml:3:7");
  EXPECT_EQ((SourceLoc{"a.yaml", 3, 0}).toString(), "a.yaml:3");
  EXPECT_EQ((SourceLoc{"a.yaml", 0, 0}).toString(), "a.yaml");
  EXPECT_EQ((SourceLoc{"", 3, 7}).toString(), "3:7");
  EXPECT_EQ((SourceLoc{}).toString(), "");
}

TEST(DiagnosticTest, ToString) {
  EXPECT_EQ((Diagnostic{{"a.yaml", 3, 7}, "bad"}).toString(), "a.yaml:3:7: bad");
  EXPECT_EQ((Diagnostic{{"a.yaml", 0, 0}, "bad"}).toString(), "a.yaml: bad");
  EXPECT_EQ((Diagnostic{{}, "bad"}).toString(), "bad");
}

TEST(DiagnosticTest, JoinedOneToALine) {
  EXPECT_EQ(joinDiagnostics({}), "");
  EXPECT_EQ(joinDiagnostics({Diagnostic{{"a.yaml", 3, 7}, "bad"}}), "a.yaml:3:7: bad");
  EXPECT_EQ(joinDiagnostics({Diagnostic{{"a.yaml", 3, 7}, "bad"}, Diagnostic{{}, "worse"}}),
            "a.yaml:3:7: bad\nworse");
}

TEST(SelectorTest, Matches) {
  const Labels labels{{"app", "billing"}, {"env", "prod"}};
  EXPECT_TRUE(Selector{}.matches(labels));
  EXPECT_TRUE(Selector{}.matches({}));
  EXPECT_TRUE((Selector{{{"env", "prod"}}}).matches(labels));
  EXPECT_TRUE((Selector{{{"env", "prod"}, {"app", "billing"}}}).matches(labels));
  EXPECT_FALSE((Selector{{{"env", "dev"}}}).matches(labels));
  EXPECT_FALSE((Selector{{{"org", "x"}}}).matches(labels));
  EXPECT_FALSE((Selector{{{"env", "prod"}, {"org", "x"}}}).matches(labels));
  EXPECT_FALSE((Selector{{{"env", ""}}}).matches(labels));
}

TEST(AppTest, ImplicitAppLabel) {
  App a;
  a.name = "billing";
  a.labels = {{"env", "prod"}};
  EXPECT_EQ(a.effectiveLabels(), (Labels{{"app", "billing"}, {"env", "prod"}}));
  EXPECT_TRUE((Selector{{{"app", "billing"}}}).matches(a.effectiveLabels()));
  a.labels["app"] = "other";  // rejected by validateBundle; the name wins anyway
  EXPECT_EQ(a.effectiveLabels().at("app"), "billing");
}

TEST(BundleTest, Find) {
  Bundle b;
  b.services.push_back(Service{.name = "db"});
  b.apps.push_back(App{.name = "web"});
  EXPECT_EQ(b.findService("db"), &b.services[0]);
  EXPECT_EQ(b.findService("web"), nullptr);
  EXPECT_EQ(b.findApp("web"), &b.apps[0]);
  EXPECT_EQ(b.findApp("db"), nullptr);
}

TEST(NameTest, IsValidName) {
  EXPECT_TRUE(isValidName("a"));
  EXPECT_TRUE(isValidName("billing-7f9c"));
  EXPECT_TRUE(isValidName("0abc"));
  EXPECT_TRUE(isValidName(std::string(63, 'a')));
  EXPECT_FALSE(isValidName(std::string(64, 'a')));
  EXPECT_FALSE(isValidName(""));
  EXPECT_FALSE(isValidName("-a"));
  EXPECT_FALSE(isValidName("a-"));
  EXPECT_FALSE(isValidName("A"));
  EXPECT_FALSE(isValidName("a_b"));
  EXPECT_FALSE(isValidName("a.b"));
}

TEST(NameTest, IsValidInterfaceName) {
  EXPECT_TRUE(isValidInterfaceName("veth1a2b3c"));
  EXPECT_TRUE(isValidInterfaceName("tap-0.1@x:y_z"));
  EXPECT_TRUE(isValidInterfaceName(std::string(15, 'e')));
  EXPECT_FALSE(isValidInterfaceName(std::string(16, 'e')));
  EXPECT_FALSE(isValidInterfaceName(""));
  EXPECT_FALSE(isValidInterfaceName("."));
  EXPECT_FALSE(isValidInterfaceName(".."));
  EXPECT_FALSE(isValidInterfaceName("eth 0"));
  EXPECT_FALSE(isValidInterfaceName("eth/0"));
}

// --- limits ---------------------------------------------------------------

std::string app(const std::string& name, const std::string& rest = "") {
  return "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: " + name + "}\n" + rest;
}

TEST(PolicyLimitsTest, NameOf64Characters) {
  EXPECT_TRUE(errorsOf(app(std::string(63, 'a'))).empty());
  EXPECT_EQ(errorsOf(app(std::string(64, 'a'))),
            (Strings{"t.yaml:3:18: invalid app name \"" + std::string(64, 'a') +
                     "\": longer than 63 characters"}));
}

TEST(PolicyLimitsTest, LabelMapOf65) {
  auto labels = [](int n) {
    std::string out = "metadata:\n  name: a\n  labels:\n";
    for (int i = 0; i < n; ++i)
      out += "    k" + std::to_string(i) + ": v\n";
    return out;
  };
  const std::string head = "apiVersion: bulkhead/v1\nkind: App\n";
  EXPECT_TRUE(errorsOf(head + labels(64)).empty());
  EXPECT_EQ(errorsOf(head + labels(65)),
            (Strings{"t.yaml:6:5: too many labels in \"labels\": 65 (the limit is 64)"}));
}

TEST(PolicyLimitsTest, LabelKeyAndValueLength) {
  const std::string k63(63, 'k'), k64(64, 'k');
  EXPECT_TRUE(errorsOf(app("a, labels: {" + k63 + ": " + k63 + "}")).empty());
  EXPECT_EQ(errorsOf(app("a, labels: {" + k64 + ": v}")).size(), 1u);
  EXPECT_EQ(errorsOf(app("a, labels: {k: " + k64 + "}")).size(), 1u);
}

TEST(PolicyLimitsTest, TooManyPorts) {
  std::string ports;
  for (int i = 0; i < 1025; ++i)
    ports += (i ? ", tcp/" : "tcp/") + std::to_string(i + 1);
  EXPECT_EQ(errorsOf(app("a", "spec:\n  egress:\n    - toCIDRs: [10.0.0.0/8]\n      ports: [" +
                                  ports + "]\n")),
            (Strings{"t.yaml:7:14: too many entries in \"ports\": 1025 (the limit is 1024)"}));
}

TEST(PolicyLimitsTest, TooManyInterfaces) {
  std::string ifs;
  for (int i = 0; i < 17; ++i)
    ifs += (i ? ", tap" : "tap") + std::to_string(i);
  EXPECT_EQ(errorsOf("apiVersion: bulkhead/v1\nkind: Workload\nmetadata: {name: w}\nspec: {app: w, "
                     "addresses: [10.0.0.1], interfaces: [" +
                     ifs + "]}\n"),
            (Strings{"t.yaml:4:51: too many entries in \"interfaces\": 17 (the limit is 16)"}));
}

TEST(PolicyLimitsTest, OversizedTextIsRejectedBeforeParsing) {
  std::string big(limits::kMaxFileBytes + 1, '#');
  EXPECT_EQ(errorsOf(big), (Strings{"t.yaml: file too large: 67108865 bytes (the limit is "
                                    "67108864)"}));
}

TEST(PolicyLimitsTest, DeepNestingStopsEarly) {
  // 100,000 levels: the limit stops the parser at the 33rd, long before the rest.
  std::string deep =
      app("a", "spec: {egress: ") + std::string(100000, '[') + std::string(100000, ']') + "}\n";
  const Strings errors = errorsOf(deep);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "t.yaml:4:46: nesting deeper than 32 levels");
}

TEST(PolicyLimitsTest, AliasBombIsRejected) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i)
      bomb += std::string(i ? ", *" : "*") + char(c - 1);
    bomb += "]\n";
  }
  const Strings errors = errorsOf(bomb);
  ASSERT_EQ(errors.size(), 1u);
  // The bundle's alias budget (1,048,576 nodes) runs out before the
  // document's own limit (4,194,304) would.
  EXPECT_EQ(errors[0].substr(0, 61),
            "t.yaml:6:40: YAML aliases expand to more than 1048576 nodes i");
}

TEST(PolicyLimitsTest, TooManyDocuments) {
  // Empty documents count too: each costs parsing.
  std::string text;
  text.reserve((limits::kMaxDocuments + 1) * 4);
  for (size_t i = 0; i < limits::kMaxDocuments + 1; ++i)
    text += "---\n";
  const Strings errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0],
            "t.yaml:200001:1: too many YAML documents (the limit is 200000 in a bundle)");
}

// --- files and directories ---------------------------------------------------

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("bulkhead-policy-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string write(const std::string& rel, const std::string& text) const {
    const fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string service(const std::string& name) {
  return "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: " + name +
         "}\nspec: {appSelector: {app: " + name + "}}\n";
}

TEST(PolicyFilesTest, DirectoryIsLoadedRecursivelyInPathOrder) {
  TempDir dir;
  dir.write("b.yaml", service("b"));
  dir.write("a/z.yml", service("az"));
  dir.write("a/b/c.yaml", service("abc"));
  dir.write("a.yaml", service("a"));
  dir.write("notes.txt", "not yaml: [");
  dir.write("c.yaml.bak", "not yaml: [");
  LoadResult r = loadPaths({dir.path().string()});
  ASSERT_TRUE(r.ok()) << testing::PrintToString(strings(r.errors));
  std::vector<std::string> names;
  for (const Service& s : r.bundle.services)
    names.push_back(s.name);
  // Sorted by the full path as a string: a.yaml < a/b/c.yaml < a/z.yml < b.yaml.
  EXPECT_EQ(names, (Strings{"a", "abc", "az", "b"}));
  EXPECT_EQ(r.bundle.services[1].loc.toString(), (dir.path() / "a/b/c.yaml").string() + ":3:18");
}

TEST(PolicyFilesTest, FilesAndDirectoriesMixAndReferAcrossFiles) {
  TempDir dir;
  const std::string svc = dir.write("svc/db.yaml", service("db"));
  const std::string appFile =
      dir.write("app.yaml", app("web", "spec:\n  egress:\n    - to: [db, cache]\n"));
  LoadResult r = loadPaths({appFile, (dir.path() / "svc").string()});
  EXPECT_EQ(strings(r.errors), (Strings{appFile + ":6:16: unknown service or app \"cache\""}));
  EXPECT_EQ(r.bundle.apps.size(), 1u);
  EXPECT_EQ(r.bundle.services.size(), 1u);
}

TEST(PolicyFilesTest, DuplicateAcrossFilesNamesTheFirst) {
  TempDir dir;
  const std::string a = dir.write("a.yaml", service("db"));
  const std::string b = dir.write("b.yaml", "# second\n" + service("db"));
  LoadResult r = loadPaths({dir.path().string()});
  EXPECT_EQ(strings(r.errors),
            (Strings{b + ":4:18: duplicate service \"db\" (first defined at " + a + ":3:18)"}));
}

TEST(PolicyFilesTest, MissingPathIsAnError) {
  TempDir dir;
  const std::string missing = (dir.path() / "nope.yaml").string();
  const std::string good = dir.write("good.yaml", service("db"));
  LoadResult r = loadPaths({missing, good});
  EXPECT_EQ(strings(r.errors), (Strings{missing + ": no such file or directory"}));
  EXPECT_EQ(r.bundle.services.size(), 1u);  // the rest is still checked
}

TEST(PolicyFilesTest, ErrorsOfEveryFileAreReported) {
  TempDir dir;
  const std::string a = dir.write("a.yaml", "kind: [\n");
  const std::string b = dir.write("b.yaml", app("B"));
  LoadResult r = loadPaths({dir.path().string()});
  EXPECT_EQ(strings(r.errors),
            (Strings{a + ":2:1: invalid YAML: did not find expected node content (while parsing a "
                         "flow node at line 2, column 1)",
                     b + ":3:18: invalid app name \"B\": a name is a DNS label: lower-case "
                         "letters, digits and '-', starting and ending with a letter or digit"}));
}

TEST(PolicyFilesTest, OversizedFileIsNotRead) {
  TempDir dir;
  const std::string big = (dir.path() / "big.yaml").string();
  { std::ofstream out(big); }
  fs::resize_file(big, limits::kMaxFileBytes + 1);  // sparse: costs no disk
  LoadResult r = loadPaths({big});
  EXPECT_EQ(strings(r.errors),
            (Strings{big + ": file too large: 67108865 bytes (the limit is 67108864)"}));
}

TEST(PolicyFilesTest, EmptyDirectoryIsAnEmptyBundle) {
  TempDir dir;
  LoadResult r = loadPaths({dir.path().string()});
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.bundle.services.empty());
}

// --- bundles built through the API (no source positions) ----------------------

TEST(ValidateBundleTest, ApiBundleMessagesNameTheirObject) {
  Bundle b;
  App a{.name = "web"};
  EgressRule rule;
  rule.to.push_back(NameRef{"db", {}});
  a.egress.push_back(rule);
  a.egress.push_back(EgressRule{});
  b.apps.push_back(a);
  b.services.push_back(Service{.name = "Bad_Name", .endpoints = {Endpoint{}}});
  Workload w{.name = "w1", .app = "web", .interfaces = {"tap0"}};
  w.addresses.push_back(*IpAddr::parse("10.0.0.1"));
  w.addresses.push_back(*IpAddr::parse("10.0.0.1"));
  b.workloads.push_back(w);
  std::vector<Diagnostic> errors, warnings;
  validateBundle(b, errors, warnings);
  EXPECT_EQ(strings(errors),
            (Strings{
                "invalid service name \"Bad_Name\": a name is a DNS label: lower-case letters, "
                "digits and '-', starting and ending with a letter or digit",
                "service Bad_Name: endpoint 1: needs cidrs",
                "unknown service or app \"db\" (in app web: egress rule 1)",
                "app web: egress rule 2: needs to or toCIDRs",
                "workload w1: address 10.0.0.1 listed twice",
            }));
  EXPECT_TRUE(warnings.empty());
}

TEST(ValidateWorkloadTest, Checks) {
  Workload w{.name = "w-1", .app = "billing", .interfaces = {"veth0"}};
  w.addresses.push_back(*IpAddr::parse("2001:db8::1"));
  std::vector<Diagnostic> errors;
  validateWorkload(w, errors);
  EXPECT_TRUE(errors.empty()) << testing::PrintToString(strings(errors));

  Workload bad{.name = "W", .app = "", .interfaces = {"veth0", "veth0", "bad/if"}};
  validateWorkload(bad, errors);
  EXPECT_EQ(strings(errors),
            (Strings{
                "invalid workload name \"W\": a DNS label, or two parts joined by '/' "
                "(\"<namespace>/<pod>\"), each of lower-case letters, digits and -._, starting "
                "and ending with a letter or digit; at most 317 characters",
                "workload W: needs an app",
                "workload W: interface \"veth0\" listed twice",
                "workload W: invalid interface name \"bad/if\": 1-15 of letters, digits and _.@:-",
                "workload W: needs at least one address",
            }));
}

}  // namespace
}  // namespace bulkhead::policy
