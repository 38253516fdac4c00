// StateStore on a real directory: the journal alone is a state, a torn tail
// is cut off before the next append, a corrupt record is an error, a
// journal in the older format is folded into a snapshot; and AgentCore puts
// journal-only workloads back in the kernel. The journal's own format and
// group commit: state_journal_test.cpp.
#include "bulkhead/agent/state_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "support/fake_kernel.h"
#include "support/scratch.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

v1::StateJournalEntry upsert(const std::string& name, const std::string& addr) {
  v1::StateJournalEntry e;
  auto* w = e.mutable_upsert();
  w->set_name(name);
  w->set_app("web");
  w->add_interfaces("v" + name);
  w->add_addresses(addr);
  return e;
}

std::vector<std::string> names(const v1::AgentState& s) {
  std::vector<std::string> out;
  for (const auto& w : s.workloads())
    out.push_back(w.name());
  return out;
}

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratchPath("bh-store"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path journal() const { return dir_ / "journal.pb"; }
  // Writes `bytes` into the journal file at `offset` (a crash's leftovers).
  void poke(size_t offset, const std::string& bytes) const {
    testing::pokeBytes(journal(), offset, bytes);
  }
  std::string read(size_t offset, size_t n) const {
    return testing::readBytes(journal(), offset, n);
  }
  fs::path dir_;
};

TEST_F(StateStoreTest, NothingSavedIsNoState) {
  StateStore store(dir_.string());
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  EXPECT_FALSE(loaded->has_value());
}

TEST_F(StateStoreTest, JournalWithoutSnapshotIsTheState) {
  {
    StateStore store(dir_.string());
    ASSERT_TRUE(store.append(upsert("web-1", "192.0.2.10")).ok());
    ASSERT_TRUE(store.append(upsert("web-2", "192.0.2.11")).ok());
    v1::StateJournalEntry q;
    q.set_quarantined_set(true);
    q.add_quarantined("web-2");
    ASSERT_TRUE(store.append(q).ok());
  }
  ASSERT_FALSE(fs::exists(dir_ / "state.pb"));
  StateStore store(dir_.string());
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  ASSERT_TRUE(loaded->has_value()) << "a journal alone must not be taken for no state";
  EXPECT_EQ((*loaded)->format(), 1u);
  EXPECT_EQ(names(**loaded), (std::vector<std::string>{"web-1", "web-2"}));
  ASSERT_EQ((*loaded)->quarantined_size(), 1);
  EXPECT_EQ((*loaded)->quarantined(0), "web-2");
  EXPECT_EQ(store.journalEntries(), 3u);
}

TEST_F(StateStoreTest, TornTailIsCutBeforeTheNextAppend) {
  size_t end = 0;
  {
    StateStore store(dir_.string());
    ASSERT_TRUE(store.append(upsert("web-1", "192.0.2.10")).ok());
    end = store.journal().bytes();
  }
  const auto size = fs::file_size(journal());
  // A crash mid-write: a length announcing more than was written.
  const std::string torn("\x40\x00\x00\x00\x01\x02\x03\x04xyz", 11);
  poke(end, torn);
  {
    StateStore store(dir_.string());
    auto loaded = store.load();
    ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
    EXPECT_EQ(names(**loaded), (std::vector<std::string>{"web-1"}));
    EXPECT_EQ(store.journal().bytes(), end);
    EXPECT_EQ(read(end, torn.size()), std::string(torn.size(), '\0'))
        << "the torn tail is cut off on load";
    EXPECT_EQ(fs::file_size(journal()), size) << "the journal is preallocated";
    ASSERT_TRUE(store.append(upsert("web-2", "192.0.2.11")).ok());
  }
  StateStore store(dir_.string());
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  EXPECT_EQ(names(**loaded), (std::vector<std::string>{"web-1", "web-2"}));
}

TEST_F(StateStoreTest, AppendWithoutLoadStillCutsATornTail) {
  size_t end = 0;
  {
    StateStore store(dir_.string());
    ASSERT_TRUE(store.append(upsert("web-1", "192.0.2.10")).ok());
    end = store.journal().bytes();
  }
  poke(end, std::string("\x09\x01", 2));
  {
    StateStore store(dir_.string());
    ASSERT_TRUE(store.append(upsert("web-2", "192.0.2.11")).ok());
  }
  StateStore store(dir_.string());
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  EXPECT_EQ(names(**loaded), (std::vector<std::string>{"web-1", "web-2"}));
}

