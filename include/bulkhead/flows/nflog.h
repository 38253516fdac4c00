// The NFLOG reader: a libmnl nfnetlink_log socket bound to one group in the
// current network namespace.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bulkhead/common/result.h"
#include "bulkhead/flows/event.h"

namespace bulkhead::flows {

struct NflogStats {
  uint64_t packets = 0;  // LoggedPackets returned
  // Gaps in NFULA_SEQ: every event the kernel numbered but we never got,
  // including those dropped by an overrun (exact; a trailing gap shows only
  // when the next event arrives).
  uint64_t lostKernel = 0;
  uint64_t lostOverrun = 0;  // ENOBUFS reports: our socket buffer overflowed (+1 each, not
                             // per event: the events are in lostKernel)
  uint64_t malformed = 0;    // messages we could not parse
};

class NflogReader {
 public:
  struct Options {
    uint16_t group = 1771;
    uint32_t copyRange = 256;  // bytes of packet: headers only
    // NFULA_CFG_QTHRESH: events per netlink message. One per message makes
    // every event take a whole socket-buffer entry and a burst overruns the
    // buffer; 64 with a 10 ms timeout keeps latency low and bursts whole.
    uint32_t queueThreshold = 64;
    uint32_t timeoutCentis = 1;  // NFULA_CFG_TIMEOUT in 1/100 s: at most 10 ms of delay
    int rcvBufBytes = 8 << 20;
  };
  // Binds the group in the calling thread's network namespace (the socket
  // stays there; read() may then run on any thread). Another socket owning
  // the group (the kernel answers EPERM; EBUSY if bound twice) -> kUnavailable
  // "NFLOG group N is owned by another program (ulogd?)".
  static Result<std::unique_ptr<NflogReader>> open(const Options& options);
  virtual ~NflogReader() = default;
  // Waits up to timeoutMs; returns what arrived (possibly nothing).
  virtual Result<std::vector<LoggedPacket>> read(int timeoutMs) = 0;
  virtual NflogStats stats() const = 0;
  virtual int fd() const = 0;
};

// How the flow feed gets its reader: NflogReader::open in the agent; tests
// pass one that hands out a fake fed with netlink bytes.
using NflogOpener =
    std::function<Result<std::unique_ptr<NflogReader>>(const NflogReader::Options& options)>;

}  // namespace bulkhead::flows
