// The etcd Watcher against a real etcd: order, restarts of etcd under a
// running watcher (nothing lost, nothing repeated), compaction.
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
using testing::EtcdServer;
using testing::waitFor;

// What a watcher delivered, for the test thread to look at.
struct Seen {
  std::mutex mutex;
  std::vector<Event> events;
  std::vector<int64_t> batchRevisions, compacted;
  int disconnects = 0;

  Watcher::Callbacks callbacks() {
    return {[this](const std::vector<Event>& batch, int64_t revision) {
              std::lock_guard lock(mutex);
              events.insert(events.end(), batch.begin(), batch.end());
              batchRevisions.push_back(revision);
            },
            [this](int64_t revision) {
              std::lock_guard lock(mutex);
              compacted.push_back(revision);
            },
            [this](const Status&) {
              std::lock_guard lock(mutex);
              ++disconnects;
            }};
  }
  size_t count() {
    std::lock_guard lock(mutex);
    return events.size();
  }
  std::vector<Event> copy() {
    std::lock_guard lock(mutex);
    return events;
  }
};

std::unique_ptr<Client> connectTo(const ClientOptions& options) {
  auto client = Client::connect(options);
  EXPECT_TRUE(client.ok()) << (client ? "" : client.error().describe());
  return client ? std::move(*client) : nullptr;
}

TEST(EtcdWatcher, DeliversPutsAndDeletesInOrder) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  auto before = client->put("/w/old", "before the start");
  ASSERT_TRUE(before.ok());
  Seen seen;
  Watcher watcher(*client, "/w/", *before + 1, seen.callbacks());
  ASSERT_TRUE(client->put("/other", "not watched").ok());
  std::vector<int64_t> revs;
  for (int i = 0; i < 20; ++i)
    revs.push_back(*client->put("/w/k" + std::to_string(i % 5), std::to_string(i)));
  revs.push_back(*client->erase("/w/k1"));
  ASSERT_TRUE(waitFor([&] { return seen.count() >= 21; }, 5000)) << seen.count();
  std::this_thread::sleep_for(200ms);
  const auto events = seen.copy();
  ASSERT_EQ(events.size(), 21u);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(events[i].type, EventType::kPut);
    EXPECT_EQ(events[i].kv.key, "/w/k" + std::to_string(i % 5));
    EXPECT_EQ(events[i].kv.value, std::to_string(i));
    EXPECT_EQ(events[i].kv.modRevision, revs[i]);
  }
  EXPECT_EQ(events[20].type, EventType::kDelete);
  EXPECT_EQ(events[20].kv.key, "/w/k1");
  EXPECT_EQ(events[20].kv.modRevision, revs[20]);
  std::lock_guard lock(seen.mutex);
  EXPECT_EQ(seen.batchRevisions.back(), revs[20]);
}

TEST(EtcdWatcher, StartRevisionInThePastReplaysFromThere) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  const auto r1 = *client->put("/h/a", "1");
  const auto r2 = *client->put("/h/b", "2");
  Seen seen;
  Watcher watcher(*client, "/h/", r2, seen.callbacks());
  ASSERT_TRUE(waitFor([&] { return seen.count() >= 1; }, 5000));
  std::this_thread::sleep_for(200ms);
  const auto events = seen.copy();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.modRevision, r2);
  EXPECT_GT(r2, r1);
}

// Puts key=value once: right after etcd is back, the client's channel may
// still be backing off and refuse the call (UNAVAILABLE, nothing written);
// a call that failed otherwise may have been applied, so the key is read
// before a retry. The watcher, not the client, is under test here.
Result<int64_t> putOnce(Client& client, const std::string& key, const std::string& value) {
  Result<int64_t> r = client.put(key, value);
  for (int attempt = 0; !r && r.error().code == ErrorCode::kUnavailable && attempt < 50;
       ++attempt) {
    std::this_thread::sleep_for(100ms);
    auto got = client.get(key);
    if (got && !got->kvs.empty() && got->kvs[0].value == value) return got->kvs[0].modRevision;
    r = client.put(key, value);
  }
  return r;
}

// Writes `n` keys /r/<from>.. and returns their revisions.
std::vector<int64_t> writeSome(Client& client, int from, int n) {
  std::vector<int64_t> revs;
  for (int i = from; i < from + n; ++i) {
    auto r = putOnce(client, "/r/" + std::to_string(i), std::to_string(i));
    EXPECT_TRUE(r.ok()) << r.error().describe();
    if (r) revs.push_back(*r);
  }
  return revs;
}

