// The controller's outbound messages, encoded once and shared. A remote
// workload is encoded (as a SOURCE_REMOTE v1::Workload) once per change and
// the bundle once per revision; every host's snapshot, policy message and
// remote upsert then refers to those bytes (reference counted) or copies
// them with a memcpy, instead of holding a protobuf copy per host. At 1,000
// hosts that each select ~1,000 remote workloads this is the difference
// between hundreds of MiB of per-host message objects and one encoding.
//
// An Outgoing is a ControllerMessage (controller.proto) as a list of byte
// parts whose concatenation is its protobuf encoding; the stream writes the
// parts as slices of one gRPC byte buffer, without another copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bulkhead/v1/controller.pb.h"

namespace bulkhead::controller {

using SharedBytes = std::shared_ptr<const std::string>;

// Encoded once, shared by every message that carries it.
SharedBytes encodeShared(const google::protobuf::MessageLite& message);

class Outgoing {
 public:
  enum class Kind : uint8_t { kSnapshot, kPolicy, kUpsert, kDelete, kKeepAlive, kBatch };

  // `policy`: a v1::PolicyRevision's encoding, or null (no bundle yet);
  // `remotes`: v1::Workload encodings.
  static Outgoing snapshot(const SharedBytes& policy, const std::vector<SharedBytes>& remotes);
  static Outgoing policy(const SharedBytes& policy);
  static Outgoing upsert(std::string host, std::string name, SharedBytes workload);
  static Outgoing remove(std::string host, std::string name);
  static Outgoing keepAlive(int64_t sentUnixMs);
  // Any message, encoded now (tests; batches the caller built).
  static Outgoing of(const v1::ControllerMessage& message);

  Kind kind() const { return kind_; }
  bool isRemoteChange() const {
    return kind_ == Kind::kUpsert || kind_ == Kind::kDelete || kind_ == Kind::kBatch;
  }
  // kUpsert, kDelete: the remote workload's key; kUpsert: its encoding.
  const std::string& host() const { return host_; }
  const std::string& name() const { return name_; }
  const SharedBytes& workload() const { return workload_; }

  // The encoded message, in parts to concatenate.
  const std::vector<SharedBytes>& parts() const { return parts_; }
  size_t size() const;
  std::string bytes() const;
  // Parsed back (sinks that inspect messages: tests).
  v1::ControllerMessage decode() const;

 private:
  friend Outgoing foldRemoteChanges(const std::vector<Outgoing>& changes);
  Kind kind_ = Kind::kKeepAlive;
  std::string host_, name_;
  SharedBytes workload_;
  std::vector<SharedBytes> parts_;
};

// Remote changes (upserts, deletes, batches) folded, in order, into one
// RemoteBatch message: the last state of each (host, name) wins, so each
// key appears once and the batch's two lists commute.
Outgoing foldRemoteChanges(const std::vector<Outgoing>& changes);

}  // namespace bulkhead::controller
