// The drift check by content (nft/table_content.h), its read-back without
// the core's lock, the housekeeping loop that runs it, and quarantine's
// conntrack flush: against testing::FakeKernel, which keeps what the
// writer's real batches build.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "bulkhead/agent/api_convert.h"
#include "bulkhead/agent/config.h"
#include "bulkhead/agent/conntrack.h"
#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "bulkhead/agent/housekeeping.h"
#include "bulkhead/agent/piecewise_check.h"
#include "bulkhead/nft/kernel.h"
#include "bulkhead/nft/table_content.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTable = "bulkhead";

v1::ApplyPolicyRequest demoPush() {
  auto files =
      AgentCore::readPolicyFiles(std::string(BULKHEAD_SOURCE_DIR) + "/policies/demo", 1u << 20);
  EXPECT_TRUE(files) << files.error().describe();
  return toApi(PolicyPush{std::move(*files), "", false});
}

v1::Workload apiWorkload(const std::string& name, const std::string& v4, const std::string& v6) {
  v1::Workload w;
  w.set_name(name);
  w.set_app("billing");
  w.add_interfaces("v" + name);
  w.add_addresses(v4);
  w.add_addresses(v6);
  return w;
}

nft::TableContent normalized(nft::TableContent c) {
  c.normalize();
  return c;
}

class FakeConntrack : public ConntrackTable {
 public:
  Result<size_t> flush(const std::vector<policy::IpAddr>& addresses) override {
    calls.push_back(addresses);
    if (fail) return makeError(ErrorCode::kKernel, "cannot list the table", EPERM);
    return size_t{3};
  }
  std::vector<std::vector<policy::IpAddr>> calls;
  bool fail = false;
};

class DriftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pushed = api::applyPolicy(core_, demoPush());
    ASSERT_TRUE(pushed) << pushed.error().describe();
    ASSERT_TRUE(api::upsertWorkload(core_, apiWorkload("api-1", "192.0.2.77", "2001:db8:2::77")));
    ASSERT_TRUE(core_.promoteStaged(true));
    ASSERT_TRUE(kernel_.content.exists);
  }
  // A chain with at least two rules, and a set with elements.
  std::string someChain() const {
    for (const auto& [name, c] : kernel_.content.chains)
      if (c.rules.size() >= 2) return name;
    return "";
  }
  // A check after someone else committed, whose reads come back short
  // (a hash set dumped while the kernel rehashed it) but the last: not
  // drift, nothing rewritten.
  void checkWithShortReads() {
    ++kernel_.gen;
    kernel_.shortReads = nft::kTableReads - 1;
    const int commits = kernel_.commits;
    auto drift = core_.checkDrift("test");
    ASSERT_TRUE(drift) << drift.error().describe();
    EXPECT_FALSE(drift->has_value()) << **drift;
    EXPECT_EQ(kernel_.commits, commits);
    EXPECT_EQ(api::status(core_).drift_repairs(), 0u);
  }
  std::string someSet() const {
    for (const auto& [name, s] : kernel_.content.sets)
      if (s.elements.size() >= 2) return name;
    return "";
  }

  testing::FakeKernel kernel_{kTable};
  AgentCore core_{kernel_, compiler::CompileOptions{}, CoreOptions{}};
};

// The canonical content of what was committed (diffs included) equals the
// content of a full apply of the same ruleset: compared through the core.
TEST_F(DriftTest, RoundTripComparesEqual) {
  ++kernel_.gen;  // someone committed elsewhere: the table is read back
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  EXPECT_FALSE(drift->has_value()) << **drift;
  EXPECT_EQ(api::status(core_).drift_repairs(), 0u);
  EXPECT_NE(api::status(core_).last_drift_check().find("in sync"), std::string::npos);
  EXPECT_GE(kernel_.reads, 1);
}

// Nobody committed since our last commit (the generation is ours): the
// kernel holds what we committed, and nothing is read back.
TEST_F(DriftTest, UnmovedGenerationSparesTheReadBack) {
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  EXPECT_FALSE(drift->has_value());
  EXPECT_EQ(kernel_.reads, 0);
}

