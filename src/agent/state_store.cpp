#include "bulkhead/agent/state_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "state_io.h"

namespace bulkhead::agent {

namespace {

using state_io::ioError;

// The file at `p`, or "" with *missing set when there is none.
Result<std::string> readFile(const std::string& p, bool* missing) {
  *missing = false;
  const Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      *missing = true;
      return std::string();
    }
    return ioError("cannot read " + p, errno);
  }
  return state_io::readAll(fd.get(), p);
}

void replay(v1::AgentState& state, const v1::StateJournalEntry& e) {
  auto* ws = state.mutable_workloads();
  auto named = [&](const std::string& name) {
    return std::find_if(ws->begin(), ws->end(),
                        [&](const v1::Workload& w) { return w.name() == name; });
  };
  if (e.has_upsert()) {
    auto it = named(e.upsert().name());
    if (it != ws->end()) {
      *it = e.upsert();
    } else {
      *ws->Add() = e.upsert();
    }
  }
  if (!e.deleted().empty()) {
    auto it = named(e.deleted());
    if (it != ws->end()) ws->erase(it);
  }
  auto* remotes = state.mutable_remote_workloads();
  auto remote = [&](const v1::Workload& w) {
    return std::find_if(remotes->begin(), remotes->end(), [&](const v1::Workload& x) {
      return x.host() == w.host() && x.name() == w.name();
    });
  };
  if (e.has_remote_upsert()) {
    auto it = remote(e.remote_upsert());
    if (it != remotes->end()) {
      *it = e.remote_upsert();
    } else {
      *remotes->Add() = e.remote_upsert();
    }
  }
  if (e.has_remote_deleted()) {
    auto it = remote(e.remote_deleted());
    if (it != remotes->end()) remotes->erase(it);
  }
  if (e.quarantined_set()) {
    *state.mutable_quarantined() = e.quarantined();
    *state.mutable_quarantines() = e.quarantines();
  }
}

}  // namespace

Result<std::optional<v1::AgentState>> StateStore::load() {
  bool missing = false;
  auto data = readFile(path(), &missing);
  if (!data) return data.takeError();
  const bool noSnapshot = missing;
  v1::AgentState state;
  state.set_format(1);
  if (!noSnapshot && (!state.ParseFromString(*data) || state.format() != 1))
    return makeError(ErrorCode::kInvalidInput,
                     "state file " + path() + " is corrupt (not a bulkhead state, format 1)");
  // Without a snapshot the journal alone is the state: workloads registered
  // before any push (or any snapshot) must survive a restart too.
  if (auto st = journal_.open([&](v1::StateJournalEntry& e) { replay(state, e); }); !st)
    return st.takeError();
  if (noSnapshot && journal_.entries() == 0) return std::optional<v1::AgentState>{};
  // The older journal format is not written any more: its records go into
  // a snapshot, which replaces it with a new journal.
  if (journal_.legacy())
    if (auto st = save(state); !st) return st.takeError();
  return std::optional<v1::AgentState>(std::move(state));
}

Result<StateStore::Ticket> StateStore::write(const v1::StateJournalEntry& entry) {
  if (!journal_.opened() || journal_.legacy()) {
    // Writing without a load first: the torn tail is cut all the same.
    if (auto loaded = load(); !loaded) return loaded.takeError();
  }
  std::string record;
  if (!entry.SerializeToString(&record))
    return makeError(ErrorCode::kInternal, "cannot serialize a state journal entry");
  return journal_.write(record);
}

Status StateStore::append(const v1::StateJournalEntry& entry) {
  auto ticket = write(entry);
  if (!ticket) return ticket.takeError();
  return sync(*ticket);
}

Status StateStore::save(const v1::AgentState& state) {
  std::string data;
  if (!state.SerializeToString(&data))
    return makeError(ErrorCode::kInternal, "cannot serialize the agent state");
  if (auto st = common::replaceFile(dir_, path(), data); !st) return st;
  // The snapshot holds every journalled change now; a crash before the
  // journal is emptied only replays changes the snapshot already has.
  return journal_.reset();
}

}  // namespace bulkhead::agent
