// AgentCore called in its own types (core_types.h), as a caller inside the
// agent would: it checks what it is given itself, whatever converted it.
#include <gtest/gtest.h>

#include "bulkhead/agent/core.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec:
  egress: []
)";

WorkloadRegistration registration(const std::string& name, const std::string& addr) {
  WorkloadRegistration r;
  r.workload.name = name;
  r.workload.app = "web";
  r.workload.interfaces = {"veth-" + name};
  r.workload.addresses = {*policy::IpAddr::parse(addr)};
  return r;
}

class CoreDomainTest : public ::testing::Test {
 protected:
  testing::FakeKernel kernel_;
  AgentCore core_{kernel_, {}, {}};
};

TEST_F(CoreDomainTest, PushRegisterListQuarantineStatus) {
  auto pushed = core_.applyPolicy(PolicyPush{{{"p.yaml", kPolicy}}, "v1", false});
  ASSERT_TRUE(pushed) << pushed.error().describe();
  EXPECT_EQ(pushed->version, "v1");
  EXPECT_TRUE(pushed->changed);
  ASSERT_TRUE(pushed->change);
  EXPECT_GT(pushed->change->chainsAdded, 0u);
  // The same bundle again: unchanged, and no change record.
  auto same = core_.applyPolicy(PolicyPush{{{"p.yaml", kPolicy}}, "v1", false});
  ASSERT_TRUE(same);
  EXPECT_FALSE(same->changed);
  EXPECT_FALSE(same->change);

  auto reg = registration("web-1", "192.0.2.10");
  reg.source = WorkloadSource::kCni;
  reg.owner = "net/c1/eth0";
  auto up = core_.upsertWorkload(reg);
  ASSERT_TRUE(up) << up.error().describe();
  EXPECT_GT(up->change.elementAdds, 0u);  // its address into the app's set
  const auto listed = core_.listWorkloads();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].workload.name, "web-1");
  EXPECT_EQ(listed[0].source, WorkloadSource::kCni);
  EXPECT_EQ(listed[0].owner, "net/c1/eth0");

  auto q = core_.quarantine("web-1", false, QuarantineWhy{"auto/scan/hosts", 60});
  ASSERT_TRUE(q) << q.error().describe();
  const auto quarantines = core_.listQuarantines();
  ASSERT_EQ(quarantines.size(), 1u);
  EXPECT_EQ(quarantines[0].workload, "web-1");
  EXPECT_EQ(quarantines[0].reason, "auto/scan/hosts");
  EXPECT_EQ(quarantines[0].seconds, 60u);
  EXPECT_EQ(quarantines[0].untilUnix - quarantines[0].sinceUnix, 60);

  const AgentStatusView s = core_.status();
  EXPECT_EQ(s.version, "v1");
  EXPECT_EQ(s.apps, 1u);
  EXPECT_EQ(s.workloads, 1u);
  EXPECT_EQ(s.pushes, 1u);
  EXPECT_EQ(s.workloadChanges, 2u);  // the upsert and the quarantine
  EXPECT_EQ(s.applyLatency.count, 1u);
  EXPECT_EQ(s.workloadLatency.count, 1u);

  auto del = core_.deleteWorkload("web-1", "net/c1/eth0");
  ASSERT_TRUE(del) << del.error().describe();
  EXPECT_GT(del->change.elementRemoves, 0u);
  EXPECT_TRUE(core_.listWorkloads().empty());
}

TEST_F(CoreDomainTest, RefusesWhatTheApiWouldRefuse) {
  ASSERT_TRUE(core_.applyPolicy(PolicyPush{{{"p.yaml", kPolicy}}, "", false}));
  // Sources that cannot register a workload.
  for (auto source : {WorkloadSource::kBundle, WorkloadSource::kRemote}) {
    auto r = registration("web-1", "192.0.2.10");
    r.source = source;
    auto up = core_.upsertWorkload(r);
    ASSERT_FALSE(up);
    EXPECT_EQ(up.error().code, ErrorCode::kInvalidInput);
  }
  // An owner with a space, or a newline that could forge a log line.
  for (const char* owner : {"two words", "a\nb"}) {
    auto r = registration("web-1", "192.0.2.10");
    r.owner = owner;
    auto up = core_.upsertWorkload(r);
    ASSERT_FALSE(up);
    EXPECT_EQ(up.error().code, ErrorCode::kInvalidInput);
  }
  // A workload the policy model refuses (not a DNS-label name).
  auto bad = registration("Web_1", "192.0.2.10");
  auto up = core_.upsertWorkload(bad);
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().code, ErrorCode::kInvalidInput);
  // A push with a control character in its version, or a file without a name.
  auto v = core_.applyPolicy(PolicyPush{{{"p.yaml", kPolicy}}, "v\n1", false});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kInvalidInput);
  auto unnamed = core_.applyPolicy(PolicyPush{{{"", kPolicy}}, "", false});
  ASSERT_FALSE(unnamed);
  EXPECT_EQ(unnamed.error().code, ErrorCode::kInvalidInput);
  EXPECT_TRUE(core_.listWorkloads().empty());
  EXPECT_EQ(core_.status().workloadChanges, 0u);
}

}  // namespace
}  // namespace bulkhead::agent