// Someone tampers with the table, then we commit a workload change: the
// generation our commit leaves does not vouch for their commit before it.
TEST_F(DriftTest, ACommitOfOursAfterSomeoneElsesDoesNotHideIt) {
  kernel_.content.chains[someChain()].rules.clear();
  ++kernel_.gen;  // their commit
  ASSERT_TRUE(
      api::upsertWorkload(core_, apiWorkload("api-2", "192.0.2.78", "2001:db8:2::78")).ok());
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  ASSERT_TRUE(drift->has_value()) << "the tampered table was not read back";
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);
}

// A read-back that finds the table in sync vouches for it at that
// generation: with nobody else committing since, the next checks read
// nothing, across commits of ours too.
TEST_F(DriftTest, AReadBackInSyncSparesTheNextOnes) {
  ++kernel_.gen;  // someone committed elsewhere
  ASSERT_TRUE(core_.checkDrift("test"));
  EXPECT_EQ(kernel_.reads, 1);
  ASSERT_TRUE(core_.checkDrift("test"));
  EXPECT_EQ(kernel_.reads, 1);
  ASSERT_TRUE(
      api::upsertWorkload(core_, apiWorkload("api-2", "192.0.2.78", "2001:db8:2::78")).ok());
  ASSERT_TRUE(core_.checkDrift("test"));
  EXPECT_EQ(kernel_.reads, 1);
}

// A read that comes back short (a hash set dumped while the kernel
// rehashed it) and a whole one after: not drift, nothing rewritten.
TEST_F(DriftTest, AShortReadThatTheNextReadContradictsIsNotDrift) {
  ASSERT_NO_FATAL_FAILURE(checkWithShortReads());
  EXPECT_EQ(kernel_.reads, nft::kTableReads);
}

// Every read short: that is drift, and it is repaired.
TEST_F(DriftTest, ADifferenceInEveryReadIsDrift) {
  ++kernel_.gen;
  kernel_.shortReads = nft::kTableReads;
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  ASSERT_TRUE(drift->has_value());
  EXPECT_NE((*drift)->find("elements missing"), std::string::npos) << **drift;
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);
}

struct Tamper {
  const char* name;
  void (*apply)(nft::TableContent& c, const std::string& chain, const std::string& set);
  const char* expect;  // in the difference text
};

class DriftTamperTest : public DriftTest, public ::testing::WithParamInterface<Tamper> {};

TEST_P(DriftTamperTest, DiffersThenRepaired) {
  const std::string chain = someChain(), set = someSet();
  ASSERT_FALSE(chain.empty());
  ASSERT_FALSE(set.empty());
  const nft::TableContent before = kernel_.content;
  GetParam().apply(kernel_.content, chain, set);
  ++kernel_.gen;  // a foreign change is a commit
  ASSERT_FALSE(kernel_.content.chains == before.chains && kernel_.content.sets == before.sets);

  const int commits = kernel_.commits;
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  ASSERT_TRUE(drift->has_value()) << GetParam().name << " went unnoticed";
  EXPECT_NE((*drift)->find(GetParam().expect), std::string::npos) << **drift;
  EXPECT_EQ(kernel_.commits, commits + 1);  // one whole replace
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);
  EXPECT_TRUE(kernel_.content.chains == before.chains);
  EXPECT_TRUE(normalized(kernel_.content).sets == normalized(before).sets);

  auto again = core_.checkDrift("test");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->has_value());
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, DriftTamperTest,
    ::testing::Values(Tamper{"missing rule",
                             [](nft::TableContent& c, const std::string& ch, const std::string&) {
                               c.chains[ch].rules.pop_back();
                             },
                             "rules, expected"},
                      Tamper{"extra rule",
                             [](nft::TableContent& c, const std::string& ch, const std::string&) {
                               auto& r = c.chains[ch].rules;
                               r.insert(r.begin(), r.back());
                             },
                             "chains changed"},
                      Tamper{"changed rule",
                             [](nft::TableContent& c, const std::string& ch, const std::string&) {
                               auto& r = c.chains[ch].rules;
                               std::swap(r.front(), r.back());
                             },
                             "rule 1"},
                      Tamper{"flushed chain",
                             [](nft::TableContent& c, const std::string& ch, const std::string&) {
                               c.chains[ch].rules.clear();
                             },
                             "0 rules"},
                      Tamper{"missing element",
                             [](nft::TableContent& c, const std::string&, const std::string& s) {
                               c.sets[s].elements.erase(c.sets[s].elements.begin());
                             },
                             "1 elements missing, 0 foreign"},
                      Tamper{"extra element",
                             [](nft::TableContent& c, const std::string&, const std::string& s) {
                               c.sets[s].elements.push_back("forged");
                             },
                             "0 elements missing, 1 foreign"},
                      Tamper{"missing chain",
                             [](nft::TableContent& c, const std::string& ch, const std::string&) {
                               c.chains.erase(ch);
                             },
                             "chains missing"},
                      Tamper{"foreign chain",
                             [](nft::TableContent& c, const std::string&, const std::string&) {
                               c.chains["intruder"].declaration = "filter";
                             },
                             "foreign chains"},
                      Tamper{"missing set",
                             [](nft::TableContent& c, const std::string&, const std::string& s) {
                               c.sets.erase(s);
                             },
                             "sets missing"},
                      Tamper{"table gone",
                             [](nft::TableContent& c, const std::string&, const std::string&) {
                               c = nft::TableContent(kTable);
                             },
                             "table missing"}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (auto& ch : n)
        if (ch == ' ') ch = '_';
      return n;
    });

