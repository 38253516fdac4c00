// A push large enough to be written with the monitor out of the
// notification group: a foreign commit that lands meanwhile is not heard as
// an event, but the generation bracket reports it, and the housekeeping
// loop finds and repairs the change by content. Without one, nothing is
// read back.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "bulkhead/agent/housekeeping.h"
#include "bulkhead/nft/monitor.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

constexpr const char* kTable = "bulkhead";

// Someone deletes an element of ours right after our next commit.
class TamperingKernel : public testing::FakeKernel {
 public:
  TamperingKernel() : FakeKernel(kTable) {}
  Status commit(const nft::Batch& batch) override {
    Status st = FakeKernel::commit(batch);
    if (st && tamperAfterNext) {
      tamperAfterNext = false;
      for (auto& [name, set] : content.sets) {
        if (set.elements.size() < 2) continue;
        set.elements.erase(set.elements.begin());
        break;
      }
      ++gen;
    }
    return st;
  }
  bool tamperAfterNext = false;
};

// The monitor as the housekeeping loop sees it: reportUnheard() becomes the
// next wait's kLostEvents.
class QueueGate : public nft::NotificationGate {
 public:
  void pause() override { ++pauses; }
  void resume() override {}
  void reportUnheard(std::string what) override {
    nft::TableEvent e;
    e.kind = nft::TableEvent::Kind::kLostEvents;
    e.what = std::move(what);
    pending.push_back(std::move(e));
  }
  std::vector<nft::TableEvent> pending;
  int pauses = 0;
};

// One App reaching a Service of `n` separate addresses: n set elements.
v1::ApplyPolicyRequest bigPush(int n) {
  std::string yaml =
      "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: many}\nspec:\n"
      "  endpoints:\n    - ports: [tcp/443]\n      cidrs:\n";
  for (int i = 0; i < n; ++i)
    yaml +=
        "        - 10.1." + std::to_string(i / 100) + "." + std::to_string(2 * (i % 100)) + "/32\n";
  yaml +=
      "---\napiVersion: bulkhead/v1\nkind: App\nmetadata: {name: web}\n"
      "spec:\n  egress:\n    - to: [many]\n";
  v1::ApplyPolicyRequest r;
  auto* f = r.add_files();
  f->set_name("big.yaml");
  f->set_content(yaml);
  return r;
}

class DriftUnheardTest : public ::testing::Test {
 protected:
  void SetUp() override { core_.setNotificationGate(&gate_); }

  Housekeeping housekeeping() {
    HousekeepingOptions o;
    o.resync = std::chrono::hours(1);
    o.idle = std::chrono::milliseconds(1);
    return Housekeeping(core_, o, [this](int) -> Result<std::vector<nft::TableEvent>> {
      return std::exchange(gate_.pending, {});
    });
  }

  TamperingKernel kernel_;
  QueueGate gate_;
  AgentCore core_{kernel_, compiler::CompileOptions{}, CoreOptions{}};
};

TEST_F(DriftUnheardTest, QuietPushLeavesNothingToCheck) {
  auto pushed = api::applyPolicy(core_, bigPush(int(Enforcer::kQuietElements) + 100));
  ASSERT_TRUE(pushed) << pushed.error().describe();
  EXPECT_EQ(gate_.pauses, 1);
  EXPECT_TRUE(gate_.pending.empty());
  auto hk = housekeeping();
  hk.step();
  EXPECT_EQ(kernel_.reads, 0);
  EXPECT_EQ(api::status(core_).drift_repairs(), 0u);
}

TEST_F(DriftUnheardTest, ForeignCommitDuringAQuietPushIsFoundAndRepaired) {
  kernel_.tamperAfterNext = true;
  auto pushed = api::applyPolicy(core_, bigPush(int(Enforcer::kQuietElements) + 100));
  ASSERT_TRUE(pushed) << pushed.error().describe();
  ASSERT_EQ(gate_.pending.size(), 1u);
  const int commits = kernel_.commits;
  auto hk = housekeeping();
  hk.step();
  EXPECT_GE(kernel_.reads, 1);
  EXPECT_EQ(kernel_.commits, commits + 1);  // one whole replace
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);
  // Put back: the check by content now agrees.
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  EXPECT_FALSE(drift->has_value()) << **drift;
}

}  // namespace
}  // namespace bulkhead::agent
