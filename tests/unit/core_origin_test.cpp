// AgentCore: who registered a workload (source, owner) is kept, listed,
// survives a restart (snapshot and journal), guards deletes by owner, and is
// checked on the way in.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "support/fake_kernel.h"
#include "support/scratch.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec:
  egress: []
)";

v1::Workload cniWorkload(const std::string& name, const std::string& owner,
                         const std::string& iface, const std::string& addr) {
  v1::Workload w;
  w.set_name(name);
  w.set_app("web");
  w.add_interfaces(iface);
  w.add_addresses(addr);
  w.set_source(v1::Workload::SOURCE_CNI);
  w.set_owner(owner);
  return w;
}

class CoreOriginTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratchPath("bh-origin"); }
  void TearDown() override { fs::remove_all(dir_); }
  CoreOptions options() const {
    CoreOptions o;
    o.stateDir = dir_.string();
    return o;
  }
  static v1::ApplyPolicyRequest push() {
    v1::ApplyPolicyRequest r;
    auto* f = r.add_files();
    f->set_name("policy.yaml");
    f->set_content(kPolicy);
    return r;
  }
  fs::path dir_;
  testing::FakeKernel kernel_;
};

TEST_F(CoreOriginTest, SourceAndOwnerAreListedAndSurviveARestart) {
  {
    AgentCore core(kernel_, {}, options());
    ASSERT_TRUE(api::applyPolicy(core, push()).ok());
    ASSERT_TRUE(
        api::upsertWorkload(core, cniWorkload("prod/web-1", "net/c1/eth0", "veth1", "192.0.2.1"))
            .ok());
    v1::Workload vm = cniWorkload("vm-1", "6a1d9e2c", "vnet1", "192.0.2.2");
    vm.set_source(v1::Workload::SOURCE_LIBVIRT);
    ASSERT_TRUE(api::upsertWorkload(core, vm).ok());
    v1::Workload api = cniWorkload("api-1", "", "vapi1", "192.0.2.3");
    api.set_source(v1::Workload::SOURCE_UNSPECIFIED);
    ASSERT_TRUE(api::upsertWorkload(core, api).ok());
    auto one = api::listWorkloads(core, "prod/web-1");
    ASSERT_EQ(one.workloads_size(), 1);
    EXPECT_EQ(one.workloads(0).source(), v1::Workload::SOURCE_CNI);
    EXPECT_EQ(one.workloads(0).owner(), "net/c1/eth0");
    EXPECT_EQ(api::listWorkloads(core, "nope").workloads_size(), 0);
  }
  testing::FakeKernel fresh;
  AgentCore restored(fresh, {}, options());  // journal replayed over the snapshot
  ASSERT_TRUE(restored.restore().ok());
  auto ls = api::listWorkloads(restored);
  ASSERT_EQ(ls.workloads_size(), 3);
  EXPECT_EQ(ls.workloads(0).name(), "api-1");
  EXPECT_EQ(ls.workloads(0).source(), v1::Workload::SOURCE_API);
  EXPECT_EQ(ls.workloads(1).name(), "prod/web-1");
  EXPECT_EQ(ls.workloads(1).source(), v1::Workload::SOURCE_CNI);
  EXPECT_EQ(ls.workloads(1).owner(), "net/c1/eth0");
  EXPECT_EQ(ls.workloads(2).source(), v1::Workload::SOURCE_LIBVIRT);
  EXPECT_EQ(ls.workloads(2).owner(), "6a1d9e2c");
}

TEST_F(CoreOriginTest, DeleteByAnotherOwnerIsNotFoundAndLeavesIt) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push()).ok());
  ASSERT_TRUE(
      api::upsertWorkload(core, cniWorkload("prod/db-0", "net/new/eth0", "veth1", "192.0.2.1"))
          .ok());
  auto old = api::deleteWorkload(core, "prod/db-0", "net/old/eth0");
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(api::listWorkloads(core, "prod/db-0").workloads_size(), 1);
  EXPECT_TRUE(api::deleteWorkload(core, "prod/db-0", "net/new/eth0").ok());
  EXPECT_EQ(api::listWorkloads(core).workloads_size(), 0);
}

TEST_F(CoreOriginTest, BadOriginsAreRefused) {
  AgentCore core(kernel_, {}, options());
  ASSERT_TRUE(api::applyPolicy(core, push()).ok());
  v1::Workload bundle = cniWorkload("w-1", "", "veth1", "192.0.2.1");
  bundle.set_source(v1::Workload::SOURCE_BUNDLE);
  EXPECT_EQ(api::upsertWorkload(core, bundle).error().code, ErrorCode::kInvalidInput);
  v1::Workload unknown = bundle;
  unknown.set_source(static_cast<v1::Workload::Source>(42));
  EXPECT_EQ(api::upsertWorkload(core, unknown).error().code, ErrorCode::kInvalidInput);
  for (const std::string& owner : {std::string("a b"), std::string("x\n"), std::string(257, 'a')}) {
    v1::Workload w = cniWorkload("w-1", owner, "veth1", "192.0.2.1");
    EXPECT_EQ(api::upsertWorkload(core, w).error().code, ErrorCode::kInvalidInput) << owner;
  }
  EXPECT_EQ(api::listWorkloads(core).workloads_size(), 0);
  // Names as orchestrators give them; still no spaces, upper case or "..".
  for (const char* bad : {"Prod/web", "a/b/c", "/web", "web/", "a b", "../x"})
    EXPECT_FALSE(api::upsertWorkload(core, cniWorkload(bad, "", "veth1", "192.0.2.1")).ok()) << bad;
}

}  // namespace
}  // namespace bulkhead::agent