// The comparator itself, on the writer's bytes for the same ruleset: a
// content built from a full batch equals itself, and a dropped element
// message makes a difference.
TEST(TableContentTest, FullBatchRoundTripAndMissingElements) {
  testing::FakeKernel kernel(kTable);
  AgentCore core(kernel, compiler::CompileOptions{}, CoreOptions{});
  auto pushed = api::applyPolicy(core, demoPush());
  ASSERT_TRUE(pushed) << pushed.error().describe();
  // What the fake holds came from a replace batch (add, delete, add table).
  const nft::TableContent committed = kernel.content;
  ASSERT_FALSE(committed.chains.empty());
  ASSERT_FALSE(committed.sets.empty());
  nft::TableContent other = committed;
  EXPECT_FALSE(committed.differences(other).has_value());
  for (auto& [name, set] : other.sets)
    set.elements.clear();
  other.normalize();
  auto diff = committed.differences(other);
  ASSERT_TRUE(diff.has_value());
  EXPECT_NE(diff->find("sets changed"), std::string::npos) << *diff;
}

TEST_F(DriftTest, HousekeepingRepairsATamperedTableOnThePeriodicTick) {
  HousekeepingOptions o;
  o.table = kTable;
  o.resync = std::chrono::milliseconds(0);
  o.idle = std::chrono::milliseconds(1);
  Housekeeping housekeeping(core_, o, /*events=*/{});
  const nft::TableContent good = kernel_.content;

  housekeeping.step();  // nothing drifted: nothing committed
  const int commits = kernel_.commits;
  EXPECT_EQ(api::status(core_).drift_repairs(), 0u);

  kernel_.content.chains[someChain()].rules.clear();
  kernel_.content.sets[someSet()].elements.erase(kernel_.content.sets[someSet()].elements.begin());
  kernel_.content.chains[someChain()].rules.push_back("immediate accept");
  ++kernel_.gen;  // those changes were commits
  housekeeping.step();
  EXPECT_EQ(kernel_.commits, commits + 1);
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);
  EXPECT_TRUE(kernel_.content.chains == good.chains);
  EXPECT_TRUE(normalized(kernel_.content).sets == normalized(good).sets);
  EXPECT_NE(api::status(core_).last_drift_check().find("repaired"), std::string::npos)
      << api::status(core_).last_drift_check();
  EXPECT_FALSE(api::status(core_).last_drift_check_time().empty());
}

TEST_F(DriftTest, HousekeepingWaitsForTheResyncPeriod) {
  HousekeepingOptions o;
  o.resync = std::chrono::hours(1);
  o.idle = std::chrono::milliseconds(1);
  Housekeeping housekeeping(core_, o, {});
  kernel_.content.chains[someChain()].rules.clear();
  ++kernel_.gen;
  housekeeping.step();
  EXPECT_EQ(api::status(core_).drift_repairs(), 0u);
}