void expectExactly(Seen& seen, const std::vector<int64_t>& revs) {
  const auto events = seen.copy();
  ASSERT_EQ(events.size(), revs.size());
  for (size_t i = 0; i < revs.size(); ++i) {
    EXPECT_EQ(events[i].kv.modRevision, revs[i]) << i;
    EXPECT_EQ(events[i].kv.key, "/r/" + std::to_string(i)) << i;
  }
}

TEST(EtcdWatcher, SurvivesEtcdRestartsWithoutLosingOrRepeating) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  auto start = client->get("/r/");
  ASSERT_TRUE(start.ok());
  Seen seen;
  Watcher watcher(*client, "/r/", start->revision + 1, seen.callbacks());
  std::vector<int64_t> revs = writeSome(*client, 0, 10);
  ASSERT_TRUE(waitFor([&] { return seen.count() >= 10; }, 5000));

  // A crash: writes right after it is back land before the watcher has
  // reconnected (it is backing off), more after.
  etcd.kill();
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(etcd.restart()) << etcd.log();
  for (auto r : writeSome(*client, 10, 10))
    revs.push_back(r);
  ASSERT_TRUE(waitFor([&] { return seen.count() >= 20; }, 10000)) << seen.count();
  for (auto r : writeSome(*client, 20, 5))
    revs.push_back(r);
  ASSERT_TRUE(waitFor([&] { return seen.count() >= 25; }, 5000)) << seen.count();

  // A clean stop this time, down for longer than the largest back-off.
  etcd.stop();
  std::this_thread::sleep_for(3s);
  ASSERT_TRUE(etcd.restart()) << etcd.log();
  for (auto r : writeSome(*client, 25, 5))
    revs.push_back(r);
  ASSERT_TRUE(waitFor([&] { return seen.count() >= 30; }, 10000)) << seen.count();
  std::this_thread::sleep_for(300ms);
  expectExactly(seen, revs);
  std::lock_guard lock(seen.mutex);
  EXPECT_GE(seen.disconnects, 2);
  // Backed off while etcd was down: a handful of attempts in 3 s, not a spin.
  EXPECT_LT(seen.disconnects, 20);
  EXPECT_TRUE(seen.compacted.empty());
}

TEST(EtcdWatcher, CompactedStartIsReportedOnceNotInALoop) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  const auto first = *client->put("/c/a", "1");
  ASSERT_TRUE(client->put("/c/a", "2").ok());
  const auto last = *client->put("/c/b", "3");
  ASSERT_TRUE(client->compact(last).ok());
  Seen seen;
  {
    Watcher watcher(*client, "/c/", first, seen.callbacks());
    ASSERT_TRUE(waitFor(
        [&] {
          std::lock_guard lock(seen.mutex);
          return !seen.compacted.empty();
        },
        5000));
    std::this_thread::sleep_for(1s);
    // Later writes are not delivered by a watcher that reported compaction.
    ASSERT_TRUE(client->put("/c/a", "4").ok());
    std::this_thread::sleep_for(300ms);
  }
  std::lock_guard lock(seen.mutex);
  ASSERT_EQ(seen.compacted.size(), 1u);
  EXPECT_EQ(seen.compacted[0], last);
  EXPECT_TRUE(seen.events.empty());
  EXPECT_EQ(seen.disconnects, 0);
}

TEST(EtcdWatcher, OwnerReloadsAfterCompactionAndWatchesOn) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  const auto first = *client->put("/c/a", "1");
  const auto last = *client->put("/c/a", "2");
  ASSERT_TRUE(client->compact(last).ok());
  Seen stale;
  {
    Watcher watcher(*client, "/c/", first, stale.callbacks());
    ASSERT_TRUE(waitFor(
        [&] {
          std::lock_guard l(stale.mutex);
          return !stale.compacted.empty();
        },
        5000));
  }
  // What the owner does: reload, then watch from the reload's revision + 1.
  auto reload = client->getPrefix("/c/");
  ASSERT_TRUE(reload.ok());
  EXPECT_EQ(reload->kvs.at(0).value, "2");
  Seen seen;
  Watcher watcher(*client, "/c/", reload->revision + 1, seen.callbacks());
  const auto next = *client->put("/c/a", "3");
  ASSERT_TRUE(waitFor([&] { return seen.count() == 1; }, 5000));
  EXPECT_EQ(seen.copy()[0].kv.modRevision, next);
}

TEST(EtcdWatcher, StopsPromptlyWhileEtcdIsDown) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  Seen seen;
  auto watcher = std::make_unique<Watcher>(*client, "/s/", 1, seen.callbacks());
  etcd.kill();
  std::this_thread::sleep_for(2500ms);
  const auto start = std::chrono::steady_clock::now();
  watcher.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

}  // namespace
}  // namespace bulkhead::etcd
