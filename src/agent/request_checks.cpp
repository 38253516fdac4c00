#include "bulkhead/agent/request_checks.h"

#include "bulkhead/common/escape.h"
#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::agent {

namespace {

// Generous bounds for fields that validation later narrows (an address is
// at most 43 bytes with its prefix); they only keep hostile values short.
constexpr size_t kMaxAddressBytes = 64;

std::string indexed(std::string_view field, int i) {
  return std::string(field) + "[" + std::to_string(i) + "]";
}

}  // namespace

Status checkClientString(std::string_view field, std::string_view value, size_t maxBytes) {
  if (value.size() > maxBytes)
    return makeError(ErrorCode::kInvalidInput, std::string(field) + ": longer than " +
                                                   std::to_string(maxBytes) + " bytes (" +
                                                   std::to_string(value.size()) + ")");
  for (size_t i = 0; i < value.size(); ++i)
    if (isControlChar(value[i]))
      return makeError(ErrorCode::kInvalidInput,
                       std::string(field) + ": control character at byte " + std::to_string(i) +
                           " in \"" + escapeForLog(value, 64) + "\"");
  return {};
}

namespace {

// `nameOf(i)`: file i's name; `count` of them.
template <typename NameOf>
Status checkPolicyStrings(std::string_view version, size_t count, NameOf nameOf) {
  if (auto st = checkClientString("version", version, kMaxVersionBytes); !st) return st;
  for (size_t i = 0; i < count; ++i) {
    const std::string& name = nameOf(i);
    const std::string field = indexed("files", int(i)) + ".name";
    if (name.empty())
      return makeError(ErrorCode::kInvalidInput, field + ": every file needs a name");
    if (auto st = checkClientString(field, name, kMaxFileNameBytes); !st) return st;
  }
  return {};
}

}  // namespace

Status checkApplyPolicy(const v1::ApplyPolicyRequest& request) {
  return checkPolicyStrings(
      request.version(), size_t(request.files_size()),
      [&](size_t i) -> const std::string& { return request.files(int(i)).name(); });
}

Status checkPolicyPush(const PolicyPush& push) {
  return checkPolicyStrings(push.version, push.files.size(),
                            [&](size_t i) -> const std::string& { return push.files[i].name; });
}

Status checkWorkloadName(std::string_view field, std::string_view name) {
  return checkClientString(field, name, policy::limits::kMaxWorkloadNameLength);
}

Status checkWorkload(const v1::Workload& w) {
  namespace limits = policy::limits;
  if (auto st = checkWorkloadName("workload.name", w.name()); !st) return st;
  if (auto st = checkClientString("workload.app", w.app(), limits::kMaxNameLength); !st) return st;
  for (int i = 0; i < w.interfaces_size(); ++i)
    if (auto st = checkClientString(indexed("workload.interfaces", i), w.interfaces(i),
                                    limits::kMaxInterfaceNameLength);
        !st)
      return st;
  for (int i = 0; i < w.addresses_size(); ++i)
    if (auto st =
            checkClientString(indexed("workload.addresses", i), w.addresses(i), kMaxAddressBytes);
        !st)
      return st;
  for (const auto& [key, value] : w.labels()) {
    if (auto st = checkClientString("workload.labels key", key, limits::kMaxLabelKeyLength); !st)
      return st;
    if (auto st = checkClientString("workload.labels[" + escapeForLog(key) + "]", value,
                                    limits::kMaxLabelValueLength);
        !st)
      return st;
  }
  return {};
}

Status checkOwner(std::string_view owner) {
  constexpr size_t kMaxOwner = 256;
  if (owner.size() > kMaxOwner)
    return makeError(ErrorCode::kInvalidInput, "workload.owner: longer than 256 bytes");
  for (unsigned char c : owner)
    if (c < 0x21 || c > 0x7e)
      return makeError(ErrorCode::kInvalidInput,
                       "workload.owner: only printable ASCII without spaces");
  return {};
}

Status checkWatchFlows(const v1::WatchFlowsRequest& request) {
  if (auto st = checkClientString("app", request.app(), policy::limits::kMaxNameLength); !st)
    return st;
  return checkWorkloadName("workload", request.workload());
}

Status checkValidWorkload(const policy::Workload& workload, bool remote) {
  const std::string errors = policy::workloadErrors(workload, remote);
  if (errors.empty()) return {};
  return makeError(ErrorCode::kInvalidInput, "workload: " + errors);
}

}  // namespace bulkhead::agent