// Events: a foreign change repairs at once; lost notifications repair only
// when someone committed and the content differs.
TEST_F(DriftTest, LostNotificationsDecideByContent) {
  std::vector<nft::TableEvent> pending;
  auto events = [&](int) -> Result<std::vector<nft::TableEvent>> {
    return std::exchange(pending, {});
  };
  HousekeepingOptions o;
  o.resync = std::chrono::hours(1);
  o.idle = std::chrono::milliseconds(1);
  Housekeeping housekeeping(core_, o, events);
  nft::TableEvent lost;
  lost.kind = nft::TableEvent::Kind::kLostEvents;
  lost.what = "notifications lost";

  const int commits = kernel_.commits;
  pending = {lost};  // generation unchanged: ours
  housekeeping.step();
  EXPECT_EQ(kernel_.commits, commits);
  EXPECT_EQ(kernel_.reads, 0);  // not even read

  ++kernel_.gen;  // a commit elsewhere, our table untouched
  pending = {lost};
  housekeeping.step();
  EXPECT_EQ(kernel_.commits, commits);
  EXPECT_GE(kernel_.reads, 1);

  ++kernel_.gen;  // a commit that deleted an element of ours
  auto& set = kernel_.content.sets[someSet()];
  set.elements.erase(set.elements.begin());
  pending = {lost};
  housekeeping.step();
  EXPECT_EQ(kernel_.commits, commits + 1);
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);

  nft::TableEvent foreign;
  foreign.what = "delete rule inet bulkhead by pid 1 (nft)";
  pending = {foreign};
  housekeeping.step();
  EXPECT_EQ(kernel_.commits, commits + 2);
  EXPECT_EQ(api::status(core_).drift_repairs(), 2u);
}

TEST_F(DriftTest, QuarantineFlushesTheWorkloadsConnectionsAndReleaseDoesNot) {
  FakeConntrack conntrack;
  core_.setConntrack(&conntrack);
  auto q = api::quarantine(core_, "api-1", false);
  ASSERT_TRUE(q) << q.error().describe();
  ASSERT_EQ(conntrack.calls.size(), 1u);
  std::vector<std::string> flushed;
  for (const auto& a : conntrack.calls[0])
    flushed.push_back(a.toString());
  EXPECT_EQ(flushed, (std::vector<std::string>{"192.0.2.77", "2001:db8:2::77"}));
  EXPECT_EQ(q->flushed_flows(), 3u);

  // A bundle workload: its addresses too.
  ASSERT_TRUE(api::quarantine(core_, "billing-1", false));
  ASSERT_EQ(conntrack.calls.size(), 2u);
  ASSERT_EQ(conntrack.calls[1].size(), 2u);
  EXPECT_EQ(conntrack.calls[1][0].toString(), "192.0.2.10");

  ASSERT_TRUE(api::quarantine(core_, "api-1", true));
  ASSERT_TRUE(api::quarantine(core_, "billing-1", true));
  EXPECT_EQ(conntrack.calls.size(), 2u);
}

TEST_F(DriftTest, QuarantineStaysInForceWhenTheFlushFails) {
  FakeConntrack conntrack;
  conntrack.fail = true;
  core_.setConntrack(&conntrack);
  auto q = api::quarantine(core_, "api-1", false);
  ASSERT_TRUE(q) << q.error().describe();
  ASSERT_EQ(q->warnings_size(), 1);
  EXPECT_NE(q->warnings(0).find("live connections were not cut"), std::string::npos);
  EXPECT_NE(api::status(core_).last_error().find("live connections"), std::string::npos);
  bool quarantined = false;
  const auto listed = api::listWorkloads(core_);
  for (const auto& w : listed.workloads())
    if (w.name() == "api-1") quarantined = w.quarantined();
  EXPECT_TRUE(quarantined);
}

