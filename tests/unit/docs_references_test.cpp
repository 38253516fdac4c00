// The project's documents (README.md, docs/*.md) stand alone and stay true
// to the tree: every repository path they name exists, every relative link
// resolves, every source file and every `namespace::Name` they cite is
// still in the code, and nothing in the repository points at material
// outside it.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/source_tree.h"

namespace bulkhead {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = testing::kSourceDir;

std::vector<fs::path> documents() {
  std::vector<fs::path> docs = {kSource / "README.md"};
  for (const auto& e : fs::directory_iterator(kSource / "docs"))
    if (e.path().extension() == ".md") docs.push_back(e.path());
  return docs;
}

// Every file below the code's directories.
std::vector<fs::path> codeFiles() {
  std::vector<fs::path> files;
  for (const char* dir : {"src", "include", "tests", "proto"})
    for (const auto& e : fs::recursive_directory_iterator(kSource / dir))
      if (e.is_regular_file()) files.push_back(e.path());
  return files;
}

// Each match of group 1 of `re` in each document, as "doc: match".
template <class Check>
std::vector<std::string> badMatches(const std::regex& re, Check ok) {
  std::vector<std::string> bad;
  for (const auto& doc : documents()) {
    const std::string text = testing::readText(doc);
    for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
      const std::string m = (*it)[1].str();
      if (!ok(doc, m)) bad.push_back(doc.filename().string() + ": " + m);
    }
  }
  return bad;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += s + "\n";
  return out;
}

TEST(DocsReferencesTest, DocumentsAreThere) {
  // The checks below read these; an empty list would pass them all.
  EXPECT_GE(documents().size(), 8u);
  EXPECT_TRUE(fs::exists(kSource / "docs" / "architecture.md"));
}

// "src/agent/core.cpp", "tests/support/agent_host.h", "include/bulkhead/nft":
// a path of the repository (not one under build/, and not a pattern such as
// src/<layer>/). A benchmark named by its binary has its source beside it.
TEST(DocsReferencesTest, RepositoryPathsExist) {
  const std::regex path(
      R"((?:^|[^\w/.-])((?:src|include|tests|proto|packaging|cmake|docs)/[\w./+-]*[\w+]))");
  const auto bad = badMatches(path, [](const fs::path&, const std::string& p) {
    return fs::exists(kSource / p) || fs::exists(kSource / (p + ".cpp"));
  });
  EXPECT_TRUE(bad.empty()) << "named in the docs, not in the tree:\n" << joined(bad);
}

TEST(DocsReferencesTest, RelativeLinksResolve) {
  const std::regex link(R"(\]\(([^)\s]+)\))");
  const auto bad = badMatches(link, [](const fs::path& doc, std::string target) {
    if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) return true;
    if (target.find_first_of("[*") != std::string::npos) return true;  // a regex in prose
    target = target.substr(0, target.find('#'));
    return target.empty() || fs::exists(doc.parent_path() / target);
  });
  EXPECT_TRUE(bad.empty()) << "links that lead nowhere:\n" << joined(bad);
}

// `owned.h`, `exprs.cpp`, `state.proto`: a file of the code, wherever it is.
TEST(DocsReferencesTest, SourceFilesNamedExist) {
  std::set<std::string> names;
  for (const auto& f : codeFiles())
    names.insert(f.filename().string());
  const std::regex file(R"((?:^|[^\w.-])([\w-]+\.(?:h|cpp|proto))\b)");
  const auto bad = badMatches(
      file, [&](const fs::path&, const std::string& name) { return names.count(name) > 0; });
  EXPECT_TRUE(bad.empty()) << "source files named in the docs, not in the tree:\n" << joined(bad);
}

// `nft::CounterReader`, `common::SteadyClock`, `flows::FeedSources`: a name
// of one of the project's namespaces that the code still declares or uses.
TEST(DocsReferencesTest, QualifiedNamesExist) {
  std::set<std::string> identifiers;
  for (const auto& f : codeFiles()) {
    const std::string text = testing::readText(f);
    for (size_t i = 0; i < text.size();) {
      if (!std::isalpha(uint8_t(text[i])) && text[i] != '_') {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < text.size() && (std::isalnum(uint8_t(text[j])) || text[j] == '_'))
        ++j;
      identifiers.insert(text.substr(i, j - i));
      i = j;
    }
  }
  const std::regex qualified(
      R"(\b((?:common|policy|compiler|nft|flows|agent|cli|hooks|controller|insight|etcd)::\w+))");
  const auto bad = badMatches(qualified, [&](const fs::path&, const std::string& q) {
    return identifiers.count(q.substr(q.find("::") + 2)) > 0;
  });
  EXPECT_TRUE(bad.empty()) << "names in the docs that the code no longer has:\n" << joined(bad);
}

// A reader of the repository has only the repository: its documents and
// comments cite the project's own docs, never a file beside the checkout.
TEST(DocsReferencesTest, NothingPointsOutsideTheRepository) {
  // Spelled in pieces so that this file does not hold them.
  const std::vector<std::string> outside = {std::string("../") + "shared",
                                            std::string("SPEC ") + "\xc2\xa7"};
  std::vector<fs::path> files = codeFiles();
  for (const auto& doc : documents())
    files.push_back(doc);
  std::vector<std::string> bad;
  for (const auto& f : files) {
    const std::string text = testing::readText(f);
    for (const auto& s : outside)
      if (text.find(s) != std::string::npos)
        bad.push_back(fs::relative(f, kSource).string() + ": " + s);
  }
  EXPECT_TRUE(bad.empty()) << joined(bad);
}

}  // namespace
}  // namespace bulkhead
