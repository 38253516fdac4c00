// bench_scan's end-to-end part: two real bulkhead-agents, one with scan
// detection and one with `--scan-detection false`, each in a hypervisor
// namespace of its own with one workload, the same denied flood sent to
// each in turns, and each agent's CPU time per attempt read from /proc
// (every thread: NFLOG reads, decoding, the pipeline, the detector,
// formatting and sending to its syslog target). Needs root.
#pragma once

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "bench_util.h"
#include "bulkhead/flows/pipeline.h"
#include "support/agent_host.h"
#include "support/netns.h"
#include "udp_io.h"

namespace bulkhead::bench {

// CPU seconds of a process, in total and by thread name, from
// /proc/PID/task/TID/schedstat (nanoseconds on a CPU, finer than the clock
// ticks of /proc/PID/stat). A thread that has exited no longer counts; the
// agent's flow threads live as long as it does.
struct ProcessCpu {
  double total = 0;
  std::map<std::string, double> byName;

  double of(const std::string& name) const {
    auto it = byName.find(name);
    return it == byName.end() ? 0 : it->second;
  }
  ProcessCpu operator-(const ProcessCpu& before) const {
    ProcessCpu d;
    d.total = total - before.total;
    for (const auto& [name, s] : byName)
      d.byName[name] = s - before.of(name);
    return d;
  }
};

inline ProcessCpu processCpu(pid_t pid) {
  ProcessCpu out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream sched(task.path() / "schedstat");
    uint64_t ns = 0;
    if (!(sched >> ns)) continue;  // exited meanwhile
    std::string comm;
    std::ifstream commFile(task.path() / "comm");
    std::getline(commFile, comm);
    out.total += double(ns) / 1e9;
    out.byName[comm] += double(ns) / 1e9;
  }
  if (ec) throw Failure("cannot read " + dir + ": " + ec.message());
  return out;
}

// A syslog target for one agent: a UDP socket on 127.0.0.1 in its
// namespace that no thread waits on while the agent runs, so the agent's
// sends never wake a reader (a wake-up is work the kernel charges to the
// sender, and how many there are depends on the scheduler, not on the
// agent). The bench reads what arrived, counting lines (one datagram
// each) and apart the agent's `anomaly` events, while the agent is stopped.
class LineSink {
 public:
  LineSink(const testing::Netns& ns, int port)
      : fd_(bindLoopbackUdp(ns, port, 256 << 20)),  // a whole turn's lines
        batch_(2048) {}

  // Reads everything queued.
  void drain() {
    while (const int n = batch_.read(fd_.get()))
      for (int i = 0; i < n; ++i) {
        ++lines_;
        if (isAnomalyLine(batch_.line(i))) ++anomalies_;
      }
  }

  uint64_t lines() const { return lines_; }
  uint64_t anomalies() const { return anomalies_; }
  uint32_t drops() const { return batch_.drops(); }

 private:
  Fd fd_;
  DatagramBatch batch_;
  uint64_t lines_ = 0, anomalies_ = 0;
};

// One side of the comparison: a hypervisor namespace with one workload
// (vscan1, 192.0.2.10, app `flood`, no egress: every attempt is denied and
// logged), the flood's destinations (198.51.100.0/24) routed to a veth that
// leads nowhere, the agent and its syslog target.
class FloodedAgent {
 public:
  static constexpr int kSyslogPort = 10516;

