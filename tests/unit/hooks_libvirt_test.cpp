// bulkhead-libvirt-hook's decoding of libvirt's domain XML (libxml2), its
// config file and which operations register or remove (a recording link; the
// real agent and taps run in tests/privileged/hooks_libvirt_test.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "bulkhead/hooks/libvirt.h"

namespace bulkhead::hooks {
namespace {

// A domain as `virsh dumpxml` prints it for a started guest with a routed
// tap (type='ethernet') and one bridged interface.
std::string domainXml(const std::string& metadata, const std::string& extraIface = "") {
  return R"(<domain type='kvm' id='3'>
  <name>web-7</name>
  <uuid>5F2B3C1A-0D1E-4A5B-9C8D-7E6F5A4B3C2D</uuid>
  <metadata>
    <app1:info xmlns:app1="http://example.org/other">ignored</app1:info>
    )" + metadata +
         R"(
  </metadata>
  <memory unit='KiB'>1048576</memory>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='ethernet'>
      <mac address='52:54:00:6b:3c:58'/>
      <target dev='vnet3' managed='no'/>
      <ip address='192.0.2.1' prefix='32' peer='192.0.2.70'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:6b:3c:59'/>
      <source bridge='br0'/>
      <target dev='vnet4'/>
    </interface>)" +
         extraIface + R"(
  </devices>
</domain>
)";
}

constexpr const char* kMeta =
    R"(<bulkhead:workload xmlns:bulkhead="urn:bulkhead:workload:1" app="billing"><bulkhead:address>2001:db8::70</bulkhead:address></bulkhead:workload>)";

struct Recorder : AgentLink {
  std::vector<std::string>* calls;
  std::vector<v1::Workload>* upserts;
  Status upsert(const v1::Workload& w) override {
    calls->push_back("upsert " + w.name());
    upserts->push_back(w);
    return {};
  }
  Status remove(const std::string& name, const std::string& owner) override {
    calls->push_back("remove " + name + " " + owner);
    return makeError(ErrorCode::kNotFound, "gone");
  }
  Result<std::vector<v1::Workload>> list(const std::string&) override {
    return std::vector<v1::Workload>{};
  }
  Status ping() override { return {}; }
};

TEST(LibvirtHookTest, DomainXmlGivesTheRoutedTapsAndAddresses) {
  std::vector<std::string> notes;
  auto w = workloadFromDomainXml(domainXml(kMeta), &notes);
  ASSERT_TRUE(w.ok()) << w.error().message;
  ASSERT_TRUE(w->has_value());
  const v1::Workload& got = **w;
  EXPECT_EQ(got.name(), "web-7");
  EXPECT_EQ(got.app(), "billing");
  ASSERT_EQ(got.interfaces_size(), 1);
  EXPECT_EQ(got.interfaces(0), "vnet3");
  ASSERT_EQ(got.addresses_size(), 2);
  EXPECT_EQ(got.addresses(0), "192.0.2.70");  // the guest's (peer), not the tap's
  EXPECT_EQ(got.addresses(1), "2001:db8::70");
  EXPECT_EQ(got.source(), v1::Workload::SOURCE_LIBVIRT);
  EXPECT_EQ(got.owner(), "5f2b3c1a-0d1e-4a5b-9c8d-7e6f5a4b3c2d");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("vnet4"), std::string::npos);
}

TEST(LibvirtHookTest, NameAttributeAndIpWithoutPeer) {
  const std::string meta =
      R"(<b:workload xmlns:b="urn:bulkhead:workload:1" app="web" name="prod/web-7"/>)";
  const std::string iface =
      R"(<interface type='ethernet'><target dev='vnet9'/><ip address='198.51.100.9' prefix='24'/></interface>)";
  auto w = workloadFromDomainXml(domainXml(meta, iface), nullptr);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ((*w)->name(), "prod/web-7");
  EXPECT_EQ((*w)->interfaces_size(), 2);
  EXPECT_EQ((*w)->addresses(1), "198.51.100.9");
}

TEST(LibvirtHookTest, NoMetadataOrAnotherNamespaceIsNotOurs) {
  auto none = workloadFromDomainXml(domainXml(""), nullptr);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  // Same local name, another namespace: string search would be fooled.
  auto other = workloadFromDomainXml(
      domainXml(R"(<x:workload xmlns:x="urn:example:other" app="billing"/>)"), nullptr);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
}

TEST(LibvirtHookTest, MalformedXmlAndBadMetadataAreRejectedClearly) {
  auto broken = workloadFromDomainXml("<domain><name>x</name><devices></domain>", nullptr);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find("does not parse: line 1"), std::string::npos)
      << broken.error().message;
  auto notDomain = workloadFromDomainXml("<network/>", nullptr);
  ASSERT_FALSE(notDomain.ok());
  EXPECT_NE(notDomain.error().message.find("<domain>"), std::string::npos);
  auto noApp = workloadFromDomainXml(
      domainXml(R"(<b:workload xmlns:b="urn:bulkhead:workload:1"/>)"), nullptr);
  ASSERT_FALSE(noApp.ok());
  EXPECT_NE(noApp.error().message.find("no app"), std::string::npos);
  auto badAddr = workloadFromDomainXml(
      domainXml(
          R"(<b:workload xmlns:b="urn:bulkhead:workload:1" app="x"><b:address>nope</b:address></b:workload>)"),
      nullptr);
  ASSERT_FALSE(badAddr.ok());
  EXPECT_NE(badAddr.error().message.find("bad address \"nope\""), std::string::npos);
  // An external entity is not fetched or expanded.
  auto xxe = workloadFromDomainXml(
      "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
      "<domain><name>&e;</name><metadata>" +
          std::string(kMeta) +
          "</metadata><devices><interface type='ethernet'><target dev='vnet1'/></interface>"
          "</devices></domain>",
      nullptr);
  if (xxe.ok() && xxe->has_value()) {
    EXPECT_EQ((*xxe)->name().find("root"), std::string::npos);
  }
}

