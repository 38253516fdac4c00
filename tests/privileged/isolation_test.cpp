// Isolation end to end, as an attacker inside a workload would try it: the
// real agent in a hypervisor namespace, real packets from workload
// namespaces. Spoofing inside another workload's established flow (IPv4 UDP,
// IPv4 TCP in the reply direction, IPv6 UDP), unregistered interfaces that
// look like a workload's, one workload's denial flood against another's log
// budget, and quarantine including neighbour discovery.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/agent_host.h"
#include "support/netns.h"

namespace bulkhead::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = BULKHEAD_BINARY_DIR;

constexpr const char* kPolicy = R"(apiVersion: bulkhead/v1
kind: Service
metadata: {name: server}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32, 2001:db8:10::10/128]
      ports: [udp/5000, tcp/5432]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: web}
spec:
  egress:
    - to: [server]
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: a-1}
spec: {app: web, interfaces: [vwa], addresses: [192.0.2.5, 2001:db8:5::5]}
---
apiVersion: bulkhead/v1
kind: Workload
metadata: {name: b-1}
spec: {app: web, interfaces: [vwb], addresses: [192.0.2.6, 2001:db8:6::6]}
)";

// A UDP server that appends "<source> <port> <payload>" per datagram to a
// file and answers "ok", so that the client's flow becomes established.
constexpr const char* kUdpServer = R"(import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if fam == socket.AF_INET6:  # or it takes the IPv4 port too, racing the IPv4 server
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
f = open(sys.argv[3], 'a')
while True:
    d, a = s.recvfrom(4096)
    f.write('%s %d %s\n' % (a[0], a[1], d.decode(errors='replace')))
    f.flush()
    s.sendto(b'ok', a)
)";

// Sends one datagram from SRC:SPORT; exit 0 when an answer came back.
constexpr const char* kUdpSend = R"(import socket, sys
src, sport, dst, dport, msg = sys.argv[1:6]
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, int(sport)))
s.settimeout(1.0)
s.sendto(msg.encode(), (dst, int(dport)))
try:
    s.recv(100)
except OSError:
    sys.exit(1)
)";

// Sends N datagrams to DST, one each to ports LO..HI in turn, paced to RATE/s.
constexpr const char* kUdpFlood = R"(import socket, sys, time
dst, lo, hi, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.time()
for i in range(n):
    try:
        s.sendto(b'x', (dst, lo + i % (hi - lo + 1)))
    except OSError:
        pass
    ahead = start + (i + 1) / rate - time.time()
    if ahead > 0:
        time.sleep(ahead)
)";

// A TCP server that accepts, greets and keeps each connection open.
constexpr const char* kTcpHold = R"(import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
conns = []
while True:
    c, a = s.accept()
    c.sendall(b'hello\n')
    conns.append(c)
)";

// Connects, prints its own port on stdout, then holds the connection.
constexpr const char* kTcpClient = R"(import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print(c.getsockname()[1], flush=True)
c.recv(100)
time.sleep(60)
)";

// One raw TCP segment (ACK|PSH, 333 bytes of payload) from SRC:SPORT to
// DST:DPORT, three times: what an attacker injects into another's
// connection. With "syn N" after them: N SYNs instead, each from a new
// source port, and from a random address of 203.0.113.0/24 when SRC is
// "spoof": a SYN flood.
constexpr const char* kTcpInject = R"(import random, socket, struct, sys
src, dst, sport, dport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
syns = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == 'syn' else 0
def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
def segment(src, sport, seq, ack, flags, payload):
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp) + len(payload))
    c = csum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp) + len(payload), 1, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
if syns:
    for i in range(syns):
        a = '203.0.113.%d' % random.randint(1, 254) if src == 'spoof' else src
        s.sendto(segment(a, 1024 + i % 60000, random.getrandbits(32), 0, 0x02, b''), (dst, 0))
else:
    for _ in range(3):
        s.sendto(segment(src, sport, 1000, 1000, 0x18, b'X' * 333), (dst, 0))
)";

