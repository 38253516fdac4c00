// The drift check's comparison on the real kernel: what MnlKernel::readTable
// dumps of a freshly applied table equals what the writer sends (goldens,
// the demo policy, a diff-built table, a 120k-element table), and every kind
// of tampering made with `nft` compares different.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/table_content.h"
#include "support/apply.h"
#include "support/netns.h"
#include "support/source_tree.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

std::string demoYaml() {
  std::string all;
  for (const char* f : {"apps.yaml", "services.yaml", "workloads.yaml"})
    all += testing::readText(fs::path(BULKHEAD_SOURCE_DIR) / "policies/demo" / f) + "\n---\n";
  return all;
}

Result<nft::TableContent> readBack(const Netns& ns, const std::string& table) {
  Result<nft::TableContent> out = makeError(ErrorCode::kInternal, "not run");
  ns.run([&] {
    auto kernel = nft::MnlKernel::open();
    if (!kernel) {
      out = kernel.takeError();
      return;
    }
    out = (*kernel)->readTable(table);
  });
  return out;
}

// As the agent's drift check compares: a difference must show in every
// read (nft::kernelDifferences).
std::optional<std::string> compareWithKernel(const Netns& ns, const compiler::Ruleset& rs) {
  auto expected = nft::expectedContent(rs);
  EXPECT_TRUE(expected) << expected.error().describe();
  if (!expected) return "unreadable";
  Result<std::optional<std::string>> out = makeError(ErrorCode::kInternal, "not run");
  ns.run([&] {
    auto kernel = nft::MnlKernel::open();
    if (!kernel) {
      out = kernel.takeError();
      return;
    }
    out = nft::kernelDifferences(**kernel, *expected);
  });
  EXPECT_TRUE(out) << out.error().describe();
  return out ? *out : std::optional<std::string>("unreadable");
}

TEST(TableContentKernelTest, FreshlyAppliedGoldensCompareEqual) {
  ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
  sweepStaleNamespaces();
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"spec-example",
       testing::readText(fs::path(BULKHEAD_SOURCE_DIR) / "tests/golden/spec-example.yaml")},
      {"demo", demoYaml()},
  };
  for (const auto& [name, yaml] : inputs) {
    Netns ns;
    const auto rs = compileYaml(yaml);
    KernelApplier applier(ns);
    ASSERT_TRUE(applier.replace(rs)) << name;
    auto diff = compareWithKernel(ns, rs);
    EXPECT_FALSE(diff.has_value()) << name << ": " << *diff;
  }
}

// The agent's drift check reads the table in pieces (agent/piecewise_check.h):
// together they are the whole read, and a set that is not there says
// ENOENT, which the check reports as a missing set.
TEST(TableContentKernelTest, TheTableReadInPiecesIsTheTableReadWhole) {
  ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
  Netns ns;
  const auto rs = compileYaml(demoYaml());
  KernelApplier applier(ns);
  ASSERT_TRUE(applier.replace(rs));
  Result<nft::TableContent> whole = makeError(ErrorCode::kInternal, "not run");
  Result<nft::TableContent> pieces = makeError(ErrorCode::kInternal, "not run");
  Result<std::vector<std::string>> missing = makeError(ErrorCode::kInternal, "not run");
  ns.run([&] {
    auto kernel = nft::MnlKernel::open();
    if (!kernel) return;
    whole = (*kernel)->readTable(rs.table);
    pieces = (*kernel)->readDeclarations(rs.table);
    if (!pieces) return;
    for (auto& [name, set] : pieces->sets) {
      if (set.dynamic) continue;
      auto elements = (*kernel)->readElements(rs.table, name);
      ASSERT_TRUE(elements) << name << ": " << elements.error().describe();
      set.elements = std::move(*elements);
    }
    missing = (*kernel)->readElements(rs.table, "no_such_set");
  });
  ASSERT_TRUE(whole) << whole.error().describe();
  ASSERT_TRUE(pieces) << pieces.error().describe();
  EXPECT_GT(whole->sets.size(), 3u);
  const auto differs = whole->differences(*pieces);
  EXPECT_FALSE(differs.has_value()) << *differs;
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().sysErrno, ENOENT) << missing.error().describe();
}

