#include <openssl/evp.h>

#include <cstring>
#include <map>

#include "bulkhead/common/file.h"
#include "bulkhead/controller/store.h"
#include "store_codec.h"

namespace bulkhead::controller {

namespace {

// "bhctl" + format 1; then the payload's length (u64, little endian), its
// SHA-256 and the payload.
constexpr char kMagic[8] = {'b', 'h', 'c', 't', 'l', '\0', '\1', '\n'};
constexpr size_t kHeaderBytes = sizeof(kMagic) + 8 + 32;
constexpr size_t kMaxStoreBytes = size_t(1) << 30;

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

// The store file of `payload`: magic, length, SHA-256, payload, replaced
// whole (common::replaceFile: a crash leaves the old file or the new one).
Status writeStoreFile(const std::string& dir, const std::string& path, std::string_view payload) {
  std::string data(kMagic, sizeof(kMagic));
  appendU64(data, payload.size());
  data += sha256(payload);
  data += payload;
  return common::replaceFile(dir, path, data);
}

Error corrupt(const std::string& path, const std::string& why) {
  return makeError(ErrorCode::kInvalidInput, "controller store file " + path + " is corrupt (" +
                                                 why + "); move it away to start without it");
}

// The payload of `path`; nullopt when the file does not exist.
Result<std::optional<std::string>> readFile(const std::string& path) {
  auto data = common::readFileBounded(path, kMaxStoreBytes);
  if (!data) {
    if (data.error().code == ErrorCode::kNotFound) return std::optional<std::string>{};
    return makeError(data.error().code, "cannot read " + path + ": " + data.error().describe(),
                     data.error().sysErrno);
  }
  if (data->size() < kHeaderBytes || std::memcmp(data->data(), kMagic, sizeof(kMagic)) != 0)
    return corrupt(path, "not a bulkhead-controller store file, format 1");
  const uint64_t len = readU64(std::string_view(*data).substr(sizeof(kMagic), 8));
  if (len != data->size() - kHeaderBytes)
    return corrupt(path, "torn: " + std::to_string(data->size() - kHeaderBytes) + " of " +
                             std::to_string(len) + " bytes");
  std::string payload = data->substr(kHeaderBytes);
  if (sha256(payload) != data->substr(sizeof(kMagic) + 8, 32))
    return corrupt(path, "checksum mismatch");
  return std::optional<std::string>(std::move(payload));
}

}  // namespace

Result<std::optional<v1::PolicyRevision>> FileStore::loadBundle() {
  auto payload = readFile(bundlePath());
  if (!payload) return payload.takeError();
  if (!*payload) return std::optional<v1::PolicyRevision>{};
  v1::PolicyRevision bundle;
  if (!bundle.ParseFromString(**payload) || bundle.revision() == 0)
    return corrupt(bundlePath(), "not a policy revision");
  return std::optional<v1::PolicyRevision>(std::move(bundle));
}

Status FileStore::saveBundle(const v1::PolicyRevision& bundle) {
  std::string payload;
  if (!bundle.SerializeToString(&payload))
    return makeError(ErrorCode::kInternal, "cannot serialize the bundle");
  return writeStoreFile(dir_, bundlePath(), payload);
}

// The inventory's payload: the hosts (a FleetStatus, length-prefixed with
// a u64) then their workloads (a ListWorkloadsResponse, Workload.host set).
Result<std::vector<StoredHost>> FileStore::loadInventory() {
  auto payload = readFile(inventoryPath());
  if (!payload) return payload.takeError();
  std::vector<StoredHost> out;
  if (!*payload) return out;
  const auto parts = splitFramed(**payload);
  v1::FleetStatus hosts;
  v1::ListWorkloadsResponse workloads;
  if (!parts || !hosts.ParseFromArray(parts->first.data(), int(parts->first.size())) ||
      !workloads.ParseFromArray(parts->second.data(), int(parts->second.size())))
    return corrupt(inventoryPath(), "not an inventory");
  std::map<std::string, size_t> index;
  for (const auto& h : hosts.hosts()) {
    index[h.host()] = out.size();
    out.push_back(fromHostStatus(h));
  }
  for (const auto& w : workloads.workloads()) {
    auto it = index.find(w.host());
    if (it == index.end()) return corrupt(inventoryPath(), "a workload of an unknown host");
    out[it->second].workloads.push_back(w);
  }
  return out;
}

Status FileStore::saveInventory(const std::vector<StoredHost>& hosts) {
  v1::FleetStatus status;
  v1::ListWorkloadsResponse workloads;
  for (const auto& h : hosts) {
    toHostStatus(h, status.add_hosts());
    for (const auto& w : h.workloads)
      *workloads.add_workloads() = w;
  }
  std::string a, b;
  if (!status.SerializeToString(&a) || !workloads.SerializeToString(&b))
    return makeError(ErrorCode::kInternal, "cannot serialize the inventory");
  return writeStoreFile(dir_, inventoryPath(), joinFramed(a, b));
}

}  // namespace bulkhead::controller
