// Reading a whole file the program was told to read (a policy, a PEM file,
// a state file) without letting its size decide the program's memory.
#pragma once

#include <cstddef>
#include <string>

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

}  // namespace bulkhead::common
