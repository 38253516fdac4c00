// The repository's own files, for tests that read them (goldens, docs,
// CMakeLists.txt, packaging): where the tree is, and a file's whole text.
// Header-only: unit and privileged tests both use it.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace bulkhead::testing {

// The source tree this build came from (a compile definition of the tests).
inline const std::filesystem::path kSourceDir = BULKHEAD_SOURCE_DIR;

// The whole file, byte for byte; empty when it cannot be read (the tests'
// comparisons then fail and name the file).
inline std::string readText(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace bulkhead::testing
