// Flow lines' addresses: the reader's own dotted-quad path accepts and
// rejects exactly what IpAddr::parse does, with the same bytes.
#include <gtest/gtest.h>

#include <string>

#include "bulkhead/insight/flow_log.h"

namespace bulkhead::insight {
namespace {

TEST(FlowLogAddressTest, DottedQuadsReadAsIpAddrParseReadsThem) {
  for (const std::string dst :
       {"192.0.2.1",      "0.0.0.0",  "255.255.255.255", "198.51.100.7", "203.0.113.255",
        "01.2.3.4",       "1.2.3.04", "1.2.3.256",       "1.2.3.1000",   "1.2.3",
        "1.2.3.4.5",      "1..2.3",   ".1.2.3",          "1.2.3.",       "1.2.3.4x",
        " 1.2.3.4",       "1.2.3.4 ", "999.1.1.1",       "1.2.3.-4",     "2001:db8::1",
        "::ffff:1.2.3.4", "",         "a.b.c.d"}) {
    SCOPED_TRACE(dst);
    const std::string line = "{\"action\":\"deny\",\"dst\":\"" + dst + "\",\"src\":\"" + dst +
                             "\",\"dport\":1,\"proto\":\"tcp\"}";
    FlowRecord r;
    std::string why;
    const bool ok = parseFlowLine(line, &r, &why);
    const auto expected = policy::IpAddr::parse(dst);
    ASSERT_EQ(ok, expected.has_value()) << why;
    if (!ok) {
      EXPECT_EQ(why, "bad \"dst\" address");
      continue;
    }
    EXPECT_EQ(r.dst, *expected);
    EXPECT_TRUE(r.hasSrc);
    EXPECT_EQ(r.src, *expected);
  }
}

}  // namespace
}  // namespace bulkhead::insight
