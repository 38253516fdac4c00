// Real files for unit and privileged tests: a scratch path per test, and
// byte access to a file in place (a crash's leftovers written over a
// record, bytes read back). Header only: the unit tests use it without the
// privileged support library.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace bulkhead::testing {

// $TMPDIR/<prefix>-<pid>-<test name> (without the test name outside a
// test), with nothing there: what an earlier run left is removed. Not
// created; the caller removes it at the end.
inline std::filesystem::path scratchPath(const std::string& prefix) {
  std::string name = prefix + "-" + std::to_string(getpid());
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
    name += std::string("-") + info->name();
  const auto path = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(path);
  return path;
}

// Overwrites `bytes` at `offset` of the existing file `path`.
inline void pokeBytes(const std::filesystem::path& path, size_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(offset));
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// Up to `n` bytes of `path` from `offset` (fewer at the end of the file).
inline std::string readBytes(const std::filesystem::path& path, size_t offset, size_t n) {
  std::ifstream f(path, std::ios::binary);
  f.seekg(std::streamoff(offset));
  std::string out(n, '\0');
  f.read(out.data(), std::streamsize(n));
  out.resize(size_t(f.gcount()));
  return out;
}

}  // namespace bulkhead::testing
