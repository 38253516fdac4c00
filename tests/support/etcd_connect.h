// A client for a test's etcd: a failed connect is a test failure (with
// etcd's error) and a null pointer the test can ASSERT on.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "bulkhead/etcd/client.h"

namespace bulkhead::testing {

inline std::unique_ptr<etcd::Client> connectTo(const etcd::ClientOptions& options) {
  auto client = etcd::Client::connect(options);
  EXPECT_TRUE(client.ok()) << (client ? "" : client.error().describe());
  return client ? std::move(*client) : nullptr;
}

}  // namespace bulkhead::testing
