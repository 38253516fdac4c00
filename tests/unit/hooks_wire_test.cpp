// The hooks' own gRPC client (h2_unary.h, on libnghttp2) against a real
// gRPC server (gRPC's C++ server on a unix socket, as the agent runs it)
// for every call, status and failure a
// hook meets: replies over many frames and windows, percent-encoded
// messages, deadlines, a peer that closes or never answers, and one that
// sends garbage.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "bulkhead/common/fd.h"
#include "bulkhead/hooks/agent_link.h"
#include "bulkhead/hooks/h2_unary.h"
#include "bulkhead/v1/agent.grpc.pb.h"

namespace bulkhead::hooks {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string unhex(std::string_view hex) {
  std::string out;
  std::string digits;
  for (char c : hex)
    if (c != ' ') digits += c;
  for (size_t i = 0; i + 1 < digits.size(); i += 2)
    out += char(std::stoi(digits.substr(i, 2), nullptr, 16));
  return out;
}

TEST(WirePathTest, MethodPathsAreTheServicesOwn) {
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("bulkhead.v1.Agent");
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(std::string(kAgentService), "/" + service->full_name() + "/");
  // The methods agent_link.cpp calls, with the request types it sends.
  const std::pair<const char*, const char*> used[] = {
      {"UpsertWorkload", "bulkhead.v1.UpsertWorkloadRequest"},
      {"DeleteWorkload", "bulkhead.v1.DeleteWorkloadRequest"},
      {"ListWorkloads", "bulkhead.v1.ListWorkloadsRequest"},
      {"GetStatus", "bulkhead.v1.GetStatusRequest"}};
  for (const auto& [name, input] : used) {
    const auto* m = service->FindMethodByName(name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_EQ(m->input_type()->full_name(), input);
    EXPECT_FALSE(m->client_streaming() || m->server_streaming()) << name;
  }
}

// The agent's API, served by gRPC's own server: what the link must speak.
class TestAgent : public v1::Agent::Service {
 public:
  grpc::Status UpsertWorkload(grpc::ServerContext*, const v1::UpsertWorkloadRequest* req,
                              v1::UpsertWorkloadResponse*) override {
    if (req->workload().app() == "slow") std::this_thread::sleep_for(1500ms);
    if (req->workload().app() == "refused")
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "app \"refused\": 100% unknown \xc3\xa9");
    upserted = req->workload();
    return grpc::Status::OK;
  }
  grpc::Status DeleteWorkload(grpc::ServerContext*, const v1::DeleteWorkloadRequest* req,
                              v1::DeleteWorkloadResponse*) override {
    if (req->name() != "held")
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no workload \"" + req->name() + "\"");
    ++deletes;
    return grpc::Status::OK;
  }
  grpc::Status ListWorkloads(grpc::ServerContext*, const v1::ListWorkloadsRequest*,
                             v1::ListWorkloadsResponse* resp) override {
    for (int i = 0; i < listed; ++i) {
      auto* w = resp->add_workloads();
      w->set_name("w-" + std::to_string(i));
      w->set_app("billing");
      w->add_interfaces("veth" + std::to_string(i));
      w->add_addresses("2001:db8::" + std::to_string(i % 9999));
      w->set_owner(std::string(200, 'o'));
    }
    return grpc::Status::OK;
  }
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::AgentStatus*) override {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
  }

  v1::Workload upserted;
  std::atomic<int> deletes{0};
  int listed = 0;
};

class WireLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bh-wire-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    address_ = "unix://" + (dir_ / "agent.sock").string();
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + (dir_ / "agent.sock").string(), grpc::InsecureServerCredentials());
    b.RegisterService(&agent_);
    b.SetMaxSendMessageSize(64 << 20);
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_);
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() + 1s);
    fs::remove_all(dir_);
  }
  std::unique_ptr<AgentLink> link(std::chrono::milliseconds budget = 5s) {
    auto l = grpcConnector(budget)(address_);
    EXPECT_TRUE(l.ok());
    return std::move(*l);
  }

  fs::path dir_;
  std::string address_;
  TestAgent agent_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(WireLinkTest, UpsertReachesTheServerWhole) {
  v1::Workload w;
  w.set_name("default/web-0");
  w.set_app("billing");
  w.add_interfaces("veth1234");
  w.add_addresses("192.0.2.7/32");
  w.add_addresses("2001:db8::7/128");
  w.set_source(v1::Workload::SOURCE_CNI);
  w.set_owner("net/0123456789ab/eth0");
  auto st = link()->upsert(w);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(agent_.upserted.SerializeAsString(), w.SerializeAsString());
}

