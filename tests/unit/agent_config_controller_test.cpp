// The agent's controller settings: --controller, --controller-ca/-cert/-key
// and --host, as flags and config keys, and the link's options read from
// them (runtime.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bulkhead/agent/config.h"
#include "bulkhead/agent/runtime.h"

namespace bulkhead::agent {
namespace {

namespace fs = std::filesystem;

bool mentions(const Result<AgentConfig>& r, const std::string& part) {
  return !r.ok() && r.error().message.find(part) != std::string::npos;
}

class AgentConfigControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bh-agent-config-ctl-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(AgentConfigControllerTest, NoControllerByDefaultAndTheHostIsTheMachines) {
  auto c = parseAgentArgs({});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->controllers.empty());
  EXPECT_EQ(c->host, "");
  EXPECT_EQ(agentHost(*c), hostName());
  auto named = parseAgentArgs({"--host", "hv-07.example"});
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_EQ(agentHost(*named), "hv-07.example");
  EXPECT_EQ(coreOptions(*named, agentHost(*named)).host, "hv-07.example");
}

TEST_F(AgentConfigControllerTest, ControllersAreAListInOrderFromFlagsOrTheFile) {
  auto flags = parseAgentArgs({"--controller", "unix:///run/ctl-a.sock,unix:///run/ctl-b.sock",
                               "--controller", "unix:///run/ctl-c.sock"});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->controllers,
            (std::vector<std::string>{"unix:///run/ctl-a.sock", "unix:///run/ctl-b.sock",
                                      "unix:///run/ctl-c.sock"}));
  const std::string file = write("agent.yaml",
                                 "controller:\n  - tcp://ctl-1.example:7444\n"
                                 "  - tcp://[2001:db8::7]:7444\n"
                                 "controllerCA: /etc/bulkhead/ctl-ca.pem\n"
                                 "controller-cert: /etc/bulkhead/host.pem\n"
                                 "controllerKey: /etc/bulkhead/host.key\nhost: hv-07\n");
  auto fromFile = parseAgentArgs({"--config", file});
  ASSERT_TRUE(fromFile.ok()) << fromFile.error().message;
  EXPECT_EQ(fromFile->controllers.size(), 2u);
  EXPECT_EQ(fromFile->controllerCa, "/etc/bulkhead/ctl-ca.pem");
  EXPECT_EQ(fromFile->controllerCert, "/etc/bulkhead/host.pem");
  EXPECT_EQ(fromFile->controllerKey, "/etc/bulkhead/host.key");
  EXPECT_EQ(fromFile->host, "hv-07");
  // Flags replace the file's list.
  auto overridden = parseAgentArgs({"--config", file, "--controller", "unix:///run/c.sock"});
  ASSERT_TRUE(overridden.ok()) << overridden.error().message;
  EXPECT_EQ(overridden->controllers, std::vector<std::string>{"unix:///run/c.sock"});
}

TEST_F(AgentConfigControllerTest, ControllerUrlsAreUnixOrTcp) {
  EXPECT_TRUE(mentions(parseAgentArgs({"--controller", "udp://ctl:7444"}), "--controller"));
  EXPECT_TRUE(mentions(parseAgentArgs({"--controller", "tls://ctl:7444"}), "--controller"));
  EXPECT_TRUE(mentions(parseAgentArgs({"--controller", "http://ctl:7444"}), "--controller"));
  EXPECT_TRUE(mentions(parseAgentArgs({"--controller", "unix:///a.sock,"}), "--controller"));
  EXPECT_TRUE(mentions(parseAgentArgs({"--controller", "tcp://ctl"}), "--controller"));
  EXPECT_FALSE(parseAgentArgs({"--controller", std::string("unix:///a\n.sock")}).ok());
}

TEST_F(AgentConfigControllerTest, TcpControllersNeedTheThreeTlsFiles) {
  auto bare = parseAgentArgs({"--controller", "tcp://ctl.example:7444"});
  EXPECT_TRUE(mentions(bare, "--controller-ca")) << (bare.ok() ? "" : bare.error().message);
  EXPECT_FALSE(
      parseAgentArgs({"--controller", "tcp://ctl.example:7444", "--controller-ca", "/ca.pem"})
          .ok());
  auto full =
      parseAgentArgs({"--controller", "tcp://ctl.example:7444", "--controller-ca", "/ca.pem",
                      "--controller-cert", "/h.pem", "--controller-key", "/h.key"});
  EXPECT_TRUE(full.ok()) << full.error().message;
  // unix:// needs none; a certificate without its key is still refused.
  EXPECT_TRUE(parseAgentArgs({"--controller", "unix:///run/ctl.sock"}).ok());
  EXPECT_TRUE(mentions(
      parseAgentArgs({"--controller", "unix:///run/ctl.sock", "--controller-cert", "/h.pem"}),
      "go together"));
  // TLS files without any controller: a config mistake, said so.
  EXPECT_TRUE(mentions(parseAgentArgs({"--controller-ca", "/ca.pem"}), "no --controller"));
}

TEST_F(AgentConfigControllerTest, HostIsAPlainName) {
  for (const std::string& bad :
       std::vector<std::string>{"", "two words", "-lead", "a/b", "ho\nst", std::string(254, 'a'),
                                "host:1", "h\xc3\xa9"}) {
    EXPECT_TRUE(mentions(parseAgentArgs({"--host", bad}), "--host")) << bad;
  }
  EXPECT_TRUE(parseAgentArgs({"--host", std::string(253, 'a')}).ok());
  EXPECT_TRUE(parseAgentArgs({"--host", "host_A-1.example"}).ok());
}

TEST_F(AgentConfigControllerTest, LinkOptionsReadThePemFiles) {
  const std::string ca =
      write("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  const std::string cert =
      write("h.pem", "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n");
  const std::string key =
      write("h.key", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
  auto c = parseAgentArgs({"--controller", "tcp://ctl.example:7444,unix:///run/ctl.sock",
                           "--controller-ca", ca, "--controller-cert", cert, "--controller-key",
                           key, "--max-bundle-bytes", "1048576"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto o = controllerLinkOptions(*c, "hv-07");
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->controllers, c->controllers);
  EXPECT_EQ(o->host, "hv-07");
  EXPECT_EQ(o->agentVersion, kAgentVersion);
  EXPECT_NE(o->tls.caPem.find("MIIB"), std::string::npos);
  EXPECT_NE(o->tls.certPem.find("MIIC"), std::string::npos);
  EXPECT_NE(o->tls.keyPem.find("MIIE"), std::string::npos);
  EXPECT_GE(o->maxMessageBytes, 1048576);
  EXPECT_EQ(o->keepAlive, kKeepAlivePeriod);

  // A key where the certificate should be, a missing file: named.
  c->controllerCert = key;
  auto swapped = controllerLinkOptions(*c, "hv-07");
  ASSERT_FALSE(swapped.ok());
  EXPECT_NE(swapped.error().message.find("--controller-cert"), std::string::npos)
      << swapped.error().message;
  EXPECT_EQ(swapped.error().code, ErrorCode::kInvalidInput);
  c->controllerCert = (dir_ / "missing.pem").string();
  auto missing = controllerLinkOptions(*c, "hv-07");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("missing.pem"), std::string::npos);
}

}  // namespace
}  // namespace bulkhead::agent