TEST(LibvirtHookTest, OperationsRegisterRemoveOrIgnore) {
  std::vector<std::string> calls;
  std::vector<v1::Workload> upserts;
  std::string address;
  auto connect = [&](const std::string& a) -> Result<std::unique_ptr<AgentLink>> {
    address = a;
    auto r = std::make_unique<Recorder>();
    r->calls = &calls;
    r->upserts = &upserts;
    return std::unique_ptr<AgentLink>(std::move(r));
  };
  const std::string xml = domainXml(kMeta);
  EXPECT_EQ(runLibvirtHook({"web-7", "started", "begin", "-"}, xml, "unix:///a.sock",
                           "/nonexistent", connect)
                .exitCode,
            0);
  EXPECT_EQ(runLibvirtHook({"web-7", "reconnect", "begin", "-"}, xml, "unix:///a.sock",
                           "/nonexistent", connect)
                .exitCode,
            0);
  EXPECT_EQ(runLibvirtHook({"web-7", "stopped", "end", "-"}, xml, "unix:///a.sock", "/nonexistent",
                           connect)
                .exitCode,
            0);
  EXPECT_EQ(runLibvirtHook({"web-7", "release", "end", "-"}, xml, "unix:///a.sock", "/nonexistent",
                           connect)
                .exitCode,
            0);
  for (const char* op : {"prepare", "start", "migrate", "restore"})
    EXPECT_EQ(
        runLibvirtHook({"web-7", op, "begin", "-"}, xml, "", "/nonexistent", connect).exitCode, 0);
  EXPECT_EQ(calls, (std::vector<std::string>{"upsert web-7", "upsert web-7",
                                             "remove web-7 5f2b3c1a-0d1e-4a5b-9c8d-7e6f5a4b3c2d",
                                             "remove web-7 5f2b3c1a-0d1e-4a5b-9c8d-7e6f5a4b3c2d"}));
  EXPECT_EQ(address, "unix:///a.sock");

  auto none =
      runLibvirtHook({"vm", "started", "begin", "-"}, domainXml(""), "", "/nonexistent", connect);
  EXPECT_EQ(none.exitCode, 0);
  EXPECT_NE(none.err.find("no <bulkhead:workload> metadata; left alone"), std::string::npos);
  auto bad =
      runLibvirtHook({"vm", "started", "begin", "-"}, "<domain", "", "/nonexistent", connect);
  EXPECT_EQ(bad.exitCode, 1);
  EXPECT_NE(bad.err.find("does not parse"), std::string::npos);
  // Metadata but nothing routed to police: the guest does not start unpoliced.
  auto bridged = runLibvirtHook(
      {"vm", "started", "begin", "-"},
      "<domain><name>vm</name><metadata>" + std::string(kMeta) + "</metadata><devices/></domain>",
      "", "/nonexistent", connect);
  EXPECT_EQ(bridged.exitCode, 1);
  EXPECT_NE(bridged.err.find("no routed tap"), std::string::npos);
  EXPECT_EQ(calls.size(), 4u);
}

TEST(LibvirtHookTest, AgentFromEnvironmentThenConfigFileThenDefault) {
  const auto dir = std::filesystem::temp_directory_path() / ("bh-hook-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "hook.yaml").string();
  std::ofstream(path) << "agent: unix:///run/other/agent.sock\n";
  std::string address;
  auto connect = [&](const std::string& a) -> Result<std::unique_ptr<AgentLink>> {
    address = a;
    return makeError(ErrorCode::kInvalidInput, "stop here");
  };
  const std::string xml = domainXml(kMeta);
  runLibvirtHook({"web-7", "started", "begin", "-"}, xml, "", path, connect);
  EXPECT_EQ(address, "unix:///run/other/agent.sock");
  runLibvirtHook({"web-7", "started", "begin", "-"}, xml, "unix:///env.sock", path, connect);
  EXPECT_EQ(address, "unix:///env.sock");
  runLibvirtHook({"web-7", "started", "begin", "-"}, xml, "", "/nonexistent", connect);
  EXPECT_EQ(address, "unix:///run/bulkhead/agent.sock");
  std::ofstream(path) << "agent: [unclosed\n";
  auto bad = runLibvirtHook({"web-7", "started", "begin", "-"}, xml, "", path, connect);
  EXPECT_EQ(bad.exitCode, 1);
  EXPECT_NE(bad.err.find("hook.yaml"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace bulkhead::hooks
