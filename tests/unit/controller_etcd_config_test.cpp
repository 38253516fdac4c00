// bulkhead-controller's etcd settings and the host record it stores there
// (no etcd needed: controller_etcd_store_test.cpp runs a real one).
#include <gtest/gtest.h>

#include <fstream>

#include "bulkhead/controller/config.h"
#include "bulkhead/controller/etcd_store.h"
#include "controller_harness.h"

namespace bulkhead::controller {
namespace {

TEST(ControllerEtcdConfig, FlagsAndDefaults) {
  auto c = parseControllerArgs({"--listen=unix:///x"});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->etcdEndpoints.empty());  // the embedded store, as before
  EXPECT_EQ(c->etcdPrefix, "/bulkhead/");
  c = parseControllerArgs({"--listen=unix:///x", "--etcd",
                           "https://10.0.0.1:2379,https://etcd-2.example:2379", "--etcd-ca",
                           "ca.pem", "--etcd-cert", "c.pem", "--etcd-key", "k.pem", "--etcd-prefix",
                           "/prod/bulkhead/"});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->etcdEndpoints,
            (std::vector<std::string>{"https://10.0.0.1:2379", "https://etcd-2.example:2379"}));
  EXPECT_EQ(c->etcdCa, "ca.pem");
  EXPECT_EQ(c->etcdCert, "c.pem");
  EXPECT_EQ(c->etcdKey, "k.pem");
  EXPECT_EQ(c->etcdPrefix, "/prod/bulkhead/");
}

TEST(ControllerEtcdConfig, FileKeys) {
  testing_util::TempDir dir;
  const std::string file = dir.path + "/controller.yaml";
  std::ofstream(file) << "listen: unix:///x\netcd: http://127.0.0.1:2379\netcdPrefix: /t/\n";
  auto c = parseControllerArgs({"--config", file});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->etcdEndpoints, std::vector<std::string>{"http://127.0.0.1:2379"});
  EXPECT_EQ(c->etcdPrefix, "/t/");
}

TEST(ControllerEtcdConfig, RefusedCombinationsNameTheFlags) {
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{"--etcd", "http://127.0.0.1:2379", "--state-dir", "/srv/ctl"}, "--state-dir"},
      {{"--etcd", "http://127.0.0.1:2379", "--etcd-cert", "c.pem"}, "--etcd-key"},
      {{"--etcd-ca", "ca.pem"}, "--etcd"},
      {{"--etcd", "127.0.0.1:2379"}, "--etcd"},
      {{"--etcd", "unix:///run/etcd.sock"}, "--etcd"},
      {{"--etcd", "http://127.0.0.1:2379,"}, "--etcd"},
      {{"--etcd", "http://127.0.0.1:port"}, "--etcd"},
      {{"--etcd", "http://127.0.0.1:2379/v3"}, "--etcd"},
      {{"--etcd", "http://127.0.0.1:2379", "--etcd-prefix", "bulkhead"}, "--etcd-prefix"},
      {{"--etcd", "http://127.0.0.1:2379", "--etcd-prefix", "/bulkhead"}, "--etcd-prefix"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"--listen=unix:///x"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = parseControllerArgs(args);
    ASSERT_FALSE(r) << c.args.back();
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos) << r.error().message;
  }
}

TEST(ControllerEtcdRecord, HostRoundTrip) {
  StoredHost h;
  h.host = "host-a";
  h.agentVersion = "0.1.0";
  h.ackedRevision = 1234;
  h.lastError = "bad";
  h.lastSeenUnixMs = 1700000000000;
  h.controller = "ctl-1#0123abcd";
  h.connected = true;
  h.address = "ipv4:203.0.113.7:40000";
  auto w = testing_util::workload("pay-1", "payments", "192.0.2.10");
  w.set_host("host-a");
  h.workloads.push_back(w);
  auto back = decodeHostRecord(encodeHostRecord(h));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->host, h.host);
  EXPECT_EQ(back->agentVersion, h.agentVersion);
  EXPECT_EQ(back->ackedRevision, h.ackedRevision);
  EXPECT_EQ(back->lastError, h.lastError);
  EXPECT_EQ(back->lastSeenUnixMs, h.lastSeenUnixMs);
  EXPECT_EQ(back->controller, h.controller);
  EXPECT_TRUE(back->connected);
  EXPECT_EQ(back->address, h.address);
  ASSERT_EQ(back->workloads.size(), 1u);
  EXPECT_EQ(back->workloads[0].SerializeAsString(), w.SerializeAsString());
}

TEST(ControllerEtcdRecord, ForeignBytesAreNoRecord) {
  EXPECT_FALSE(decodeHostRecord(""));
  EXPECT_FALSE(decodeHostRecord("hello world, not a record"));
  std::string huge(8, '\xff');
  EXPECT_FALSE(decodeHostRecord(huge + "x"));
  // A record whose workload names another host is refused whole: a
  // controller never takes one host's record for another's workloads.
  StoredHost h;
  h.host = "host-a";
  auto w = testing_util::workload("pay-1", "payments", "192.0.2.10");
  w.set_host("host-b");
  h.workloads.push_back(w);
  EXPECT_FALSE(decodeHostRecord(encodeHostRecord(h)));
}

}  // namespace
}  // namespace bulkhead::controller
