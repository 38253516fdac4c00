// The etcd client over a three-member cluster with one member killed: the
// client given all three endpoints keeps writing and watching.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "bulkhead/etcd/client.h"
#include "support/etcd_server.h"
#include "support/netns.h"

namespace bulkhead::etcd {
namespace {

using namespace std::chrono_literals;
using testing::waitFor;

TEST(EtcdThreeMembers, PutsAndWatchesSurviveAKilledMember) {
  testing::EtcdCluster cluster(3);
  ASSERT_TRUE(cluster.ok());
  auto options = cluster.clientOptions();
  options.requestTimeout = 2s;
  auto connected = Client::connect(options);
  ASSERT_TRUE(connected.ok());
  auto& client = **connected;
  std::mutex mutex;
  std::vector<int64_t> seen;
  Watcher watcher(client, "/k/", 1,
                  {[&](const std::vector<Event>& events, int64_t) {
                     std::lock_guard lock(mutex);
                     for (const auto& e : events)
                       seen.push_back(e.kv.modRevision);
                   },
                   nullptr, nullptr});
  auto count = [&] {
    std::lock_guard lock(mutex);
    return seen.size();
  };
  std::vector<int64_t> revs;
  for (int i = 0; i < 5; ++i) {
    auto r = client.put("/k/" + std::to_string(i), "v");
    ASSERT_TRUE(r.ok()) << r.error().describe();
    revs.push_back(*r);
  }
  ASSERT_TRUE(waitFor([&] { return count() == 5; }, 5000));

  // The first endpoint: where the client and the watch started.
  cluster.killMember(0);
  // The first write may meet a leader election (about a second).
  int64_t rev = 0;
  ASSERT_TRUE(waitFor(
      [&] {
        auto r = client.put("/k/after", "v");
        if (r) rev = *r;
        return r.ok();
      },
      10000));
  revs.push_back(rev);
  for (int i = 0; i < 5; ++i) {
    auto r = client.put("/k/more" + std::to_string(i), "v");
    ASSERT_TRUE(r.ok()) << r.error().describe();
    revs.push_back(*r);
  }
  auto got = client.getPrefix("/k/");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->kvs.size(), 11u);
  ASSERT_TRUE(waitFor([&] { return count() == revs.size(); }, 10000)) << count();
  std::this_thread::sleep_for(300ms);
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(seen, revs);
  }

  // Back: it catches up and serves again.
  ASSERT_TRUE(cluster.restartMember(0)) << cluster.log(0);
  ClientOptions only0;
  only0.endpoints = {cluster.endpoints()[0]};
  auto direct = Client::connect(only0);
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(waitFor(
      [&] {
        auto r = (*direct)->getPrefix("/k/");
        return r && r->kvs.size() == 11;
      },
      5000));
}

}  // namespace
}  // namespace bulkhead::etcd
