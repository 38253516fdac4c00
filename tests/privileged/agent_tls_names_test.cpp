// --tls-allowed-names: a client certificate signed by the trusted CA but
// carrying none of the listed names is refused with PERMISSION_DENIED on
// every call; one listed by DNS subjectAltName, by URI subjectAltName or by
// CN is served; the unix socket is unaffected.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bulkhead/v1/agent.grpc.pb.h"
#include "support/agent_host.h"
#include "support/certs.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = binaryDir();

class AgentTlsNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(requirePrivileges());
    dir_ = freshTestDir("tlsnames");
    // All four clients are signed by the trusted CA.
    for (const auto& made :
         {makeTestCa(dir_),
          makeSignedCert(dir_, "agent", "/CN=localhost",
                         "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
          makeSignedCert(dir_, "dns", "/CN=someone-else",
                         "subjectAltName=DNS:ctl.example\nextendedKeyUsage=clientAuth"),
          makeSignedCert(dir_, "uri", "/CN=someone-else",
                         "subjectAltName=URI:spiffe://example/ctl\nextendedKeyUsage=clientAuth"),
          makeSignedCert(dir_, "cn", "/CN=ctl-by-cn", "extendedKeyUsage=clientAuth"),
          makeSignedCert(dir_, "other", "/CN=intruder",
                         "subjectAltName=DNS:intruder.example,URI:spiffe://example/x\n"
                         "extendedKeyUsage=clientAuth")})
      ASSERT_TRUE(made.ok()) << made.out;
    port_ = 20000 + (getpid() + 7) % 20000;
    const std::string d = dir_.string();
    agent_ = std::make_unique<AgentHost>(hv_, dir_);
    ASSERT_NO_FATAL_FAILURE(
        agent_->start("--listen tcp://127.0.0.1:" + std::to_string(port_) + " --tls-cert " + d +
                      "/agent.crt --tls-key " + d + "/agent.key --tls-client-ca " + d +
                      "/ca.crt --tls-allowed-names ctl.example,spiffe://example/ctl,ctl-by-cn"));
  }

  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }

  CmdResult cliAs(const std::string& client, const std::string& command) const {
    const std::string d = dir_.string();
    return hv_.exec(kBin + "/bulkhead --agent tcp://127.0.0.1:" + std::to_string(port_) +
                    " --tls-ca " + d + "/ca.crt --tls-cert " + d + "/" + client +
                    ".crt --tls-key " + d + "/" + client + ".key " + command + " 2>&1");
  }

  std::string log() const { return readAll(dir_ / "agent.log"); }

  Netns hv_;
  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<AgentHost> agent_;
};

TEST_F(AgentTlsNamesTest, OnlyListedNamesAreServed) {
  for (const char* client : {"dns", "uri", "cn"}) {
    auto st = cliAs(client, "status");
    EXPECT_EQ(st.status, 0) << client << ": " << st.out << log();
  }
  // Every call is checked, not only the first of a connection: a read and a
  // change alike.
  for (const char* command : {"status", "workload ls", "quarantine nobody"}) {
    auto st = cliAs("other", command);
    EXPECT_EQ(st.status, 1) << command << ": " << st.out;
    EXPECT_NE(st.out.find("PERMISSION_DENIED"), std::string::npos) << command << ": " << st.out;
  }
  // The code the client library sees, without the CLI in between.
  const std::string d = dir_.string();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = readAll(d + "/ca.crt");
  ssl.pem_cert_chain = readAll(d + "/other.crt");
  ssl.pem_private_key = readAll(d + "/other.key");
  grpc::StatusCode code = grpc::StatusCode::OK;
  hv_.run([&] {
    auto stub = v1::Agent::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::SslCredentials(ssl)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::AgentStatus resp;
    code = stub->GetStatus(&ctx, v1::GetStatusRequest(), &resp).error_code();
  });
  EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED);
  // The refusal is logged with the certificate's names.
  EXPECT_NE(log().find("intruder.example"), std::string::npos) << log();
  // The unix socket (local orchestration) does not present certificates.
  auto local = sh(kBin + "/bulkhead --agent unix://" + d + "/agent.sock status");
  EXPECT_EQ(local.status, 0) << local.out;
}

}  // namespace
}  // namespace bulkhead::testing