  FloodedAgent(const std::string& dir, bool detection, Target target) : agent_(topo_.hv(), dir) {
    auto& workload = topo_.addHost("vscan1", "192.0.2.10", "");
    routeFloodDestinations(topo_.hv());
    lines_ = std::make_unique<LineSink>(topo_.hv(), kSyslogPort);
    sender_ = std::make_unique<UdpSender>(*workload.ns, target);
    // The kernel's log limit and the agent's per-workload limit out of the
    // way: what is measured is the agent's work per attempt.
    const std::string flags = "--syslog udp://127.0.0.1:" + std::to_string(kSyslogPort) +
                              " --log-rate 1000000 --flow-workload-rate 1000000" +
                              (detection ? "" : " --scan-detection false");
    if (!agent_.launch(flags)) throw Failure("bulkhead-agent did not start: " + agent_.log());
    std::ofstream(dir + "/policy.yaml") << "apiVersion: bulkhead/v1\n"
                                           "kind: App\n"
                                           "metadata: {name: flood}\n"
                                           "spec: {denyAction: drop}\n"
                                           "---\n"
                                           "apiVersion: bulkhead/v1\n"
                                           "kind: Workload\n"
                                           "metadata: {name: flood-1}\n"
                                           "spec: {app: flood, interfaces: [vscan1], "
                                           "addresses: [192.0.2.10]}\n";
    if (auto p = agent_.cli("push " + dir + "/policy.yaml"); !p.ok())
      throw Failure("bulkhead push: " + p.out + agent_.log());
  }

  // Sends attempts [base, base + n) to the agent stopped (SIGSTOP), lets it
  // go (SIGCONT) and waits until it has handled them and closed the fold
  // windows they opened (a second later): the CPU seconds that took.
  // Stopped, the agent finds the whole turn queued when it resumes, as at
  // saturation (the regime its throughput is about), and the sender does
  // not compete with it for a CPU. Without the wait for the windows, a
  // turn would also pay for closing the previous turn's, or not, depending
  // on what ran between.
  ProcessCpu turn(uint32_t base, uint32_t n) {
    agent_.kill(SIGSTOP);
    waitState('T');
    lines_->drain();
    const ProcessCpu before = processCpu(agent_.pid());
    sender_->flood(base, n);
    agent_.kill(SIGCONT);
    waitFoldWindow();
    return waitIdle() - before;
  }

  // Sends attempts [base, base + n) to the agent running, as fast as they
  // go, and waits until it is idle: the warm-up, not measured.
  void warm(uint32_t base, uint32_t n) {
    sender_->flood(base, n);
    waitFoldWindow();
    waitIdle();
  }

  // Lines at the target until the last turn's start (drain() reads the
  // rest).
  uint64_t lines() const { return lines_->lines(); }
  uint64_t anomalies() const { return lines_->anomalies(); }
  uint32_t sinkDrops() const { return lines_->drops(); }
  void drain() { lines_->drain(); }
  bool running() const { return agent_.running(); }
  std::string log() const { return agent_.log(); }

 private:
  // The agent's fold window (the pipeline's default) and a tick of its
  // flow thread: the windows a flood opened have closed.
  static void waitFoldWindow() {
    std::this_thread::sleep_for(flows::PipelineOptions{}.foldWindow +
                                std::chrono::milliseconds(100));
  }

  // Idle: under 1 ms of CPU in 100 ms (an idle agent's ticks and polls take
  // far less), at most 20 s.
  ProcessCpu waitIdle() {
    const auto t0 = std::chrono::steady_clock::now();
    ProcessCpu last = processCpu(agent_.pid());
    while (secondsSince(t0) < 20) {
      checkInterrupted();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ProcessCpu now = processCpu(agent_.pid());
      if (now.total - last.total < 0.001) return now;
      last = now;
    }
    throw Failure("the agent was still busy 20 s after a flood" + agent_.log());
  }

  // Waits until every thread of the agent is in `state` (/proc/.../stat).
  void waitState(char state) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string dir = "/proc/" + std::to_string(agent_.pid()) + "/task";
    while (secondsSince(t0) < 5) {
      bool all = true;
      std::error_code ec;
      for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
        std::string stat;
        std::getline(std::ifstream(task.path() / "stat"), stat);
        const size_t paren = stat.rfind(')');
        if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != state)
          all = false;
      }
      if (all && !ec) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    throw Failure(std::string("the agent's threads did not reach state ") + state);
  }

  testing::Topology topo_;
  testing::AgentHost agent_;
  std::unique_ptr<LineSink> lines_;
  std::unique_ptr<UdpSender> sender_;
};

}  // namespace bulkhead::bench
