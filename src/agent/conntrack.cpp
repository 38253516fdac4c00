#include "bulkhead/agent/conntrack.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace bulkhead::agent {

namespace {

struct ConntrackFree {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using ConntrackPtr = std::unique_ptr<nf_conntrack, ConntrackFree>;

struct DumpState {
  const std::vector<policy::IpAddr>* addresses;
  std::vector<ConntrackPtr> matches;
};

bool listed(const std::vector<policy::IpAddr>& addresses, policy::Family family,
            const void* bytes) {
  if (bytes == nullptr) return false;
  return std::any_of(addresses.begin(), addresses.end(), [&](const policy::IpAddr& a) {
    return a.family == family && std::memcmp(a.bytes.data(), bytes, a.size()) == 0;
  });
}

bool matches(const nf_conntrack* ct, const std::vector<policy::IpAddr>& addresses) {
  const uint8_t l3 = nfct_get_attr_u8(ct, ATTR_L3PROTO);
  if (l3 == AF_INET) {
    for (auto attr :
         {ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST})
      if (listed(addresses, policy::Family::kIpv4, nfct_get_attr(ct, attr))) return true;
  } else if (l3 == AF_INET6) {
    for (auto attr :
         {ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST, ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST})
      if (listed(addresses, policy::Family::kIpv6, nfct_get_attr(ct, attr))) return true;
  }
  return false;
}

int collect(enum nf_conntrack_msg_type, nf_conntrack* ct, void* data) {
  auto* state = static_cast<DumpState*>(data);
  if (matches(ct, *state->addresses)) state->matches.emplace_back(nfct_clone(ct));
  return NFCT_CB_CONTINUE;
}

}  // namespace

Result<std::unique_ptr<NetfilterConntrack>> NetfilterConntrack::open() {
  nfct_handle* h = nfct_open(CONNTRACK, 0);
  if (h == nullptr)
    return makeError(ErrorCode::kUnavailable, "cannot open ctnetlink (connection tracking)", errno);
  return std::unique_ptr<NetfilterConntrack>(new NetfilterConntrack(h));
}

NetfilterConntrack::~NetfilterConntrack() {
  nfct_close(handle_);
}

Result<size_t> NetfilterConntrack::flush(const std::vector<policy::IpAddr>& addresses) {
  if (addresses.empty()) return size_t{0};
  // ctnetlink deletes by exact tuple only: dump the table, keep the
  // workload's entries, delete them one by one. A handle cannot issue a
  // query from inside its own dump callback, hence the two passes.
  DumpState state{&addresses, {}};
  nfct_callback_register(handle_, NFCT_T_ALL, collect, &state);
  uint32_t family = AF_UNSPEC;
  const int dumped = nfct_query(handle_, NFCT_Q_DUMP, &family);
  nfct_callback_unregister(handle_);
  if (dumped < 0)
    return makeError(ErrorCode::kKernel, "cannot list the connection tracking table", errno);
  size_t deleted = 0;
  for (const auto& ct : state.matches) {
    if (!ct) continue;
    if (nfct_query(handle_, NFCT_Q_DESTROY, ct.get()) == 0) {
      ++deleted;
    } else if (errno != ENOENT) {  // ENOENT: it ended meanwhile
      return makeError(ErrorCode::kKernel, "cannot delete a connection tracking entry", errno);
    }
  }
  return deleted;
}

}  // namespace bulkhead::agent
