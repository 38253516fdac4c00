// Files at the program's boundary: reading a whole file the program was
// told to read (a policy, a PEM file, a state file) without letting its size
// decide the program's memory, and writing state that a crash must not tear
// (the agent's state store, the controller's store).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "bulkhead/common/result.h"

namespace bulkhead::common {

// Reads all of `path`, but never more than maxBytes + 1 bytes, even when the
// file grows while it is read (or is a FIFO or /dev/zero). Errors, without
// the path (callers put it where their messages want it):
//   kNotFound (errno ENOENT)  "no such file"
//   kIo (errno set)            "cannot open file" / "cannot read file"
//   kTooLarge                  "file too large: N bytes (the limit is M)"
//                              (N is at least maxBytes + 1 when the size
//                              could not be known up front)
Result<std::string> readFileBounded(const std::string& path, size_t maxBytes);

// The errors below are kIo with the errno and what failed ("creating P",
// "fsync P", "writing P", "renaming A to B", "opening D").

// Writes all of `data` at `offset` (pwrite), or at the file position when
// `offset` is negative; EINTR and short writes are retried. `path` names
// the file in the error.
Status writeAll(int fd, std::string_view data, off_t offset, const std::string& path);

// Creates `dir` and its missing parents (mode 0700); existing ones are kept.
Status mkdirs(const std::string& dir);

// A rename or a new file is durable only once its directory entry is.
Status syncDirectory(const std::string& dir);

// Replaces `path` (in directory `dir`, made if missing) with `data`: written
// to path.tmp, fsync'd, renamed over `path`, the directory fsync'd. A crash
// at any point leaves the old file or the new one, whole.
Status replaceFile(const std::string& dir, const std::string& path, std::string_view data);

}  // namespace bulkhead::common
