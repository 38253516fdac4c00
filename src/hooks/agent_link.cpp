// hooks::AgentLink over the agent's gRPC API, spoken by UnaryConnection
// (h2_unary.h) rather than gRPC's client library: a hook is one process,
// one or two calls, and the library's start-up was most of its run.
#include "bulkhead/hooks/agent_link.h"

#include "bulkhead/common/agent_address.h"
#include "bulkhead/hooks/h2_unary.h"

namespace bulkhead::hooks {

namespace {

// ListWorkloads at 10,000+ workloads is a few MB.
constexpr size_t kMaxMessageBytes = 64 << 20;

// gRPC status codes (grpc/status.h) the hooks tell apart.
enum GrpcCode : int {
  kGrpcDeadlineExceeded = 4,
  kGrpcNotFound = 5,
  kGrpcInvalidArgument = 3,
  kGrpcResourceExhausted = 8,
  kGrpcUnavailable = 14,
};

// The service's methods as the wire names them. Spelled out, not read from
// the descriptor: building protobuf's descriptor pool would be a good part
// of a hook's run (tests/unit/hooks_wire_test.cpp checks them against it).
std::string methodPath(const std::string& method) {
  return std::string(kAgentService) + method;
}

class WireAgentLink : public AgentLink {
 public:
  WireAgentLink(std::string address, std::string socketPath,
                common::SteadyClock::time_point deadline)
      : address_(std::move(address)), conn_(std::move(socketPath), deadline, kMaxMessageBytes) {}

  Status upsert(const v1::Workload& workload) override {
    v1::UpsertWorkloadRequest request;
    *request.mutable_workload() = workload;
    v1::UpsertWorkloadResponse response;
    return call("UpsertWorkload", request, &response);
  }

  Status remove(const std::string& name, const std::string& owner) override {
    v1::DeleteWorkloadRequest request;
    request.set_name(name);
    request.set_owner(owner);
    v1::DeleteWorkloadResponse response;
    return call("DeleteWorkload", request, &response);
  }

  Result<std::vector<v1::Workload>> list(const std::string& name) override {
    v1::ListWorkloadsRequest request;
    request.set_name(name);
    v1::ListWorkloadsResponse response;
    if (auto st = call("ListWorkloads", request, &response); !st) return st.takeError();
    // An agent older than the name filter returns everything.
    std::vector<v1::Workload> out;
    for (auto& w : *response.mutable_workloads())
      if (name.empty() || w.name() == name) out.push_back(std::move(w));
    return out;
  }

  Status ping() override {
    v1::AgentStatus status;
    return call("GetStatus", v1::GetStatusRequest(), &status);
  }

 private:
  Status call(const std::string& method, const google::protobuf::Message& request,
              google::protobuf::Message* response) {
    std::string bytes;
    if (!request.SerializeToString(&bytes))
      return makeError(ErrorCode::kInternal, "cannot serialize a " + method + " request");
    auto reply = conn_.call(methodPath(method), bytes);
    const std::string where = "agent " + address_ + ": ";
    if (!reply) {
      Error e = reply.takeError();
      e.message = where + e.message;
      return e;
    }
    if (reply->grpcStatus != 0) return check(*reply, where);
    if (!response->ParseFromString(reply->body))
      return makeError(ErrorCode::kInternal, where + "a " + method + " reply that does not parse");
    return {};
  }

  static Status check(const UnaryReply& r, const std::string& where) {
    switch (r.grpcStatus) {
      case kGrpcUnavailable:
        return makeError(ErrorCode::kUnavailable,
                         where + "unreachable (is bulkhead-agent running?): " + r.message);
      case kGrpcDeadlineExceeded:
        return makeError(ErrorCode::kUnavailable, where + "no answer within the hook's deadline");
      case kGrpcNotFound:
        return makeError(ErrorCode::kNotFound, where + r.message);
      case kGrpcInvalidArgument:
      case kGrpcResourceExhausted:
        return makeError(ErrorCode::kInvalidInput, where + "refused: " + r.message);
      default:
        return makeError(
            ErrorCode::kInternal,
            where + "failed (gRPC code " + std::to_string(r.grpcStatus) + "): " + r.message);
    }
  }

  std::string address_;
  UnaryConnection conn_;
};

}  // namespace

AgentConnector grpcConnector(std::chrono::milliseconds budget) {
  const common::SteadyClock::time_point deadline = common::SteadyClock::now() + budget;
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
    // The target is "unix:/path"; the connection opens on the first call.
    return std::unique_ptr<AgentLink>(
        new WireAgentLink(address, parsed.target.substr(5), deadline));
  };
}

}  // namespace bulkhead::hooks
