// bulkhead-controller's flags and config file.
#include <gtest/gtest.h>

#include <fstream>

#include "bulkhead/controller/config.h"
#include "controller_harness.h"

namespace bulkhead::controller {
namespace {

TEST(ControllerConfig, Defaults) {
  auto c = parseControllerArgs(
      {"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen, "tcp://0.0.0.0:7444");
  EXPECT_EQ(c->stateDir, "/var/lib/bulkhead-controller");
  EXPECT_EQ(c->hostTtlSeconds, 300u);
}

TEST(ControllerConfig, TcpNeedsMutualTls) {
  auto c = parseControllerArgs({"--listen", "tcp://0.0.0.0:7444", "--tls-cert", "c.pem"});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("--tls-client-ca"), std::string::npos);
  EXPECT_TRUE(parseControllerArgs({"--listen=unix:///run/bulkhead/controller.sock"}));
}

TEST(ControllerConfig, BadValuesNameTheFlag) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--listen", "udp://1.2.3.4:5"},
        {"--listen=unix:///x", "--host-ttl", "0"},
        {"--listen=unix:///x", "--host-ttl", "5m"},
        {"--listen=unix:///x", "--nope", "1"},
        {"--listen=unix:///x", "--state-dir"},
        {"--listen=unix:///x", "stray"}}) {
    auto c = parseControllerArgs(args);
    EXPECT_FALSE(c) << args.back();
  }
  auto c = parseControllerArgs({"--listen=unix:///x", "--host-ttl", "abc"});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("--host-ttl"), std::string::npos);
}

TEST(ControllerConfig, FileKeysMirrorFlagsAndFlagsWin) {
  testing_util::TempDir dir;
  const std::string file = dir.path + "/controller.yaml";
  std::ofstream(file) << "listen: unix:///run/bulkhead/controller.sock\n"
                         "stateDir: /srv/ctl\n"
                         "host-ttl: 60\n"
                         "policies: /etc/bulkhead/fleet\n";
  auto c = parseControllerArgs({"--config", file, "--host-ttl", "90"});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen, "unix:///run/bulkhead/controller.sock");
  EXPECT_EQ(c->stateDir, "/srv/ctl");
  EXPECT_EQ(c->policiesDir, "/etc/bulkhead/fleet");
  EXPECT_EQ(c->hostTtlSeconds, 90u);
  std::ofstream(file) << "listen: unix:///x\nbogus: 1\n";
  c = parseControllerArgs({"--config", file});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find(file + ":2:"), std::string::npos) << c.error().message;
}

}  // namespace
}  // namespace bulkhead::controller
