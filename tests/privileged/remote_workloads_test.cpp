// Remote workloads against the real kernel with real packets: the agent
// core (fleet.h's side, as the controller link drives it) in a hypervisor
// namespace; a local `frontend` workload whose App may reach
// `appSelector: {app: payments}` on tcp/8443, and a server namespace
// standing for another host's payments workload. Denied until that remote
// workload is upserted, allowed after, denied again after its delete — each
// change element changes only; and the same after a restart from the saved
// state (fail-static: no controller needed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "bulkhead/nft/mnl_kernel.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using agent::AgentCore;
using agent::PolicyRevision;
using agent::RemoteWorkload;

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: payments-api}
spec:
  appSelector: {app: payments}
  ports: [tcp/8443]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: payments}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: frontend}
spec:
  denyAction: reject
  egress:
    - to: [payments-api]
)";

constexpr const char* kPayments = "198.51.100.44";

policy::Workload local() {
  policy::Workload w;
  w.name = "fe-1";
  w.app = "frontend";
  w.interfaces = {"vfe1"};
  w.addresses = {*policy::IpAddr::parse("192.0.2.44")};
  return w;
}

RemoteWorkload remotePayments() {
  policy::Workload w;
  w.name = "payments-1";
  w.app = "payments";
  w.addresses = {*policy::IpAddr::parse(kPayments)};
  return RemoteWorkload{"host-b", w};
}

v1::Workload toV1(const policy::Workload& w) {
  v1::Workload out;
  out.set_name(w.name);
  out.set_app(w.app);
  for (const auto& i : w.interfaces)
    out.add_interfaces(i);
  for (const auto& a : w.addresses)
    out.add_addresses(a.toString());
  return out;
}

class RemoteWorkloadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
    sweepStaleNamespaces();
    stateDir_ = fs::temp_directory_path() / ("bht-remote-" + std::to_string(getpid()));
    fs::remove_all(stateDir_);
    topo_ = std::make_unique<Topology>();
    topo_->addHost("vfe1", "192.0.2.44", "");
    auto& server = topo_->addHost("vpay1", kPayments, "");
    listener_ = std::make_unique<Process>(*server.ns, tcpListenCmd(8443, false));
    ASSERT_TRUE(waitListening(*server.ns, 8443, false));
    // The kernel's socket is opened inside the hypervisor namespace and
    // stays bound to it whatever thread uses it afterwards.
    topo_->hv().run([&] {
      auto k = nft::MnlKernel::open();
      if (k) kernel_ = std::move(*k);
    });
    ASSERT_NE(kernel_, nullptr);
  }
  void TearDown() override {
    core_.reset();
    kernel_.reset();
    listener_.reset();  // before the namespaces it runs in
    topo_.reset();
    fs::remove_all(stateDir_);
  }

  std::unique_ptr<AgentCore> makeCore() {
    agent::CoreOptions o;
    o.stateDir = stateDir_.string();
    o.host = "host-a";
    return std::make_unique<AgentCore>(*kernel_, compiler::CompileOptions{}, o);
  }
  bool reaches() { return tcpProbe(*topo_->host("vfe1").ns, kPayments, 8443, 2.0).ok; }
  std::string table() { return topo_->hv().exec("nft list table inet bulkhead").out; }

  fs::path stateDir_;
  std::unique_ptr<Topology> topo_;
  std::unique_ptr<Process> listener_;
  std::unique_ptr<nft::MnlKernel> kernel_;
  std::unique_ptr<AgentCore> core_;
};

TEST_F(RemoteWorkloadsTest, RemotePaymentsOpensAndClosesTheSelector) {
  core_ = makeCore();
  ASSERT_TRUE(core_->applySnapshot(PolicyRevision{1, "r1", {{"fleet.yaml", kPolicy}}}, {}).ok());
  ASSERT_TRUE(agent::api::upsertWorkload(*core_, toV1(local())).ok());
  ASSERT_TRUE(core_->promoteStaged(true).ok());

  // No payments workload anywhere: the selector selects nothing.
  auto denied = tcpProbe(*topo_->host("vfe1").ns, kPayments, 8443, 3.0);
  EXPECT_FALSE(denied.ok) << denied.out;
  EXPECT_LT(denied.seconds, 2.0) << "rejected, not timed out";

  // Another host's payments workload registers: element changes only.
  const auto before = agent::api::status(*core_);
  ASSERT_TRUE(core_->upsertRemoteWorkload(remotePayments()).ok());
  const auto after = agent::api::status(*core_);
  EXPECT_EQ(after.chains(), before.chains());
  EXPECT_EQ(after.set_elements(), before.set_elements() + 1);
  EXPECT_TRUE(reaches()) << table();
  EXPECT_NE(table().find(std::string(kPayments) + " . tcp . 8443"), std::string::npos) << table();
  // Not a workload of this host: in no source or dispatch set.
  EXPECT_EQ(table().find("\"vpay1\""), std::string::npos);

  ASSERT_TRUE(core_->deleteRemoteWorkload("host-b", "payments-1").ok());
  EXPECT_FALSE(reaches());

  // Saved with the state: a restart without any controller enforces it.
  ASSERT_TRUE(core_->upsertRemoteWorkload(remotePayments()).ok());
  core_.reset();
  topo_->hv().exec("nft delete table inet bulkhead");
  EXPECT_TRUE(reaches()) << "no table: nothing enforced";
  core_ = makeCore();
  ASSERT_TRUE(core_->restore().ok());
  EXPECT_EQ(core_->appliedRevision(), 1u);
  EXPECT_TRUE(reaches()) << table();
  auto drift = core_->checkDrift("test");
  ASSERT_TRUE(drift.ok());
  EXPECT_FALSE(drift->has_value()) << **drift;
  ASSERT_TRUE(core_->deleteRemoteWorkload("host-b", "payments-1").ok());
  EXPECT_FALSE(reaches());
}

}  // namespace
}  // namespace bulkhead::testing
