#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "bulkhead/common/file.h"
#include "bulkhead/policy/limits.h"
#include "bulkhead/policy/loader.h"
#include "loader_internal.h"

namespace bulkhead::policy {

namespace fs = std::filesystem;

namespace {

bool isPolicyFile(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

Diagnostic fileError(const std::string& path, std::string message) {
  return Diagnostic{SourceLoc{path, 0, 0}, std::move(message)};
}

// Expands `paths` into the files to load, in load order. False (after an
// error) when the walk had to stop.
bool collectFiles(const std::vector<std::string>& paths, std::vector<std::string>& files,
                  std::vector<Diagnostic>& errors) {
  for (const std::string& path : paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      errors.push_back(fileError(path, "no such file or directory"));
      continue;
    }
    if (fs::is_regular_file(st)) {
      files.push_back(path);
    } else if (fs::is_directory(st)) {
      std::vector<std::string> found;
      fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end;
      for (; !ec && it != end; it.increment(ec)) {
        if (!isPolicyFile(it->path())) continue;
        std::error_code fec;
        if (!it->is_regular_file(fec)) continue;
        found.push_back(it->path().string());
        if (files.size() + found.size() > limits::kMaxFiles) {
          errors.push_back(
              fileError(path, "more than " + std::to_string(limits::kMaxFiles) + " policy files"));
          return false;
        }
      }
      if (ec) errors.push_back(fileError(path, "cannot read directory: " + ec.message()));
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      errors.push_back(fileError(path, "not a regular file or directory"));
    }
    if (files.size() > limits::kMaxFiles) {
      errors.push_back(
          fileError(path, "more than " + std::to_string(limits::kMaxFiles) + " policy files"));
      return false;
    }
  }
  return true;
}

// Reads a whole file, but never more than limits::kMaxFileBytes + 1 bytes,
// even when the file grows while we read it.
bool readFile(const std::string& path, std::string& out, std::vector<Diagnostic>& errors) {
  auto text = common::readFileBounded(path, limits::kMaxFileBytes);
  if (!text) {
    // A missing file reads as any other that cannot be opened.
    const Error& e = text.error();
    errors.push_back(
        fileError(path, e.code == ErrorCode::kNotFound ? "cannot open file" : e.message));
    return false;
  }
  out = std::move(*text);
  return true;
}

}  // namespace

std::vector<SourceFile> readSourceFiles(const std::vector<std::string>& paths,
                                        std::vector<Diagnostic>& errors) {
  std::vector<SourceFile> out;
  std::vector<std::string> files;
  if (!collectFiles(paths, files, errors)) return out;
  size_t total = 0;
  std::string text;
  for (const std::string& file : files) {
    if (!readFile(file, text, errors)) continue;
    total += text.size();
    if (total > limits::kMaxBundleBytes) {
      errors.push_back(fileError(file, "policy files too large: more than " +
                                           std::to_string(limits::kMaxBundleBytes) +
                                           " bytes in total"));
      return out;
    }
    out.push_back(SourceFile{file, text});
  }
  return out;
}

LoadResult loadFiles(const std::vector<SourceFile>& files) {
  LoadResult result;
  internal::ParseNotes notes;
  size_t total = 0;
  for (const auto& f : files)
    total += f.name.size() + f.content.size();
  if (files.size() > limits::kMaxFiles) {
    result.errors.push_back(
        fileError("", "more than " + std::to_string(limits::kMaxFiles) + " policy files"));
    return result;
  }
  if (total > limits::kMaxBundleBytes) {
    result.errors.push_back(fileError("", "policy files too large: more than " +
                                              std::to_string(limits::kMaxBundleBytes) +
                                              " bytes in total"));
    return result;
  }
  for (const auto& f : files) {
    if (f.content.size() > limits::kMaxFileBytes) {
      result.errors.push_back(fileError(
          f.name, "file too large: " + std::to_string(f.content.size()) + " bytes (the limit is " +
                      std::to_string(limits::kMaxFileBytes) + ")"));
      continue;
    }
    internal::parseText(f.content, f.name, result.bundle, result.errors, notes);
  }
  internal::validateBundle(result.bundle, result.errors, result.warnings, notes);
  return result;
}

LoadResult loadPaths(const std::vector<std::string>& paths) {
  std::vector<Diagnostic> errors;
  auto files = readSourceFiles(paths, errors);
  if (!errors.empty()) {
    LoadResult result;
    result.errors = std::move(errors);
    // Still parse what could be read, so one run reports every error.
    auto rest = loadFiles(files);
    for (auto& e : rest.errors)
      result.errors.push_back(std::move(e));
    result.warnings = std::move(rest.warnings);
    result.bundle = std::move(rest.bundle);
    return result;
  }
  return loadFiles(files);
}

LoadResult loadText(std::string_view text, const std::string& fileName) {
  LoadResult result;
  internal::ParseNotes notes;
  internal::parseText(text, fileName, result.bundle, result.errors, notes);
  internal::validateBundle(result.bundle, result.errors, result.warnings, notes);
  return result;
}

}  // namespace bulkhead::policy
