#include "support/certs.h"

#include <fstream>

namespace bulkhead::testing {

namespace {

const std::string kNewKey = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

CmdResult inDir(const std::filesystem::path& dir, const std::string& script) {
  return sh("cd " + dir.string() + " && set -e && " + script + " 2>&1");
}

}  // namespace

CmdResult makeTestCa(const std::filesystem::path& dir) {
  return inDir(dir, "openssl req -x509 " + kNewKey +
                        " -keyout ca.key -out ca.crt -days 1 -subj /CN=bulkhead-test-ca");
}

CmdResult makeSignedCert(const std::filesystem::path& dir, const std::string& name,
                         const std::string& subject, const std::string& ext) {
  std::ofstream(dir / (name + ".ext")) << ext << "\n";
  return inDir(dir, "openssl req " + kNewKey + " -keyout " + name + ".key -out " + name +
                        ".csr -subj " + subject + " && openssl x509 -req -in " + name +
                        ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile " + name +
                        ".ext -out " + name + ".crt");
}

CmdResult makeSelfSignedCert(const std::filesystem::path& dir, const std::string& name,
                             const std::string& subject) {
  return inDir(dir, "openssl req -x509 " + kNewKey + " -keyout " + name + ".key -out " + name +
                        ".crt -days 1 -subj " + subject);
}

}  // namespace bulkhead::testing
