// The hardening proof for packaging/systemd/bulkhead-agent.service: the unit
// verifies, scores an exposure of 2.0 or lower, and the agent works end to
// end under the sandbox the unit describes, rebuilt here from the unit file
// itself (no systemd as PID 1 needed): its user and group, exactly its
// capabilities, no_new_privs, its mount restrictions in a private mount
// namespace, and a seccomp filter built from SystemCallFilter= (groups
// resolved by `systemd-analyze syscall-filter`), RestrictAddressFamilies=,
// MemoryDenyWriteExecute=, LockPersonality= and RestrictNamespaces=, as
// systemd applies them. A unit setting the proof does not know fails it, so
// every new hardening line gets looked at.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = BULKHEAD_BINARY_DIR;
const fs::path kUnit = fs::path(BULKHEAD_SOURCE_DIR) / "packaging/systemd/bulkhead-agent.service";

// The [Service] settings, each key with its lines in order.
using Settings = std::map<std::string, std::vector<std::string>>;

Settings parseService(const std::string& text) {
  Settings out;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      section = line;
      continue;
    }
    const auto eq = line.find('=');
    if (section != "[Service]" || eq == std::string::npos) continue;
    out[line.substr(0, eq)].push_back(line.substr(eq + 1));
  }
  return out;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

std::string one(const Settings& s, const std::string& key) {
  auto it = s.find(key);
  return it == s.end() || it->second.empty() ? "" : it->second.back();
}

bool yes(const Settings& s, const std::string& key) {
  const auto v = one(s, key);
  return v == "yes" || v == "true" || v == "1" || v == "on";
}

// `systemd-analyze syscall-filter @group`, nested groups resolved.
std::set<std::string> resolveGroup(const std::string& group) {
  const auto r = sh("systemd-analyze syscall-filter --no-pager " + group + " 2>&1");
  EXPECT_TRUE(r.ok()) << r.out;
  std::set<std::string> out;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);  // the group's own name
  while (std::getline(in, line)) {
    const auto w = words(line);
    if (w.empty() || w[0][0] == '#') continue;
    if (w[0][0] == '@') {
      for (auto& n : resolveGroup(w[0]))
        out.insert(n);
    } else {
      out.insert(w[0]);
    }
  }
  EXPECT_FALSE(out.empty()) << group;
  return out;
}

// SystemCallFilter= as systemd reads it: an allow-list when the first line
// is not inverted (and then @default is allowed too); later lines add, "~"
// lines take away.
std::set<std::string> allowedSyscalls(const Settings& s) {
  std::set<std::string> allowed;
  const auto it = s.find("SystemCallFilter");
  if (it == s.end()) return allowed;
  bool first = true;
  for (auto v : it->second) {
    const bool invert = !v.empty() && v[0] == '~';
    if (invert) v = v.substr(1);
    if (first) {
      EXPECT_FALSE(invert) << "the proof expects an allow-list";
      allowed = resolveGroup("@default");
      first = false;
    }
    for (const auto& w : words(v)) {
      const auto names = w[0] == '@' ? resolveGroup(w) : std::set<std::string>{w};
      for (const auto& n : names)
        invert ? (void)allowed.erase(n) : (void)allowed.insert(n);
    }
  }
  return allowed;
}

std::string capsForSetpriv(const std::string& list) {
  std::string out = "-all";
  for (auto w : words(list)) {
    EXPECT_EQ(w.rfind("CAP_", 0), 0u) << w;
    std::transform(w.begin(), w.end(), w.begin(), ::tolower);
    out += ",+" + w.substr(4);
  }
  return out;
}

std::string familyNumbers(const std::string& list) {
  static const std::map<std::string, int> kFamilies = {
      {"AF_UNIX", 1}, {"AF_INET", 2}, {"AF_INET6", 10}, {"AF_NETLINK", 16}, {"AF_PACKET", 17}};
  std::string out;
  for (const auto& w : words(list)) {
    auto it = kFamilies.find(w);
    EXPECT_NE(it, kFamilies.end()) << "address family the proof does not know: " << w;
    if (it == kFamilies.end()) continue;
    out += (out.empty() ? "" : ",") + std::to_string(it->second);
  }
  return out;
}

