// The drift check's read-back through a kernel connection of its own
// (AgentCore::setTableReader): done without the core's lock, so a request
// that arrives meanwhile is served at once; a commit of ours during the read
// sends the check back under the lock.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "bulkhead/agent/api_convert.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "bulkhead/nft/kernel.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

using namespace std::chrono_literals;

// Reads what `kernel` holds, as a second netlink socket on the same
// namespace would; hold() makes the next reads wait for release().
class HeldReader : public nft::NftKernel {
 public:
  explicit HeldReader(testing::FakeKernel& kernel) : kernel_(kernel) {}

  Status commit(const nft::Batch&) override {
    return makeError(ErrorCode::kInternal, "the drift reader never writes");
  }
  Result<bool> tableExists(const std::string& name) override { return kernel_.tableExists(name); }
  Result<uint32_t> generation() override { return kernel_.generation(); }
  Result<nft::TableContent> readTable(const std::string& name) override {
    {
      std::unique_lock lock(mu_);
      ++reads_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !held_; });
    }
    return kernel_.readTable(name);
  }
  uint32_t nextSeq(uint32_t) override { return 0; }

  void hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void release() {
    std::lock_guard lock(mu_);
    held_ = false;
    cv_.notify_all();
  }
  bool waitForRead(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return reads_ > 0; });
  }
  int reads() {
    std::lock_guard lock(mu_);
    return reads_;
  }

 private:
  testing::FakeKernel& kernel_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int reads_ = 0;
};

v1::Workload apiWorkload(const std::string& name, const std::string& v4) {
  v1::Workload w;
  w.set_name(name);
  w.set_app("billing");
  w.add_interfaces("v" + name);
  w.add_addresses(v4);
  return w;
}

class DriftReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto files =
        AgentCore::readPolicyFiles(std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo", 1u << 20);
    ASSERT_TRUE(files) << files.error().describe();
    auto pushed = api::applyPolicy(core_, toApi(PolicyPush{std::move(*files), "", false}));
    ASSERT_TRUE(pushed) << pushed.error().describe();
    ASSERT_TRUE(api::upsertWorkload(core_, apiWorkload("api-1", "192.0.2.77")));
    ASSERT_TRUE(core_.promoteStaged(true));
    core_.setTableReader(&reader_);
  }

  testing::FakeKernel kernel_{"bulkhead"};
  AgentCore core_{kernel_, compiler::CompileOptions{}, CoreOptions{}};
  HeldReader reader_{kernel_};
};

TEST_F(DriftReaderTest, ARequestIsServedWhileTheTableIsReadBack) {
  ++kernel_.gen;  // someone committed elsewhere: the table is read back
  reader_.hold();
  auto check = std::async(std::launch::async, [&] { return core_.checkDrift("test"); });
  ASSERT_TRUE(reader_.waitForRead(5s));

  auto served = std::async(std::launch::async, [&] {
    return api::upsertWorkload(core_, apiWorkload("api-2", "192.0.2.78")).ok();
  });
  const bool inTime = served.wait_for(5s) == std::future_status::ready;
  reader_.release();
  ASSERT_TRUE(inTime) << "the registration waited for the read-back";
  EXPECT_TRUE(served.get());

  // Our commit landed during the read: decided again under the lock,
  // against the table as it is now, and found in sync.
  auto drift = check.get();
  ASSERT_TRUE(drift) << drift.error().describe();
  EXPECT_FALSE(drift->has_value()) << **drift;
  EXPECT_EQ(api::status(core_).drift_repairs(), 0u);
}

TEST_F(DriftReaderTest, DriftFoundThroughTheReaderIsRepaired) {
  nft::TableContent tampered = kernel_.content;
  std::string set;
  for (const auto& [name, s] : tampered.sets)
    if (s.elements.size() >= 2) set = name;
  ASSERT_FALSE(set.empty());
  kernel_.content.sets[set].elements.pop_back();
  ++kernel_.gen;  // a foreign change is a commit
  const int commits = kernel_.commits;

  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  ASSERT_TRUE(drift->has_value());
  // Every read went through the reader: nothing was read under the lock.
  EXPECT_EQ(reader_.reads(), nft::kTableReads);
  EXPECT_EQ(kernel_.reads, nft::kTableReads);
  EXPECT_EQ(kernel_.commits, commits + 1);  // one whole replace
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);
}

TEST_F(DriftReaderTest, AnUnmovedGenerationReadsNothing) {
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  EXPECT_FALSE(drift->has_value());
  EXPECT_EQ(reader_.reads(), 0);
}

TEST_F(DriftReaderTest, LostNotificationsAreDecidedThroughTheReader) {
  ++kernel_.gen;  // a commit elsewhere, our table untouched
  auto repaired = core_.repairAfterLostEvents("notifications lost");
  ASSERT_TRUE(repaired) << repaired.error().describe();
  EXPECT_FALSE(*repaired);
  EXPECT_EQ(reader_.reads(), 1);
}

}  // namespace
}  // namespace bulkhead::agent