TEST_F(DriftTest, UnknownWorkloadFlushesNothing) {
  FakeConntrack conntrack;
  core_.setConntrack(&conntrack);
  EXPECT_FALSE(api::quarantine(core_, "nobody", false));
  EXPECT_TRUE(conntrack.calls.empty());
}

TEST(DriftConfigTest, DriftEventsFlagIsADiagnosticSwitch) {
  auto defaults = parseAgentArgs({});
  ASSERT_TRUE(defaults);
  EXPECT_TRUE(defaults->driftEvents);
  auto off = parseAgentArgs({"--drift-events=false", "--resync-seconds", "1"});
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->driftEvents);
  EXPECT_EQ(off->resyncSeconds, 1u);
  auto bad = parseAgentArgs({"--drift-events", "off"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("--drift-events"), std::string::npos);
}

// Reads what `kernel` holds, as a second netlink socket on the same
// namespace would, piece by piece. hold(piece) makes every read of that
// piece (a set's elements, or "" for the declarations) wait until
// letOneGo() or release().
class HeldReader : public nft::NftKernel {
 public:
  explicit HeldReader(testing::FakeKernel& kernel) : kernel_(kernel) {}

  Status commit(const nft::Batch&) override {
    return makeError(ErrorCode::kInternal, "the drift reader never writes");
  }
  Result<bool> tableExists(const std::string& name) override { return kernel_.tableExists(name); }
  Result<uint32_t> generation() override { return kernel_.generation(); }
  Result<nft::TableContent> readDeclarations(const std::string& table) override {
    wait("");
    return kernel_.readDeclarations(table);
  }
  Result<std::vector<std::string>> readElements(const std::string& table,
                                                const std::string& set) override {
    wait(set);
    return kernel_.readElements(table, set);
  }
  uint32_t nextSeq(uint32_t) override { return 0; }

  void hold(const std::string& piece) {
    std::lock_guard lock(mu_);
    held_ = piece;
  }
  void letOneGo() {
    std::lock_guard lock(mu_);
    ++permits_;
    cv_.notify_all();
  }
  void release() {
    std::lock_guard lock(mu_);
    held_.reset();
    cv_.notify_all();
  }
  // Declared after the futures a test waits for, so that it lets go before
  // they are waited for, whatever fails first.
  struct ReleaseAtExit {
    HeldReader& reader;
    ~ReleaseAtExit() { reader.release(); }
  };
  // Until the n-th read of the held piece has begun.
  bool waitForHeldRead(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return heldReads_ >= n; });
  }

 private:
  void wait(const std::string& piece) {
    std::unique_lock lock(mu_);
    if (held_ != piece) return;
    ++heldReads_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return held_ != piece || permits_ > 0; });
    if (held_ == piece) --permits_;
  }

  testing::FakeKernel& kernel_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::string> held_;
  int heldReads_ = 0;
  int permits_ = 0;
};

// The drift check's read-back through a kernel connection of its own
// (AgentCore::setTableReader): piece by piece, without the core's lock, so
// that a request that arrives meanwhile is served at once.
class DriftReaderTest : public DriftTest {
 protected:
  void SetUp() override {
    DriftTest::SetUp();
    core_.setTableReader(&reader_);
  }
  // A registration of a new workload, in its own thread.
  std::future<bool> registerAsync(int i) {
    return std::async(std::launch::async, [this, i] {
      const std::string n = std::to_string(100 + i);
      return api::upsertWorkload(core_, apiWorkload("api-" + n, "192.0.2." + n, "2001:db8:2::" + n))
          .ok();
    });
  }
  // A set whose elements a registration changes, found by making one
  // (registerAsync(0)).
  std::string aSetRegistrationsChange() {
    const nft::TableContent before = kernel_.content;
    EXPECT_TRUE(registerAsync(0).get());
    for (const auto& [name, set] : kernel_.content.sets) {
      auto was = before.sets.find(name);
      if (!set.dynamic && was != before.sets.end() && was->second.elements != set.elements)
        return name;
    }
    ADD_FAILURE() << "a registration changed no set's elements";
    return "";
  }
  // A drift check that will wait at its first read of `piece`.
  std::future<Result<std::optional<std::string>>> checkHeldAt(const std::string& piece) {
    reader_.hold(piece);
    auto check = std::async(std::launch::async, [&] { return core_.checkDrift("test"); });
    EXPECT_TRUE(reader_.waitForHeldRead(1, 5s));
    return check;
  }
  // A registration that must be served while the check reads.
  void registerServed(int i) {
    auto served = registerAsync(i);
    ASSERT_EQ(served.wait_for(5s), std::future_status::ready)
        << "registration " << i << " waited for the read-back";
    EXPECT_TRUE(served.get());
  }
  static void expectInSync(std::future<Result<std::optional<std::string>>>& check) {
    auto drift = check.get();
    ASSERT_TRUE(drift) << drift.error().describe();
    EXPECT_FALSE(drift->has_value()) << **drift;
  }
  size_t staticSets() const {
    return std::count_if(kernel_.content.sets.begin(), kernel_.content.sets.end(),
                         [](const auto& s) { return !s.second.dynamic; });
  }
  HeldReader reader_{kernel_};
};