// An id free in both the user and group databases, from systemd's range
// for dynamic users (61184-65519), as DynamicUser= would allocate.
uid_t freeId() {
  for (uid_t id = 61184 + getpid() % 4000; id < 65519; ++id)
    if (!getpwuid(id) && !getgrgid(id)) return id;
  return 0;
}

// Settings the proof does not rebuild, and why that is sound: each only
// takes away something the agent never uses, and none can break it in a
// way the rebuilt parts would not show.
const std::set<std::string> kNotRebuilt = {
    "Type", "NotifyAccess", "WatchdogSec", "ExecStart", "ExecReload", "Restart", "RestartSec",
    // Services and their timing: covered by notify_test.
    "ConfigurationDirectory",  // /etc/bulkhead, read-only anyway
    "ProtectKernelModules",    // no module loading by the agent (the kernel's own
                               // autoload of nf_tables modules is not the agent's)
    "ProtectKernelLogs",       // no /dev/kmsg, no syslog(2)
    "ProtectClock",            // clock calls are outside the filter already
    "ProtectHostname",         // the agent reads the host name only
    "RestrictRealtime",        // the agent never asks for realtime scheduling
    "RestrictSUIDSGID",        // it never creates set-id files
    "RemoveIPC", "KeyringMode", "PrivateMounts", "DevicePolicy"};

const std::set<std::string> kRebuilt = {"DynamicUser",
                                        "User",
                                        "Group",
                                        "SupplementaryGroups",
                                        "CapabilityBoundingSet",
                                        "AmbientCapabilities",
                                        "NoNewPrivileges",
                                        "StateDirectory",
                                        "StateDirectoryMode",
                                        "RuntimeDirectory",
                                        "RuntimeDirectoryMode",
                                        "UMask",
                                        "ProtectSystem",
                                        "ProtectHome",
                                        "PrivateTmp",
                                        "PrivateDevices",
                                        "ProtectProc",
                                        "ProcSubset",
                                        "ProtectKernelTunables",
                                        "ProtectControlGroups",
                                        "RestrictNamespaces",
                                        "MemoryDenyWriteExecute",
                                        "LockPersonality",
                                        "RestrictAddressFamilies",
                                        "SystemCallArchitectures",
                                        "SystemCallFilter",
                                        "LimitNOFILE"};

const char* const kPolicy = kBillingPolicy;

class HardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    ASSERT_TRUE(sh("command -v systemd-analyze setpriv unshare socat").ok())
        << "systemd, util-linux and socat are needed (packaging/install-deps.sh)";
    // Under /run, not /tmp: the sandbox gets its own /tmp.
    dir_ = fs::path("/run") / ("bht-hard-" + std::to_string(getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "policies");
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    std::ofstream(dir_ / "policies/policy.yaml") << kPolicy;
    unitText_ = readAll(kUnit);
    ASSERT_FALSE(unitText_.empty()) << kUnit;
  }
  void TearDown() override {
    agent_.reset();
    procs_.clear();
    topo_.reset();
    fs::remove_all(dir_);
  }

  // The shell script that rebuilds the unit's sandbox around the agent, in
  // a private mount namespace, and execs it.
  std::string launcher(const Settings& s, const std::string& agentArgs) {
    std::vector<std::string> unknown;
    for (const auto& [key, _] : s)
      if (!kRebuilt.count(key) && !kNotRebuilt.count(key)) unknown.push_back(key);
    EXPECT_TRUE(unknown.empty()) << "unit settings the proof does not know: "
                                 << ::testing::PrintToString(unknown);
    // Identity.
    uid_ = 0;
    gid_ = 0;
    if (yes(s, "DynamicUser")) {
      uid_ = freeId();
      gid_ = uid_;
    } else if (!one(s, "User").empty()) {
      const passwd* pw = getpwnam(one(s, "User").c_str());
      EXPECT_NE(pw, nullptr) << "User=" << one(s, "User");
      if (pw) uid_ = pw->pw_uid, gid_ = pw->pw_gid;
    }
    if (!one(s, "Group").empty()) {
      // DynamicUser= allocates a group that does not exist yet.
      if (const group* g = getgrnam(one(s, "Group").c_str())) {
        gid_ = g->gr_gid;
      } else {
        EXPECT_TRUE(yes(s, "DynamicUser")) << "no group " << one(s, "Group");
      }
    }
    std::string groups = "--clear-groups";
    if (!one(s, "SupplementaryGroups").empty()) {
      groups = "--groups ";
      for (const auto& g : words(one(s, "SupplementaryGroups"))) {
        const group* gr = getgrnam(g.c_str());
        EXPECT_NE(gr, nullptr) << g;
        if (gr) groups += std::to_string(gr->gr_gid) + ",";
      }
      groups.pop_back();
    }
    // Directories systemd would create and hand to the user.
    auto makeDir = [&](const std::string& key, const std::string& modeKey, const fs::path& base) {
      const fs::path d = base / one(s, key);
      fs::create_directories(d);
      EXPECT_EQ(::chown(d.c_str(), uid_, gid_), 0);
      const std::string mode = one(s, modeKey).empty() ? "0755" : one(s, modeKey);
      EXPECT_EQ(::chmod(d.c_str(), mode_t(std::stoul(mode, nullptr, 8))), 0);
      return d;
    };
    stateDir_ = makeDir("StateDirectory", "StateDirectoryMode", dir_ / "state");
    runtimeDir_ = makeDir("RuntimeDirectory", "RuntimeDirectoryMode", dir_ / "run");

    std::ostringstream sc;
    sc << "set -e\nmount --make-rprivate /\n";
    std::set<std::string> writable = {stateDir_.string(), runtimeDir_.string()};
    for (const auto& w : writable)
      sc << "mount --bind " << w << " " << w << "\n";
    if (yes(s, "PrivateTmp")) {
      sc << "mount -t tmpfs -o mode=1777 tmpfs /tmp\nmount -t tmpfs -o mode=1777 tmpfs /var/tmp\n";
      writable.insert("/tmp");
      writable.insert("/var/tmp");
    }
    if (yes(s, "ProtectHome"))
      sc << "for d in /home /root /run/user; do [ -d $d ] && mount -t tmpfs -o mode=000 tmpfs $d; "
            "done; true\n";
    if (yes(s, "PrivateDevices")) {
      // Only the basic pseudo devices, as systemd's private /dev.
      const std::string d = (dir_ / "dev").string();
      sc << "mkdir -p " << d << "\nmount -t tmpfs -o mode=755,nosuid,noexec tmpfs " << d << "\n"
         << "for n in null zero full random urandom tty; do touch " << d << "/$n; mount --bind "
         << "/dev/$n " << d << "/$n; done\n"
         << "mkdir " << d << "/shm && mount -t tmpfs -o mode=1777 tmpfs " << d << "/shm\n"
         << "ln -s /proc/self/fd " << d << "/fd\n"
         << "if [ -L /dev/log ]; then ln -s \"$(readlink /dev/log)\" " << d << "/log; fi\n"
         << "mount --move " << d << " /dev\n";
    }
    const std::string procSubset = one(s, "ProcSubset");
    const std::string protectProc = one(s, "ProtectProc");
    if (!protectProc.empty() || !procSubset.empty()) {
      std::string opts = "hidepid=" + (protectProc.empty() ? "default" : protectProc);
      if (procSubset == "pid") opts += ",subset=pid";
      sc << "mount -t proc -o " << opts << " proc /proc\n";
    }
    if (yes(s, "ProtectKernelTunables") && procSubset != "pid")
      sc << "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys\n";
    if (one(s, "ProtectSystem") == "strict") {
      // Every mount read-only but the writable ones, /dev, /proc (and /sys
      // unless the kernel's tunables or cgroups are protected: then also).
      std::string keep = "^/dev(/|$)|^/proc(/|$)";
      if (!yes(s, "ProtectKernelTunables")) keep += "|^/sys(/|$)";
      for (const auto& w : writable)
        keep += "|^" + w + "$";
      sc << "awk '{print $5}' /proc/self/mountinfo | grep -Ev '" << keep << "' | sort -u | "
         << "while read m; do mount -o remount,bind,ro \"$m\" 2>/dev/null || "
         << "{ echo \"cannot make $m read-only\" >&2; exit 1; }; done\n";
    } else {
      ADD_FAILURE() << "the proof expects ProtectSystem=strict";
    }
    if (!one(s, "UMask").empty()) sc << "umask " << one(s, "UMask") << "\n";
    // Where the test host's hard limit is lower (a container without
    // CAP_SYS_RESOURCE), the agent gets that: stricter than the unit.
    if (!one(s, "LimitNOFILE").empty())
      sc << "ulimit -n " << one(s, "LimitNOFILE")
         << " 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"\n";

    // The seccomp side.
    std::ofstream(dir_ / "allow.txt") << [&] {
      std::string all;
      for (const auto& n : allowedSyscalls(s))
        all += n + "\n";
      return all;
    }();
    EXPECT_EQ(one(s, "SystemCallArchitectures"), "native");
    // The programs run from the test's own directory: a build tree under
    // /tmp would be hidden by the sandbox's private /tmp.
    const fs::path bin = dir_ / "bin";
    fs::create_directories(bin);
    fs::permissions(bin, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
    for (const char* p : {"tests/seccomp_exec", "bulkhead-agent"})
      fs::copy_file(fs::path(kBin) / p, bin / fs::path(p).filename(),
                    fs::copy_options::overwrite_existing);
    std::string seccomp =
        (bin / "seccomp_exec").string() + " --allow " + (dir_ / "allow.txt").string();
    if (!one(s, "RestrictAddressFamilies").empty())
      seccomp += " --families " + familyNumbers(one(s, "RestrictAddressFamilies"));
    if (yes(s, "MemoryDenyWriteExecute")) seccomp += " --mdwe";
    if (yes(s, "LockPersonality")) seccomp += " --lock-personality";
    if (yes(s, "RestrictNamespaces")) seccomp += " --restrict-namespaces";

    EXPECT_EQ(one(s, "CapabilityBoundingSet").empty(), false) << "no CapabilityBoundingSet=";
    const std::string bounding = capsForSetpriv(one(s, "CapabilityBoundingSet"));
    const std::string ambient = capsForSetpriv(one(s, "AmbientCapabilities"));
    EXPECT_TRUE(yes(s, "NoNewPrivileges") || yes(s, "DynamicUser"));
    sc << "exec setpriv --reuid " << uid_ << " --regid " << gid_ << " " << groups
       << " --bounding-set " << bounding << " --inh-caps " << ambient << " --ambient-caps "
       << ambient << " --no-new-privs " << seccomp << " -- " << (bin / "bulkhead-agent").string()
       << " " << agentArgs << "\n";
    return sc.str();
  }

  void startAgent(const std::string& unitText) {
    const Settings s = parseService(unitText);
    // The shipped config names the unit's group as the socket group; where
    // that group exists (the package made it), do the same.
    std::string group;
    if (!one(s, "Group").empty() && getgrnam(one(s, "Group").c_str()))
      group = " --socket-group " + one(s, "Group");
    const std::string script = launcher(
        s, "--listen unix://" + (dir_ / "run/bulkhead/agent.sock").string() + " --state-dir " +
               (dir_ / "state/bulkhead").string() + " --policies " + (dir_ / "policies").string() +
               " --syslog udp://127.0.0.1:10514 --flow-format json" + group);
    std::ofstream(dir_ / "launch.sh") << script;
    agent_ = std::make_unique<Process>(topo_->hv(), "exec unshare -m --propagation private sh " +
                                                        (dir_ / "launch.sh").string() + " 2>>" +
                                                        (dir_ / "agent.log").string());
  }

  void makeTopology() {
    topo_ = std::make_unique<Topology>();
    topo_->addHost("vbill1", "192.0.2.10", "");
    auto& server = topo_->addHost("vsrv1", "198.51.100.10", "");
    for (int port : {5432, 22})
      procs_.push_back(std::make_unique<Process>(*server.ns, tcpListenCmd(port, false)));
    waitListening(*server.ns, 5432, false);
    // The SIEM: a UDP receiver on the hypervisor's loopback.
    procs_.push_back(std::make_unique<Process>(
        topo_->hv(), "exec socat -u UDP-RECV:10514,bind=127.0.0.1 OPEN:" +
                         (dir_ / "flows.log").string() + ",creat,append"));
    waitListening(topo_->hv(), 10514, true);
  }

  CmdResult cli(const std::string& args) const {
    return sh(kBin + "/bulkhead --agent unix://" + (dir_ / "run/bulkhead/agent.sock").string() +
              " " + args);
  }
  std::string log() const { return readAll(dir_ / "agent.log"); }

  fs::path dir_, stateDir_, runtimeDir_;
  std::string unitText_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::unique_ptr<Topology> topo_;
  std::vector<std::unique_ptr<Process>> procs_;
  std::unique_ptr<Process> agent_;
};

