// The real agent for the benches that time a whole process against it
// (bench_hooks, bench_register): in a namespace of its own, its state on
// disk under a scratch directory, one small policy pushed. The agent is a
// testing::AgentHost, as in the privileged tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "bench_util.h"
#include "support/agent_host.h"

namespace bulkhead::bench {

// The command line of the benches on the rig: --workloads=N --runs=N
// --state-in=DIR (where the rig's directory goes).
struct RigArgs {
  int workloads = 10000;
  int runs = 200;
  std::filesystem::path base = std::filesystem::temp_directory_path();
};

inline RigArgs parseRigArgs(int argc, char** argv) {
  RigArgs out;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--state-in=", 0) == 0)
      out.base = a.substr(11);
    else if (auto v = positiveFlag(a, "--workloads="))
      out.workloads = *v;
    else if (auto r = positiveFlag(a, "--runs="))
      out.runs = *r;
    else
      throw Failure("unknown argument " + a + " (--workloads=N --runs=N --state-in=DIR)");
  }
  return out;
}

// testing::kBillingPolicy is pushed.
class AgentRig {
 public:
  // `base`: where the scratch directory goes (its disk is what the
  // journal's flush costs); `name`: the bench's, for the directory's name.
  AgentRig(const std::filesystem::path& base, const std::string& name, const std::string& binDir)
      : dir(base / ("bh-" + name + "-" + std::to_string(getpid()))),
        made_(dir),
        agent_(hv, dir),
        socket(agent_.socket()),
        cli(binDir + "/bulkhead --agent " + socket + " ") {
    if (!agent_.launch()) throw Failure("agent did not start: " + agent_.log());
    std::ofstream(dir / "policy.yaml") << testing::kBillingPolicy;
    if (auto p = agent_.cli("push " + (dir / "policy.yaml").string()); !p.ok())
      throw Failure("push: " + p.out);
  }

  const std::filesystem::path dir;

 private:
  // Made before the agent starts, removed after it stops.
  struct ScratchDir {
    explicit ScratchDir(const std::filesystem::path& d) : path(d) {
      std::filesystem::create_directories(d);
    }
    ~ScratchDir() { std::filesystem::remove_all(path); }
    std::filesystem::path path;
  } made_;

 public:
  testing::Netns hv;

 private:
  testing::AgentHost agent_;

 public:
  const std::string socket;
  const std::string cli;  // "bulkhead --agent SOCKET "
};

}  // namespace bulkhead::bench
