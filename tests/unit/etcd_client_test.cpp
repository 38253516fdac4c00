// The etcd client against a real etcd on loopback: KV, compare-and-swap,
// leases, bad input, TLS, oversized values.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "bulkhead/etcd/client.h"
#include "support/certs.h"
#include "support/etcd_connect.h"
#include "support/etcd_server.h"
#include "support/netns.h"

namespace bulkhead::etcd {
namespace {

using namespace std::chrono_literals;
using testing::connectTo;
using testing::EtcdServer;

TEST(EtcdClient, PutGetEraseAndPrefix) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  auto r1 = client->put("/t/a", "1");
  ASSERT_TRUE(r1.ok()) << r1.error().describe();
  auto r2 = client->put("/t/b", "2");
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2, *r1 + 1);
  ASSERT_TRUE(client->put("/u/c", "3").ok());

  auto got = client->get("/t/a");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "1");
  EXPECT_EQ(got->kvs[0].modRevision, *r1);
  EXPECT_EQ(got->kvs[0].createRevision, *r1);
  EXPECT_EQ(got->kvs[0].version, 1);
  EXPECT_EQ(got->revision, *r2 + 1);

  auto prefix = client->getPrefix("/t/");
  ASSERT_TRUE(prefix.ok());
  ASSERT_EQ(prefix->kvs.size(), 2u);
  EXPECT_EQ(prefix->kvs[0].key, "/t/a");
  EXPECT_EQ(prefix->kvs[1].key, "/t/b");

  auto erased = client->erase("/t/a");
  ASSERT_TRUE(erased.ok());
  EXPECT_EQ(*erased, *r2 + 2);
  EXPECT_TRUE(client->get("/t/a")->kvs.empty());
  EXPECT_EQ(client->getPrefix("/t/")->kvs.size(), 1u);
  EXPECT_TRUE(client->get("/missing")->kvs.empty());
}

TEST(EtcdClient, BinaryKeysAndPrefixEdges) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  const std::string k1(
      "p\xff\x00"
      "a",
      4),
      k2("p\xff\xff", 3), k3("q", 1);
  ASSERT_TRUE(client->put(k1, std::string("v\0v", 3)).ok());
  ASSERT_TRUE(client->put(k2, "x").ok());
  ASSERT_TRUE(client->put(k3, "y").ok());
  auto r = client->getPrefix(std::string("p\xff", 2));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].value, std::string("v\0v", 3));
  // An empty prefix is every key.
  EXPECT_EQ(client->getPrefix("")->kvs.size(), 3u);
}

TEST(EtcdClient, PutIfWritesOnlyOverTheExpectedRevision) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  // 0: only when absent.
  auto first = client->putIf("/cas", "a", 0);
  ASSERT_TRUE(first.ok()) << first.error().describe();
  ASSERT_TRUE(first->has_value());
  auto again = client->putIf("/cas", "b", 0);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  // Someone else wrote in between: the stale revision loses.
  auto other = client->put("/cas", "other");
  ASSERT_TRUE(other.ok());
  auto stale = client->putIf("/cas", "c", **first);
  ASSERT_TRUE(stale.ok());
  EXPECT_FALSE(stale->has_value());
  EXPECT_EQ(client->get("/cas")->kvs.at(0).value, "other");
  auto fresh = client->putIf("/cas", "d", *other);
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(fresh->has_value());
  EXPECT_EQ(client->get("/cas")->kvs.at(0).value, "d");
  EXPECT_EQ(client->get("/cas")->kvs.at(0).modRevision, **fresh);
}