// A field of /proc/PID/status.
std::string procStatus(pid_t pid, const std::string& field) {
  std::istringstream in(readAll("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return words(line.substr(field.size() + 1)).at(0);
  return "";
}

TEST_F(HardeningTest, UnitVerifiesAndScoresTwoOrLower) {
  // verify wants ExecStart= to exist: the same unit, pointed at the build.
  std::string text = unitText_;
  text = std::regex_replace(text, std::regex("ExecStart=/usr/bin/bulkhead-agent"),
                            "ExecStart=" + kBin + "/bulkhead-agent");
  ASSERT_NE(text, unitText_) << "ExecStart= is not /usr/bin/bulkhead-agent";
  fs::create_directories(dir_ / "units");
  std::ofstream(dir_ / "units/bulkhead-agent.service") << text;
  auto verify =
      sh("systemd-analyze verify " + (dir_ / "units/bulkhead-agent.service").string() + " 2>&1");
  EXPECT_TRUE(verify.ok()) << verify.out;
  EXPECT_EQ(verify.out, "") << "warnings";

  auto security =
      sh("systemd-analyze security --no-pager --offline=true " + kUnit.string() + " 2>&1");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(security.out, m,
                                std::regex(R"(Overall exposure level for \S+: ([0-9.]+))")))
      << security.out;
  const double exposure = std::stod(m[1]);
  RecordProperty("exposure", m[1].str());
  EXPECT_LE(exposure, 2.0) << security.out;

  // The workload managers' drop-ins: each orders its unit after the agent
  // and pulls it in; each verifies against a stand-in for that unit.
  for (const std::string unit : {"libvirtd", "containerd", "docker", "podman"}) {
    const fs::path dropIn = kUnit.parent_path() / (unit + ".service.d/bulkhead.conf");
    const auto s = readAll(dropIn);
    EXPECT_NE(s.find("\nAfter=bulkhead-agent.service\n"), std::string::npos) << dropIn;
    EXPECT_NE(s.find("\nWants=bulkhead-agent.service\n"), std::string::npos) << dropIn;
    fs::create_directories(dir_ / "units" / (unit + ".service.d"));
    fs::copy_file(dropIn, dir_ / "units" / (unit + ".service.d/bulkhead.conf"));
    std::ofstream(dir_ / "units" / (unit + ".service")) << "[Service]\nExecStart=/bin/true\n";
    auto v =
        sh("systemd-analyze verify " + (dir_ / "units" / (unit + ".service")).string() + " 2>&1");
    EXPECT_TRUE(v.ok() && v.out.empty()) << unit << ": " << v.out;
  }
}

TEST_F(HardeningTest, AgentWorksEndToEndInsideTheUnitsSandbox) {
  makeTopology();
  startAgent(unitText_);
  ASSERT_TRUE(waitFor([&] { return cli("status").ok(); }, 15000)) << log();

  // It really runs as the unit says.
  const pid_t pid = agent_->pid();
  EXPECT_EQ(procStatus(pid, "Uid"), std::to_string(uid_));
  EXPECT_EQ(procStatus(pid, "Gid"), std::to_string(gid_));
  EXPECT_EQ(procStatus(pid, "CapEff"), "0000000000001000") << "CAP_NET_ADMIN only";
  EXPECT_EQ(procStatus(pid, "CapBnd"), "0000000000001000");
  EXPECT_EQ(procStatus(pid, "NoNewPrivs"), "1");
  EXPECT_EQ(procStatus(pid, "Seccomp"), "2");
  EXPECT_GE(std::stoi(procStatus(pid, "Seccomp_filters")), 5);

  // Inside the unit's file system: read-only root, private /tmp and /dev,
  // writable state (from outside, through the agent's own mount table).
  std::map<std::string, std::pair<std::string, std::string>> mounts;  // point -> (options, type)
  {
    std::istringstream in(readAll("/proc/" + std::to_string(pid) + "/mountinfo"));
    for (std::string line; std::getline(in, line);) {
      const auto w = words(line);
      const auto dash = std::find(w.begin(), w.end(), "-");
      if (w.size() < 6 || dash == w.end() || dash + 1 == w.end()) continue;
      mounts[w[4]] = {w[5], *(dash + 1)};
    }
  }
  EXPECT_EQ(mounts["/"].first.substr(0, 2), "ro");
  EXPECT_EQ(mounts["/tmp"].second, "tmpfs");
  EXPECT_EQ(mounts["/dev"].second, "tmpfs");
  EXPECT_EQ(mounts[stateDir_.string()].first.substr(0, 2), "rw");
  EXPECT_EQ(mounts[runtimeDir_.string()].first.substr(0, 2), "rw");
  // The filter resolved from systemd's groups, minus the removed ones.
  const auto allowed = allowedSyscalls(parseService(unitText_));
  EXPECT_TRUE(allowed.count("sendmsg") && allowed.count("epoll_wait") && allowed.count("execve"));
  EXPECT_FALSE(allowed.count("chown") || allowed.count("setuid") || allowed.count("setrlimit") ||
               allowed.count("mount") || allowed.count("bpf"));

  // Policy applied from --policies, state saved, socket served with the
  // unit's group.
  EXPECT_TRUE(fs::exists(dir_ / "state/bulkhead/state.pb")) << log();
  struct stat sock {};
  ASSERT_EQ(::stat((dir_ / "run/bulkhead/agent.sock").c_str(), &sock), 0);
  EXPECT_EQ(sock.st_gid, gid_);
  EXPECT_EQ(sock.st_mode & 0777, 0660u);

  // A CLI call changes the kernel: a workload registered and enforced.
  auto add = cli("workload add billing-1 --app billing --iface vbill1 --addr 192.0.2.10");
  ASSERT_TRUE(add.ok()) << add.out << log();
  const Netns& billing = *topo_->host("vbill1").ns;
  EXPECT_TRUE(tcpProbe(billing, "198.51.100.10", 5432).ok);
  EXPECT_FALSE(tcpProbe(billing, "198.51.100.10", 22, 2.0).ok);

  // NFLOG read and the denied flow exported to the SIEM.
  EXPECT_TRUE(waitFor(
      [&] {
        const auto f = readAll(dir_ / "flows.log");
        return f.find("192.0.2.10") != std::string::npos && f.find("deny") != std::string::npos;
      },
      5000))
      << readAll(dir_ / "flows.log") << log();
  const auto status = cli("status --json");
  EXPECT_GE(jsonInt(status.out, "exported"), 1u) << status.out;

  // SIGHUP reload works in the sandbox too; still alive afterwards.
  agent_->kill(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(cli("status").ok()) << log();
  EXPECT_TRUE(agent_->running()) << log();
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000), 0) << log();
}

// The proof has teeth: the same sandbox without a thing the agent needs
// stops it.
TEST_F(HardeningTest, SandboxWithoutNetlinkStopsTheAgent) {
  makeTopology();
  const std::string broken =
      std::regex_replace(unitText_, std::regex(" AF_NETLINK"), std::string(""));
  ASSERT_NE(broken, unitText_);
  startAgent(broken);
  EXPECT_NE(agent_->wait(10000), 0) << log();
  EXPECT_FALSE(cli("status").ok());
}

}  // namespace
}  // namespace bulkhead::testing
