// StateJournal on a real file: preallocated (a record changes neither the
// file's size nor its layout), records that checksum, a torn tail cut so
// that no unacknowledged record comes back, an epoch that empties it,
// growth, and group commit (one fdatasync for the records written before
// it; every caller's record durable when its sync returns).
#include "bulkhead/agent/state_journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/scratch.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

std::string entry(const std::string& name, size_t padding = 0) {
  v1::StateJournalEntry e;
  e.mutable_upsert()->set_name(name);
  e.mutable_upsert()->set_app(std::string(padding, 'a'));
  return e.SerializeAsString();
}

class StateJournalTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratchPath("bh-journal"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path() const { return (dir_ / "journal.pb").string(); }
  StateJournal journal() const { return StateJournal(dir_.string(), path()); }

  // Opens a journal on the file and returns the names of its records.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    StateJournal j = journal();
    auto st = j.open([&](v1::StateJournalEntry& e) { out.push_back(e.upsert().name()); });
    EXPECT_TRUE(st.ok()) << st.error().describe();
    return out;
  }
  void poke(size_t offset, const std::string& bytes) const {
    testing::pokeBytes(path(), offset, bytes);
  }
  std::string read(size_t offset, size_t n) const { return testing::readBytes(path(), offset, n); }

  fs::path dir_;
};

TEST_F(StateJournalTest, RecordsArePreallocatedAndCheckedOnRead) {
  StateJournal j = journal();
  ASSERT_TRUE(j.open(nullptr).ok());
  EXPECT_FALSE(fs::exists(path())) << "nothing is created before the first record";
  for (const char* n : {"a", "b", "c"}) {
    auto t = j.write(entry(n));
    ASSERT_TRUE(t.ok()) << t.error().describe();
    ASSERT_TRUE(j.sync(*t).ok());
  }
  EXPECT_EQ(fs::file_size(path()), StateJournal::kInitialBytes)
      << "records are written into zeros written at creation";
  EXPECT_EQ(j.entries(), 3u);
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "b", "c"}));
  // A flipped byte in the last record's payload: that record fails its
  // checksum and ends the journal (a torn write).
  const size_t last = j.bytes() - entry("c").size();
  poke(last, "\x7f");
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(StateJournalTest, NoUnacknowledgedRecordComesBackBehindATornOne) {
  StateJournal j = journal();
  ASSERT_TRUE(j.open(nullptr).ok());
  auto t = j.write(entry("a"));
  ASSERT_TRUE(t.ok() && j.sync(*t).ok());
  const size_t end = j.bytes();
  const uint64_t epoch = j.epoch();
  // A crash: the record after "a" is torn, and a whole record written after
  // it (never acknowledged: its sync had not run) reached the disk.
  std::string torn = StateJournal::frame(epoch, entry("torn"));
  torn[torn.size() - 1] ^= 1;
  poke(end, torn + StateJournal::frame(epoch, entry("ghost")));
  StateJournal again = journal();
  std::vector<std::string> seen;
  ASSERT_TRUE(
      again.open([&](v1::StateJournalEntry& e) { seen.push_back(e.upsert().name()); }).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"a"}));
  EXPECT_EQ(read(end, 256), std::string(256, '\0')) << "the tail is cut (zeroed) on open";
  // A new record the torn one's size would have made "ghost" whole again.
  auto n = again.write(entry("tear"));
  ASSERT_TRUE(n.ok() && again.sync(*n).ok());
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "tear"}));
}

TEST_F(StateJournalTest, ResetStartsANewEpoch) {
  StateJournal j = journal();
  ASSERT_TRUE(j.open(nullptr).ok());
  for (const char* n : {"a", "b"})
    ASSERT_TRUE(j.write(entry(n)).ok());
  const uint64_t epoch = j.epoch();
  ASSERT_TRUE(j.reset().ok());
  EXPECT_EQ(j.epoch(), epoch + 1);
  EXPECT_EQ(j.entries(), 0u);
  EXPECT_EQ(names(), std::vector<std::string>{}) << "the old records fail the new epoch's checksum";
  // The first record after a reset overwrites "a" exactly: "b" behind it is
  // of the old epoch and stays out.
  auto t = j.write(entry("c"));
  ASSERT_TRUE(t.ok() && j.sync(*t).ok());
  EXPECT_EQ(names(), (std::vector<std::string>{"c"}));
}

