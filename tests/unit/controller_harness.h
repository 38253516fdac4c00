// A real controller (core + gRPC service) on a unix socket in a temporary
// directory, and simulated agents with real gRPC streams: the harness of the
// controller_*_test.cpp files.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bulkhead/controller/core.h"
#include "bulkhead/controller/service.h"
#include "bulkhead/controller/store.h"
#include "bulkhead/v1/controller.grpc.pb.h"

namespace bulkhead::controller::testing_util {

using namespace std::chrono_literals;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/bh-ctl-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

inline v1::Workload workload(const std::string& name, const std::string& app,
                             const std::string& address) {
  v1::Workload w;
  w.set_name(name);
  w.set_app(app);
  w.add_addresses(address);
  w.add_interfaces("veth-" + name.substr(0, 8));
  w.set_source(v1::Workload::SOURCE_API);
  return w;
}

// A fleet bundle: frontend may reach payments-api (appSelector app:
// payments); nothing else selects anything.
inline constexpr const char* kFleetBundle = R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: frontend}
spec:
  egress:
    - to: [payments-api]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: payments, labels: {tier: api}}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: batch}
spec: {}
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: payments-api}
spec:
  appSelector: {app: payments}
  ports: [tcp/8443]
)";

inline v1::PushPolicyRequest pushOf(const std::string& content, const std::string& version = "") {
  v1::PushPolicyRequest r;
  auto* f = r.add_files();
  f->set_name("fleet.yaml");
  f->set_content(content);
  r.set_version(version);
  return r;
}

// The controller under test, on unix://<dir>/controller.sock.
class ControllerRig {
 public:
  explicit ControllerRig(ControllerOptions options = {}, std::string dir = "")
      : dir_(dir.empty() ? temp_.path : dir), store_(dir_ + "/state") {
    options.name = "test-controller";
    core_ = std::make_unique<ControllerCore>(store_, options);
    auto st = core_->load();
    EXPECT_TRUE(st) << (st ? "" : st.error().describe());
    core_->start();
    service_ = std::make_unique<ControllerService>(*core_, serviceOptions_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    builder.AddListeningPort(target(), grpc::InsecureServerCredentials());
    server_ = builder.BuildAndStart();
    EXPECT_TRUE(server_ != nullptr);
  }
  ~ControllerRig() { stop(); }

  void stop() {
    if (!server_) return;
    service_->shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + 500ms);
    server_->Wait();
    server_.reset();
    core_->stop();
  }

  std::string target() const { return "unix:" + dir_ + "/controller.sock"; }
  const std::string& dir() const { return dir_; }
  ControllerCore& core() { return *core_; }
  FileStore& store() { return store_; }

  std::unique_ptr<v1::Controller::Stub> stub() const {
    return v1::Controller::NewStub(
        grpc::CreateChannel(target(), grpc::InsecureChannelCredentials()));
  }

 private:
  TempDir temp_;
  std::string dir_;
  FileStore store_;
  ServiceOptions serviceOptions_;
  std::unique_ptr<ControllerCore> core_;
  std::unique_ptr<ControllerService> service_;
  std::unique_ptr<grpc::Server> server_;
};

// One simulated agent: a real stream; a reader thread collects what the
// controller sends; acks each revision when autoAck is set.
class SimAgent {
 public:
  SimAgent(std::shared_ptr<grpc::Channel> channel, std::string host, bool autoAck = true)
      : stub_(v1::Controller::NewStub(std::move(channel))),
        host_(std::move(host)),
        autoAck_(autoAck) {}
  SimAgent(const ControllerRig& rig, std::string host, bool autoAck = true)
      : SimAgent(grpc::CreateChannel(rig.target(), grpc::InsecureChannelCredentials()),
                 std::move(host), autoAck) {}
  ~SimAgent() { hangUp(); }

  // The next hello says the agent takes RemoteBatch messages.
  bool batches = false;

