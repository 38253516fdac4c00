// The flow feed (agent::FlowFeed) with its NFLOG reader and exporters passed
// in: NFLOG datagrams laid out as the kernel sends them go through the real
// message parser, attribution, folding, scan detection and fan-out, and land
// in capturing exporters. No root, no socket.
#include <gtest/gtest.h>
#include <net/if.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "bulkhead/agent/flow_feed.h"
#include "fake_nflog.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

using testing::FakeNflogReader;
using testing::NflogDatagram;
using testing::NflogFeedQueue;

// Events every capturing exporter received, by target.
struct Captured {
  std::mutex mu;
  std::vector<std::pair<std::string, flows::FlowEvent>> events;
  std::vector<std::pair<std::string, flows::ExporterOptions>> made;

  std::vector<flows::FlowEvent> of(const std::string& target) {
    std::lock_guard lock(mu);
    std::vector<flows::FlowEvent> out;
    for (const auto& [t, e] : events)
      if (t == target) out.push_back(e);
    return out;
  }
};

class CapturingExporter : public flows::Exporter {
 public:
  CapturingExporter(std::string target, std::shared_ptr<Captured> into)
      : target_(std::move(target)), into_(std::move(into)) {}
  bool offer(const flows::FlowEvent& e) override {
    std::lock_guard lock(into_->mu);
    into_->events.emplace_back(target_, e);
    ++stats_.delivered;
    stats_.deliveredAttempts += e.count;
    return true;
  }
  flows::ExporterStats stats() const override {
    std::lock_guard lock(into_->mu);
    return stats_;
  }
  std::string name() const override { return target_; }
  bool flush(int) override { return true; }

 private:
  std::string target_;
  std::shared_ptr<Captured> into_;
  flows::ExporterStats stats_;
};

// IPv4 + TCP header (20 + 20 bytes) from src:sport to dst:dport, SYN.
std::string ipv4Tcp(const char* src, const char* dst, uint16_t sport, uint16_t dport) {
  std::string p(40, '\0');
  auto* b = reinterpret_cast<uint8_t*>(p.data());
  b[0] = 0x45;
  b[3] = 40;
  b[8] = 64;
  b[9] = 6;  // TCP
  inet_pton(AF_INET, src, b + 12);
  inet_pton(AF_INET, dst, b + 16);
  b[20] = uint8_t(sport >> 8);
  b[21] = uint8_t(sport);
  b[22] = uint8_t(dport >> 8);
  b[23] = uint8_t(dport);
  b[32] = 0x50;  // data offset 5
  b[33] = 0x02;  // SYN
  return p;
}

class FlowFeedSourcesTest : public ::testing::Test {
 protected:
  FlowFeedSourcesTest() {
    config_.logGroup = 4242;
    config_.flowFormat = "json";
    // A table no test creates: reading its counters finds nothing.
    config_.table = "bhunit" + std::to_string(::getpid());
    config_.syslog = {"udp://192.0.2.1:514", "tls://collector.example:6514"};
    config_.scanHosts = 3;
    config_.scanPorts = 100;
    lo_ = if_nametoindex("lo");
    directory_.set("lo", flows::Attribution{"web-1", "web", false});
  }

  flows::FeedSources sources() {
    flows::FeedSources s;
    s.openNflog =
        [this](
            const flows::NflogReader::Options& o) -> Result<std::unique_ptr<flows::NflogReader>> {
      openedGroup_ = o.group;
      if (nflogError_) return makeError(ErrorCode::kUnavailable, "NFLOG group owned");
      return std::unique_ptr<flows::NflogReader>(new FakeNflogReader(queue_));
    };
    s.makeExporter =
        [this](const std::string& target,
               const flows::ExporterOptions& o) -> Result<std::unique_ptr<flows::Exporter>> {
      {
        std::lock_guard lock(captured_->mu);
        captured_->made.emplace_back(target, o);
      }
      if (target == badTarget_) return makeError(ErrorCode::kInvalidInput, "bad CA");
      return std::unique_ptr<flows::Exporter>(new CapturingExporter(target, captured_));
    };
    return s;
  }

  // Waits up to 5 s for `target` to have received at least n events.
  std::vector<flows::FlowEvent> waitFor(const std::string& target, size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      auto got = captured_->of(target);
      if (got.size() >= n) return got;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return captured_->of(target);
  }

  AgentConfig config_;
  FlowHub hub_;
  InterfaceDirectory directory_;
  testing::FakeKernel counters_;  // no table: no counted rules
  uint32_t lo_ = 0;
  std::shared_ptr<NflogFeedQueue> queue_ = std::make_shared<NflogFeedQueue>();
  std::shared_ptr<Captured> captured_ = std::make_shared<Captured>();
  std::atomic<uint32_t> openedGroup_{0};
  bool nflogError_ = false;
  std::string badTarget_;
};

TEST_F(FlowFeedSourcesTest, BuildsItsReaderAndExportersFromTheConfig) {
  FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
  ASSERT_TRUE(feed.start().ok());
  EXPECT_EQ(openedGroup_.load(), 4242u);
  std::lock_guard lock(captured_->mu);
  ASSERT_EQ(captured_->made.size(), 2u);
  EXPECT_EQ(captured_->made[0].first, "udp://192.0.2.1:514");
  EXPECT_EQ(captured_->made[1].first, "tls://collector.example:6514");
  EXPECT_EQ(captured_->made[0].second.format, flows::Format::kJson);
  EXPECT_EQ(captured_->made[0].second.formatOptions.procId, int(::getpid()));
}

