// Client: connection and the key-value calls (Range, Put, Txn, DeleteRange,
// Compact).
#include "client_impl.h"

namespace bulkhead::etcd {
namespace {

KeyValue fromProto(const mvccpb::KeyValue& kv) {
  return KeyValue{kv.key(),          kv.value(),   kv.create_revision(),
                  kv.mod_revision(), kv.version(), kv.lease()};
}

RangeResult fromProto(const etcdserverpb::RangeResponse& response) {
  RangeResult out;
  out.revision = response.header().revision();
  out.kvs.reserve(size_t(response.kvs_size()));
  for (const auto& kv : response.kvs())
    out.kvs.push_back(fromProto(kv));
  return out;
}

Result<RangeResult> range(ClientImpl& impl, const etcdserverpb::RangeRequest& request,
                          const std::string& what) {
  etcdserverpb::RangeResponse response;
  const grpc::Status status = impl.invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    response.Clear();
    return ch.kv->Range(&ctx, request, &response);
  });
  if (!status.ok()) return impl.toError(status, what);
  return fromProto(response);
}

}  // namespace

Client::Client(std::unique_ptr<ClientImpl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  auto impl = ClientImpl::create(options);
  if (!impl) return impl.takeError();
  return std::unique_ptr<Client>(new Client(std::move(*impl)));
}

const ClientOptions& Client::options() const {
  return impl_->options();
}

Result<RangeResult> Client::get(const std::string& key) {
  etcdserverpb::RangeRequest request;
  request.set_key(key);
  return range(*impl_, request, "get");
}

Result<RangeResult> Client::getPrefix(const std::string& prefix) {
  etcdserverpb::RangeRequest request;
  request.set_key(prefixRangeStart(prefix));
  request.set_range_end(prefixRangeEnd(prefix));
  return range(*impl_, request, "get prefix");
}

Result<int64_t> Client::put(const std::string& key, const std::string& value, int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  const grpc::Status status = impl_->invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    return ch.kv->Put(&ctx, request, &response);
  });
  if (!status.ok()) return impl_->toError(status, "put");
  return response.header().revision();
}

Result<std::optional<int64_t>> Client::putIf(const std::string& key, const std::string& value,
                                             int64_t expectedModRevision, int64_t lease) {
  etcdserverpb::TxnRequest request;
  auto* compare = request.add_compare();
  compare->set_key(key);
  compare->set_target(etcdserverpb::Compare::MOD);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  // An absent key's mod_revision compares as 0.
  compare->set_mod_revision(expectedModRevision);
  auto* put = request.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  etcdserverpb::TxnResponse response;
  const grpc::Status status = impl_->invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    return ch.kv->Txn(&ctx, request, &response);
  });
  if (!status.ok()) return impl_->toError(status, "conditional put");
  if (!response.succeeded()) return std::optional<int64_t>();
  return std::optional<int64_t>(response.header().revision());
}

Result<int64_t> Client::erase(const std::string& key) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  etcdserverpb::DeleteRangeResponse response;
  const grpc::Status status = impl_->invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    return ch.kv->DeleteRange(&ctx, request, &response);
  });
  if (!status.ok()) return impl_->toError(status, "delete");
  return response.header().revision();
}

Status Client::compact(int64_t revision) {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  // Returns once the compaction is applied, so a watch made afterwards
  // sees it.
  request.set_physical(true);
  etcdserverpb::CompactionResponse response;
  const grpc::Status status = impl_->invoke([&](EndpointChannel& ch, grpc::ClientContext& ctx) {
    return ch.kv->Compact(&ctx, request, &response);
  });
  if (!status.ok()) return impl_->toError(status, "compact");
  return {};
}

}  // namespace bulkhead::etcd
