// bulkhead-cni's protocol: config and prevResult decoding, names, apps,
// errors as the CNI spec's JSON, and what each command asks of the agent
// (a recording link; the real agent and plugins run in
// tests/privileged/hooks_cni_test.cpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>

#include "bulkhead/hooks/cni.h"

namespace bulkhead::hooks {
namespace {

struct FakeAgent {
  bool reachable = true;
  std::map<std::string, v1::Workload> held;
  std::vector<std::string> calls;
  std::string address;
};

class FakeLink : public AgentLink {
 public:
  explicit FakeLink(FakeAgent& a) : a_(a) {}
  Status upsert(const v1::Workload& w) override {
    a_.calls.push_back("upsert " + w.name());
    if (!a_.reachable) return makeError(ErrorCode::kUnavailable, "agent down");
    if (w.app() == "refused") return makeError(ErrorCode::kInvalidInput, "no such app");
    a_.held[w.name()] = w;
    return {};
  }
  Status remove(const std::string& name, const std::string& owner) override {
    a_.calls.push_back("remove " + name + " " + owner);
    if (!a_.reachable) return makeError(ErrorCode::kUnavailable, "agent down");
    auto it = a_.held.find(name);
    if (it == a_.held.end() || (!owner.empty() && it->second.owner() != owner))
      return makeError(ErrorCode::kNotFound, "no workload");
    a_.held.erase(it);
    return {};
  }
  Result<std::vector<v1::Workload>> list(const std::string& name) override {
    if (!a_.reachable) return makeError(ErrorCode::kUnavailable, "agent down");
    std::vector<v1::Workload> out;
    for (const auto& [n, w] : a_.held)
      if (name.empty() || n == name) out.push_back(w);
    return out;
  }
  Status ping() override {
    return a_.reachable ? Status() : makeError(ErrorCode::kUnavailable, "agent down");
  }

 private:
  FakeAgent& a_;
};

// ptp's result as it prints it (host veth without sandbox, eth0 inside).
constexpr const char* kPrevResult =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"veth1a2b3c4d","mac":"aa:bb:cc:dd:ee:01"},{"name":"eth0","mac":"aa:bb:cc:dd:ee:02","sandbox":"/run/netns/c1"}],"ips":[{"interface":1,"address":"192.0.2.5/24","gateway":"192.0.2.1"}],"dns":{}})";

std::string conf(const std::string& extra, const std::string& prev = kPrevResult,
                 const std::string& version = "1.1.0") {
  return R"({"cniVersion":")" + version + R"(","name":"podnet","type":"bulkhead-cni")" + extra +
         (prev.empty() ? "" : R"(,"prevResult":)" + prev) + "}";
}

class CniTest : public ::testing::Test {
 protected:
  CniOutcome run(const std::string& command, const std::string& config,
                 const std::string& args = "") {
    CniEnv env{command, "0123456789ABCDEF0123", "/run/netns/c1", "eth0", args, ""};
    return runCni(env, config,
                  [this](const std::string& address) -> Result<std::unique_ptr<AgentLink>> {
                    agent_.address = address;
                    return std::unique_ptr<AgentLink>(new FakeLink(agent_));
                  });
  }
  // The error object's fields.
  static nlohmann::json json(const std::string& text) {
    return nlohmann::json::parse(text, nullptr, false);
  }
  static int code(const CniOutcome& o) { return json(o.out).value("code", -1); }
  static std::string msg(const CniOutcome& o) { return json(o.out).value("msg", ""); }
  FakeAgent agent_;
};

TEST_F(CniTest, AddRegistersHostSideVethWithHostAddressAndPassesPrevResultThrough) {
  auto o = run("ADD", conf(R"(,"app":"web")"),
               "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-5d8f");
  ASSERT_EQ(o.exitCode, 0) << o.out << o.err;
  EXPECT_EQ(o.out, std::string(kPrevResult) + "\n");  // unchanged, byte for byte
  ASSERT_EQ(agent_.held.count("prod/web-5d8f"), 1u);
  const auto& w = agent_.held["prod/web-5d8f"];
  EXPECT_EQ(w.app(), "web");
  ASSERT_EQ(w.interfaces_size(), 1);
  EXPECT_EQ(w.interfaces(0), "veth1a2b3c4d");
  ASSERT_EQ(w.addresses_size(), 1);
  EXPECT_EQ(w.addresses(0), "192.0.2.5");
  EXPECT_EQ(w.source(), v1::Workload::SOURCE_CNI);
  EXPECT_EQ(w.owner(), "podnet/0123456789ABCDEF0123/eth0");
  EXPECT_EQ(agent_.address, "unix:///run/bulkhead/agent.sock");
}