TEST_F(StateStoreTest, OlderJournalFormatIsFoldedIntoASnapshot) {
  // The format before checksums: u32 LE length, payload, appended; with a
  // torn last record.
  fs::create_directories(dir_);
  {
    std::ofstream out(journal(), std::ios::binary);
    for (const auto& e : {upsert("web-1", "192.0.2.10"), upsert("web-2", "192.0.2.11")}) {
      const std::string payload = e.SerializeAsString();
      const uint32_t n = uint32_t(payload.size());
      const char len[4] = {char(n & 0xff), char(n >> 8 & 0xff), char(n >> 16 & 0xff),
                           char(n >> 24 & 0xff)};
      out.write(len, 4);
      out << payload;
    }
    out << std::string("\x40\x00\x00\x00xyz", 7);
  }
  {
    StateStore store(dir_.string());
    auto loaded = store.load();
    ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
    EXPECT_EQ(names(**loaded), (std::vector<std::string>{"web-1", "web-2"}));
    EXPECT_TRUE(fs::exists(dir_ / "state.pb")) << "folded into a snapshot";
    EXPECT_EQ(store.journalEntries(), 0u);
    EXPECT_EQ(read(0, 8), "bhjrnl02") << "a journal in the current format replaces it";
    ASSERT_TRUE(store.append(upsert("web-3", "192.0.2.12")).ok());
  }
  StateStore store(dir_.string());
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  EXPECT_EQ(names(**loaded), (std::vector<std::string>{"web-1", "web-2", "web-3"}));
}

TEST_F(StateStoreTest, SnapshotThenJournal) {
  StateStore store(dir_.string());
  v1::AgentState snap;
  snap.set_format(1);
  snap.set_version("v7");
  *snap.add_workloads() = upsert("web-1", "192.0.2.10").upsert();
  *snap.add_workloads() = upsert("web-2", "192.0.2.11").upsert();
  ASSERT_TRUE(store.save(snap).ok());
  EXPECT_EQ(store.journalEntries(), 0u) << "a snapshot empties the journal";
  v1::StateJournalEntry del;
  del.set_deleted("web-1");
  ASSERT_TRUE(store.append(del).ok());
  auto changed = upsert("web-2", "192.0.2.12");
  ASSERT_TRUE(store.append(changed).ok());
  ASSERT_TRUE(store.append(upsert("web-3", "192.0.2.13")).ok());
  StateStore again(dir_.string());
  auto loaded = again.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  EXPECT_EQ((*loaded)->version(), "v7");
  EXPECT_EQ(names(**loaded), (std::vector<std::string>{"web-2", "web-3"}));
  EXPECT_EQ((*loaded)->workloads(0).addresses(0), "192.0.2.12");
}

TEST_F(StateStoreTest, CorruptWholeRecordIsAnError) {
  size_t end = 0;
  uint64_t epoch = 0;
  {
    StateStore store(dir_.string());
    ASSERT_TRUE(store.append(upsert("web-1", "192.0.2.10")).ok());
    end = store.journal().bytes();
    epoch = store.journal().epoch();
  }
  // Whole (its checksum holds) but not a journal entry: an unfinished varint.
  poke(end, StateJournal::frame(epoch, std::string("\xff\xff", 2)));
  const std::string before = read(0, size_t(fs::file_size(journal())));
  StateStore store(dir_.string());
  auto loaded = store.load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(loaded.error().message.find("corrupt at byte " + std::to_string(end)),
            std::string::npos)
      << loaded.error().message;
  EXPECT_EQ(read(0, before.size()), before) << "corruption is never cut away silently";
  EXPECT_FALSE(store.append(upsert("web-2", "192.0.2.11")).ok())
      << "nothing is appended after a corrupt record";
  EXPECT_EQ(read(0, before.size()), before);
}

TEST_F(StateStoreTest, CoreRestoresJournalOnlyWorkloadsIntoTheKernel) {
  std::string before;
  uint64_t elements = 0, chains = 0;
  {
    testing::FakeKernel kernel;
    CoreOptions o;
    o.stateDir = dir_.string();
    AgentCore core(kernel, {}, o);
    ASSERT_TRUE(core.restore().ok());
    v1::Workload a = upsert("web-1", "192.0.2.10").upsert();
    v1::Workload b = upsert("web-2", "192.0.2.11").upsert();
    ASSERT_TRUE(api::upsertWorkload(core, a).ok());
    ASSERT_TRUE(api::upsertWorkload(core, b).ok());
    ASSERT_TRUE(api::quarantine(core, "web-2", false).ok());
    ASSERT_TRUE(core.promoteStaged(true).ok());
    before = api::listWorkloads(core).DebugString();
    elements = api::status(core).set_elements();
    chains = api::status(core).chains();
  }
  ASSERT_FALSE(fs::exists(dir_ / "state.pb")) << "no push: the journal holds everything";
  testing::FakeKernel fresh;
  CoreOptions o;
  o.stateDir = dir_.string();
  AgentCore restored(fresh, {}, o);
  ASSERT_TRUE(restored.restore().ok());
  EXPECT_EQ(fresh.commits, 1) << "the journal's workloads are put back in one transaction";
  EXPECT_EQ(api::listWorkloads(restored).DebugString(), before);
  EXPECT_EQ(api::status(restored).set_elements(), elements);
  EXPECT_EQ(api::status(restored).chains(), chains);
  // The next registration keeps them.
  ASSERT_TRUE(api::upsertWorkload(restored, upsert("web-3", "192.0.2.12").upsert()).ok());
  EXPECT_EQ(api::listWorkloads(restored).workloads_size(), 3);
  EXPECT_EQ(api::status(restored).workloads(), 3u);
}

}  // namespace
}  // namespace bulkhead::agent
