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
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = BULKHEAD_BINARY_DIR;

class AgentTlsNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(havePrivileges()) << "privileged tests need root, ip and nft";
    sweepStaleNamespaces();
    dir_ = fs::temp_directory_path() / ("bht-tlsnames-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script = "cd " + dir_.string() + " && set -e && openssl req -x509 " + key +
                         " -keyout ca.key -out ca.crt -days 1 -subj /CN=bulkhead-test-ca && " +
                         cert(key, "agent", "/CN=localhost",
                              "subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
                              "extendedKeyUsage=serverAuth\\n");
    // All four clients are signed by the trusted CA.
    script += " && " + cert(key, "dns", "/CN=someone-else",
                            "subjectAltName=DNS:ctl.example\\nextendedKeyUsage=clientAuth\\n");
    script += " && " + cert(key, "uri", "/CN=someone-else",
                            "subjectAltName=URI:spiffe://example/ctl\\n"
                            "extendedKeyUsage=clientAuth\\n");
    script += " && " + cert(key, "cn", "/CN=ctl-by-cn", "extendedKeyUsage=clientAuth\\n");
    script += " && " + cert(key, "other", "/CN=intruder",
                            "subjectAltName=DNS:intruder.example,URI:spiffe://example/x\\n"
                            "extendedKeyUsage=clientAuth\\n");
    auto made = sh(script);
    ASSERT_TRUE(made.ok()) << made.out;
    port_ = 20000 + (getpid() + 7) % 20000;
    const std::string d = dir_.string();
    agent_ = std::make_unique<Process>(
        hv_, "exec " + kBin + "/bulkhead-agent --listen unix://" + d +
                 "/agent.sock --listen tcp://127.0.0.1:" + std::to_string(port_) + " --tls-cert " +
                 d + "/agent.crt --tls-key " + d + "/agent.key --tls-client-ca " + d +
                 "/ca.crt --tls-allowed-names ctl.example,spiffe://example/ctl,ctl-by-cn" +
                 " --state-dir " + d + "/state 2>>" + d + "/agent.log");
    for (int i = 0; i < 250 && !fs::exists(dir_ / "agent.sock"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(fs::exists(dir_ / "agent.sock")) << log();
  }

  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }

  static std::string cert(const std::string& key, const std::string& name,
                          const std::string& subject, const std::string& ext) {
    return "openssl req " + key + " -keyout " + name + ".key -out " + name + ".csr -subj " +
           subject + " && printf '" + ext + "' > " + name + ".ext && openssl x509 -req -in " +
           name + ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile " + name +
           ".ext -out " + name + ".crt";
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
  std::unique_ptr<Process> agent_;
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
