// The `bulkhead` command line, driven in-process.
#include "bulkhead/cli/commands.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/cli_run.h"
#include "support/scratch.h"

namespace bulkhead::cli {
namespace {

namespace fs = std::filesystem;

using testing::CliRun;
using testing::run;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchPath("bh-cli");
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  fs::path dir_;
};

const std::string kDemo = std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo";

TEST_F(CliTest, ValidateAcceptsTheDemoPolicy) {
  auto r = run({"validate", kDemo});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("3 apps"), std::string::npos) << r.out;
}

TEST_F(CliTest, ValidateReportsEveryErrorWithPositionAndExitsTwo) {
  const std::string f = write("bad.yaml", R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: db}
spec:
  endpoints:
    - cidrs: [198.51.100.300/32]
      ports: [tcp/99999]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec:
  egress:
    - to: [nowhere]
  colour: blue
)");
  auto r = run({"validate", f});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_NE(r.err.find(f + ":6:15: bad CIDR"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(f + ":7:15: bad port"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(f + ":14:12: unknown service or app \"nowhere\""), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(f + ":15:3: unknown field \"colour\""), std::string::npos) << r.err;
}

TEST_F(CliTest, ValidateOfMalformedYamlAndMissingFile) {
  auto r = run({"validate", write("broken.yaml", "kind: [unclosed\n")});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_NE(r.err.find("invalid YAML"), std::string::npos) << r.err;
  auto missing = run({"validate", (dir_ / "nope.yaml").string()});
  EXPECT_EQ(missing.code, kExitBadInput);
  EXPECT_NE(missing.err.find("no such file"), std::string::npos) << missing.err;
}

TEST_F(CliTest, PlanIsStableAndNamesTheTable) {
  auto a = run({"plan", kDemo});
  auto b = run({"plan", kDemo, "--table", "seg", "--log-group", "7"});
  auto c = run({"--table=seg", "plan", kDemo, "--log-group=7"});
  ASSERT_EQ(a.code, kExitOk) << a.err;
  ASSERT_EQ(b.code, kExitOk) << b.err;
  EXPECT_EQ(a.out, run({"plan", kDemo}).out);
  EXPECT_EQ(a.out.rfind("table inet bulkhead {", 0), 0u);
  EXPECT_EQ(b.out.rfind("table inet seg {", 0), 0u);
  EXPECT_NE(b.out.find("group 7"), std::string::npos);
  EXPECT_EQ(b.out, c.out) << "flags before or after the command are the same";
}

TEST_F(CliTest, PlanTakesWorkloadsFromAFile) {
  const std::string policy = write("p.yaml", R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec: {}
)");
  const std::string workloads = write("w.yaml", R"(apiVersion: bulkhead/v1
kind: Workload
metadata: {name: web-1}
spec: {app: web, interfaces: [veth9], addresses: [192.0.2.9]}
)");
  auto r = run({"plan", policy, "--workloads", workloads});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"veth9\" : goto app_web"), std::string::npos) << r.out;
  auto wrong = run({"plan", policy, "--workloads", policy});
  EXPECT_EQ(wrong.code, kExitBadInput);
}

TEST_F(CliTest, BadFlagsAndCommandsExitTwo) {
  EXPECT_EQ(run({"plan", kDemo, "--bogus"}).code, kExitBadInput);
  EXPECT_EQ(run({"plan", kDemo, "--log-group", "70000"}).code, kExitBadInput);
  EXPECT_EQ(run({"plan", kDemo, "--table", "Bad Name"}).code, kExitBadInput);
  EXPECT_EQ(run({"frobnicate"}).code, kExitBadInput);
  EXPECT_EQ(run({"plan"}).code, kExitBadInput);
  EXPECT_EQ(run({"--help"}).code, kExitOk);
}

}  // namespace
}  // namespace bulkhead::cli