TEST_F(DriftReaderTest, ARequestIsServedWhileAPieceIsReadAndSpoilsOnlyThatPiece) {
  const std::string set = aSetRegistrationsChange();
  ++kernel_.gen;  // someone committed elsewhere: the table is read back
  const size_t sets = staticSets();
  auto check = checkHeldAt(set);
  const HeldReader::ReleaseAtExit release{reader_};
  ASSERT_NO_FATAL_FAILURE(registerServed(1));
  reader_.release();

  // Our commit changed that set during its read: that set alone was read
  // again, against what was applied after the commit.
  expectInSync(check);
  EXPECT_EQ(kernel_.declarationReads, 1);
  EXPECT_EQ(kernel_.elementReads, static_cast<int>(sets) + 1);
  EXPECT_EQ(kernel_.reads, 0) << "the whole table was read under the lock";
  EXPECT_EQ(api::status(core_).drift_repairs(), 0u);
}

// A commit of ours that leaves the piece being read as it was (a
// registration and the table's declarations) does not make it read again.
TEST_F(DriftReaderTest, OurCommitThatLeavesThePieceAsItWasSpoilsNothing) {
  ++kernel_.gen;
  auto check = checkHeldAt("");
  const HeldReader::ReleaseAtExit release{reader_};
  ASSERT_NO_FATAL_FAILURE(registerServed(1));
  reader_.release();
  expectInSync(check);
  EXPECT_EQ(kernel_.declarationReads, 1);
}

// A piece our commits change during kSpoiledReads - 1 reads in a row is
// read under the lock: the registration that comes then waits for it.
TEST_F(DriftReaderTest, APieceOurCommitsKeepChangingIsReadUnderTheLock) {
  const std::string set = aSetRegistrationsChange();
  ++kernel_.gen;
  auto check = checkHeldAt(set);
  const HeldReader::ReleaseAtExit release{reader_};
  for (int read = 1; read < PiecewiseCheck::kSpoiledReads; ++read) {
    ASSERT_TRUE(reader_.waitForHeldRead(read, 5s));
    ASSERT_NO_FATAL_FAILURE(registerServed(read));
    reader_.letOneGo();
  }
  ASSERT_TRUE(reader_.waitForHeldRead(PiecewiseCheck::kSpoiledReads, 5s));
  auto waits = registerAsync(PiecewiseCheck::kSpoiledReads);
  EXPECT_EQ(waits.wait_for(200ms), std::future_status::timeout)
      << "served during a read made under the lock";
  reader_.letOneGo();
  EXPECT_TRUE(waits.get());
  expectInSync(check);
  EXPECT_EQ(kernel_.declarationReads, 1);
}

TEST_F(DriftReaderTest, DriftFoundThroughTheReaderIsRepaired) {
  const std::string set = someSet();
  ASSERT_FALSE(set.empty());
  kernel_.content.sets[set].elements.pop_back();
  ++kernel_.gen;  // a foreign change is a commit
  const int commits = kernel_.commits;

  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  ASSERT_TRUE(drift->has_value());
  EXPECT_NE((*drift)->find("sets changed: " + set + " (1 elements missing"), std::string::npos)
      << **drift;
  // A difference is read kTableReads times before it counts, every time
  // through the reader.
  EXPECT_EQ(kernel_.reads, 0);
  EXPECT_EQ(kernel_.commits, commits + 1);  // one whole replace
  EXPECT_EQ(api::status(core_).drift_repairs(), 1u);
}

