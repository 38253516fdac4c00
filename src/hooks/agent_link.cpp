// gRPC behind hooks::AgentLink. One translation unit: gRPC's headers are slow
// to compile.
#include "bulkhead/hooks/agent_link.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>

#include "bulkhead/common/agent_address.h"
#include "bulkhead/common/grpc_channel.h"
#include "bulkhead/v1/agent.grpc.pb.h"

namespace bulkhead::hooks {

namespace {

// gRPC measures deadlines on the system clock.
using DeadlineClock = std::chrono::system_clock;

// ListWorkloads at 10,000+ workloads is a few MB.
constexpr int kMaxMessageBytes = 64 << 20;

class GrpcAgentLink : public AgentLink {
 public:
  GrpcAgentLink(std::string address, const std::string& target, DeadlineClock::time_point deadline)
      : address_(std::move(address)), deadline_(deadline) {
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                         common::agentChannelArguments(kMaxMessageBytes));
    stub_ = v1::Agent::NewStub(channel_);
  }

  Status upsert(const v1::Workload& workload) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_);
    v1::UpsertWorkloadRequest request;
    *request.mutable_workload() = workload;
    v1::UpsertWorkloadResponse response;
    return check(stub_->UpsertWorkload(&ctx, request, &response));
  }

  Status remove(const std::string& name, const std::string& owner) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_);
    v1::DeleteWorkloadRequest request;
    request.set_name(name);
    request.set_owner(owner);
    v1::DeleteWorkloadResponse response;
    return check(stub_->DeleteWorkload(&ctx, request, &response));
  }

  Result<std::vector<v1::Workload>> list(const std::string& name) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_);
    v1::ListWorkloadsRequest request;
    request.set_name(name);
    v1::ListWorkloadsResponse response;
    if (auto st = check(stub_->ListWorkloads(&ctx, request, &response)); !st) return st.takeError();
    // An agent older than the name filter returns everything.
    std::vector<v1::Workload> out;
    for (auto& w : *response.mutable_workloads())
      if (name.empty() || w.name() == name) out.push_back(std::move(w));
    return out;
  }

  Status ping() override {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline_);
    v1::AgentStatus status;
    return check(stub_->GetStatus(&ctx, v1::GetStatusRequest(), &status));
  }

 private:
  Status check(const grpc::Status& s) const {
    if (s.ok()) return {};
    const std::string where = "agent " + address_ + ": ";
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        return makeError(ErrorCode::kUnavailable,
                         where + "unreachable (is bulkhead-agent running?): " + s.error_message());
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return makeError(ErrorCode::kUnavailable, where + "no answer within the hook's deadline");
      case grpc::StatusCode::NOT_FOUND:
        return makeError(ErrorCode::kNotFound, where + s.error_message());
      case grpc::StatusCode::INVALID_ARGUMENT:
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return makeError(ErrorCode::kInvalidInput, where + "refused: " + s.error_message());
      default:
        return makeError(ErrorCode::kInternal, where + "failed (gRPC code " +
                                                   std::to_string(int(s.error_code())) +
                                                   "): " + s.error_message());
    }
  }

  std::string address_;
  DeadlineClock::time_point deadline_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Agent::Stub> stub_;
};

}  // namespace

AgentConnector grpcConnector(std::chrono::milliseconds budget) {
  const DeadlineClock::time_point deadline = DeadlineClock::now() + budget;
  return [deadline](const std::string& address) -> Result<std::unique_ptr<AgentLink>> {
    common::AgentAddress parsed;
    std::string error;
    if (!common::parseAgentAddress(address, &parsed, &error))
      return makeError(ErrorCode::kInvalidInput, error);
    if (parsed.tcp)
      return makeError(ErrorCode::kInvalidInput,
                       "agent address \"" + address +
                           "\": a hook talks to the local agent over its unix socket "
                           "(unix:///path)");
    // gRPC's own log lines would repeat what the hook reports, on the
    // runtime's stderr; GRPC_VERBOSITY brings them back.
    if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
    return std::unique_ptr<AgentLink>(new GrpcAgentLink(address, parsed.target, deadline));
  };
}

}  // namespace bulkhead::hooks