  void connect(const std::vector<v1::Workload>& workloads, uint64_t applied = 0,
               const std::string& helloHost = "") {
    hangUp();
    context_ = std::make_unique<grpc::ClientContext>();
    stream_ = stub_->Connect(context_.get());
    v1::AgentMessage m;
    auto* hello = m.mutable_hello();
    hello->set_host(helloHost.empty() ? host_ : helloHost);
    hello->set_agent_version("sim");
    hello->set_applied_revision(applied);
    hello->set_remote_batches(batches);
    for (const auto& w : workloads)
      *hello->add_workloads() = w;
    write(m);
    reader_ = std::thread([this] { readLoop(); });
  }

  bool write(const v1::AgentMessage& m) {
    std::lock_guard lock(writeMu_);
    return stream_->Write(m);
  }
  void upsert(const v1::Workload& w) {
    v1::AgentMessage m;
    *m.mutable_workload()->mutable_upsert() = w;
    write(m);
  }
  void remove(const std::string& name) {
    v1::AgentMessage m;
    m.mutable_workload()->set_deleted(name);
    write(m);
  }
  void ack(uint64_t revision, bool applied = true, const std::string& error = "") {
    v1::AgentMessage m;
    m.mutable_ack()->set_revision(revision);
    m.mutable_ack()->set_applied(applied);
    m.mutable_ack()->set_error(error);
    write(m);
  }

  // Closes the stream from this side (or drops it when the peer is gone).
  void hangUp() {
    if (!stream_) return;
    context_->TryCancel();
    if (reader_.joinable()) reader_.join();
    stream_.reset();
    context_.reset();
  }

  // The next message matching `pred` (earlier non-matching ones are kept),
  // or nullopt after `timeout`.
  std::optional<v1::ControllerMessage> next(
      const std::function<bool(const v1::ControllerMessage&)>& pred,
      std::chrono::milliseconds timeout = 3000ms) {
    std::unique_lock lock(mu_);
    std::optional<v1::ControllerMessage> out;
    cv_.wait_for(lock, timeout, [&] {
      for (auto it = inbox_.begin(); it != inbox_.end(); ++it)
        if (pred(*it)) {
          out = std::move(*it);
          inbox_.erase(it);
          return true;
        }
      return false;
    });
    return out;
  }
  std::optional<v1::ControllerMessage> next(v1::ControllerMessage::MessageCase kind,
                                            std::chrono::milliseconds timeout = 3000ms) {
    return next([kind](const v1::ControllerMessage& m) { return m.message_case() == kind; },
                timeout);
  }
  // Messages other than keepalives still unread.
  size_t pending() {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& m : inbox_)
      n += !m.has_keepalive();
    return n;
  }
  // The stream's end status once it ended (nullopt while open).
  std::optional<grpc::Status> ended(std::chrono::milliseconds timeout = 3000ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return end_.has_value(); });
    return end_;
  }
  size_t received() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  void readLoop() {
    v1::ControllerMessage m;
    while (stream_->Read(&m)) {
      if (autoAck_ && (m.has_policy() || (m.has_snapshot() && m.snapshot().has_policy()))) {
        const uint64_t r =
            m.has_policy() ? m.policy().revision() : m.snapshot().policy().revision();
        ack(r);
      }
      std::lock_guard lock(mu_);
      ++count_;
      inbox_.push_back(m);
      cv_.notify_all();
    }
    auto status = stream_->Finish();
    std::lock_guard lock(mu_);
    end_ = status;
    cv_.notify_all();
  }

  std::unique_ptr<v1::Controller::Stub> stub_;
  std::string host_;
  bool autoAck_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream_;
  std::thread reader_;
  std::mutex writeMu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::ControllerMessage> inbox_;
  std::optional<grpc::Status> end_;
  size_t count_ = 0;
};

inline bool isRemoteUpsertOf(const v1::ControllerMessage& m, const std::string& host,
                             const std::string& name) {
  return m.has_remote_upsert() && m.remote_upsert().host() == host &&
         m.remote_upsert().name() == name;
}
inline bool isRemoteDeleteOf(const v1::ControllerMessage& m, const std::string& host,
                             const std::string& name) {
  return m.has_remote_delete() && m.remote_delete().host() == host &&
         m.remote_delete().name() == name;
}

}  // namespace bulkhead::controller::testing_util
