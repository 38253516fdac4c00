#include "bulkhead/agent/service.h"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "bulkhead/agent/core_api.h"
#include "bulkhead/agent/request_checks.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/common/grpc_status.h"

namespace bulkhead::agent {

namespace {

// An error message may quote what a client sent, and holds one diagnostic a
// line: escaped, it stays one log line whatever it holds.
constexpr size_t kLogged = 16384;

grpc::Status logged(grpc::ServerContext* ctx, const char* call, const Error& e) {
  grpc::Status st = common::grpcStatus(e);
  if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
      st.error_code() == grpc::StatusCode::NOT_FOUND ||
      st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    spdlog::info("{} from {} refused: {}", call, ctx->peer(), escapeForLog(e.describe(), kLogged));
  } else {
    spdlog::error("{} from {} failed: {}", call, ctx->peer(), escapeForLog(e.describe(), kLogged));
  }
  return st;
}

}  // namespace

grpc::Status AgentService::ApplyPolicy(grpc::ServerContext* ctx, const v1::ApplyPolicyRequest* req,
                                       v1::ApplyPolicyResponse* resp) {
  auto r = api::applyPolicy(core_, *req);
  if (!r) return logged(ctx, "ApplyPolicy", r.error());
  if (r->changed())
    spdlog::info("policy {} applied ({})", escapeForLog(r->version()), r->change().summary());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status AgentService::UpsertWorkload(grpc::ServerContext* ctx,
                                          const v1::UpsertWorkloadRequest* req,
                                          v1::UpsertWorkloadResponse* resp) {
  auto r = api::upsertWorkload(core_, req->workload());
  if (!r) return logged(ctx, "UpsertWorkload", r.error());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status AgentService::DeleteWorkload(grpc::ServerContext* ctx,
                                          const v1::DeleteWorkloadRequest* req,
                                          v1::DeleteWorkloadResponse* resp) {
  auto r = api::deleteWorkload(core_, req->name(), req->owner());
  if (!r) return logged(ctx, "DeleteWorkload", r.error());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status AgentService::ListWorkloads(grpc::ServerContext*, const v1::ListWorkloadsRequest* req,
                                         v1::ListWorkloadsResponse* resp) {
  *resp = api::listWorkloads(core_, req->name());
  return grpc::Status::OK;
}

grpc::Status AgentService::Quarantine(grpc::ServerContext* ctx, const v1::QuarantineRequest* req,
                                      v1::QuarantineResponse* resp) {
  auto r = api::quarantine(core_, req->name(), req->release());
  if (!r) return logged(ctx, "Quarantine", r.error());
  spdlog::warn("workload {} {}", escapeForLog(req->name()),
               req->release() ? "released" : "quarantined");
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status AgentService::ListQuarantines(grpc::ServerContext*, const v1::ListQuarantinesRequest*,
                                           v1::ListQuarantinesResponse* resp) {
  *resp = api::listQuarantines(core_);
  return grpc::Status::OK;
}

grpc::Status AgentService::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                                     v1::AgentStatus* resp) {
  *resp = api::status(core_);
  return grpc::Status::OK;
}

grpc::Status AgentService::WatchFlows(grpc::ServerContext* ctx, const v1::WatchFlowsRequest* req,
                                      grpc::ServerWriter<v1::FlowEvent>* writer) {
  if (auto st = checkWatchFlows(*req); !st) return logged(ctx, "WatchFlows", st.error());
  auto sub = core_.flows().subscribe(req->app(), req->workload());
  if (!sub) return {grpc::StatusCode::RESOURCE_EXHAUSTED, "too many flow watchers on this agent"};
  v1::FlowEvent e;
  while (!ctx->IsCancelled() && !stopping_) {
    if (!sub->next(&e, 250)) continue;
    if (!writer->Write(e)) break;
  }
  core_.flows().unsubscribe(sub);
  return grpc::Status::OK;
}

}  // namespace bulkhead::agent