TEST_F(StateJournalTest, GrowsWhenARecordDoesNotFit) {
  StateJournal j = journal();
  ASSERT_TRUE(j.open(nullptr).ok());
  const int kRecords = 3000;  // ~1.5 MB of records
  StateJournal::Ticket last = 0;
  for (int i = 0; i < kRecords; ++i) {
    auto t = j.write(entry("w" + std::to_string(i), 500));
    ASSERT_TRUE(t.ok()) << t.error().describe();
    last = *t;
  }
  ASSERT_TRUE(j.sync(last).ok());
  EXPECT_EQ(fs::file_size(path()), 2 * StateJournal::kInitialBytes);
  const auto seen = names();
  ASSERT_EQ(seen.size(), size_t(kRecords));
  EXPECT_EQ(seen.back(), "w" + std::to_string(kRecords - 1));
}

TEST_F(StateJournalTest, OneSyncCoversEveryRecordWrittenBeforeIt) {
  StateJournal j = journal();
  ASSERT_TRUE(j.open(nullptr).ok());
  std::vector<StateJournal::Ticket> tickets;
  for (const char* n : {"a", "b", "c", "d"})
    tickets.push_back(*j.write(entry(n)));
  std::vector<std::thread> waiters;
  std::vector<int> ok(tickets.size(), 0);
  for (size_t i = 0; i < tickets.size(); ++i)
    waiters.emplace_back([&, i] { ok[i] = j.sync(tickets[i]).ok(); });
  for (auto& t : waiters)
    t.join();
  EXPECT_EQ(ok, std::vector<int>(tickets.size(), 1));
  EXPECT_EQ(j.syncStats().syncs, 1u) << "the first caller's fdatasync covered all four";
  EXPECT_EQ(j.syncStats().records, 4u);
  EXPECT_TRUE(j.sync(tickets[0]).ok());
  EXPECT_EQ(j.syncStats().syncs, 1u) << "a durable ticket needs no sync";
}

TEST_F(StateJournalTest, ConcurrentWritersAllDurableWithFewerSyncs) {
  StateJournal j = journal();
  ASSERT_TRUE(j.open(nullptr).ok());
  std::mutex owner;  // the agent's lock: one writer at a time
  const int kThreads = 8, kEach = 25;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        Result<StateJournal::Ticket> ticket = StateJournal::Ticket{0};
        {
          std::lock_guard lock(owner);
          ticket = j.write(entry("t" + std::to_string(t) + "-" + std::to_string(i)));
        }
        if (!ticket || !j.sync(*ticket)) ++failures[size_t(t)];
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(failures, std::vector<int>(kThreads, 0));
  const auto stats = j.syncStats();
  EXPECT_EQ(stats.records, uint64_t(kThreads * kEach));
  EXPECT_LE(stats.syncs, stats.records);
  EXPECT_EQ(names().size(), size_t(kThreads * kEach));
}

TEST_F(StateJournalTest, LegacyFileIsReadAndNotWritten) {
  fs::create_directories(dir_);
  {
    std::ofstream out(path(), std::ios::binary);
    const std::string payload = entry("old");
    out << char(payload.size()) << '\0' << '\0' << '\0' << payload;
  }
  StateJournal j = journal();
  std::vector<std::string> seen;
  ASSERT_TRUE(j.open([&](v1::StateJournalEntry& e) { seen.push_back(e.upsert().name()); }).ok());
  EXPECT_EQ(seen, std::vector<std::string>{"old"});
  EXPECT_TRUE(j.legacy());
  EXPECT_FALSE(j.write(entry("new")).ok()) << "records go to a new file, after a snapshot";
  ASSERT_TRUE(j.reset().ok());
  EXPECT_FALSE(j.legacy());
  EXPECT_EQ(read(0, 8), "bhjrnl02");
  ASSERT_TRUE(j.write(entry("new")).ok());
  EXPECT_EQ(names(), std::vector<std::string>{"new"});
}

}  // namespace
}  // namespace bulkhead::agent
