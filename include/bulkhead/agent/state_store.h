// The agent's state on disk (--state-dir): the last applied bundle and the
// API workloads, so a restarted agent puts the same table back before it
// serves. Written atomically: a temporary file is written and fsynced, renamed
// over the old one, and the directory fsynced, so a crash leaves the old
// state or the new one, never a torn file.
#pragma once

#include <optional>
#include <string>

#include "bulkhead/common/result.h"
#include "bulkhead/v1/agent.pb.h"

namespace bulkhead::agent {

class StateStore {
 public:
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}

  // The saved state; nullopt when there is none yet. A file that exists but
  // cannot be read or parsed is an error (kIo / kInvalidInput): the caller
  // must not guess.
  Result<std::optional<v1::AgentState>> load() const;
  Status save(const v1::AgentState& state) const;

  std::string path() const { return dir_ + "/state.pb"; }

 private:
  std::string dir_;
};

}  // namespace bulkhead::agent
