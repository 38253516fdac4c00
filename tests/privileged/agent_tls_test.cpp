// The agent's TCP listener: TLS with client-certificate verification. A
// client whose certificate the configured CA signed is served; one without a
// certificate, or with one the CA did not sign, is refused.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/agent_host.h"
#include "support/certs.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = binaryDir();

class AgentTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("tls");
    // Test certificates, made here: a CA, the agent's certificate (for
    // 127.0.0.1), a controller's client certificate signed by the CA, and a
    // rogue client certificate signed by nobody we trust.
    for (const auto& made :
         {makeTestCa(dir_),
          makeSignedCert(dir_, "agent", "/CN=localhost",
                         "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
          makeSignedCert(dir_, "client", "/CN=controller", "extendedKeyUsage=clientAuth"),
          makeSelfSignedCert(dir_, "rogue", "/CN=controller")})
      ASSERT_TRUE(made.ok()) << made.out;
    port_ = 20000 + getpid() % 20000;
    const std::string d = dir_.string();
    agent_ = std::make_unique<AgentHost>(hv_, dir_);
    ASSERT_NO_FATAL_FAILURE(agent_->start("--listen tcp://127.0.0.1:" + std::to_string(port_) +
                                          " --tls-cert " + d + "/agent.crt --tls-key " + d +
                                          "/agent.key --tls-client-ca " + d + "/ca.crt"));
  }

  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }

  CmdResult status(const std::string& tls) const {
    // The TCP listener is on the hypervisor namespace's loopback.
    return hv_.exec(kBin + "/bulkhead --agent tcp://127.0.0.1:" + std::to_string(port_) + " " +
                    tls + " status");
  }

  std::string log() const {
    std::ifstream in(dir_ / "agent.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  Netns hv_;
  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<AgentHost> agent_;
};

TEST_F(AgentTlsTest, CaSignedClientIsServedOthersAreRefused) {
  const std::string d = dir_.string();
  auto good = status("--tls-ca " + d + "/ca.crt --tls-cert " + d + "/client.crt --tls-key " + d +
                     "/client.key");
  EXPECT_EQ(good.status, 0) << good.out << log();
  auto noCert = status("--tls-ca " + d + "/ca.crt");
  EXPECT_EQ(noCert.status, 1) << noCert.out;
  auto rogue = status("--tls-ca " + d + "/ca.crt --tls-cert " + d + "/rogue.crt --tls-key " + d +
                      "/rogue.key");
  EXPECT_EQ(rogue.status, 1) << rogue.out;
  auto noTls = status("");
  EXPECT_EQ(noTls.status, 2) << "tcp:// without TLS flags is a usage error: " << noTls.out;
}

TEST_F(AgentTlsTest, TcpListenerWithoutTlsRefusesToStart) {
  Netns ns;
  Process agent(
      ns, "exec " + kBin + "/bulkhead-agent --listen tcp://127.0.0.1:" + std::to_string(port_ + 1) +
              " --state-dir " + dir_.string() + "/state2 2>>" + dir_.string() + "/agent2.log");
  EXPECT_EQ(agent.wait(5000), 2);
  std::ifstream in(dir_ / "agent2.log");
  const std::string log2(std::istreambuf_iterator<char>(in), {});
  EXPECT_NE(log2.find("TCP listeners need --tls-cert"), std::string::npos) << log2;
}

}  // namespace
}  // namespace bulkhead::testing
