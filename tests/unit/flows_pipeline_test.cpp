// Folding, the per-workload rate limit and the accounting of the flow
// pipeline, with a recording exporter (the real exporters are tested on
// their own and end to end with rsyslog).
#include "bulkhead/flows/pipeline.h"

#include <gtest/gtest.h>

#include <vector>

namespace bulkhead::flows {
namespace {

using std::chrono::milliseconds;

class RecordingExporter : public Exporter {
 public:
  explicit RecordingExporter(std::vector<FlowEvent>* out) : out_(out) {}
  bool offer(const FlowEvent& e) override {
    out_->push_back(e);
    stats_.delivered++;
    stats_.deliveredAttempts += e.count;
    return true;
  }
  ExporterStats stats() const override { return stats_; }
  std::string name() const override { return "recording"; }
  bool flush(int) override { return true; }

 private:
  std::vector<FlowEvent>* out_;
  ExporterStats stats_;
};

// An IPv4/UDP packet from 192.0.2.10:40000 to 198.51.100.10:dport.
LoggedPacket packet(uint16_t dport, const std::string& prefix = "bh:deny:default") {
  LoggedPacket p;
  p.prefix = prefix;
  p.inIfindex = 7;
  const uint8_t hdr[28] = {0x45,
                           0,
                           0,
                           28,
                           0,
                           0,
                           0x40,
                           0,
                           64,
                           17,
                           0,
                           0,
                           192,
                           0,
                           2,
                           10,
                           198,
                           51,
                           100,
                           10,
                           0x9c,
                           0x40,
                           uint8_t(dport >> 8),
                           uint8_t(dport),
                           0,
                           8,
                           0,
                           0};
  p.payload.assign(reinterpret_cast<const char*>(hdr), sizeof(hdr));
  return p;
}

struct Fixture {
  std::vector<FlowEvent> exported;
  std::vector<FlowEvent> watched;
  std::unique_ptr<Pipeline> pipeline;

