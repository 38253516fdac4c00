// Internal to bulkhead_flows: parsing one nfnetlink_log packet message and
// counting NFULA_SEQ gaps, as pure functions the unit tests can feed.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <optional>

#include "bulkhead/flows/event.h"

namespace bulkhead::flows {

// One NFULNL_MSG_PACKET message (nlmsg_type NFNL_SUBSYS_ULOG << 8 |
// NFULNL_MSG_PACKET) as the kernel sends it. nullopt for any other message
// type, a message shorter than its headers, an attribute of the wrong size,
// or a missing NFULA_PACKET_HDR (the kernel always sends it first). The
// caller guarantees nlh->nlmsg_len bytes are readable (mnl_nlmsg_ok).
std::optional<LoggedPacket> parseNflogMessage(const nlmsghdr* nlh);

// Counts events missing between consecutive NFULA_SEQ values. The kernel
// numbers each group's events from 0 (the instance is created by our BIND;
// the counter only advances while NFULNL_CFG_F_SEQ is set) and the u32
// wraps to 0 after 0xffffffff.
class SeqTracker {
 public:
  // Returns how many events were lost before `seq`. A value from the past
  // (more than 2^31 behind what was expected: a duplicate or reordering,
  // which netlink unicast does not do) counts nothing and resynchronises.
  uint64_t observe(uint32_t seq) {
    const uint32_t gap = seq - expected_;  // modulo 2^32: handles the wrap
    expected_ = seq + 1;
    return gap < 0x80000000u ? gap : 0;
  }
  uint32_t expected() const { return expected_; }

 private:
  uint32_t expected_ = 0;
};

}  // namespace bulkhead::flows
