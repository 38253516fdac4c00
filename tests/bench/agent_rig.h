// The real agent for the benches that time a whole process against it
// (bench_hooks, bench_register): in a namespace of its own, its state on
// disk under a scratch directory, one small policy pushed.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "bench_util.h"

namespace bulkhead::bench {

inline constexpr const char* kRigPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: postgres-prod}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32]
      ports: [tcp/5432]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: billing}
spec:
  egress:
    - to: [postgres-prod]
)";

class AgentRig {
 public:
  // `base`: where the scratch directory goes (its disk is what the
  // journal's flush costs); `name`: the bench's, for the directory's name.
  AgentRig(const std::filesystem::path& base, const std::string& name, const std::string& binDir)
      : dir(base / ("bh-" + name + "-" + std::to_string(getpid()))),
        made_(dir),
        socket("unix://" + (dir / "agent.sock").string()),
        agent_(hv, "exec " + binDir + "/bulkhead-agent --listen " + socket + " --state-dir " +
                       (dir / "state").string() + " 2>>" + (dir / "agent.log").string()),
        cli(binDir + "/bulkhead --agent " + socket + " ") {
    if (!testing::waitFor([&] { return testing::sh(cli + "status").ok(); }, 10000))
      throw Failure("agent did not start: " + readFile(dir / "agent.log"));
    std::ofstream(dir / "policy.yaml") << kRigPolicy;
    if (auto p = testing::sh(cli + "push " + (dir / "policy.yaml").string()); !p.ok())
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
  const std::string socket;

 private:
  testing::Process agent_;

 public:
  const std::string cli;  // "bulkhead --agent SOCKET "
};

}  // namespace bulkhead::bench