TEST(EtcdClient, LeaseKeepsKeyAliveAndItsExpiryDeletesIt) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  auto kept = client->leaseGrant(2s);
  auto left = client->leaseGrant(2s);
  ASSERT_TRUE(kept.ok() && left.ok());
  ASSERT_TRUE(client->put("/lease/kept", "k", *kept).ok());
  ASSERT_TRUE(client->put("/lease/left", "l", *left).ok());
  EXPECT_EQ(client->get("/lease/kept")->kvs.at(0).lease, *kept);
  std::vector<int64_t> expired;
  std::mutex mutex;
  {
    LeaseKeeper keeper(*client, [&](int64_t lease) {
      std::lock_guard lock(mutex);
      expired.push_back(lease);
    });
    keeper.add(*kept, 2s);
    // Well past both TTLs: etcd checks expiry every 500 ms.
    std::this_thread::sleep_for(4s);
    EXPECT_EQ(client->get("/lease/kept")->kvs.size(), 1u);
    EXPECT_TRUE(client->get("/lease/left")->kvs.empty());
    EXPECT_TRUE(client->leaseKeepAlive(*kept).ok());
    auto gone = client->leaseKeepAlive(*left);
    ASSERT_FALSE(gone.ok());
    EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
    // A lease revoked behind the keeper's back is reported as expired.
    ASSERT_TRUE(client->leaseRevoke(*kept).ok());
    EXPECT_TRUE(client->get("/lease/kept")->kvs.empty());
    EXPECT_TRUE(testing::waitFor(
        [&] {
          std::lock_guard lock(mutex);
          return !expired.empty();
        },
        3000));
  }
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], *kept);
  EXPECT_FALSE(client->leaseRevoke(*kept).ok());
  EXPECT_EQ(client->leaseKeepAlive(123456789).error().code, ErrorCode::kNotFound);
}

TEST(EtcdClient, LeaseKeeperReportsLeaseLostWhileEtcdWasDown) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto options = etcd.clientOptions();
  options.requestTimeout = 500ms;
  auto client = connectTo(options);
  ASSERT_TRUE(client);
  auto lease = client->leaseGrant(2s);
  ASSERT_TRUE(lease.ok());
  std::atomic<int64_t> expired{0};
  LeaseKeeper keeper(*client, [&](int64_t l) { expired = l; });
  keeper.add(*lease, 2s);
  etcd.kill();
  EXPECT_TRUE(testing::waitFor([&] { return expired.load() != 0; }, 5000));
  EXPECT_EQ(expired.load(), *lease);
}

TEST(EtcdClient, UnreachableEndpointsFailPromptlyWithTheList) {
  ClientOptions options;
  // Ports nobody listens on (etcd's are free ports too; these two are taken
  // from a server just stopped).
  EtcdServer a, b;
  ASSERT_TRUE(a.ok() && b.ok());
  options.endpoints = {a.endpoint(), b.endpoint()};
  // A call waits for an endpoint to come back within this deadline.
  options.requestTimeout = 1s;
  a.kill();
  b.kill();
  auto client = connectTo(options);
  ASSERT_TRUE(client);
  const auto start = std::chrono::steady_clock::now();
  auto r = client->put("/k", "v");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find(a.endpoint()), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(b.endpoint()), std::string::npos) << r.error().message;
  EXPECT_LT(took, 2500ms);
}