class IsolationTest : public AgentHostTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(setUpHost("iso", kPolicy));
    ASSERT_TRUE(sh("command -v python3 && command -v socat").ok()) << "python3 and socat needed";
    for (auto [name, text] : {std::pair{"udp_server.py", kUdpServer},
                              {"udp_send.py", kUdpSend},
                              {"udp_flood.py", kUdpFlood},
                              {"tcp_hold.py", kTcpHold},
                              {"tcp_client.py", kTcpClient},
                              {"tcp_inject.py", kTcpInject}})
      std::ofstream(dir_ / name) << text;
    topo_->addHost("vwa", "192.0.2.5", "2001:db8:5::5");
    topo_->addHost("vwb", "192.0.2.6", "2001:db8:6::6");
    auto& server = topo_->addHost("vsrv", "198.51.100.10", "2001:db8:10::10");
    procs_.push_back(std::make_unique<Process>(
        *server.ns, py("udp_server.py") + " 0.0.0.0 5000 " + path("server4.log")));
    procs_.push_back(std::make_unique<Process>(
        *server.ns, py("udp_server.py") + " :: 5000 " + path("server6.log")));
    procs_.push_back(std::make_unique<Process>(*server.ns, tcpListenCmd(5432, false)));
    ASSERT_TRUE(waitListening(*server.ns, 5432, false));
    ASSERT_TRUE(waitListening(*server.ns, 5000, true));
  }

  void TearDown() override {
    agent_.reset();
    receiver_.reset();
    AgentHostTest::TearDown();
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string py(const std::string& script) const { return "exec python3 " + path(script); }

  // The agent with the JSON flow format to a UDP receiver writing flows.log.
  void startAgent(const std::string& extra = "", bool push = true) {
    const int port = 10800;
    if (!receiver_) {
      receiver_ = udpSink(topo_->hv(), port, path("flows.log"));
      ASSERT_TRUE(waitListening(topo_->hv(), port, true));
    }
    ASSERT_NO_FATAL_FAILURE(launchAgent(
        "--flow-format json --syslog udp://127.0.0.1:" + std::to_string(port) + " " + extra));
    if (!push) return;
    auto pushed = cli("push " + path("policy.yaml"));
    ASSERT_TRUE(pushed.ok()) << pushed.out;
  }

  bool udpSend(const std::string& from, const std::string& src, int sport, const std::string& dst,
               const std::string& msg) {
    return ns(from)
        .exec("python3 " + path("udp_send.py") + " " + src + " " + std::to_string(sport) + " " +
              dst + " 5000 " + msg)
        .ok();
  }

  // Lines of the exported flows containing every one of `parts`.
  size_t flowLines(const std::vector<std::string>& parts) const {
    std::istringstream in(readAll(path("flows.log")));
    size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      bool all = true;
      for (const auto& p : parts)
        all = all && line.find(p) != std::string::npos;
      n += all;
    }
    return n;
  }

  bool exported(const std::vector<std::string>& parts, int ms = 5000) const {
    return waitFor([&] { return flowLines(parts) > 0; }, ms);
  }

  std::unique_ptr<Process> receiver_;
};

// B has a UDP exchange with the server from port 4000; A takes B's address
// and sends from B's address and port: conntrack sees B's established flow,
// so only a check before conntrack stops it.
TEST_F(IsolationTest, SpoofedUdpInsideAnEstablishedFlowNeverReachesTheServerV4) {
  startAgent();
  const std::string log = path("server4.log");
  ASSERT_TRUE(udpSend("vwb", "192.0.2.6", 4000, "198.51.100.10", "hello-b"))
      << "B's own exchange must work: " << readAll(log);
  topo_->addAddress(topo_->host("vwa"), "192.0.2.6", false);
  EXPECT_FALSE(udpSend("vwa", "192.0.2.6", 4000, "198.51.100.10", "forged-by-a"));
  // B's flow still works, and the forged datagram never arrived.
  ASSERT_TRUE(udpSend("vwb", "192.0.2.6", 4000, "198.51.100.10", "again-b"));
  EXPECT_EQ(readAll(log).find("forged-by-a"), std::string::npos) << readAll(log);
  EXPECT_NE(readAll(log).find("again-b"), std::string::npos) << readAll(log);
  EXPECT_TRUE(exported({"\"action\":\"spoof\"", "\"workload\":\"a-1\"", "\"dport\":5000"}))
      << readAll(path("flows.log")) << readAll(path("agent.log"));
}

