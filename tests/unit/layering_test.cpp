// The layers as CMake builds them: no file of a layer includes a header of a
// layer its library does not link (directly or through the layers it links),
// so nothing reaches up; and docs/architecture.md's table of libraries says
// what CMakeLists.txt says.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
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

struct Libraries {
  std::set<std::string> names;                         // add_library(bulkhead_*)
  std::map<std::string, std::set<std::string>> links;  // their bulkhead_* links
};

Libraries fromCMake() {
  const std::string cmake = testing::readText(kSource / "CMakeLists.txt");
  Libraries libs;
  const std::regex added(R"(add_library\((bulkhead_\w+))");
  for (std::sregex_iterator it(cmake.begin(), cmake.end(), added), end; it != end; ++it)
    libs.names.insert((*it)[1]);
  const std::regex linked(R"(target_link_libraries\((bulkhead_\w+)([^)]*)\))");
  const std::regex name(R"(bulkhead_\w+)");
  for (std::sregex_iterator it(cmake.begin(), cmake.end(), linked), end; it != end; ++it) {
    const std::string args = (*it)[2];
    auto& to = libs.links[(*it)[1]];
    for (std::sregex_iterator n(args.begin(), args.end(), name); n != end; ++n)
      to.insert(n->str());
  }
  return libs;
}

std::set<std::string> reachable(const Libraries& libs, const std::string& from) {
  std::set<std::string> seen = {from};
  std::vector<std::string> todo = {from};
  while (!todo.empty()) {
    const std::string lib = todo.back();
    todo.pop_back();
    auto it = libs.links.find(lib);
    if (it == libs.links.end()) continue;
    for (const auto& next : it->second)
      if (seen.insert(next).second) todo.push_back(next);
  }
  return seen;
}

// The library a file of the tree, or a header under bulkhead/, belongs to;
// "" for what no library holds (the binaries' main.cpp).
std::string libraryOf(const std::string& path, const Libraries& libs) {
  if (path.find("/netlink_socket.") != std::string::npos) return "bulkhead_netlink";
  if (path.rfind("bulkhead/v1/", 0) == 0) return "bulkhead_proto";
  const std::regex layer(R"(^(?:src|include/bulkhead|bulkhead)/([\w-]+)/)");
  std::smatch m;
  if (!std::regex_search(path, m, layer)) return "";
  const std::string lib = "bulkhead_" + m[1].str();
  return libs.names.count(lib) ? lib : "";
}

TEST(LayeringTest, CMakeIsRead) {
  const Libraries libs = fromCMake();
  EXPECT_GE(libs.names.size(), 10u);
  EXPECT_TRUE(libs.links.at("bulkhead_agent").count("bulkhead_nft"));
  EXPECT_TRUE(reachable(libs, "bulkhead_agent").count("bulkhead_common"));
  EXPECT_EQ(libraryOf("src/nft/netlink_socket.cpp", libs), "bulkhead_netlink");
  EXPECT_EQ(libraryOf("include/bulkhead/agent/core.h", libs), "bulkhead_agent");
  EXPECT_EQ(libraryOf("src/bulkhead-agent/main.cpp", libs), "");
}

TEST(LayeringTest, NoLayerIncludesALayerItDoesNotLink) {
  const Libraries libs = fromCMake();
  const std::regex include(R"re(#include "(bulkhead/[^"]+)")re");
  std::string bad;
  size_t checked = 0;
  for (const char* dir : {"src", "include/bulkhead"}) {
    for (const auto& e : fs::recursive_directory_iterator(kSource / dir)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = fs::relative(e.path(), kSource).string();
      const std::string own = libraryOf(rel, libs);
      if (own.empty()) continue;
      const std::set<std::string> allowed = reachable(libs, own);
      const std::string text = testing::readText(e.path());
      for (std::sregex_iterator it(text.begin(), text.end(), include), end; it != end; ++it) {
        const std::string target = libraryOf((*it)[1], libs);
        ++checked;
        if (!target.empty() && !allowed.count(target))
          bad += rel + " (" + own + ") includes " + (*it)[1].str() + " (" + target + ")\n";
      }
    }
  }
  EXPECT_GT(checked, 100u);
  EXPECT_EQ(bad, "") << "a layer reaches one it does not link";
}

// | `bulkhead_nft` | compiler, netlink | agent |: the second column names
// the bulkhead libraries the first links, without their prefix.
TEST(LayeringTest, ArchitectureTableMatchesCMake) {
  const Libraries libs = fromCMake();
  const std::string doc = testing::readText(kSource / "docs" / "architecture.md");
  const std::regex row(R"(\n\| `(bulkhead_\w+)` \| ([^|\n]*) \|)");
  const std::regex word(R"([a-z_]+)");
  std::set<std::string> documented;
  for (std::sregex_iterator it(doc.begin(), doc.end(), row), end; it != end; ++it) {
    const std::string lib = (*it)[1], cell = (*it)[2];
    documented.insert(lib);
    if (!libs.names.count(lib)) continue;  // a layer another branch adds
    std::set<std::string> said;
    for (std::sregex_iterator w(cell.begin(), cell.end(), word); w != end; ++w)
      if (libs.names.count("bulkhead_" + w->str())) said.insert("bulkhead_" + w->str());
    const auto found = libs.links.find(lib);
    const std::set<std::string> actual =
        found == libs.links.end() ? std::set<std::string>{} : found->second;
    EXPECT_EQ(said, actual) << lib << ": architecture.md says \"" << cell << "\"";
  }
  // Every library has its row; not the static twins of the hooks' binaries
  // nor a layer's generated stubs (bulkhead_<layer>_proto).
  auto endsWith = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (const auto& lib : libs.names) {
    if (endsWith(lib, "_static") || (endsWith(lib, "_proto") && lib != "bulkhead_proto")) continue;
    EXPECT_TRUE(documented.count(lib)) << lib << " is missing from architecture.md's table";
  }
}

}  // namespace
}  // namespace bulkhead
