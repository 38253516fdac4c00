// Real etcd servers for tests: /usr/bin/etcd on loopback with free ports
// (below the ephemeral range, so that a restart finds its port) and a scratch data directory,
// started by the test and killed in the destructor even when the test failed (and by the kernel
// when the test process dies: PR_SET_PDEATHSIG). No root needed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/etcd/client.h"

namespace bulkhead::testing {

struct EtcdTls {
  bool enabled = false;         // https with a server certificate for 127.0.0.1
  bool clientCertAuth = false;  // --client-cert-auth: clients must present a certificate
};

// One etcd process: a member of a cluster or a cluster of one.
struct EtcdMember {
  std::string name;
  uint16_t clientPort = 0, peerPort = 0;
  std::filesystem::path dataDir, logFile;
  pid_t pid = -1;
};

class EtcdServer {
 public:
  explicit EtcdServer(EtcdTls tls = {});  // starts; ok() says whether it serves
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  bool ok() const { return ok_; }
  std::string endpoint() const;  // "http://127.0.0.1:PORT" (https with TLS)
  // Options for a client of this server (TLS files when TLS is on).
  etcd::ClientOptions clientOptions() const;
  const std::filesystem::path& certDir() const { return dir_; }  // ca.crt, client.crt/key

  void stop();  // SIGTERM, waits for the exit
  void kill();  // SIGKILL, waits for the exit
  // Same data dir and ports; true once it serves again. While the port is
  // briefly taken by another process, etcd is started again (up to 10 s).
  bool restart();
  Status compact(int64_t revision);
  std::string log() const;  // the server's output, for failure messages
  uint16_t clientPort() const { return member_.clientPort; }

 private:
  EtcdTls tls_;
  std::filesystem::path dir_;
  EtcdMember member_;
  bool ok_ = false;
};

class EtcdCluster {
 public:
  explicit EtcdCluster(int members = 3);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  bool ok() const { return ok_; }
  std::vector<std::string> endpoints() const;
  etcd::ClientOptions clientOptions() const;
  void killMember(int i);
  bool restartMember(int i);  // true once it serves again
  std::string log(int i) const;

 private:
  std::filesystem::path dir_;
  bool start(int members);  // makes and starts every member; false when one does not serve

  std::vector<EtcdMember> members_;
  std::string initialCluster_;
  bool ok_ = false;
};

}  // namespace bulkhead::testing
