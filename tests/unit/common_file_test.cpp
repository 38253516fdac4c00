// common/file.h's writing side: a file replaced whole (missing directories
// made, no temporary left behind), and what a failure says.
#include "bulkhead/common/file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "bulkhead/common/fd.h"
#include "support/scratch.h"

namespace bulkhead::common {
namespace {

namespace fs = std::filesystem;

class CommonFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratchPath("bh-file"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CommonFileTest, ReplaceFileMakesTheDirectoriesAndReplacesWhole) {
  const fs::path sub = dir_ / "a" / "b";
  const std::string path = (sub / "state").string();
  ASSERT_TRUE(replaceFile(sub.string(), path, "first version, longer"));
  EXPECT_EQ(readFileBounded(path, 1024).value(), "first version, longer");
  EXPECT_EQ(fs::status(sub).permissions() & fs::perms::all, fs::perms::owner_all);
  ASSERT_TRUE(replaceFile(sub.string(), path, "second"));
  EXPECT_EQ(readFileBounded(path, 1024).value(), "second");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(std::distance(fs::directory_iterator(sub), fs::directory_iterator()), 1);
}

TEST_F(CommonFileTest, ReplaceFileFailsWithWhatAndWhereAndKeepsTheOldFile) {
  fs::create_directories(dir_);
  const std::string path = (dir_ / "state").string();
  ASSERT_TRUE(replaceFile(dir_.string(), path, "old"));
  // The temporary's name is taken by a directory: the write cannot start.
  fs::create_directories(path + ".tmp");
  const Status st = replaceFile(dir_.string(), path, "new");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_EQ(st.error().message, "creating " + path + ".tmp");
  EXPECT_NE(st.error().sysErrno, 0);
  EXPECT_EQ(readFileBounded(path, 1024).value(), "old");
  // A parent that is a file: mkdirs says which one.
  const std::string blocked = (dir_ / "state" / "sub").string();
  const Status mk = mkdirs(blocked);
  ASSERT_FALSE(mk);
  EXPECT_EQ(mk.error().message, "creating " + blocked);
}

TEST_F(CommonFileTest, WriteAllWritesAtAnOffsetOrAtThePosition) {
  fs::create_directories(dir_);
  const std::string path = (dir_ / "f").string();
  const Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd);
  ASSERT_TRUE(writeAll(fd.get(), "abcdef", -1, path));
  ASSERT_TRUE(writeAll(fd.get(), "XY", 2, path));
  ASSERT_TRUE(writeAll(fd.get(), "gh", -1, path));  // pwrite moved no position
  EXPECT_EQ(readFileBounded(path, 64).value(), "abXYefgh");
  const Status bad = writeAll(-1, "x", -1, path);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "writing " + path);
  EXPECT_EQ(bad.error().sysErrno, EBADF);
}

}  // namespace
}  // namespace bulkhead::common
