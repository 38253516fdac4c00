// systemd's notify protocol without systemd: the test binds the unix
// datagram socket a service manager would, starts the real agent with
// NOTIFY_SOCKET and WATCHDOG_USEC, and reads what it says: READY=1 only once
// the table is in the kernel (listed the moment READY=1 arrives), WATCHDOG=1
// at half the period and not while the core is stalled, RELOADING=1 then
// READY=1 around SIGHUP, STOPPING=1 on SIGTERM.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <regex>
#include <thread>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBin = BULKHEAD_BINARY_DIR;

// Services holding `n` distinct IPv6 /64s in all (every other one:
// adjacent ones would merge into one interval; at most 50,000 a service,
// within the per-service limit) and an app allowed to reach them. `marker`
// is one more address, to tell bundles apart in `nft list`.
std::string bigPolicy(int n, const std::string& marker) {
  constexpr int kPerService = 50000;
  std::string out, to;
  char buf[64];
  for (int s = 0; s == 0 || s * kPerService < n; ++s) {
    const std::string name = "big" + std::to_string(s);
    to += (to.empty() ? "" : ", ") + name;
    out += "apiVersion: bulkhead/v1\nkind: Service\nmetadata: {name: " + name +
           "}\nspec:\n  endpoints:\n    - ports: [tcp/443]\n      cidrs:\n";
    if (s == 0) out += "        - " + marker + "\n";
    for (int i = s * kPerService; i < std::min(n, (s + 1) * kPerService); ++i) {
      std::snprintf(buf, sizeof(buf), "        - 2001:db8:%x:%x::/64\n", 1 + i / 30000,
                    2 * (i % 30000));
      out += buf;
    }
    out += "---\n";
  }
  return out + "apiVersion: bulkhead/v1\nkind: App\nmetadata: {name: web}\nspec:\n" +
         "  egress:\n    - to: [" + to + "]\n";
}

struct Message {
  Clock::time_point at;
  std::string text;
};

// The service manager's end: a bound datagram socket and a reader thread.
// When READY=1 arrives, `onReady` runs on the reader thread before the next
// datagram is read.
class NotifySocket {
 public:
  NotifySocket(const fs::path& path, std::function<void()> onReady)
      : path_(path), onReady_(std::move(onReady)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.string().copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (ok_) reader_ = std::thread([this] { read(); });
  }
  ~NotifySocket() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }

  std::vector<Message> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  // Messages containing `field` (e.g. "WATCHDOG=1").
  std::vector<Message> with(const std::string& field) {
    std::vector<Message> out;
    for (auto& m : messages())
      if (hasField(m.text, field)) out.push_back(m);
    return out;
  }
  static bool hasField(const std::string& text, const std::string& field) {
    size_t pos = 0;
    while ((pos = text.find(field, pos)) != std::string::npos) {
      const bool start = pos == 0 || text[pos - 1] == '\n';
      const size_t end = pos + field.size();
      if (start && (end == text.size() || text[end] == '\n')) return true;
      ++pos;
    }
    return false;
  }

 private:
  void read() {
    char buf[4096];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) continue;
      Message m{Clock::now(), std::string(buf, size_t(n))};
      if (hasField(m.text, "READY=1") && onReady_) onReady_();
      std::lock_guard lock(mu_);
      messages_.push_back(std::move(m));
    }
  }

  fs::path path_;
  std::function<void()> onReady_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  std::mutex mu_;
  std::vector<Message> messages_;
};

class NotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("notify");
    fs::create_directories(dir_ / "policies");
    ns_ = std::make_unique<Netns>();
    socket_ = "unix://" + (dir_ / "agent.sock").string();
  }
  void TearDown() override {
    agent_.reset();
    notify_.reset();
    ns_.reset();
    fs::remove_all(dir_);
  }

  void writePolicy(const fs::path& dir, int n, const std::string& marker) {
    fs::create_directories(dir);
    std::ofstream(dir / "policy.yaml") << bigPolicy(n, marker);
  }

  // Starts the agent with a notify socket; `listAtReady` lists the table
  // (and asks the agent for its status) the moment READY=1 arrives.
  void start(const std::string& flags, uint64_t watchdogUsec) {
    notify_.reset();
    fs::remove(dir_ / "notify");
    notify_ = std::make_unique<NotifySocket>(dir_ / "notify", [this] {
      if (!atReady_.empty()) return;
      atReady_ = ns_->exec("nft list table inet bulkhead").out;
      statusAtReady_ = cli("status --json");
    });
    ASSERT_TRUE(notify_->ok());
    agent_ = std::make_unique<Process>(
        *ns_, "NOTIFY_SOCKET=" + (dir_ / "notify").string() +
                  (watchdogUsec ? " WATCHDOG_USEC=" + std::to_string(watchdogUsec) : "") + " " +
                  agentCommand(dir_, flags));
    ASSERT_TRUE(waitFor([&] { return !notify_->with("READY=1").empty(); }, 30000)) << log();
  }

  CmdResult cli(const std::string& args) const { return agentCli(socket_, args); }
  std::string log() const { return readAll(dir_ / "agent.log"); }

  fs::path dir_;
  std::string socket_;
  std::unique_ptr<Netns> ns_;
  std::unique_ptr<NotifySocket> notify_;
  std::unique_ptr<Process> agent_;
  std::string atReady_;
  CmdResult statusAtReady_;
};