TEST_F(CniTest, NameFromContainerIdWhenNoPodArgsAndIpsWithoutInterfaceIndex) {
  const std::string prev =
      R"({"cniVersion":"1.0.0","interfaces":[{"name":"vethX"}],"ips":[{"address":"2001:db8::5/64"},{"address":"192.0.2.6/24"}]})";
  auto o = run("ADD", conf(R"(,"app":"web","agent":"unix:///tmp/a.sock")", prev));
  ASSERT_EQ(o.exitCode, 0) << o.out;
  ASSERT_EQ(agent_.held.count("0123456789ab/eth0"), 1u);
  const auto& w = agent_.held["0123456789ab/eth0"];
  EXPECT_EQ(w.addresses_size(), 2);
  EXPECT_EQ(agent_.address, "unix:///tmp/a.sock");
}

TEST_F(CniTest, AppFromArgsThenConfigThenLabel) {
  ASSERT_EQ(run("ADD", conf(R"(,"app":"web")"), "BULKHEAD_APP=billing").exitCode, 0);
  EXPECT_EQ(agent_.held.begin()->second.app(), "billing");
  ASSERT_EQ(
      run("ADD",
          conf(R"(,"appLabel":"app","args":{"cni":{"labels":[{"key":"app","value":"shop"}]}})"))
          .exitCode,
      0);
  EXPECT_EQ(agent_.held.begin()->second.app(), "shop");
  ASSERT_EQ(run("ADD", conf(R"(,"appLabel":"app","args":{"labels":{"app":"cart"}})")).exitCode, 0);
  EXPECT_EQ(agent_.held.begin()->second.app(), "cart");
  ASSERT_EQ(run("ADD", conf(R"(,"appLabel":"app")"), "app=search").exitCode, 0);
  EXPECT_EQ(agent_.held.begin()->second.app(), "search");
  auto none = run("ADD", conf(R"(,"appLabel":"app")"));
  EXPECT_NE(none.exitCode, 0);
  EXPECT_EQ(code(none), 7);
  EXPECT_NE(msg(none).find("no app"), std::string::npos) << none.out;
}

TEST_F(CniTest, BadInputsGetTheSpecsErrorObject) {
  struct Case {
    std::string config, args, want;
    int code;
  } cases[] = {
      {conf(R"(,"app":"web")", ""), "", "no prevResult", 7},
      {conf(
           R"(,"app":"web")",
           R"({"interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"192.0.2.5/24"}]})"),
       "", "no host-side interface", 7},
      {conf(R"(,"app":"web")", R"({"interfaces":[{"name":"v"}],"ips":[]})"), "", "no address", 7},
      {conf(R"(,"app":"web")",
            R"({"interfaces":[{"name":"v"}],"ips":[{"address":"192.0.2.5/24","interface":7}]})"),
       "", "not an index", 7},
      {conf(R"(,"app":"web")",
            R"({"interfaces":[{"name":"v"}],"ips":[{"address":"300.1.1.1/24"}]})"),
       "", "bad address", 7},
      {conf(R"(,"app":"web")", kPrevResult, "0.4.0"), "", "not supported", 1},
      {"{not json", "", "not JSON", 6},
      {conf(R"(,"app":"web")"), "K8S_POD_NAMESPACE=Prod;K8S_POD_NAME=x", "not valid", 7},
      {conf(R"(,"app":7)"), "", "not a string", 6},
  };
  for (const auto& c : cases) {
    auto o = run("ADD", c.config, c.args);
    EXPECT_EQ(o.exitCode, 1) << c.config;
    EXPECT_EQ(code(o), c.code) << o.out;
    EXPECT_NE(o.out.find(c.want), std::string::npos) << o.out;
    EXPECT_FALSE(json(o.out).value("cniVersion", "").empty());
  }
  EXPECT_TRUE(agent_.held.empty());
  auto huge = run("ADD", std::string(kMaxInputBytes + 1, ' '));
  EXPECT_EQ(code(huge), 6);
  EXPECT_NE(msg(huge).find("larger than 16 MB"), std::string::npos);
  auto unknown = run("FROB", conf(""));
  EXPECT_EQ(code(unknown), 4);
  CniEnv noId{"ADD", "", "/run/netns/c1", "eth0", "", ""};
  auto missing = runCni(noId, conf(R"(,"app":"web")"), nullptr);
  EXPECT_EQ(code(missing), 4);
  EXPECT_NE(missing.out.find("CNI_CONTAINERID"), std::string::npos);
}