// A set someone deletes after the declarations were read, before its
// elements are: drift.
TEST_F(DriftReaderTest, ASetDeletedDuringTheCheckIsDrift) {
  ++kernel_.gen;
  const std::string set = someSet();
  auto check = checkHeldAt(set);
  const HeldReader::ReleaseAtExit release{reader_};
  // The check waits inside the reader, without the core's lock: this
  // thread may change the fake kernel as another program would.
  kernel_.content.sets.erase(set);
  ++kernel_.gen;
  reader_.release();

  auto drift = check.get();
  ASSERT_TRUE(drift) << drift.error().describe();
  ASSERT_TRUE(drift->has_value());
  EXPECT_EQ(**drift, "sets missing: " + set);
  EXPECT_TRUE(kernel_.content.sets.count(set)) << "not repaired";
}

TEST_F(DriftReaderTest, AShortReadOfASetThatTheNextReadContradictsIsNotDrift) {
  ASSERT_NO_FATAL_FAILURE(checkWithShortReads());
  EXPECT_EQ(kernel_.elementReads, static_cast<int>(staticSets()) + nft::kTableReads - 1);
}

TEST_F(DriftReaderTest, AnUnmovedGenerationReadsNothing) {
  auto drift = core_.checkDrift("test");
  ASSERT_TRUE(drift) << drift.error().describe();
  EXPECT_FALSE(drift->has_value());
  EXPECT_EQ(kernel_.declarationReads, 0);
  EXPECT_EQ(kernel_.elementReads, 0);
}

// Housekeeping's periodic check through the reader: due, it decides in
// that round, whatever our changes do meanwhile.
TEST_F(DriftReaderTest, ThePeriodicCheckDecidesInTheRoundItIsDue) {
  HousekeepingOptions options;
  options.resync = 1s;
  options.idle = 1ms;
  Housekeeping housekeeping(core_, options, /*events=*/{});
  ++kernel_.gen;  // someone committed elsewhere: the check reads the table back
  std::this_thread::sleep_for(1100ms);
  reader_.hold("");
  auto step = std::async(std::launch::async, [&] { housekeeping.step(); });
  const HeldReader::ReleaseAtExit release{reader_};
  ASSERT_TRUE(reader_.waitForHeldRead(1, 5s));
  ASSERT_NO_FATAL_FAILURE(registerServed(1));
  reader_.release();
  step.get();
  EXPECT_NE(api::status(core_).last_drift_check().find("periodic check: in sync"),
            std::string::npos)
      << api::status(core_).last_drift_check();
}

TEST_F(DriftReaderTest, AReadBackInSyncThroughTheReaderSparesTheNextOne) {
  ++kernel_.gen;
  ASSERT_TRUE(core_.checkDrift("test"));
  // Status says how long the read took.
  const std::string read = api::status(core_).last_drift_check();
  EXPECT_EQ(read.rfind("test: in sync (read back in ", 0), 0u) << read;
  EXPECT_EQ(read.back(), ')') << read;
  ASSERT_TRUE(core_.checkDrift("test"));
  EXPECT_EQ(api::status(core_).last_drift_check(), "test: in sync");
  EXPECT_EQ(kernel_.declarationReads, 1);
  EXPECT_EQ(kernel_.reads, 0);
}

TEST_F(DriftReaderTest, LostNotificationsAreDecidedThroughTheReader) {
  ++kernel_.gen;  // a commit elsewhere, our table untouched
  auto repaired = core_.repairAfterLostEvents("notifications lost");
  ASSERT_TRUE(repaired) << repaired.error().describe();
  EXPECT_FALSE(*repaired);
  EXPECT_EQ(kernel_.declarationReads, 1);
}

}  // namespace
}  // namespace bulkhead::agent