// Gaps between consecutive keep-alives in [from, to].
std::vector<double> gaps(const std::vector<Message>& pings, Clock::time_point from,
                         Clock::time_point to) {
  std::vector<double> out;
  for (size_t i = 1; i < pings.size(); ++i)
    if (pings[i - 1].at >= from && pings[i].at <= to)
      out.push_back(std::chrono::duration<double>(pings[i].at - pings[i - 1].at).count());
  return out;
}

TEST_F(NotifyTest, ReadyOnlyOnceRestoredStateAndPoliciesAreInTheKernel) {
  // A first run leaves a saved state with bundle A.
  writePolicy(dir_ / "a", 20000, "2001:db8:aaaa::1/128");
  {
    Process first(*ns_, agentCommand(dir_, "--policies " + (dir_ / "a").string()));
    ASSERT_TRUE(waitFor([&] { return cli("status").ok(); }, 30000)) << log();
    first.kill(SIGTERM);
    ASSERT_EQ(first.wait(5000), 0) << log();
  }
  // Start over in an empty namespace: the agent must put A back from its
  // state before it says READY=1.
  ns_ = std::make_unique<Netns>();
  start("", 0);
  EXPECT_NE(atReady_.find("table inet bulkhead"), std::string::npos) << "no table at READY=1";
  EXPECT_NE(atReady_.find("2001:db8:aaaa::1"), std::string::npos)
      << "saved state not restored at READY=1";
  EXPECT_TRUE(statusAtReady_.ok())
      << "the socket did not answer at READY=1: " << statusAtReady_.out;
  agent_->kill(SIGTERM);
  ASSERT_EQ(agent_->wait(5000), 0) << log();

  // Again, with --policies B: restored, then B applied, then READY=1.
  ns_ = std::make_unique<Netns>();
  atReady_.clear();
  writePolicy(dir_ / "b", 20000, "2001:db8:bbbb::1/128");
  start("--policies " + (dir_ / "b").string(), 0);
  EXPECT_NE(atReady_.find("2001:db8:bbbb::1"), std::string::npos)
      << "--policies not applied at READY=1";
  EXPECT_EQ(atReady_.find("2001:db8:aaaa::1"), std::string::npos);
  EXPECT_TRUE(statusAtReady_.ok()) << statusAtReady_.out;
  // READY=1 carries a status line with the version and the counts.
  const auto ready = notify_->with("READY=1");
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_NE(ready[0].text.find("STATUS=version sha256:"), std::string::npos) << ready[0].text;
  EXPECT_NE(ready[0].text.find(" elements"), std::string::npos) << ready[0].text;
  // No watchdog asked for, none sent.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(notify_->with("WATCHDOG=1").empty());
}

