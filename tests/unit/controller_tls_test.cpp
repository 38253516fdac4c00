// Identity over mutual TLS: the host is the client certificate's name (a
// DNS SAN, else the CN); a hello naming another host is refused. The
// certificates are made by the test with the openssl command.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "bulkhead/common/grpc_server_tls.h"
#include "controller_harness.h"

namespace bulkhead::controller {
namespace {

using namespace testing_util;
using Kind = v1::ControllerMessage::MessageCase;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void run(const std::string& cmd) {
  ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
}

// A CA, the controller's certificate and client certificates.
class Pki {
 public:
  Pki() {
    run("cd " + dir_.path +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca");
    issue("controller", "/CN=controller", "DNS:controller.test");
  }
  // `san` empty: a certificate with only a CN.
  void issue(const std::string& name, const std::string& subject, const std::string& san) {
    const std::string d = "cd " + dir_.path + " && ";
    run(d + "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name +
        ".key -out " + name + ".csr -subj " + subject);
    std::ofstream(dir_.path + "/" + name + ".ext")
        << (san.empty() ? "basicConstraints=CA:FALSE\n" : "subjectAltName=" + san + "\n");
    run(d + "openssl x509 -req -in " + name +
        ".csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out " +
        name + ".pem -days 2 -extfile " + name + ".ext");
  }
  std::string path(const std::string& file) const { return dir_.path + "/" + file; }

 private:
  TempDir dir_;
};

class TlsController {
 public:
  explicit TlsController(const Pki& pki) : store_(dir_.path + "/state") {
    core_ = std::make_unique<ControllerCore>(store_, ControllerOptions{});
    EXPECT_TRUE(core_->load());
    service_ = std::make_unique<ControllerService>(*core_);
    auto creds = common::mutualTlsServerCredentials(pki.path("controller.pem"),
                                                    pki.path("controller.key"), pki.path("ca.pem"));
    EXPECT_TRUE(creds);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    server_ = builder.BuildAndStart();
  }
  ~TlsController() {
    server_->Shutdown(std::chrono::system_clock::now() + 500ms);
    core_->stop();
  }
  // Trusts `pki`'s CA; presents `client` of `clientPki` (default: pki).
  std::shared_ptr<grpc::Channel> channel(const Pki& pki, const std::string& client,
                                         const Pki* clientPki = nullptr) const {
    if (!clientPki) clientPki = &pki;
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = slurp(pki.path("ca.pem"));
    ssl.pem_private_key = slurp(clientPki->path(client + ".key"));
    ssl.pem_cert_chain = slurp(clientPki->path(client + ".pem"));
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("controller.test");
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                     grpc::SslCredentials(ssl), args);
  }
  ControllerCore& core() { return *core_; }

 private:
  TempDir dir_;
  FileStore store_;
  std::unique_ptr<ControllerCore> core_;
  std::unique_ptr<ControllerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST(ControllerTls, HostNameComesFromTheClientCertificate) {
  Pki pki;
  pki.issue("host-a", "/CN=ignored-cn", "DNS:host-a");
  pki.issue("host-c", "/CN=host-c", "");
  TlsController ctl(pki);
  // A hello naming the certificate's DNS SAN is accepted.
  SimAgent a(ctl.channel(pki, "host-a"), "host-a");
  a.connect({workload("web-1", "frontend", "192.0.2.11")});
  ASSERT_TRUE(a.next(Kind::kSnapshot, 5000ms));
  // Without a DNS SAN the CN names the host.
  SimAgent c(ctl.channel(pki, "host-c"), "host-c");
  c.connect({});
  ASSERT_TRUE(c.next(Kind::kSnapshot, 5000ms));
  // host-a's certificate claiming to be host-b (and reporting host-b's
  // workloads under host-b's name) is refused.
  SimAgent impostor(ctl.channel(pki, "host-a"), "host-b");
  impostor.connect({workload("pay-1", "payments", "192.0.2.21")});
  auto end = impostor.ended(5000ms);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(end->error_message().find("host-a"), std::string::npos) << end->error_message();
  // The CN of a certificate with a DNS SAN is not a name it may use.
  SimAgent byCn(ctl.channel(pki, "host-a"), "ignored-cn");
  byCn.connect({});
  end = byCn.ended(5000ms);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  const auto workloads = ctl.core().fleetWorkloads("");
  ASSERT_EQ(workloads.workloads_size(), 1);
  EXPECT_EQ(workloads.workloads(0).host(), "host-a");
}

TEST(ControllerTls, ClientWithoutACertificateFromTheCaCannotConnect) {
  Pki pki;
  Pki other;  // another CA
  other.issue("host-a", "/CN=host-a", "DNS:host-a");
  TlsController ctl(pki);
  SimAgent a(ctl.channel(pki, "host-a", &other), "host-a");
  a.connect({});
  auto end = a.ended(5000ms);
  ASSERT_TRUE(end);
  EXPECT_FALSE(end->ok());
  EXPECT_EQ(ctl.core().fleetStatus().hosts_size(), 0);
}

}  // namespace
}  // namespace bulkhead::controller