// Another program's commits to a table of its own interrupt the dumps of
// ours: the kernel flags any dump during which the ruleset generation
// moved. The drift check's pieces are returned as read, and are whole:
// those commits did not touch what was dumped.
TEST(TableContentKernelTest, PiecesReadWhileAnotherProgramCommitsAreWhole) {
  ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
  Netns ns;
  std::ostringstream yaml;
  yaml << demoYaml();
  // Enough chains and sets that each dump takes many replies.
  for (int i = 0; i < 400; ++i)
    yaml << "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: extra" << i
         << "}\nspec:\n  egress:\n    - to: [dns]\n---\n";
  compiler::Ruleset rs = compileYaml(yaml.str());
  KernelApplier applier(ns);
  ASSERT_TRUE(applier.replace(rs));
  const auto whole = nft::expectedContent(rs);
  ASSERT_TRUE(whole) << whole.error().describe();
  for (compiler::Set& set : rs.sets)
    set.elements = {};
  const auto declarations = nft::expectedContent(rs);
  ASSERT_TRUE(declarations) << declarations.error().describe();
  ASSERT_TRUE(
      ns.exec("nft add table inet other && nft add set inet other s '{ type ipv4_addr; }'").ok());
  Process other(ns,
                "i=0; while :; do nft add element inet other s { 198.51.100.$((i % 250 + 1)) }; "
                "i=$((i + 1)); done");
  int reads = 0;
  ns.run([&] {
    auto kernel = nft::MnlKernel::open();
    ASSERT_TRUE(kernel);
    for (; reads < 40; ++reads) {
      auto read = (*kernel)->readDeclarations(rs.table);
      ASSERT_TRUE(read) << "read " << reads << ": " << read.error().describe();
      const auto differs = declarations->differences(*read);
      ASSERT_FALSE(differs.has_value()) << "read " << reads << ": " << *differs;
      for (const auto& [name, set] : whole->sets) {
        if (set.dynamic) continue;
        auto elements = (*kernel)->readElements(rs.table, name);
        ASSERT_TRUE(elements) << name << ": " << elements.error().describe();
        ASSERT_EQ(*elements, set.elements) << name;
      }
    }
  });
  EXPECT_EQ(reads, 40);
  EXPECT_TRUE(other.running()) << "the other program stopped committing";
}

TEST(TableContentKernelTest, TableBuiltByDiffsComparesEqualToAFullApply) {
  ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
  Netns ns;
  KernelApplier applier(ns);
  const std::string base = demoYaml();
  ASSERT_TRUE(applier.apply(compileYaml(base)));
  const std::string more = base + R"(
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: billing-9}
spec: {app: billing, interfaces: [vbill9], addresses: [192.0.2.99, "2001:db8:2::99"]}
)";
  const auto next = compileYaml(more);
  ASSERT_TRUE(applier.apply(next));
  auto diff = compareWithKernel(ns, next);
  EXPECT_FALSE(diff.has_value()) << *diff;
}

// Every kind of change an operator or an attacker could make with nft.
TEST(TableContentKernelTest, EachKindOfTamperingComparesDifferent) {
  ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
  Netns ns;
  const auto rs = compileYaml(demoYaml());
  KernelApplier applier(ns);
  const std::vector<std::pair<std::string, std::string>> tampering = {
      {"flush chain inet bulkhead app_billing", "app_billing (0 rules"},
      {"insert rule inet bulkhead forward accept", "chains changed: forward ("},
      {"add rule inet bulkhead app_billing accept", "app_billing"},
      {"delete element inet bulkhead src4 { \"vbill1\" . 192.0.2.10 }",
       "src4 (1 elements missing, 0 foreign)"},
      {"add element inet bulkhead src4 { \"vbill1\" . 192.0.2.66 }",
       "src4 (0 elements missing, 1 foreign)"},
      {"add element inet bulkhead a4_billing { 203.0.113.9 . tcp . 22 }", "a4_billing"},
      {"add chain inet bulkhead intruder", "foreign chains: intruder"},
      {"add set inet bulkhead intruder { type ipv4_addr; }", "foreign sets: intruder"},
      {"chain inet bulkhead forward { policy drop; }", "forward (declaration)"},
  };
  for (const auto& [cmd, expect] : tampering) {
    ASSERT_TRUE(applier.replace(rs));
    ASSERT_FALSE(compareWithKernel(ns, rs).has_value()) << "before " << cmd;
    auto r = ns.exec("nft '" + cmd + "'");
    ASSERT_TRUE(r.ok()) << cmd << ": " << r.out;
    auto diff = compareWithKernel(ns, rs);
    ASSERT_TRUE(diff.has_value()) << cmd << " went unnoticed";
    EXPECT_NE(diff->find(expect), std::string::npos) << cmd << ": " << *diff;
  }
  // Same counts, other meaning: a rule replaced, a verdict swapped.
  ASSERT_TRUE(applier.replace(rs));
  ASSERT_TRUE(ns.exec("h=$(nft -a list chain inet bulkhead deny_reject | awk '/icmpx/ "
                      "{print $NF}'); nft replace rule inet bulkhead deny_reject handle $h accept")
                  .ok());
  auto replaced = compareWithKernel(ns, rs);
  ASSERT_TRUE(replaced.has_value());
  EXPECT_NE(replaced->find("deny_reject (rule 2:"), std::string::npos) << *replaced;
  ASSERT_TRUE(applier.replace(rs));
  ASSERT_TRUE(ns.exec("printf '%s\\n' 'delete element inet bulkhead dispatch { \"vbill1\" }' "
                      "'add element inet bulkhead dispatch { \"vbill1\" : accept }' | nft -f -")
                  .ok());
  auto swapped = compareWithKernel(ns, rs);
  ASSERT_TRUE(swapped.has_value());
  EXPECT_NE(swapped->find("dispatch (1 elements missing, 1 foreign)"), std::string::npos)
      << *swapped;
  // Counters count: no difference.
  ASSERT_TRUE(applier.replace(rs));
  ASSERT_TRUE(ns.exec("ping -c 1 -W 0.2 127.0.0.1 >/dev/null 2>&1; true").ok());
  EXPECT_FALSE(compareWithKernel(ns, rs).has_value());
}

