// Remote workload changes in batches (RemoteBatch): the fold keeps the last
// state of each (host, name); an agent whose hello takes batches gets a
// burst of changes folded into few messages, one that does not gets each
// change alone. Over a real gRPC server on a unix socket.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "bulkhead/controller/service.h"
#include "controller_harness.h"

namespace bulkhead::controller {
namespace {

using namespace testing_util;
using Kind = v1::ControllerMessage::MessageCase;

v1::ControllerMessage upsertOf(const std::string& host, const std::string& name,
                               const std::string& address) {
  v1::ControllerMessage m;
  *m.mutable_remote_upsert() = workload(name, "payments", address);
  m.mutable_remote_upsert()->set_host(host);
  return m;
}

v1::ControllerMessage deleteOf(const std::string& host, const std::string& name) {
  v1::ControllerMessage m;
  m.mutable_remote_delete()->set_host(host);
  m.mutable_remote_delete()->set_name(name);
  return m;
}

TEST(ControllerBatch, FoldKeepsTheLastStateOfEachKey) {
  std::vector<v1::ControllerMessage> in;
  in.push_back(upsertOf("host-b", "pay-1", "192.0.2.21"));
  in.push_back(upsertOf("host-b", "pay-2", "192.0.2.22"));
  in.push_back(deleteOf("host-b", "pay-1"));  // upserted, then gone: a delete
  in.push_back(deleteOf("host-c", "back"));
  in.push_back(upsertOf("host-c", "back", "192.0.2.31"));   // gone, then back: an upsert
  in.push_back(upsertOf("host-b", "pay-2", "192.0.2.23"));  // changed twice: the last
  v1::ControllerMessage batch;
  *batch.mutable_remote_batch()->add_upserts() = workload("x", "payments", "192.0.2.41");
  batch.mutable_remote_batch()->mutable_upserts(0)->set_host("host-d");
  *batch.mutable_remote_batch()->add_deletes() = deleteOf("host-c", "never").remote_delete();
  in.push_back(batch);  // a batch folds in as its changes
  const auto out = foldRemoteChanges(std::move(in));
  ASSERT_TRUE(out.has_remote_batch());
  std::map<std::string, std::string> upserts;
  for (const auto& w : out.remote_batch().upserts())
    upserts[w.host() + "/" + w.name()] = w.addresses(0);
  std::set<std::string> deletes;
  for (const auto& k : out.remote_batch().deletes())
    deletes.insert(k.host() + "/" + k.name());
  EXPECT_EQ(upserts, (std::map<std::string, std::string>{{"host-b/pay-2", "192.0.2.23"},
                                                         {"host-c/back", "192.0.2.31"},
                                                         {"host-d/x", "192.0.2.41"}}));
  EXPECT_EQ(deletes, (std::set<std::string>{"host-b/pay-1", "host-c/never"}));
  EXPECT_EQ(out.remote_batch().upserts_size(), 3);
  EXPECT_EQ(out.remote_batch().deletes_size(), 2);
}

// Every remote change a stream delivered, per key: the last state (an
// address, or "" for a delete), and how many messages carried them.
struct Received {
  std::map<std::string, std::string> last;
  int messages = 0;
  int batches = 0;
  bool duplicateInABatch = false;
};

void drain(SimAgent& agent, Received& r, size_t keys) {
  while (r.last.size() < keys) {
    auto m = agent.next([](const v1::ControllerMessage& m) {
      return m.has_remote_upsert() || m.has_remote_delete() || m.has_remote_batch();
    });
    if (!m) return;
    ++r.messages;
    if (m->has_remote_upsert())
      r.last[m->remote_upsert().host() + "/" + m->remote_upsert().name()] =
          m->remote_upsert().addresses(0);
    if (m->has_remote_delete())
      r.last[m->remote_delete().host() + "/" + m->remote_delete().name()] = "";
    if (!m->has_remote_batch()) continue;
    ++r.batches;
    std::set<std::string> seen;
    for (const auto& w : m->remote_batch().upserts()) {
      r.duplicateInABatch |= !seen.insert(w.host() + "/" + w.name()).second;
      r.last[w.host() + "/" + w.name()] = w.addresses(0);
    }
    for (const auto& k : m->remote_batch().deletes()) {
      r.duplicateInABatch |= !seen.insert(k.host() + "/" + k.name()).second;
      r.last[k.host() + "/" + k.name()] = "";
    }
  }
}

TEST(ControllerBatch, ABurstReachesABatchingAgentFoldedAndAPlainOneChangeByChange) {
  ControllerRig rig;
  {
    grpc::ClientContext ctx;
    v1::PushPolicyResponse resp;
    ASSERT_TRUE(rig.stub()->PushPolicy(&ctx, pushOf(kFleetBundle), &resp).ok());
  }
  SimAgent batching(rig, "host-a"), plain(rig, "host-c"), b(rig, "host-b");
  batching.batches = true;
  batching.connect({workload("web-1", "frontend", "192.0.2.11")});
  plain.connect({workload("web-2", "frontend", "192.0.2.12")});
  ASSERT_TRUE(batching.next(Kind::kSnapshot));
  ASSERT_TRUE(plain.next(Kind::kSnapshot));
  // One hello with 200 payments workloads: 200 upserts for each frontend
  // host at once, faster than a stream writes them.
  constexpr int kBurst = 200;
  std::vector<v1::Workload> burst;
  for (int i = 1; i <= kBurst; ++i)
    burst.push_back(
        workload("pay-" + std::to_string(i), "payments", "198.51.100." + std::to_string(i)));
  b.connect(burst);
  ASSERT_TRUE(b.next(Kind::kSnapshot));

  Received folded, single;
  drain(batching, folded, kBurst);
  drain(plain, single, kBurst);
  ASSERT_EQ(folded.last.size(), size_t(kBurst));
  ASSERT_EQ(single.last.size(), size_t(kBurst));
  EXPECT_EQ(folded.last, single.last);
  EXPECT_EQ(folded.last["host-b/pay-7"], "198.51.100.7");
  EXPECT_GE(folded.batches, 1);
  EXPECT_LT(folded.messages, kBurst);
  EXPECT_FALSE(folded.duplicateInABatch);
  EXPECT_EQ(single.batches, 0);
  EXPECT_EQ(single.messages, kBurst);

  // host-b goes away and comes back with half of them: deletes for the rest.
  b.connect(std::vector<v1::Workload>(burst.begin(), burst.begin() + kBurst / 2));
  ASSERT_TRUE(b.next(Kind::kSnapshot));
  Received gone;
  drain(batching, gone, kBurst / 2);
  ASSERT_EQ(gone.last.size(), size_t(kBurst / 2));
  for (const auto& [key, address] : gone.last)
    EXPECT_EQ(address, "") << key;
  EXPECT_EQ(gone.last.count("host-b/pay-" + std::to_string(kBurst)), 1u);
  EXPECT_EQ(batching.pending(), 0u);
}

}  // namespace
}  // namespace bulkhead::controller