TEST(EtcdClient, BadEndpointsAreInvalidInput) {
  for (const std::string bad :
       {"", ",", "127.0.0.1:2379", "ftp://h:1", "http://", "http://h:0", "http://h:65536",
        "http://h:12x", "http://h:1/path", "http://u@h:1", "http://fe80::1:2379",
        "http://[::1:2379", "http://h\n:1", "http://a:1,https://b:2"}) {
    auto r = parseEndpoints(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput) << bad;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  }
  auto good = parseEndpoints("http://127.0.0.1:2379,http://[::1]:23790/,http://etcd-1");
  ASSERT_TRUE(good.ok()) << good.error().describe();
  EXPECT_EQ(good->endpoints.size(), 3u);
  auto noCa = parseEndpoints("https://127.0.0.1:2379", "/nonexistent/ca.crt");
  ASSERT_FALSE(noCa.ok());
  EXPECT_EQ(noCa.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(noCa.error().message.find("/nonexistent/ca.crt"), std::string::npos);
  EXPECT_EQ(parseEndpoints("https://h:1", "", "/c.crt").error().code, ErrorCode::kInvalidInput);
  EXPECT_EQ(parseEndpoints("http://h:1", "/ca.crt").error().code, ErrorCode::kInvalidInput);
  ClientOptions none;
  EXPECT_EQ(Client::connect(none).error().code, ErrorCode::kInvalidInput);
}

TEST(EtcdClient, OversizedValueIsAClearError) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  // Under etcd's 1.5 MiB request limit: stored and read back whole.
  const std::string mib(1 << 20, 'x');
  ASSERT_TRUE(client->put("/big/ok", mib).ok());
  EXPECT_EQ(client->get("/big/ok")->kvs.at(0).value.size(), mib.size());
  // Over it (etcd refuses), far over it (gRPC's limit), beyond the client's own.
  for (const size_t size : {size_t(1600) << 10, size_t(3) << 20, size_t(20) << 20}) {
    auto r = client->put("/big/no", std::string(size, 'y'));
    ASSERT_FALSE(r.ok()) << size;
    EXPECT_EQ(r.error().code, ErrorCode::kTooLarge) << r.error().message;
    auto cas = client->putIf("/big/no", std::string(size, 'y'), 0);
    ASSERT_FALSE(cas.ok());
    EXPECT_EQ(cas.error().code, ErrorCode::kTooLarge) << cas.error().message;
  }
  // etcd still serves.
  EXPECT_TRUE(client->put("/big/after", "v").ok());
  EXPECT_TRUE(client->get("/big/no")->kvs.empty());
}

TEST(EtcdClient, TlsWithClientCertificate) {
  EtcdServer etcd(testing::EtcdTls{true, true});
  ASSERT_TRUE(etcd.ok()) << etcd.log();
  auto client = connectTo(etcd.clientOptions());
  ASSERT_TRUE(client);
  auto put = client->put("/tls", "v");
  ASSERT_TRUE(put.ok()) << put.error().describe();
  EXPECT_EQ(client->get("/tls")->kvs.at(0).value, "v");

  // By name: the channel's authority (and SNI) is the endpoint's host,
  // which the certificate names (DNS:localhost).
  auto byName = etcd.clientOptions();
  byName.endpoints = {"https://localhost:" +
                      etcd.endpoint().substr(etcd.endpoint().rfind(':') + 1)};
  auto named = connectTo(byName);
  ASSERT_TRUE(named);
  auto viaName = named->get("/tls");
  ASSERT_TRUE(viaName.ok()) << viaName.error().describe();
  EXPECT_EQ(viaName->kvs.at(0).value, "v");

  // Without a client certificate etcd refuses the handshake.
  auto anonymous = etcd.clientOptions();
  anonymous.certFile.clear();
  anonymous.keyFile.clear();
  anonymous.requestTimeout = 2s;
  auto refused = connectTo(anonymous);
  ASSERT_TRUE(refused);
  auto r = refused->get("/tls");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << r.error().message;

  // A CA that did not sign etcd's certificate.
  auto other = etcd.clientOptions();
  std::filesystem::create_directories(etcd.certDir() / "other");
  ASSERT_TRUE(testing::makeTestCa(etcd.certDir() / "other").ok());
  other.caFile = (etcd.certDir() / "other" / "ca.crt").string();
  other.requestTimeout = 2s;
  auto untrusted = connectTo(other);
  ASSERT_TRUE(untrusted);
  EXPECT_FALSE(untrusted->get("/tls").ok());
}

TEST(EtcdClient, HttpsAgainstPlainEtcdIsAClearError) {
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok());
  EtcdServer tlsEtcd(testing::EtcdTls{true, false});
  ASSERT_TRUE(tlsEtcd.ok());
  auto options = tlsEtcd.clientOptions();
  options.endpoints = {"https" + etcd.endpoint().substr(4)};
  options.requestTimeout = 2s;
  auto client = connectTo(options);
  ASSERT_TRUE(client);
  const auto start = std::chrono::steady_clock::now();
  auto r = client->get("/k");
  ASSERT_FALSE(r.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("TLS"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(options.endpoints[0]), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace bulkhead::etcd