TEST_F(NotifyTest, WatchdogAtHalfThePeriodStopsWhileTheCoreIsStalled) {
  start("", 1000000);  // 1 s: a keep-alive every 0.5 s
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const auto t0 = Clock::now();
  auto pings = notify_->with("WATCHDOG=1");
  ASSERT_GE(pings.size(), 4u) << log();
  for (double g : gaps(pings, pings.front().at, t0)) {
    EXPECT_GE(g, 0.4) << "keep-alives too often";
    EXPECT_LE(g, 0.8) << "keep-alives too rare for a 1 s watchdog";
  }
  // A large push holds the core's lock for as long as it takes: the
  // housekeeping loop cannot take it, so no keep-alive may go out meanwhile.
  // Grown until the agent reports an apply (timed under the lock) long
  // enough to tell from the 0.5 s cadence (machines differ).
  Clock::time_point pushStart, pushEnd;
  double applySeconds = 0;
  const std::regex applyMax(R"re("apply_latency": \{[^}]*"max_ms": ([0-9.]+))re");
  for (int n = 50000; applySeconds < 1.2 && n <= 400000; n *= 2) {
    writePolicy(dir_ / ("huge" + std::to_string(n)), n, "2001:db8:cccc::1/128");
    pushStart = Clock::now();
    auto push = cli("push " + (dir_ / ("huge" + std::to_string(n)) / "policy.yaml").string());
    pushEnd = Clock::now();
    ASSERT_TRUE(push.ok()) << push.out << log();
    const auto st = cli("status --json").out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(st, m, applyMax)) << st;
    applySeconds = std::stod(m[1]) / 1000;
  }
  ASSERT_GE(applySeconds, 1.2) << "no push held the core long enough to tell";
  std::this_thread::sleep_for(std::chrono::seconds(2));
  pings = notify_->with("WATCHDOG=1");
  double longest = 0;
  for (double g :
       gaps(pings, pushStart - std::chrono::seconds(1), pushEnd + std::chrono::seconds(1)))
    longest = std::max(longest, g);
  std::cout << "push applied in " << applySeconds << " s under the core's lock; longest gap "
            << "between keep-alives " << longest << " s\n";
  EXPECT_GE(longest, applySeconds - 0.1)
      << "keep-alives went on while a push held the core for " << applySeconds << " s";
  // And they resume after it.
  EXPECT_GE(gaps(pings, pushEnd, Clock::now()).size(), 2u);
  // The new counts are announced.
  bool announced = false;
  for (const auto& m : notify_->messages())
    if (m.at > pushStart && m.text.find("STATUS=version") != std::string::npos) announced = true;
  EXPECT_TRUE(announced);
}

TEST_F(NotifyTest, SighupReloadsConfigAndPoliciesBetweenReloadingAndReady) {
  writePolicy(dir_ / "a", 10, "2001:db8:aaaa::1/128");
  writePolicy(dir_ / "b", 10, "2001:db8:bbbb::1/128");
  std::ofstream(dir_ / "agent.yaml") << "policies: " << (dir_ / "a").string() << "\n";
  start("--config " + (dir_ / "agent.yaml").string(), 2000000);
  ASSERT_NE(atReady_.find("2001:db8:aaaa::1"), std::string::npos);
  // The config now names another directory: SIGHUP reads it again.
  std::ofstream(dir_ / "agent.yaml") << "policies: " << (dir_ / "b").string() << "\n";
  atReady_.clear();
  agent_->kill(SIGHUP);
  ASSERT_TRUE(waitFor([&] { return notify_->with("READY=1").size() == 2; }, 10000)) << log();
  EXPECT_NE(atReady_.find("2001:db8:bbbb::1"), std::string::npos) << "not reloaded at READY=1";
  const auto msgs = notify_->messages();
  size_t reloading = msgs.size(), secondReady = msgs.size();
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (NotifySocket::hasField(msgs[i].text, "RELOADING=1") && reloading == msgs.size())
      reloading = i;
    if (NotifySocket::hasField(msgs[i].text, "READY=1")) secondReady = i;
  }
  ASSERT_LT(reloading, msgs.size()) << "no RELOADING=1";
  EXPECT_LT(reloading, secondReady) << "RELOADING=1 must come before READY=1";
  EXPECT_NE(msgs[reloading].text.find("MONOTONIC_USEC="), std::string::npos);

  // SIGTERM: STOPPING=1, exit 0, and no keep-alive after it.
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000), 0) << log();
  const auto all = notify_->messages();
  size_t stopping = all.size();
  for (size_t i = 0; i < all.size(); ++i)
    if (NotifySocket::hasField(all[i].text, "STOPPING=1")) stopping = i;
  ASSERT_LT(stopping, all.size()) << "no STOPPING=1";
  for (size_t i = stopping + 1; i < all.size(); ++i)
    EXPECT_FALSE(NotifySocket::hasField(all[i].text, "WATCHDOG=1"));
  // The table stays (fail-closed).
  EXPECT_TRUE(ns_->exec("nft list table inet bulkhead").ok());
}

TEST_F(NotifyTest, WithoutNotifySocketNothingIsSent) {
  notify_ = std::make_unique<NotifySocket>(dir_ / "notify", nullptr);
  ASSERT_TRUE(notify_->ok());
  // WATCHDOG_USEC alone (no NOTIFY_SOCKET): nothing to talk to.
  agent_ = std::make_unique<Process>(*ns_, "WATCHDOG_USEC=200000 " + agentCommand(dir_));
  ASSERT_TRUE(waitFor([&] { return cli("status").ok(); }, 10000)) << log();
  agent_->kill(SIGHUP);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000), 0) << log();
  EXPECT_TRUE(notify_->messages().empty());
}

}  // namespace
}  // namespace bulkhead::testing
