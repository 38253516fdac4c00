// readBounded: a hook's stdin is read whole up to the bound, and one byte
// past it (so that an oversized input is refused, not cut), in steps.
#include <gtest/gtest.h>

#include <sstream>

#include "bulkhead/hooks/agent_link.h"

namespace bulkhead::hooks {
namespace {

TEST(HooksInputTest, SmallInputIsReadWhole) {
  std::istringstream in(std::string("{\"cniVersion\":\"1.0.0\"}"));
  EXPECT_EQ(readBounded(in), "{\"cniVersion\":\"1.0.0\"}");
  std::istringstream empty;
  EXPECT_EQ(readBounded(empty), "");
}

TEST(HooksInputTest, ReadsUpToTheBoundAndOneBytePast) {
  std::string exact(kMaxInputBytes, 'x');
  exact[70000] = 'y';  // past the first step
  std::istringstream at(exact);
  EXPECT_EQ(readBounded(at), exact);
  std::istringstream over(std::string(kMaxInputBytes + 100, 'x'));
  EXPECT_EQ(readBounded(over).size(), kMaxInputBytes + 1);
}

}  // namespace
}  // namespace bulkhead::hooks