TEST_F(CniTest, AddFailsClosedWhenTheAgentIsDownOrRefuses) {
  agent_.reachable = false;
  auto down = run("ADD", conf(R"(,"app":"web")"));
  EXPECT_EQ(down.exitCode, 1);
  EXPECT_EQ(code(down), 11);
  EXPECT_EQ(down.out.find("veth1a2b3c4d"), std::string::npos);  // no result
  agent_.reachable = true;
  auto refused = run("ADD", conf(R"(,"app":"refused")"));
  EXPECT_EQ(code(refused), 100);
  EXPECT_NE(refused.out.find("no such app"), std::string::npos);
  EXPECT_TRUE(agent_.held.empty());
}

TEST_F(CniTest, DelIsIdempotentAndOwnedCheckFailsAfterIt) {
  ASSERT_EQ(run("ADD", conf(R"(,"app":"web")")).exitCode, 0);
  EXPECT_EQ(run("CHECK", conf(R"(,"app":"web")")).exitCode, 0);
  auto wrongApp = run("CHECK", conf(R"(,"app":"shop")"));
  EXPECT_EQ(code(wrongApp), 101);
  auto del = run("DEL", conf(R"(,"app":"web")", ""));
  EXPECT_EQ(del.exitCode, 0) << del.out;
  EXPECT_EQ(del.out, "");
  EXPECT_TRUE(agent_.held.empty());
  EXPECT_EQ(run("DEL", conf("", "")).exitCode, 0);  // again: already gone
  agent_.reachable = false;
  EXPECT_EQ(run("DEL", conf("", "")).exitCode, 0);  // agent gone
  agent_.reachable = true;
  auto check = run("CHECK", conf(R"(,"app":"web")"));
  EXPECT_EQ(check.exitCode, 1);
  EXPECT_EQ(code(check), 101);
  EXPECT_NE(msg(check).find("not registered"), std::string::npos);
}

TEST_F(CniTest, DelOfAnOldContainerLeavesANewerRegistrationOfTheSameName) {
  const std::string pod = "K8S_POD_NAMESPACE=prod;K8S_POD_NAME=db-0";
  ASSERT_EQ(run("ADD", conf(R"(,"app":"web")"), pod).exitCode, 0);
  agent_.held["prod/db-0"].set_owner("podnet/newcontainer/eth0");  // recreated
  EXPECT_EQ(run("DEL", conf("", ""), pod).exitCode, 0);
  EXPECT_EQ(agent_.held.count("prod/db-0"), 1u);
}

TEST_F(CniTest, VersionStatusAndGc) {
  auto v = run("VERSION", R"({"cniVersion":"1.0.0"})");
  EXPECT_EQ(v.exitCode, 0);
  EXPECT_EQ(v.out, R"({"cniVersion":"1.0.0","supportedVersions":["1.0.0","1.1.0"]})"
                   "\n");
  EXPECT_EQ(run("STATUS", conf("", "")).exitCode, 0);
  agent_.reachable = false;
  auto st = run("STATUS", conf("", ""));
  EXPECT_EQ(code(st), 50);
  agent_.reachable = true;

  ASSERT_EQ(run("ADD", conf(R"(,"app":"web")")).exitCode, 0);
  v1::Workload other;  // another network's, and one from the API
  other.set_name("x/eth0");
  other.set_source(v1::Workload::SOURCE_CNI);
  other.set_owner("othernet/stale/eth0");
  agent_.held["x/eth0"] = other;
  v1::Workload api;
  api.set_name("api-1");
  agent_.held["api-1"] = api;
  const std::string keep =
      R"(,"cni.dev/valid-attachments":[{"containerID":"0123456789ABCDEF0123","ifname":"eth0"}])";
  EXPECT_EQ(run("GC", conf(keep, "")).exitCode, 0);
  EXPECT_EQ(agent_.held.size(), 3u);
  EXPECT_EQ(run("GC", conf(R"(,"cni.dev/valid-attachments":[])", "")).exitCode, 0);
  EXPECT_EQ(agent_.held.count("0123456789ab/eth0"), 0u);
  EXPECT_EQ(agent_.held.size(), 2u);
  EXPECT_EQ(code(run("GC", conf("", ""))), 7);  // no list: nothing is removed
}

TEST(AgentLinkTest, HooksTalkToTheLocalAgentOverItsUnixSocketOnly) {
  auto connect = grpcConnector();
  auto tcp = connect("tcp://192.0.2.1:7443");
  ASSERT_FALSE(tcp.ok());
  EXPECT_EQ(tcp.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(tcp.error().message.find("unix socket"), std::string::npos);
  EXPECT_FALSE(connect("unix:relative").ok());
  // Nothing listens there: a bounded, clear failure, not a hang.
  auto link = grpcConnector(std::chrono::milliseconds(2000))("unix:///nonexistent/agent.sock");
  ASSERT_TRUE(link.ok());
  auto st = (*link)->ping();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find("unix:///nonexistent/agent.sock"), std::string::npos);
}

}  // namespace
}  // namespace bulkhead::hooks
