// bulkhead-libvirt-hook end to end: the real hook binary, called as libvirt
// calls a qemu hook (argv, domain XML in libvirt's schema on stdin), against
// the real bulkhead-agent in a hypervisor namespace holding a real tap.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/agent_host.h"
#include "support/hooks.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kBin = BULKHEAD_BINARY_DIR;

// A started guest as libvirt hands it to the hook: a routed tap
// (type='ethernet', managed='no': the tap exists before the guest starts).
std::string domainXml(const std::string& name, const std::string& tap,
                      const std::string& metadata) {
  return R"(<domain type='kvm' id='7'>
  <name>)" +
         name + R"(</name>
  <uuid>6a1d9e2c-3b4f-4c5d-8e9f-0a1b2c3d4e5f</uuid>
  <metadata>)" +
         metadata + R"(</metadata>
  <memory unit='KiB'>524288</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='ethernet'>
      <mac address='52:54:00:12:34:56'/>
      <target dev=')" +
         tap + R"(' managed='no'/>
      <ip address='192.0.2.1' prefix='32' peer='192.0.2.77'/>
      <model type='virtio'/>
      <alias name='net0'/>
    </interface>
  </devices>
</domain>
)";
}

constexpr const char* kMeta =
    R"(<bulkhead:workload xmlns:bulkhead="urn:bulkhead:workload:1" app="billing"/>)";

class HooksLibvirtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("virt");
    hv_ = std::make_unique<Netns>();
    auto tap = hv_->exec("ip tuntap add dev vnet7 mode tap && ip link set vnet7 up");
    ASSERT_TRUE(tap.ok()) << tap.out;
    agent_ = std::make_unique<HookAgent>(*hv_, dir_, failClosedFlags("vnet*"));
    agent_->start();
  }

  void TearDown() override {
    agent_.reset();
    hv_.reset();
    fs::remove_all(dir_);
  }

  // The hook as libvirt runs it: argv and the XML on stdin.
  CmdResult hook(const std::string& domain, const std::string& op, const std::string& sub,
                 const std::string& xml, const std::string& agent = "") {
    const std::string in = (dir_ / "domain.xml").string();
    std::ofstream(in) << xml;
    return hv_->exec("BULKHEAD_AGENT=" + (agent.empty() ? agent_->socket() : agent) + " " + kBin +
                     "/bulkhead-libvirt-hook " + domain + " " + op + " " + sub + " - <" + in);
  }

  json workloads() {
    auto ls = agent_->cli("workload ls --json");
    EXPECT_TRUE(ls.ok()) << ls.out;
    return json::parse(ls.out)["workloads"];
  }
  std::string table() const { return hv_->exec("nft list table inet bulkhead").out; }

  fs::path dir_;
  std::unique_ptr<Netns> hv_;
  std::unique_ptr<HookAgent> agent_;
};

TEST_F(HooksLibvirtTest, StartedRegistersTheTapStoppedRemovesIt) {
  const std::string xml = domainXml("web-7", "vnet7", kMeta);
  auto started = hook("web-7", "started", "begin", xml);
  ASSERT_EQ(started.status, 0) << started.out << agent_->log();
  json list = workloads();
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["name"], "web-7");
  EXPECT_EQ(list[0]["app"], "billing");
  EXPECT_EQ(list[0]["interfaces"], json::array({"vnet7"}));
  EXPECT_EQ(list[0]["addresses"], json::array({"192.0.2.77"}));
  EXPECT_EQ(list[0]["source"], "libvirt");
  EXPECT_EQ(list[0]["owner"], "6a1d9e2c-3b4f-4c5d-8e9f-0a1b2c3d4e5f");
  EXPECT_NE(table().find("\"vnet7\""), std::string::npos) << table();
  // A libvirtd restart: reconnect re-registers (idempotent).
  EXPECT_EQ(hook("web-7", "reconnect", "begin", xml).status, 0);
  EXPECT_EQ(workloads().size(), 1u);

  auto stopped = hook("web-7", "stopped", "end", xml);
  ASSERT_EQ(stopped.status, 0) << stopped.out;
  EXPECT_EQ(workloads().size(), 0u);
  EXPECT_EQ(table().find("\"vnet7\""), std::string::npos) << table();
  // release follows stopped: already gone is fine.
  auto release = hook("web-7", "release", "end", xml);
  EXPECT_EQ(release.status, 0) << release.out;
}

TEST_F(HooksLibvirtTest, DomainWithoutMetadataIsLeftAlone) {
  ASSERT_EQ(agent_->cli("workload add other-1 --app billing --iface vnet7 --addr 192.0.2.9").status,
            0);
  for (const char* op : {"started begin", "stopped end"}) {
    const std::string o(op);
    auto r = hook("plain-1", o.substr(0, o.find(' ')), o.substr(o.find(' ') + 1),
                  domainXml("plain-1", "vnet7", ""));
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("no <bulkhead:workload> metadata; left alone"), std::string::npos)
        << r.out;
    const json list = workloads();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0]["name"], "other-1");  // untouched
  }
}

TEST_F(HooksLibvirtTest, MalformedXmlIsRejectedAndUnreachableAgentFailsTheStart) {
  auto bad = hook("web-7", "started", "begin", "<domain type='kvm'><name>web-7</name><devices>");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("domain XML does not parse: line"), std::string::npos) << bad.out;
  EXPECT_EQ(workloads().size(), 0u);

  // No agent: libvirt gets a failure and does not run the guest unpoliced;
  // and the hook does not hang.
  const auto start = std::chrono::steady_clock::now();
  auto down = hook("web-7", "started", "begin", domainXml("web-7", "vnet7", kMeta),
                   "unix://" + (dir_ / "nobody.sock").string());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(down.status, 0);
  EXPECT_NE(down.out.find("not registered"), std::string::npos) << down.out;
  EXPECT_LT(seconds, 6.0);
}

TEST_F(HooksLibvirtTest, AgainstAnAgentHolding1000Workloads) {
  agent_->registerBulk(1000);
  const std::string xml = domainXml("web-7", "vnet7", kMeta);
  ASSERT_EQ(hook("web-7", "started", "begin", xml).status, 0) << agent_->log();
  EXPECT_EQ(workloads().size(), 1001u);
  EXPECT_NE(table().find("\"vnet7\""), std::string::npos);
  ASSERT_EQ(hook("web-7", "stopped", "end", xml).status, 0);
  EXPECT_EQ(workloads().size(), 1000u);
}

}  // namespace
}  // namespace bulkhead::testing
