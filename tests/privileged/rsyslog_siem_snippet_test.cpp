// The shipped rsyslog snippet (packaging/rsyslog/60-bulkhead-siem.conf), run
// by a real rsyslogd: the agent's tcp:// exporter sends a denied-flow event to
// it, and it must reach a second rsyslogd acting as the SIEM over TLS only
// (the SIEM's listener speaks TLS and requires a client certificate), with
// the RFC 5424 structured data intact. A collector whose certificate names
// another host gets nothing: the snippet checks the peer's name.
// Everything runs in a namespace of its own; only the snippet's paths and
// target address are rewritten.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "bulkhead/flows/exporter.h"
#include "support/netns.h"

namespace bulkhead::flows {
namespace {

namespace fs = std::filesystem;
using testing::Netns;
using testing::Process;

constexpr int kSnippetPort = 10514;  // as in the snippet
constexpr int kSiemPort = 6514;      // as in the snippet

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/bhsiemXXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& s) const { return path_ / s; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// A CA, the SIEM's certificate for `name`, and rsyslog's client certificate.
bool makeCerts(const TempDir& d, const std::string& siemName) {
  const std::string dir = d.str();
  const std::string cmd =
      "cd " + dir +
      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
      " -subj /CN=test-ca -keyout ca.key -out ca.crt"
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" +
      siemName + " -addext subjectAltName=DNS:" + siemName +
      " -keyout siem.key -out siem.csr"
      " && openssl x509 -req -in siem.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
      " -copy_extensions copy -out siem.crt"
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=hv01"
      " -keyout client.key -out client.csr"
      " && openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
      " -out client.crt";
  return testing::sh("(" + cmd + ") >/dev/null 2>&1").ok();
}

// The SIEM: TLS only, client certificate required, every message to a file.
void writeSiemConfig(const TempDir& d) {
  fs::create_directories(d / "siem");
  std::ofstream(d / "siem.conf")
      << "global(workDirectory=\"" << (d / "siem").string() << "\"\n"
      << "  DefaultNetstreamDriverCAFile=\"" << (d / "ca.crt").string() << "\"\n"
      << "  DefaultNetstreamDriverCertFile=\"" << (d / "siem.crt").string() << "\"\n"
      << "  DefaultNetstreamDriverKeyFile=\"" << (d / "siem.key").string() << "\")\n"
      << "module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\"\n"
      << "  StreamDriver.AuthMode=\"x509/certvalid\")\n"
      << "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" << kSiemPort << "\")\n"
      << "*.* action(type=\"omfile\" file=\"" << (d / "siem.log").string()
      << "\" template=\"RSYSLOG_SyslogProtocol23Format\")\n";
}

// The host's rsyslog: the shipped snippet, its target and files rewritten.
bool writeForwarderConfig(const TempDir& d) {
  std::ifstream in(std::string(BULKHEAD_SOURCE_DIR) + "/packaging/rsyslog/60-bulkhead-siem.conf");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string snippet = ss.str();
  const std::pair<std::string, std::string> edits[] = {
      {"target=\"siem.example.net\"", "target=\"127.0.0.1\""},
      {"/etc/rsyslog.d/tls/siem-ca.crt", (d / "ca.crt").string()},
      {"/etc/rsyslog.d/tls/client.crt", (d / "client.crt").string()},
      {"/etc/rsyslog.d/tls/client.key", (d / "client.key").string()},
  };
  for (const auto& [from, to] : edits) {
    const auto at = snippet.find(from);
    if (at == std::string::npos) return false;
    snippet.replace(at, from.size(), to);
  }
  std::ofstream(d / "60-bulkhead-siem.conf") << snippet;
  fs::create_directories(d / "fwd");
  std::ofstream(d / "fwd.conf") << "global(workDirectory=\"" << (d / "fwd").string() << "\")\n"
                                << "include(file=\"" << (d / "60-bulkhead-siem.conf").string()
                                << "\")\n";
  return true;
}

std::unique_ptr<Process> rsyslogd(const Netns& ns, const TempDir& d, const std::string& name) {
  return std::make_unique<Process>(ns, "exec rsyslogd -n -f " + (d / (name + ".conf")).string() +
                                           " -i " + (d / (name + ".pid")).string() + " >" +
                                           (d / (name + ".err")).string() + " 2>&1");
}

FlowEvent deniedFlow() {
  FlowEvent e;
  e.time = WallClock::now();
  e.host = "hv01";
  e.action = FlowAction::kDeny;
  e.app = "billing";
  e.workload = "billing-7f9c";
  e.src = *policy::IpAddr::parse("192.0.2.10");
  e.dst = *policy::IpAddr::parse("198.51.100.10");
  e.sport = 43910;
  e.dport = 22;
  e.proto = "tcp";
  e.reason = "default";
  e.count = 1;
  return e;
}

// Starts both daemons for a SIEM certificate naming `siemName`, sends one
// event through the agent's exporter; returns the SIEM's log after waitMs,
// nullopt (and why in *diag) when the test could not set itself up.
std::optional<std::string> forwardOneEvent(const std::string& siemName, int waitMs,
                                           std::string* diag) {
  TempDir d;
  if (!makeCerts(d, siemName)) {
    *diag = "openssl failed";
    return std::nullopt;
  }
  writeSiemConfig(d);
  if (!writeForwarderConfig(d)) {
    *diag = "the snippet no longer has the target or file names the test rewrites";
    return std::nullopt;
  }
  Netns ns;
  auto siem = rsyslogd(ns, d, "siem");
  auto fwd = rsyslogd(ns, d, "fwd");
  if (!testing::waitListening(ns, kSiemPort, false) ||
      !testing::waitListening(ns, kSnippetPort, false)) {
    *diag = "rsyslogd did not listen: " + testing::readAll((d / "siem.err").string()) +
            testing::readAll((d / "fwd.err").string());
    return std::nullopt;
  }
  std::unique_ptr<Exporter> exporter;
  ns.run([&] {
    ExporterOptions o;
    o.formatOptions.procId = 4711;
    auto r = makeExporter("tcp://127.0.0.1:" + std::to_string(kSnippetPort), o);
    if (r.ok()) exporter = std::move(r.value());
  });
  if (!exporter || !exporter->offer(deniedFlow()) || !exporter->flush(5000)) {
    *diag = "the exporter did not deliver to the snippet's listener";
    return std::nullopt;
  }
  testing::waitFor([&] { return !testing::readAll((d / "siem.log").string()).empty(); }, waitMs);
  const std::string log = testing::readAll((d / "siem.log").string());
  *diag = "forwarder: " + testing::readAll((d / "fwd.err").string()) +
          "\nsiem: " + testing::readAll((d / "siem.err").string());
  exporter.reset();
  fwd->kill(SIGTERM);
  siem->kill(SIGTERM);
  fwd->wait(3000);
  siem->wait(3000);
  return log;
}

bool ready(std::string* why) {
  if (!testing::havePrivileges())
    *why = "needs root and ip netns";
  else if (!testing::sh("command -v rsyslogd openssl >/dev/null").ok())
    *why = "no rsyslogd/openssl";
  else if (!fs::exists("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so") &&
           !testing::sh("ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1").ok())
    *why = "rsyslog-openssl is not installed (packaging/install-deps.sh)";
  return why->empty();
}

TEST(RsyslogSiemSnippet, ForwardsTheFlowFeedOverTlsWithStructuredData) {
  std::string why;
  ASSERT_TRUE(ready(&why)) << why;
  testing::sweepStaleNamespaces();
  std::string diag;
  const auto log = forwardOneEvent("siem.example.net", 10000, &diag);
  ASSERT_TRUE(log) << diag;
  ASSERT_FALSE(log->empty()) << "nothing reached the SIEM\n" << diag;
  // As rsyslog re-renders RFC 5424: host, app, procid, msgid, SD, message.
  const std::regex line(
      R"(<132>1 \S+ hv01 bulkhead-agent 4711 DENY \[flow@32473 action="deny" app="billing" workload="billing-7f9c" src="192.0.2.10" sport="43910" dst="198.51.100.10" dport="22" proto="tcp" reason="default" count="1"\] billing-7f9c -> 198.51.100.10:22/tcp denied\s*)");
  EXPECT_TRUE(std::regex_match(*log, line)) << *log;
}

TEST(RsyslogSiemSnippet, ACollectorWithAnotherNameGetsNothing) {
  std::string why;
  ASSERT_TRUE(ready(&why)) << why;
  testing::sweepStaleNamespaces();
  std::string diag;
  const auto log = forwardOneEvent("evil.example.net", 3000, &diag);
  ASSERT_TRUE(log) << diag;
  EXPECT_EQ(*log, "") << "the snippet sent the event to a collector named evil.example.net\n"
                      << diag;
}

}  // namespace
}  // namespace bulkhead::flows
