// The source a controller learns for an agent's local workloads: the hello
// and every change carry the registration's real source (API, CNI,
// libvirt), as AgentCore recorded it, never UNSPECIFIED. Against the fake
// kernel.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "../../src/agent/controller_messages.h"
#include "bulkhead/agent/api_convert.h"
#include "bulkhead/agent/core.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

v1::Workload registration(const std::string& name, const std::string& address,
                          v1::Workload::Source source, const std::string& owner = "") {
  v1::Workload w;
  w.set_name(name);
  w.set_app("frontend");
  w.add_interfaces("v" + name);
  w.add_addresses(address);
  w.set_source(source);
  w.set_owner(owner);
  return w;
}

class AgentReportedSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bh-source-" + std::to_string(getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  CoreOptions options() const {
    CoreOptions o;
    o.stateDir = dir_.string();
    o.host = "host-a";
    return o;
  }
  fs::path dir_;
  testing::FakeKernel kernel_;
};

TEST_F(AgentReportedSourceTest, HelloAndChangesCarryTheRegistrationsSource) {
  AgentCore core(kernel_, {}, options());
  std::map<std::string, v1::Workload::Source> changed;
  core.setLocalChangeListener([&](const LocalWorkloadChange& c) {
    const v1::AgentMessage m = changeMessage(c, "host-a");
    ASSERT_TRUE(m.workload().has_upsert());
    EXPECT_EQ(m.workload().upsert().host(), "host-a");
    EXPECT_EQ(m.workload().upsert().interfaces_size(), 0);
    changed[c.workload.name] = m.workload().upsert().source();
  });
  ASSERT_TRUE(core.upsertWorkload(
                      registration("c1", "192.0.2.11", v1::Workload::SOURCE_CNI, "0123abcd/eth0"))
                  .ok());
  ASSERT_TRUE(core.upsertWorkload(registration("vm1", "192.0.2.12", v1::Workload::SOURCE_LIBVIRT,
                                               "6f1c1f8e-9c64-4f7e-8d0c-2f4a5b6c7d8e"))
                  .ok());
  ASSERT_TRUE(
      core.upsertWorkload(registration("api1", "192.0.2.13", v1::Workload::SOURCE_API)).ok());
  // UNSPECIFIED is recorded (and reported) as API.
  ASSERT_TRUE(
      core.upsertWorkload(registration("any1", "192.0.2.14", v1::Workload::SOURCE_UNSPECIFIED))
          .ok());
  const std::map<std::string, v1::Workload::Source> want = {{"c1", v1::Workload::SOURCE_CNI},
                                                            {"vm1", v1::Workload::SOURCE_LIBVIRT},
                                                            {"api1", v1::Workload::SOURCE_API},
                                                            {"any1", v1::Workload::SOURCE_API}};
  EXPECT_EQ(changed, want);

  const v1::AgentMessage hello = helloMessage("host-a", "test", 0, core.localWorkloads());
  std::map<std::string, v1::Workload::Source> reported;
  for (const auto& w : hello.hello().workloads()) {
    EXPECT_EQ(w.host(), "host-a");
    EXPECT_TRUE(w.owner().empty()) << w.name();
    reported[w.name()] = w.source();
  }
  EXPECT_EQ(reported, want);

  // A re-registration from another source is reported with the new one.
  ASSERT_TRUE(core.upsertWorkload(
                      registration("api1", "192.0.2.13", v1::Workload::SOURCE_CNI, "4567ef01/eth0"))
                  .ok());
  EXPECT_EQ(changed["api1"], v1::Workload::SOURCE_CNI);
  core.setLocalChangeListener(nullptr);
}

TEST(AgentReportedSource, SourcesMapBothWays) {
  for (auto s : {v1::Workload::SOURCE_API, v1::Workload::SOURCE_CNI, v1::Workload::SOURCE_LIBVIRT})
    EXPECT_EQ(toApi(localSource(s)), s);
  // Nothing else is a local registration's: reported as API.
  EXPECT_EQ(toApi(localSource(v1::Workload::SOURCE_UNSPECIFIED)), v1::Workload::SOURCE_API);
  EXPECT_EQ(toApi(localSource(v1::Workload::SOURCE_REMOTE)), v1::Workload::SOURCE_API);
  policy::Workload w;
  w.name = "x";
  w.app = "a";
  EXPECT_EQ(reportedWorkload(w, LocalSource::kLibvirt, "h").source(), v1::Workload::SOURCE_LIBVIRT);
}

}  // namespace
}  // namespace bulkhead::agent