  explicit Fixture(PipelineOptions o = {}) {
    std::vector<std::unique_ptr<Exporter>> exporters;
    exporters.push_back(std::make_unique<RecordingExporter>(&exported));
    o.host = "hv01";
    pipeline = std::make_unique<Pipeline>(
        o,
        [](uint32_t ifindex) {
          return ifindex == 7 ? Attribution{"billing-1", "billing"} : Attribution{};
        },
        [this](const FlowEvent& e) { watched.push_back(e); }, std::move(exporters));
  }
};

TEST(FlowPipeline, FirstAttemptAtOnceRepeatsFoldedIntoOneFollowUp) {
  Fixture f;
  const auto t0 = WallClock::now();
  for (int i = 0; i < 5; ++i)
    f.pipeline->onPacket(packet(22), t0 + milliseconds(i * 10));
  ASSERT_EQ(f.exported.size(), 1u) << "the first attempt goes out at once";
  EXPECT_EQ(f.exported[0].count, 1u);
  EXPECT_EQ(f.exported[0].workload, "billing-1");
  EXPECT_EQ(f.exported[0].app, "billing");
  EXPECT_EQ(f.exported[0].dport, 22);
  EXPECT_EQ(f.exported[0].proto, "udp");
  EXPECT_EQ(f.exported[0].action, FlowAction::kDeny);
  EXPECT_EQ(f.exported[0].reason, "default");
  f.pipeline->tick(t0 + milliseconds(500));
  EXPECT_EQ(f.exported.size(), 1u) << "window still open";
  f.pipeline->tick(t0 + milliseconds(1100));
  ASSERT_EQ(f.exported.size(), 2u);
  EXPECT_EQ(f.exported[1].count, 4u) << "the four repeats in one event";
  EXPECT_EQ(f.watched.size(), 2u);
  const auto a = f.pipeline->accounting(5);
  EXPECT_EQ(a.exported, 5u);
  EXPECT_EQ(a.suppressed, 0u);
}

TEST(FlowPipeline, DistinctAttemptsAreNotFolded) {
  Fixture f;
  const auto t0 = WallClock::now();
  for (uint16_t port = 1; port <= 50; ++port)
    f.pipeline->onPacket(packet(port), t0);
  EXPECT_EQ(f.exported.size(), 50u);
  f.pipeline->onPacket(packet(1, "bh:audit:default"), t0);
  EXPECT_EQ(f.exported.size(), 51u) << "another action is another flow";
}

TEST(FlowPipeline, WorkloadRateLimitIsCountedAsSuppressed) {
  PipelineOptions o;
  o.workloadRate = 10;
  o.workloadBurst = 20;
  Fixture f(o);
  const auto t0 = WallClock::now();
  for (uint16_t port = 1; port <= 100; ++port)
    f.pipeline->onPacket(packet(port), t0);
  EXPECT_EQ(f.exported.size(), 20u) << "the burst, then nothing";
  // Kernel saw 130 attempts: 30 never reached us (its own rate limit).
  const auto a = f.pipeline->accounting(130);
  EXPECT_EQ(a.received, 100u);
  EXPECT_EQ(a.exported, 20u);
  EXPECT_EQ(a.suppressedByCause.at(kCauseWorkloadRate), 80u);
  EXPECT_EQ(a.suppressedByCause.at(kCauseKernel), 30u);
  EXPECT_EQ(a.seen, a.exported + a.suppressed);
  // A second later the bucket has refilled by the rate.
  f.pipeline->onPacket(packet(500), t0 + milliseconds(1000));
  EXPECT_EQ(f.exported.size(), 21u);
}

TEST(FlowPipeline, MalformedAndForeignPackets) {
  Fixture f;
  LoggedPacket junk = packet(22);
  junk.payload = "\x01\x02";
  f.pipeline->onPacket(junk, WallClock::now());
  f.pipeline->onPacket(packet(22, "some other logger: "), WallClock::now());
  EXPECT_TRUE(f.exported.empty());
  const auto a = f.pipeline->accounting(1);
  EXPECT_EQ(a.suppressedByCause.at(kCauseMalformed), 1u);
  EXPECT_EQ(a.seen, a.exported + a.suppressed) << "foreign prefixes are not ours to count";
}

TEST(FlowPipeline, FoldMemoryIsBounded) {
  PipelineOptions o;
  o.maxFoldKeys = 16;
  o.workloadRate = 1e6;
  o.workloadBurst = 1e6;
  Fixture f(o);
  const auto t0 = WallClock::now();
  for (uint16_t port = 1; port <= 1000; ++port) {
    f.pipeline->onPacket(packet(port), t0);
    f.pipeline->onPacket(packet(port), t0);  // a repeat, folded
  }
  f.pipeline->tick(t0 + milliseconds(2000));
  uint64_t total = 0;
  for (const auto& e : f.exported)
    total += e.count;
  EXPECT_EQ(total, 2000u) << "every attempt exported once, whatever was flushed early";
}

TEST(FlowPipeline, TickClosesTheWindowsThatEndedInTheOrderTheyOpened) {
  PipelineOptions o;
  o.workloadRate = 1e6;
  o.workloadBurst = 1e6;
  Fixture f(o);
  const auto t0 = WallClock::now();
  // Three flows opening 300 ms apart, each repeated once.
  for (uint16_t port : {1, 2, 3}) {
    const auto t = t0 + milliseconds(300 * (port - 1));
    f.pipeline->onPacket(packet(port), t);
    f.pipeline->onPacket(packet(port), t + milliseconds(1));
  }
  ASSERT_EQ(f.exported.size(), 3u);
  f.pipeline->tick(t0 + milliseconds(1350));  // port 1's and 2's windows ended
  ASSERT_EQ(f.exported.size(), 5u);
  EXPECT_EQ(f.exported[3].dport, 1);
  EXPECT_EQ(f.exported[4].dport, 2);
  f.pipeline->onPacket(packet(1), t0 + milliseconds(1400));  // a new window for port 1
  ASSERT_EQ(f.exported.size(), 6u) << "its window closed: a first attempt again";
  f.pipeline->onPacket(packet(3), t0 + milliseconds(1500));
  EXPECT_EQ(f.exported.size(), 6u) << "port 3's window is still open: folded";
  f.pipeline->tick(t0 + milliseconds(1700));
  ASSERT_EQ(f.exported.size(), 7u);
  EXPECT_EQ(f.exported[6].dport, 3);
  EXPECT_EQ(f.exported[6].count, 2u);
  f.pipeline->tick(t0 + milliseconds(5000));
  EXPECT_EQ(f.exported.size(), 7u) << "port 1's new window held nothing to follow up";
  EXPECT_EQ(f.pipeline->accounting(8).exported, 8u);
}

TEST(FlowPipeline, WindowsOpenedBeforeTheClockWasSteppedBackStillClose) {
  Fixture f;
  const auto t0 = WallClock::now();
  f.pipeline->onPacket(packet(22), t0);
  f.pipeline->onPacket(packet(22), t0 + milliseconds(10));
  // The wall clock goes back an hour: the fold's window would otherwise end
  // an hour from now, holding its follow-up and every window behind it.
  f.pipeline->tick(t0 - std::chrono::hours(1));
  ASSERT_EQ(f.exported.size(), 2u);
  EXPECT_EQ(f.exported[1].count, 1u);
}

}  // namespace
}  // namespace bulkhead::flows
