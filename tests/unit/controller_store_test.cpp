// The embedded store: round trips, and a torn or altered file is an error
// naming the file, never an empty store.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bulkhead/controller/store.h"

namespace bulkhead::controller {
namespace {

struct StoreDir {
  std::string path;
  StoreDir() {
    char tmpl[] = "/tmp/bh-ctl-store-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~StoreDir() { std::filesystem::remove_all(path); }
};

v1::PolicyRevision bundle(uint64_t revision) {
  v1::PolicyRevision b;
  b.set_revision(revision);
  b.set_version("v" + std::to_string(revision));
  auto* f = b.add_files();
  f->set_name("a.yaml");
  f->set_content("kind: App\n");
  return b;
}

StoredHost host(const std::string& name, int workloads) {
  StoredHost h;
  h.host = name;
  h.agentVersion = "0.1.0";
  h.ackedRevision = 3;
  h.lastError = "";
  h.lastSeenUnixMs = 1764300000123;
  for (int i = 0; i < workloads; ++i) {
    v1::Workload w;
    w.set_name("w" + std::to_string(i));
    w.set_app("payments");
    w.add_addresses("192.0.2." + std::to_string(i + 1));
    (*w.mutable_labels())["tier"] = "api";
    w.set_host(name);
    h.workloads.push_back(w);
  }
  return h;
}

void truncateFile(const std::string& p, size_t drop) {
  const auto size = std::filesystem::file_size(p);
  std::filesystem::resize_file(p, size - drop);
}

TEST(ControllerStore, EmptyDirectoryIsAnEmptyStore) {
  StoreDir dir;
  FileStore store(dir.path + "/state");
  auto b = store.loadBundle();
  ASSERT_TRUE(b) << b.error().describe();
  EXPECT_FALSE(b->has_value());
  auto inv = store.loadInventory();
  ASSERT_TRUE(inv);
  EXPECT_TRUE(inv->empty());
}

TEST(ControllerStore, RoundTrips) {
  StoreDir dir;
  FileStore store(dir.path + "/nested/state");
  ASSERT_TRUE(store.saveBundle(bundle(7)));
  ASSERT_TRUE(store.saveInventory({host("host-a", 3), host("host-b", 0)}));
  FileStore again(dir.path + "/nested/state");
  auto b = again.loadBundle();
  ASSERT_TRUE(b && b->has_value());
  EXPECT_EQ((*b)->revision(), 7u);
  EXPECT_EQ((*b)->files(0).content(), "kind: App\n");
  auto inv = again.loadInventory();
  ASSERT_TRUE(inv) << inv.error().describe();
  ASSERT_EQ(inv->size(), 2u);
  EXPECT_EQ((*inv)[0].host, "host-a");
  EXPECT_EQ((*inv)[0].ackedRevision, 3u);
  EXPECT_EQ((*inv)[0].lastSeenUnixMs, 1764300000123);
  ASSERT_EQ((*inv)[0].workloads.size(), 3u);
  EXPECT_EQ((*inv)[0].workloads[2].addresses(0), "192.0.2.3");
  EXPECT_TRUE((*inv)[1].workloads.empty());
  // Files are private to the controller, and no temporary file is left.
  struct stat st {};
  ASSERT_EQ(::stat(again.bundlePath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(again.bundlePath() + ".tmp"));
}

TEST(ControllerStore, TornFileIsAnErrorNamingIt) {
  StoreDir dir;
  FileStore store(dir.path);
  ASSERT_TRUE(store.saveBundle(bundle(2)));
  ASSERT_TRUE(store.saveInventory({host("host-a", 5)}));
  truncateFile(store.bundlePath(), 3);
  truncateFile(store.inventoryPath(), 1);
  auto b = store.loadBundle();
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find(store.bundlePath()), std::string::npos);
  EXPECT_NE(b.error().message.find("torn"), std::string::npos);
  auto inv = store.loadInventory();
  ASSERT_FALSE(inv);
  EXPECT_NE(inv.error().message.find(store.inventoryPath()), std::string::npos);
}

TEST(ControllerStore, AlteredOrForeignFileIsAnError) {
  StoreDir dir;
  FileStore store(dir.path);
  ASSERT_TRUE(store.saveBundle(bundle(2)));
  {
    std::fstream f(store.bundlePath(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put('X');
  }
  auto b = store.loadBundle();
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("checksum"), std::string::npos);
  std::ofstream(store.inventoryPath()) << "hosts: []\n";
  auto inv = store.loadInventory();
  ASSERT_FALSE(inv);
  EXPECT_NE(inv.error().message.find("not a bulkhead-controller store file"), std::string::npos);
  // An empty file (a crash between create and write of a non-atomic
  // writer) is not "no store" either.
  std::ofstream(store.bundlePath(), std::ios::trunc).close();
  EXPECT_FALSE(store.loadBundle());
}

TEST(ControllerStore, LeftoverTemporaryFileDoesNotMatter) {
  StoreDir dir;
  FileStore store(dir.path);
  ASSERT_TRUE(store.saveBundle(bundle(4)));
  // A crash after writing the temporary file, before the rename.
  std::ofstream(store.bundlePath() + ".tmp") << "half";
  auto b = store.loadBundle();
  ASSERT_TRUE(b && b->has_value());
  EXPECT_EQ((*b)->revision(), 4u);
  ASSERT_TRUE(store.saveBundle(bundle(5)));
  EXPECT_EQ((*store.loadBundle())->revision(), 5u);
}

}  // namespace
}  // namespace bulkhead::controller
