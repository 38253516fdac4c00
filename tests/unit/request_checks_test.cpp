// Client strings with control characters or over-long values are refused
// (INVALID_ARGUMENT naming the field) before they reach a log, the journal
// or status; the refusal's own message carries the value escaped.
#include "bulkhead/agent/request_checks.h"

#include <gtest/gtest.h>

#include "bulkhead/agent/core.h"
#include "bulkhead/agent/core_api.h"
#include "bulkhead/agent/service.h"
#include "bulkhead/common/escape.h"
#include "bulkhead/common/grpc_status.h"
#include "bulkhead/policy/limits.h"
#include "support/fake_kernel.h"

namespace bulkhead::agent {
namespace {

constexpr const char* kForged = "v1\n2026-01-01T00:00:00Z info forged line";

v1::Workload workload() {
  v1::Workload w;
  w.set_name("web-1");
  w.set_app("web");
  w.add_interfaces("vweb1");
  w.add_addresses("192.0.2.10");
  (*w.mutable_labels())["env"] = "prod";
  return w;
}

void expectRefused(const Status& st, const std::string& field) {
  ASSERT_FALSE(st.ok()) << field;
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidInput);
  EXPECT_EQ(common::grpcStatus(st.error()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error().message.rfind(field + ":", 0), 0u) << st.error().message;
  EXPECT_FALSE(hasControlChars(st.error().message)) << st.error().message;
}

template <typename T>
Status statusOf(const Result<T>& r) {
  if (r) return {};
  return r.error();
}

class RequestChecksTest : public ::testing::Test {
 protected:
  testing::FakeKernel kernel_;
  AgentCore core_{kernel_, {}, {}};
};

TEST_F(RequestChecksTest, PushVersionAndFileNames) {
  v1::ApplyPolicyRequest r;
  r.set_version(kForged);
  expectRefused(statusOf(api::applyPolicy(core_, r)), "version");
  r.set_version(std::string(257, 'v'));
  expectRefused(statusOf(api::applyPolicy(core_, r)), "version");
  r.set_version("v1");
  r.add_files()->set_name("ok.yaml");
  r.add_files()->set_name("a.yaml\n2026-01-01T00:00:00Z info forged");
  expectRefused(statusOf(api::applyPolicy(core_, r)), "files[1].name");
  r.mutable_files(1)->set_name(std::string("a\x1b[2J.yaml"));
  expectRefused(statusOf(api::applyPolicy(core_, r)), "files[1].name");
  r.mutable_files(1)->set_name(std::string(4097, 'f'));
  expectRefused(statusOf(api::applyPolicy(core_, r)), "files[1].name");
  r.mutable_files(1)->set_name("");
  expectRefused(statusOf(api::applyPolicy(core_, r)), "files[1].name");
  EXPECT_EQ(kernel_.commits, 0);
  EXPECT_EQ(api::status(core_).version(), "");
}

TEST_F(RequestChecksTest, WorkloadFields) {
  struct Case {
    std::string field;
    std::function<void(v1::Workload&)> spoil;
  };
  const Case cases[] = {
      {"workload.name", [](v1::Workload& w) { w.set_name("web\n1"); }},
      {"workload.name",
       [](v1::Workload& w) {
         w.set_name(std::string(policy::limits::kMaxWorkloadNameLength + 1, 'a'));
       }},
      {"workload.app", [](v1::Workload& w) { w.set_app("web\r"); }},
      {"workload.interfaces[1]", [](v1::Workload& w) { w.add_interfaces("v\t1"); }},
      {"workload.interfaces[0]", [](v1::Workload& w) { w.set_interfaces(0, "v0123456789abcdef"); }},
      {"workload.addresses[0]", [](v1::Workload& w) { w.set_addresses(0, "192.0.2.1\n"); }},
      {"workload.labels key", [](v1::Workload& w) { (*w.mutable_labels())["a\nb"] = "x"; }},
      {"workload.labels[env]", [](v1::Workload& w) { (*w.mutable_labels())["env"] = "p\x7f"; }},
      {"workload.labels[env]",
       [](v1::Workload& w) { (*w.mutable_labels())["env"] = std::string(64, 'p'); }},
  };
  for (const auto& c : cases) {
    v1::Workload w = workload();
    c.spoil(w);
    expectRefused(statusOf(api::upsertWorkload(core_, w)), c.field);
  }
  EXPECT_EQ(kernel_.commits, 0);
  EXPECT_TRUE(api::upsertWorkload(core_, workload()).ok()) << "the unspoilt workload is fine";
}

TEST_F(RequestChecksTest, NamesInDeleteAndQuarantine) {
  expectRefused(statusOf(api::deleteWorkload(core_, "web-1\ninfo forged")), "name");
  expectRefused(statusOf(api::quarantine(core_, "web-1\ninfo forged", false)), "name");
  expectRefused(statusOf(api::quarantine(core_, std::string(1000, 'a'), true)), "name");
  auto missing = api::deleteWorkload(core_, "web-9");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound) << "a clean unknown name is NOT_FOUND";
}

TEST_F(RequestChecksTest, WatchFlowsFilters) {
  v1::WatchFlowsRequest r;
  r.set_app("web");
  EXPECT_TRUE(checkWatchFlows(r).ok());
  r.set_workload("w\n");
  expectRefused(checkWatchFlows(r), "workload");
}

}  // namespace
}  // namespace bulkhead::agent