TEST_F(FlowFeedSourcesTest, AttributesAndExportsToEveryTarget) {
  FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
  ASSERT_TRUE(feed.start().ok());
  queue_->push(NflogDatagram()
                   .packet("bh:deny:default", lo_,
                           ipv4Tcp("192.0.2.10", "198.51.100.10", 40000, 22), 0, 4242)
                   .packet("bh:audit:globalpolicy/ops/1", lo_,
                           ipv4Tcp("192.0.2.10", "198.51.100.11", 40001, 443), 1, 4242)
                   .bytes());
  for (const std::string target : {"udp://192.0.2.1:514", "tls://collector.example:6514"}) {
    const auto got = waitFor(target, 2);
    ASSERT_EQ(got.size(), 2u) << target;
    EXPECT_EQ(got[0].action, flows::FlowAction::kDeny);
    EXPECT_EQ(got[0].reason, "default");
    EXPECT_EQ(got[0].host, "hv01");
    EXPECT_EQ(got[0].workload, "web-1");
    EXPECT_EQ(got[0].app, "web");
    EXPECT_EQ(got[0].src.toString(), "192.0.2.10");
    EXPECT_EQ(got[0].dst.toString(), "198.51.100.10");
    EXPECT_EQ(got[0].sport, 40000);
    EXPECT_EQ(got[0].dport, 22);
    EXPECT_EQ(got[0].proto, "tcp");
    EXPECT_EQ(got[1].action, flows::FlowAction::kAudit);
    EXPECT_EQ(got[1].reason, "globalpolicy/ops/1");
  }
}

TEST_F(FlowFeedSourcesTest, FoldsRepeatsAndIgnoresOtherPrefixes) {
  FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
  ASSERT_TRUE(feed.start().ok());
  const std::string syn = ipv4Tcp("192.0.2.10", "198.51.100.10", 40000, 5432);
  NflogDatagram d;
  for (uint32_t i = 0; i < 5; ++i)
    d.packet("bh:deny:default", lo_, syn, i, 4242);
  d.packet("ulogd:something", lo_, syn, 5, 4242);  // another program's rule
  d.packet("bh:summary", lo_, syn, 6, 4242);       // not a kernel action
  queue_->push(d.bytes());
  // The first at once, the four repeats folded into one follow-up when the
  // one-second window closes.
  const auto got = waitFor("udp://192.0.2.1:514", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].count, 1u);
  EXPECT_EQ(got[1].count, 4u);
  EXPECT_EQ(got[1].dport, 5432);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(captured_->of("udp://192.0.2.1:514").size(), 2u);
}

TEST_F(FlowFeedSourcesTest, AnUnknownInterfaceIsExportedWithoutAWorkload) {
  directory_.erase("lo");
  FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
  ASSERT_TRUE(feed.start().ok());
  queue_->push(NflogDatagram()
                   .packet("bh:spoof", lo_, ipv4Tcp("203.0.113.9", "198.51.100.10", 1, 80), 0, 4242)
                   .bytes());
  const auto got = waitFor("udp://192.0.2.1:514", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].action, flows::FlowAction::kSpoof);
  EXPECT_EQ(got[0].workload, "");
  EXPECT_EQ(got[0].reason, "");
}

TEST_F(FlowFeedSourcesTest, ASweepRaisesAnAnomalyToTheTargetsAndTheHandler) {
  FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
  std::atomic<int> scans{0};
  feed.onScan([&](const ScanFinding& f) {
    if (f.workload == "web-1" && f.kind == ScanKind::kHosts) ++scans;
  });
  ASSERT_TRUE(feed.start().ok());
  NflogDatagram d;
  for (uint32_t i = 0; i < 3; ++i)
    d.packet("bh:deny:default", lo_,
             ipv4Tcp("192.0.2.10", ("198.51.100." + std::to_string(20 + i)).c_str(), 40000, 445), i,
             4242);
  queue_->push(d.bytes());
  const auto got = waitFor("udp://192.0.2.1:514", 4);
  ASSERT_EQ(got.size(), 4u);
  const auto anomaly = std::find_if(got.begin(), got.end(), [](const flows::FlowEvent& e) {
    return e.action == flows::FlowAction::kAnomaly;
  });
  ASSERT_NE(anomaly, got.end());
  EXPECT_EQ(anomaly->reason, "scan/hosts");
  EXPECT_EQ(anomaly->workload, "web-1");
  EXPECT_EQ(scans.load(), 1);
}

TEST_F(FlowFeedSourcesTest, StartFailsWhenTheReaderOrAnExporterCannotBeMade) {
  nflogError_ = true;
  {
    FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
    auto st = feed.start();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  }
  nflogError_ = false;
  badTarget_ = "tls://collector.example:6514";
  FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
  auto st = feed.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidInput);
}

TEST_F(FlowFeedSourcesTest, CountsWhatItReceived) {
  FlowFeed feed(config_, "hv01", hub_, directory_, counters_, sources());
  ASSERT_TRUE(feed.start().ok());
  NflogDatagram d;
  for (uint32_t i = 0; i < 3; ++i)
    d.packet("bh:deny:default", lo_, ipv4Tcp("192.0.2.10", "198.51.100.10", 40000 + i, 22), i,
             4242);
  d.packet("bh:deny:default", lo_, "garbage", 3, 4242);  // cannot be decoded
  queue_->push(d.bytes());
  waitFor("udp://192.0.2.1:514", 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (feed.counters().suppressed_by_cause().count("malformed") == 0 ||
         feed.counters().suppressed_by_cause().at("malformed") == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(feed.counters().suppressed_by_cause().at("malformed"), 1u);
}

}  // namespace
}  // namespace bulkhead::agent