TEST_F(IsolationTest, SpoofedUdpInsideAnEstablishedFlowNeverReachesTheServerV6) {
  startAgent();
  const std::string log = path("server6.log");
  ASSERT_TRUE(udpSend("vwb", "2001:db8:6::6", 4000, "2001:db8:10::10", "hello-b"))
      << "B's own exchange must work: " << readAll(log);
  topo_->addAddress(topo_->host("vwa"), "2001:db8:6::6", false);
  EXPECT_FALSE(udpSend("vwa", "2001:db8:6::6", 4000, "2001:db8:10::10", "forged-by-a"));
  ASSERT_TRUE(udpSend("vwb", "2001:db8:6::6", 4000, "2001:db8:10::10", "again-b"));
  EXPECT_EQ(readAll(log).find("forged-by-a"), std::string::npos) << readAll(log);
  EXPECT_NE(readAll(log).find("again-b"), std::string::npos) << readAll(log);
  EXPECT_TRUE(exported({"\"action\":\"spoof\"", "\"workload\":\"a-1\"", "2001:db8:6::6"}))
      << readAll(path("flows.log")) << readAll(path("agent.log"));
}

TEST_F(IsolationTest, ForgedTcpReplyIntoAnotherWorkloadsConnectionNeverArrives) {
  // B serves TCP on 7000; the server's namespace is B's client. A forges a
  // segment of B's side of that connection. Liberal window tracking on the
  // hypervisor stands for an attacker who guesses the window: conntrack then
  // calls the segment established, however its sequence numbers look.
  ASSERT_TRUE(topo_->hv().exec("sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1").ok());
  auto& server = topo_->host("vsrv");
  // Counts, at the server, segments of 373 bytes from 192.0.2.6:7000 (the
  // forged size): its own table in its own namespace.
  ASSERT_TRUE(server.ns
                  ->exec("nft add table inet probe && nft add chain inet probe pre '{ type "
                         "filter hook prerouting priority -400; }' && nft add rule inet probe pre "
                         "ip saddr 192.0.2.6 tcp sport 7000 ip length 373 counter")
                  .ok());
  auto forgedSeen = [&] {
    const auto out = server.ns->exec("nft list chain inet probe pre").out;
    const auto pos = out.find("counter packets ");
    return pos == std::string::npos ? -1 : std::stol(out.substr(pos + 16));
  };
  startAgent();
  procs_.push_back(std::make_unique<Process>(ns("vwb"), py("tcp_hold.py") + " 192.0.2.6 7000"));
  ASSERT_TRUE(waitListening(ns("vwb"), 7000, false));
  procs_.push_back(std::make_unique<Process>(
      *server.ns, py("tcp_client.py") + " 192.0.2.6 7000 > " + path("client.port")));
  std::string port;
  ASSERT_TRUE(waitFor(
      [&] {
        port = readAll(path("client.port"));
        return !port.empty() && port.back() == '\n';
      },
      5000));
  port.pop_back();
  auto inject = [&](const std::string& from) {
    return ns(from).exec("python3 " + path("tcp_inject.py") + " 192.0.2.6 198.51.100.10 7000 " +
                         port);
  };
  // Control: the same segment from B's own interface reaches the server.
  ASSERT_TRUE(inject("vwb").ok());
  ASSERT_TRUE(waitFor([&] { return forgedSeen() >= 3; }, 2000)) << forgedSeen();
  const long before = forgedSeen();
  topo_->addAddress(topo_->host("vwa"), "192.0.2.6", false);
  ASSERT_TRUE(inject("vwa").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(forgedSeen(), before) << "A's forged segments reached the server";
  EXPECT_TRUE(exported({"\"action\":\"spoof\"", "\"workload\":\"a-1\"", "\"proto\":\"tcp\""}))
      << readAll(path("flows.log"));
}

// A workload floods an allowed service with SYNs from addresses not its
// own. Dropped before conntrack, none of them leaves an entry in the
// hypervisor's connection tracking table, which such a flood would
// otherwise fill (each SYN answered by the server keeps its entry for 60 s;
// at nf_conntrack_max every new connection on the host is dropped), and
// the spoofing is reported. Control: the same SYNs from the workload's own
// address are tracked.
TEST_F(IsolationTest, SpoofedSynFloodLeavesNoConnectionTrackingEntry) {
  ASSERT_TRUE(sh("command -v conntrack").ok()) << "needs conntrack (packaging/install-deps.sh)";
  startAgent();
  // Entries of connections to the server's port 5432 whose source is `src`.
  auto tracked = [&](const std::string& src) {
    std::istringstream in(topo_->hv().exec("conntrack -L -p tcp --dport 5432 2>/dev/null").out);
    size_t n = 0;
    for (std::string line; std::getline(in, line);)
      n += line.find("src=" + src) != std::string::npos;
    return n;
  };
  auto synFlood = [&](const std::string& src, int syns) {
    return ns("vwa")
        .exec("python3 " + path("tcp_inject.py") + " " + src + " 198.51.100.10 0 5432 syn " +
              std::to_string(syns))
        .ok();
  };
  ASSERT_TRUE(synFlood("192.0.2.5", 20));
  EXPECT_TRUE(waitFor([&] { return tracked("192.0.2.5 ") > 0; }, 2000))
      << "the control's SYNs were not tracked: " << topo_->hv().exec("conntrack -L 2>&1").out;
  ASSERT_TRUE(synFlood("spoof", 5000));
  EXPECT_TRUE(exported({"\"action\":\"spoof\"", "\"workload\":\"a-1\"", "\"dport\":5432"}))
      << readAll(path("flows.log"));
  EXPECT_EQ(tracked("203.0.113."), 0u) << topo_->hv().exec("conntrack -L 2>&1").out;
}

TEST_F(IsolationTest, UnregisteredWorkloadInterfacesReachNothingUntilRegistered) {
  topo_->addHost("vwx", "192.0.2.30", "");  // named like a workload's, registered by none
  topo_->addHost("vnx", "192.0.2.31", "");  // not a workload interface
  procs_.push_back(std::make_unique<Process>(topo_->hv(), tcpListenCmd(8080, false)));
  ASSERT_TRUE(waitListening(topo_->hv(), 8080, false));
  startAgent("'--workload-interfaces=vw*,tap*'");
  EXPECT_FALSE(tcpProbe(ns("vwx"), "198.51.100.10", 5432, 1.5).ok);
  EXPECT_FALSE(tcpProbe(ns("vwx"), Topology::kHostV4, 8080, 1.5).ok);
  auto p = tcpProbe(ns("vnx"), "198.51.100.10", 5432);
  EXPECT_TRUE(p.ok) << p.out;
  p = tcpProbe(ns("vnx"), Topology::kHostV4, 8080);
  EXPECT_TRUE(p.ok) << p.out;
  EXPECT_TRUE(
      exported({"\"action\":\"unregistered\"", "\"reason\":\"unregistered\"", "192.0.2.30"}))
      << readAll(path("flows.log")) << readAll(path("agent.log"));
  // The table holds the rule, as `plan` prints it.
  const auto chain = topo_->hv().exec("nft list chain inet bulkhead prerouting").out;
  EXPECT_NE(chain.find("iifname \"vw*\""), std::string::npos) << chain;

  // Registered: its policy applies at once (server allowed, host denied).
  auto add = cli("workload add x-1 --app web --iface vwx --addr 192.0.2.30");
  ASSERT_TRUE(add.ok()) << add.out;
  p = tcpProbe(ns("vwx"), "198.51.100.10", 5432);
  EXPECT_TRUE(p.ok) << p.out;
  p = tcpProbe(ns("vwx"), Topology::kHostV4, 8080, 1.5);
  EXPECT_FALSE(p.ok) << p.out;
  EXPECT_LT(p.seconds, 1.0) << "denied by policy (reset), not dropped as unregistered";

  // A restart after the table is gone (a reboot): the agent's restore puts
  // the fail-closed rules back before anything else, without a push.
  agent_->kill(SIGKILL);
  agent_->wait(5000);
  agent_.reset();
  ASSERT_TRUE(topo_->hv().exec("nft delete table inet bulkhead").ok());
  topo_->addHost("vwy", "192.0.2.32", "");
  startAgent("'--workload-interfaces=vw*,tap*'", /*push=*/false);
  ASSERT_TRUE(waitFor(
      [&] {
        return topo_->hv()
                   .exec("nft list chain inet bulkhead prerouting")
                   .out.find("iifname \"vw*\"") != std::string::npos;
      },
      5000))
      << readAll(path("agent.log"));
  EXPECT_FALSE(tcpProbe(ns("vwy"), "198.51.100.10", 5432, 1.5).ok);
  p = tcpProbe(ns("vnx"), "198.51.100.10", 5432);
  EXPECT_TRUE(p.ok) << p.out;
}

TEST_F(IsolationTest, OneWorkloadsDenialFloodDoesNotHideAnothersDenials) {
  startAgent();
  // A: thousands of denied datagrams a second, for about three seconds.
  procs_.push_back(std::make_unique<Process>(
      ns("vwa"), py("udp_flood.py") + " 198.51.100.10 6000 6999 12000 4000"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // B: 20 denied attempts to distinct ports while the flood runs.
  for (int port = 3000; port < 3020; ++port) {
    ns("vwb").exec(
        "python3 -c \"import socket; socket.socket(socket.AF_INET, "
        "socket.SOCK_DGRAM).sendto(b'y', ('198.51.100.10', " +
        std::to_string(port) + "))\"");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  for (int port = 3000; port < 3020; ++port)
    EXPECT_TRUE(exported({"\"workload\":\"b-1\"", "\"dport\":" + std::to_string(port)}, 3000))
        << "B's denial to port " << port << " was not exported";
  EXPECT_GT(flowLines({"\"workload\":\"a-1\""}), 0u) << "A's denials are logged too";
  // Every attempt is still accounted for: exported or counted as suppressed.
  std::string status;
  EXPECT_TRUE(waitFor(
      [&] {
        status = cli("status --json").out;
        const uint64_t seen = jsonInt(status, "seen");
        return seen > 1000 && seen == jsonInt(status, "exported") + jsonInt(status, "suppressed");
      },
      10000))
      << status;
}

TEST_F(IsolationTest, QuarantineDropsEverythingIncludingNeighbourDiscovery) {
  procs_.push_back(std::make_unique<Process>(topo_->hv(), tcpListenCmd(8080, false)));
  ASSERT_TRUE(waitListening(topo_->hv(), 8080, false));
  startAgent();
  auto p = tcpProbe(ns("vwa"), "198.51.100.10", 5432);
  ASSERT_TRUE(p.ok) << p.out;
  ASSERT_TRUE(cli("quarantine a-1").ok());
  EXPECT_FALSE(tcpProbe(ns("vwa"), "198.51.100.10", 5432, 1.5).ok);
  EXPECT_FALSE(tcpProbe(ns("vwa"), Topology::kHostV4, 8080, 1.5).ok);
  EXPECT_FALSE(udpSend("vwa", "192.0.2.5", 4001, "198.51.100.10", "from-quarantine"));
  // Neighbour discovery: with its neighbour cache flushed, A cannot resolve
  // its gateway any more.
  ns("vwa").exec("ip -6 neigh flush dev eth0");
  EXPECT_FALSE(ns("vwa").exec("ping -6 -c 2 -W 1 " + std::string(Topology::kHostV6)).ok());
  const auto neigh = ns("vwa").exec("ip -6 neigh show dev eth0").out;
  EXPECT_EQ(neigh.find("REACHABLE"), std::string::npos) << neigh;
  EXPECT_TRUE(exported({"\"action\":\"quarantine\"", "\"workload\":\"a-1\""}));
  // B is untouched.
  p = tcpProbe(ns("vwb"), "198.51.100.10", 5432);
  EXPECT_TRUE(p.ok) << p.out;
  ASSERT_TRUE(cli("quarantine a-1 --release").ok());
  p = tcpProbe(ns("vwa"), "198.51.100.10", 5432);
  EXPECT_TRUE(p.ok) << p.out;
}

}  // namespace
}  // namespace bulkhead::testing
