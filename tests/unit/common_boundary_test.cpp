// The rest of common/'s boundary code: bounded file reads, RFC 3339 times,
// the host-address rule, the fd and C-handle owners, milliseconds to a
// deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bulkhead/common/deadline.h"
#include "bulkhead/common/fd.h"
#include "bulkhead/common/file.h"
#include "bulkhead/common/host_address.h"
#include "bulkhead/common/owned.h"
#include "bulkhead/common/time_format.h"

namespace bulkhead::common {
namespace {

namespace fs = std::filesystem;
using std::chrono::microseconds;
using std::chrono::seconds;

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bh-common-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  fs::path dir_;
};

TEST_F(FileTest, ReadsUpToTheBound) {
  EXPECT_EQ(*readFileBounded(write("a", "hello"), 5), "hello");
  EXPECT_EQ(*readFileBounded(write("e", ""), 0), "");
  const std::string big(200000, 'x');
  EXPECT_EQ(*readFileBounded(write("b", big), big.size()), big);
}

TEST_F(FileTest, RefusesWhatIsLargerThanTheBound) {
  auto r = readFileBounded(write("a", "hello!"), 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
  EXPECT_EQ(r.error().message, "file too large: 6 bytes (the limit is 5)");
}

TEST_F(FileTest, AnEndlessFileStopsAtTheBound) {
  auto r = readFileBounded("/dev/zero", 100000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
}

TEST_F(FileTest, MissingAndUnreadable) {
  auto missing = readFileBounded((dir_ / "nope").string(), 10);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().sysErrno, ENOENT);
  auto directory = readFileBounded(dir_.string(), 10);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code, ErrorCode::kIo);
  EXPECT_EQ(directory.error().sysErrno, EISDIR);
}

TEST(TimeFormatTest, FormatsUtc) {
  const WallClock::time_point t{seconds(1764075000) + microseconds(343246)};
  EXPECT_EQ(formatRfc3339(t), "2025-11-25T12:50:00.343246Z");
  EXPECT_EQ(formatRfc3339(t, TimePrecision::kSeconds), "2025-11-25T12:50:00Z");
  EXPECT_EQ(formatRfc3339(WallClock::time_point{}), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(formatRfc3339(WallClock::time_point{-microseconds(1)}), "1969-12-31T23:59:59.999999Z");
}

TEST(TimeFormatTest, ParsesWhatItFormats) {
  const WallClock::time_point t{seconds(1764075000) + microseconds(343246)};
  EXPECT_EQ(parseRfc3339(formatRfc3339(t)), t);
  EXPECT_EQ(parseRfc3339("2025-11-25T12:50:00Z"), WallClock::time_point{seconds(1764075000)});
  EXPECT_EQ(parseRfc3339("2025-11-25T14:50:00.5+02:00"),
            WallClock::time_point{seconds(1764075000) + microseconds(500000)});
  EXPECT_EQ(parseRfc3339("2025-11-25t12:50:00.343246999z"), t);
  EXPECT_EQ(parseRfc3339("2024-02-29T00:00:00Z"), WallClock::time_point{seconds(1709164800)});
  EXPECT_EQ(parseRfc3339("2016-12-31T23:59:60Z"), WallClock::time_point{seconds(1483228799)});
}

TEST(TimeFormatTest, RejectsMalformedTimes) {
  for (const char* text :
       {"", "2025-11-25", "2025-11-25T12:50:00", "2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
        "2025-11-31T00:00:00Z", "2025-11-25T24:00:00Z", "2025-11-25T12:60:00Z",
        "2025-11-25T12:50:61Z", "2025-11-25T12:50:00.Z", "2025-11-25T12:50:00+2:00",
        "2025-11-25T12:50:00+24:00", "2025-11-25T12:50:00Zjunk", "2025-11-25X12:50:00Z",
        "+025-11-25T12:50:00Z", "2025-11-25T12:50:00.1234567890123456789Z"})
    EXPECT_FALSE(parseRfc3339(text)) << text;
}

// A poll timeout rounded down returns before the deadline, and a loop
// waiting for the deadline spins for what is left (an idle agent's table
// monitor did, ~2% of a CPU).
TEST(DeadlineTest, MillisecondsLeftRoundUpAndStopAtZero) {
  const SteadyClock::time_point now{seconds(1000)};
  EXPECT_EQ(msUntil(now + microseconds(1), now), 1);
  EXPECT_EQ(msUntil(now + microseconds(400), now), 1);
  EXPECT_EQ(msUntil(now + microseconds(1000), now), 1);
  EXPECT_EQ(msUntil(now + microseconds(2500), now), 3);
  EXPECT_EQ(msUntil(now, now), 0);
  EXPECT_EQ(msUntil(now - seconds(5), now), 0);
  EXPECT_EQ(msUntil(now + std::chrono::hours(24 * 365 * 100), now), INT_MAX);
}

TEST(HostAddressTest, TheHostPrefixOnly) {
  std::string why;
  EXPECT_EQ(hostAddressText("192.0.2.1", &why), "192.0.2.1");
  EXPECT_EQ(hostAddressText("192.0.2.1/32", &why), "192.0.2.1");
  EXPECT_EQ(hostAddressText("2001:db8::1/128", &why), "2001:db8::1");
  for (const char* text : {"192.0.2.1/24", "192.0.2.1/128", "2001:db8::1/32", "192.0.2.1/",
                           "192.0.2.1/32/32", "192.0.2.1/032"}) {
    why.clear();
    EXPECT_FALSE(hostAddressText(text, &why)) << text;
    EXPECT_EQ(why, kNotHostAddress);
  }
}

TEST(FdTest, ClosesOnceAndMoves) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    Fd a(raw);
    Fd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), raw);
    Fd c;
    c = std::move(b);
    EXPECT_EQ(c.get(), raw);
    EXPECT_EQ(::fcntl(raw, F_GETFD), FD_CLOEXEC);
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);  // closed when its owner went
  Fd d(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int kept = d.release();
  EXPECT_FALSE(d);
  EXPECT_EQ(::fcntl(kept, F_GETFD), FD_CLOEXEC);
  ::close(kept);
}

int freed = 0;
void countingFree(int* p) {
  ++freed;
  delete p;
}

TEST(OwnedTest, FreesWithTheLibraryFunctionOnce) {
  freed = 0;
  {
    Owned<int, countingFree> a(new int(1));
    Owned<int, countingFree> b = std::move(a);
    Owned<int, countingFree> none;
  }
  EXPECT_EQ(freed, 1);
}

}  // namespace
}  // namespace bulkhead::common