TEST_F(WireLinkTest, StatusesMapAndMessagesArriveDecoded) {
  auto l = link();
  v1::Workload w;
  w.set_name("x");
  w.set_app("refused");
  auto refused = l->upsert(w);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(refused.error().message.find("refused: app \"refused\": 100% unknown \xc3\xa9"),
            std::string::npos)
      << refused.error().message;
  auto missing = l->remove("gone", "");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("no workload \"gone\""), std::string::npos);
  auto down = l->ping();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, ErrorCode::kUnavailable);
  // Several calls on one connection: streams 1, 3, 5, 7, one HPACK table.
  EXPECT_TRUE(l->remove("held", "").ok());
  EXPECT_EQ(agent_.deletes.load(), 1);
}

TEST_F(WireLinkTest, ALongListArrivesOverManyFramesThenTheNextCallWorks) {
  agent_.listed = 20000;  // about 5 MB: hundreds of frames, far past one window
  auto l = link();
  auto all = l->list("");
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 20000u);
  EXPECT_EQ((*all)[19999].name(), "w-19999");
  EXPECT_TRUE(l->remove("held", "").ok());
}

TEST_F(WireLinkTest, AReplyOverTheBoundIsRefusedAndTheConnectionDropped) {
  agent_.listed = 100;  // about 25 KB
  UnaryConnection conn((dir_ / "agent.sock").string(), common::SteadyClock::now() + 5s, 4096);
  auto r = conn.call(std::string(kAgentService) + "ListWorkloads", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  EXPECT_NE(r.error().message.find("larger than 4096 bytes"), std::string::npos)
      << r.error().message;
  auto next = conn.call(std::string(kAgentService) + "ListWorkloads", "");
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.error().code, ErrorCode::kUnavailable);
  agent_.listed = 1;
  UnaryConnection fresh((dir_ / "agent.sock").string(), common::SteadyClock::now() + 5s, 4096);
  auto one = fresh.call(std::string(kAgentService) + "ListWorkloads", "");
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_EQ(one->grpcStatus, 0);
  v1::ListWorkloadsResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(one->body));
  EXPECT_EQ(parsed.workloads_size(), 1);
}

TEST_F(WireLinkTest, ASlowAgentEndsAtTheDeadline) {
  v1::Workload w;
  w.set_name("x");
  w.set_app("slow");
  const auto t0 = std::chrono::steady_clock::now();
  auto st = link(300ms)->upsert(w);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find("deadline"), std::string::npos) << st.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

// A listener that is not a gRPC server: `answer` is what it writes to each
// connection before closing it (or holding it open, when `hold`).
class RawPeer {
 public:
  RawPeer(const fs::path& path, std::string answer, bool hold)
      : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_.get(), 4), 0);
    thread_ = std::thread([this, answer, hold] {
      Fd c(::accept(fd_.get(), nullptr, nullptr));
      if (!c) return;
      if (!answer.empty()) (void)!::write(c.get(), answer.data(), answer.size());
      if (hold) {
        char buf[4096];
        while (::read(c.get(), buf, sizeof buf) > 0) {
        }
      }
    });
  }
  ~RawPeer() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }

 private:
  Fd fd_;
  std::thread thread_;
};

TEST(WirePeerTest, NoAgentClosedConnectionSilenceAndGarbageFailBounded) {
  const fs::path dir = fs::temp_directory_path() / ("bh-wire-raw-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string sock = (dir / "a.sock").string();
  {
    auto st = grpcConnector(2s)("unix://" + sock).value()->ping();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(st.error().message.find("is bulkhead-agent running?"), std::string::npos);
  }
  struct Case {
    std::string answer;
    bool hold;
    ErrorCode code;
  };
  const std::string hugeFrame = unhex("ffffff 00 00 00000000");
  const std::string notHttp2 = "HTTP/1.1 400 Bad Request\r\n\r\n";
  for (const auto& c : {Case{"", false, ErrorCode::kUnavailable},       // closes at once
                        Case{"", true, ErrorCode::kUnavailable},        // never answers
                        Case{hugeFrame, true, ErrorCode::kInternal},    // a 16 MB frame
                        Case{notHttp2, true, ErrorCode::kInternal}}) {  // not HTTP/2
    fs::remove(sock);
    RawPeer peer(sock, c.answer, c.hold);
    const auto t0 = std::chrono::steady_clock::now();
    auto st = grpcConnector(500ms)("unix://" + sock).value()->ping();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, c.code) << st.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bulkhead::hooks