// 120,000 elements (the bench_agent size): equal after apply, and one check
// (dump + parse + the writer's batch parsed back + compare) timed.
TEST(TableContentKernelTest, LargeTableComparesEqualAndOneCheckIsTimed) {
  ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
  Netns ns;
  std::ostringstream big;
  big << demoYaml();
  for (int svc = 0; svc < 2; ++svc) {
    big << "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: many" << svc
        << "}\nspec:\n  endpoints:\n    - ports: [tcp/443]\n      cidrs:\n";
    for (int i = 0; i < 60000; ++i)
      big << "        - \"2001:db8:" << std::hex << 0x100 + svc << ":0:0:0:" << (i >> 14) << ":"
          << 2 * (i & 0x3fff) << std::dec << "/128\"\n";
    big << "---\n";
  }
  big << "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: wide}\n"
      << "spec:\n  egress:\n    - to: [many0, many1]\n";
  const auto rs = compileYaml(big.str());
  ASSERT_GE(rs.elementCount(), 120000u);
  KernelApplier applier(ns);
  ASSERT_TRUE(applier.replace(rs));
  using Ms = std::chrono::duration<double, std::milli>;
  const auto start = std::chrono::steady_clock::now();
  auto actual = readBack(ns, rs.table);
  const auto read = std::chrono::steady_clock::now();
  auto expected = nft::expectedContent(rs);
  const auto built = std::chrono::steady_clock::now();
  ASSERT_TRUE(actual && expected);
  auto diff = expected->differences(*actual);
  const auto end = std::chrono::steady_clock::now();
  // What the agent's lock is held for when the read-back runs without it.
  const compiler::Ruleset copy = rs;
  const auto copied = std::chrono::steady_clock::now();
  ASSERT_EQ(copy.elementCount(), rs.elementCount());
  std::printf(
      "drift check of %zu elements: %.0f ms (kernel dump %.0f, writer's batch %.0f, "
      "compare %.0f; copying the ruleset %.1f)%s\n",
      size_t(rs.elementCount()), Ms(end - start).count(), Ms(read - start).count(),
      Ms(built - read).count(), Ms(end - built).count(), Ms(copied - end).count(),
      diff ? "; the read came back short, as a hash set still growing can" : "");
  // The first read may miss elements of the hash set still growing; the
  // check the agent makes reads again.
  auto checked = compareWithKernel(ns, rs);
  EXPECT_FALSE(checked.has_value()) << *checked;
  ASSERT_TRUE(
      ns.exec("nft delete element inet bulkhead a6_wide '{ 2001:db8:100::1:4 . tcp . 443 }'").ok());
  auto after = compareWithKernel(ns, rs);
  ASSERT_TRUE(after.has_value());
  EXPECT_NE(after->find("a6_wide (1 elements missing, 0 foreign)"), std::string::npos) << *after;
}

}  // namespace
}  // namespace bulkhead::testing
