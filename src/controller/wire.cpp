#include "bulkhead/controller/wire.h"

#include <map>
#include <optional>
#include <utility>

namespace bulkhead::controller {

namespace {

// Field numbers of controller.proto, for the parts encoded here by hand.
constexpr uint32_t kMessageSnapshot = 1;  // ControllerMessage
constexpr uint32_t kMessagePolicy = 2;
constexpr uint32_t kMessageUpsert = 3;
constexpr uint32_t kMessageBatch = 6;
constexpr uint32_t kSnapshotPolicy = 1;  // Snapshot
constexpr uint32_t kSnapshotRemotes = 2;
constexpr uint32_t kBatchUpserts = 1;  // RemoteBatch
constexpr uint32_t kBatchDeletes = 2;

void putVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}

size_t varintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// The key and length of a length-delimited field; its bytes follow.
void putField(std::string& out, uint32_t field, size_t length) {
  putVarint(out, (uint64_t(field) << 3) | 2);
  putVarint(out, length);
}

size_t fieldSize(uint32_t field, size_t length) {
  return varintSize((uint64_t(field) << 3) | 2) + varintSize(length) + length;
}

void putBytesField(std::string& out, uint32_t field, const std::string& bytes) {
  putField(out, field, bytes.size());
  out += bytes;
}

SharedBytes owned(std::string bytes) {
  return std::make_shared<const std::string>(std::move(bytes));
}

}  // namespace

SharedBytes encodeShared(const google::protobuf::MessageLite& message) {
  return owned(message.SerializeAsString());
}

Outgoing Outgoing::snapshot(const SharedBytes& policy, const std::vector<SharedBytes>& remotes) {
  size_t bodySize = 0;
  for (const auto& w : remotes)
    bodySize += fieldSize(kSnapshotRemotes, w->size());
  std::string body;
  body.reserve(bodySize);
  for (const auto& w : remotes)
    putBytesField(body, kSnapshotRemotes, *w);
  const size_t snapshotSize = (policy ? fieldSize(kSnapshotPolicy, policy->size()) : 0) + bodySize;
  std::string head;
  putField(head, kMessageSnapshot, snapshotSize);
  if (policy) putField(head, kSnapshotPolicy, policy->size());
  Outgoing m;
  m.kind_ = Kind::kSnapshot;
  m.parts_.push_back(owned(std::move(head)));
  if (policy) m.parts_.push_back(policy);
  if (!body.empty()) m.parts_.push_back(owned(std::move(body)));
  return m;
}

Outgoing Outgoing::policy(const SharedBytes& policy) {
  std::string head;
  putField(head, kMessagePolicy, policy->size());
  Outgoing m;
  m.kind_ = Kind::kPolicy;
  m.parts_ = {owned(std::move(head)), policy};
  return m;
}

Outgoing Outgoing::upsert(std::string host, std::string name, SharedBytes workload) {
  std::string head;
  putField(head, kMessageUpsert, workload->size());
  Outgoing m;
  m.kind_ = Kind::kUpsert;
  m.host_ = std::move(host);
  m.name_ = std::move(name);
  m.parts_ = {owned(std::move(head)), workload};
  m.workload_ = std::move(workload);
  return m;
}

Outgoing Outgoing::remove(std::string host, std::string name) {
  v1::ControllerMessage message;
  message.mutable_remote_delete()->set_host(host);
  message.mutable_remote_delete()->set_name(name);
  Outgoing m;
  m.kind_ = Kind::kDelete;
  m.host_ = std::move(host);
  m.name_ = std::move(name);
  m.parts_ = {encodeShared(message)};
  return m;
}

Outgoing Outgoing::keepAlive(int64_t sentUnixMs) {
  v1::ControllerMessage message;
  message.mutable_keepalive()->set_sent_unix_ms(sentUnixMs);
  Outgoing m;
  m.kind_ = Kind::kKeepAlive;
  m.parts_ = {encodeShared(message)};
  return m;
}

Outgoing Outgoing::of(const v1::ControllerMessage& message) {
  switch (message.message_case()) {
    case v1::ControllerMessage::kRemoteUpsert: {
      const auto& w = message.remote_upsert();
      return upsert(w.host(), w.name(), encodeShared(w));
    }
    case v1::ControllerMessage::kRemoteDelete:
      return remove(message.remote_delete().host(), message.remote_delete().name());
    default:
      break;
  }
  Outgoing m;
  switch (message.message_case()) {
    case v1::ControllerMessage::kSnapshot:
      m.kind_ = Kind::kSnapshot;
      break;
    case v1::ControllerMessage::kPolicy:
      m.kind_ = Kind::kPolicy;
      break;
    case v1::ControllerMessage::kRemoteBatch:
      m.kind_ = Kind::kBatch;
      break;
    default:
      m.kind_ = Kind::kKeepAlive;
  }
  m.parts_ = {encodeShared(message)};
  return m;
}

size_t Outgoing::size() const {
  size_t n = 0;
  for (const auto& p : parts_)
    n += p->size();
  return n;
}

std::string Outgoing::bytes() const {
  std::string out;
  out.reserve(size());
  for (const auto& p : parts_)
    out += *p;
  return out;
}

v1::ControllerMessage Outgoing::decode() const {
  v1::ControllerMessage m;
  m.ParseFromString(bytes());
  return m;
}

Outgoing foldRemoteChanges(const std::vector<Outgoing>& changes) {
  // (host, name) -> the last upsert's encoding; null: deleted.
  std::map<std::pair<std::string, std::string>, SharedBytes> last;
  for (const auto& c : changes) {
    if (c.kind() == Outgoing::Kind::kUpsert) last[{c.host(), c.name()}] = c.workload();
    if (c.kind() == Outgoing::Kind::kDelete) last[{c.host(), c.name()}] = nullptr;
    if (c.kind() != Outgoing::Kind::kBatch) continue;
    const auto batch = c.decode().remote_batch();
    for (const auto& k : batch.deletes())
      last[{k.host(), k.name()}] = nullptr;
    for (const auto& w : batch.upserts())
      last[{w.host(), w.name()}] = encodeShared(w);
  }
  std::string body;
  for (const auto& [key, workload] : last) {
    if (workload) {
      putBytesField(body, kBatchUpserts, *workload);
      continue;
    }
    v1::RemoteWorkloadKey k;
    k.set_host(key.first);
    k.set_name(key.second);
    putBytesField(body, kBatchDeletes, k.SerializeAsString());
  }
  std::string head;
  putField(head, kMessageBatch, body.size());
  Outgoing m;
  m.kind_ = Outgoing::Kind::kBatch;
  m.parts_ = {owned(std::move(head)), owned(std::move(body))};
  return m;
}

}  // namespace bulkhead::controller
