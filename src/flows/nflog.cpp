// The NFLOG reader: one libmnl NETLINK_NETFILTER socket bound to one
// nfnetlink_log group in the network namespace of the thread that opens it.
// Kernel behaviour referred to below is net/netfilter/nfnetlink_log.c.
#include "bulkhead/flows/nflog.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/capability.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bulkhead/common/deadline.h"
#include "bulkhead/common/time_format.h"
#include "bulkhead/nft/netlink_socket.h"
#include "nflog_parse.h"

namespace bulkhead::flows {

namespace {

constexpr uint16_t kPacketType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
constexpr uint16_t kConfigType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
// One recv() returns one skb. With a queue threshold above 1 the kernel packs
// several messages into an skb of up to NFULA_CFG_NLBUFSIZ (default
// NLMSG_GOODSIZE), or one packet of up to copy_range (<= 0xffff) bytes plus
// attributes: 256 KiB holds either with room to spare.
constexpr size_t kRecvBufferBytes = 256 * 1024;
constexpr int kAckTimeoutMs = 5000;
// read() returns after this many packets even if more are queued, so a flood
// cannot keep one call from returning.
constexpr size_t kMaxPacketsPerRead = 4096;

// The nfulnl_msg_packet_timestamp fields are be64 seconds and microseconds.
std::optional<WallClock::time_point> timestampFrom(const nlattr* attr) {
  nfulnl_msg_packet_timestamp ts;
  std::memcpy(&ts, mnl_attr_get_payload(attr), sizeof ts);
  const uint64_t sec = be64toh(ts.sec);
  const uint64_t usec = be64toh(ts.usec);
  // Out-of-range values would overflow the nanosecond clock: not a time.
  if (usec >= 1'000'000 || sec > (uint64_t{1} << 34)) return std::nullopt;
  return WallClock::time_point(std::chrono::duration_cast<WallClock::duration>(
      std::chrono::seconds(static_cast<int64_t>(sec)) +
      std::chrono::microseconds(static_cast<int64_t>(usec))));
}

struct ParseState {
  LoggedPacket packet;
  bool haveHeader = false;
};

int attrCallback(const nlattr* attr, void* data) {
  auto* state = static_cast<ParseState*>(data);
  LoggedPacket& p = state->packet;
  const uint16_t len = mnl_attr_get_payload_len(attr);
  const auto* bytes = static_cast<const char*>(mnl_attr_get_payload(attr));
  switch (mnl_attr_get_type(attr)) {
    case NFULA_PACKET_HDR: {
      if (len < sizeof(nfulnl_msg_packet_hdr)) return MNL_CB_ERROR;
      nfulnl_msg_packet_hdr hdr;
      std::memcpy(&hdr, bytes, sizeof hdr);
      p.hwProtocol = ntohs(hdr.hw_protocol);
      state->haveHeader = true;
      break;
    }
    case NFULA_PREFIX:
      // The kernel sends strlen(prefix) + 1 bytes, NUL included; do not rely
      // on the NUL being there.
      p.prefix.assign(bytes, strnlen(bytes, len));
      break;
    case NFULA_IFINDEX_INDEV:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_ERROR;
      p.inIfindex = ntohl(mnl_attr_get_u32(attr));
      break;
    case NFULA_TIMESTAMP:
      if (len < sizeof(nfulnl_msg_packet_timestamp)) return MNL_CB_ERROR;
      p.timestamp = timestampFrom(attr);
      break;
    case NFULA_SEQ:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_ERROR;
      p.seq = ntohl(mnl_attr_get_u32(attr));
      break;
    case NFULA_PAYLOAD:
      p.payload.assign(bytes, len);
      break;
    default:
      // MARK, OUTDEV, HWADDR, UID/GID (output hook), SEQ_GLOBAL, CT, VLAN...:
      // not used, and new kernels may add more.
      break;
  }
  return MNL_CB_OK;
}

}  // namespace

std::optional<LoggedPacket> parseNflogMessage(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != kPacketType) return std::nullopt;
  if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg))) return std::nullopt;
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  ParseState state;
  // nfgen_family is the hook's protocol family: NFPROTO_IPV4/IPV6 for an
  // inet table (the kernel logs with the packet's own family), also
  // NFPROTO_BRIDGE or NFPROTO_ARP for those tables.
  state.packet.family = nfg->nfgen_family;
  // Walk the attributes ourselves rather than with mnl_attr_parse(), which
  // stops quietly at an attribute overrunning the message: here that makes
  // the message malformed.
  const size_t offset = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg));
  const auto* attr = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(nlh) + offset);
  int left = static_cast<int>(nlh->nlmsg_len - offset);
  for (; mnl_attr_ok(attr, left); attr = mnl_attr_next(attr)) {
    left -= MNL_ALIGN(attr->nla_len);
    if (attrCallback(attr, &state) != MNL_CB_OK) return std::nullopt;
  }
  if (left > 0) return std::nullopt;
  if (!state.haveHeader) return std::nullopt;
  return std::move(state.packet);
}

namespace {

std::string groupText(uint16_t group) {
  return "NFLOG group " + std::to_string(group);
}

// Whether this thread has CAP_NET_ADMIN: the kernel answers EPERM both to a
// caller without it (nfnetlink checks it for every message) and to a BIND of
// a group another socket owns.
bool haveNetAdmin() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return true;  // assume; the message says both
  return (data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32))) != 0;
}

class MnlNflogReader final : public NflogReader {
 public:
  MnlNflogReader(nft::NetlinkSocket socket, const Options& options)
      : socket_(std::move(socket)),
        options_(options),
        nextSeq_(static_cast<uint32_t>(time(nullptr))) {}

  ~MnlNflogReader() override {
    if (bound_) {
      // Unbind our group only (never PF_UNBIND: that would detach the
      // namespace's default logger). Closing the socket would release the
      // instance anyway (NETLINK_URELEASE), this just says it first. No ACK
      // is awaited: nothing could be done about a refusal here.
      sendConfig(
          [](nlmsghdr* nlh) {
            nfulnl_msg_config_cmd cmd{NFULNL_CFG_CMD_UNBIND};
            mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof cmd, &cmd);
          },
          false);
    }
  }

  Status configure() {
    socket_.enable(NETLINK_EXT_ACK);
    socket_.enable(NETLINK_CAP_ACK);
    // FORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN (which binding
    // needs too); without it take what rmem_max allows.
    rcvBuf_ = std::max(options_.rcvBufBytes, 4096);
    socket_.setReceiveBuffer(rcvBuf_);
    if (Status s = bindGroup(); !s) return s;
    bound_ = true;
    return setGroupOptions();
  }

  // BIND creates the group's instance owned by this socket's port id.
  Status bindGroup() {
    const std::string group = groupText(options_.group);
    Status s = configStep("bind", [](nlmsghdr* nlh) {
      nfulnl_msg_config_cmd cmd{NFULNL_CFG_CMD_BIND};
      mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof cmd, &cmd);
    });
    if (!s) {
      const int err = s.error().sysErrno;
      // The instance exists: EBUSY if this socket already bound it, EPERM if
      // another socket's port id owns it (the kernel checks ownership before
      // looking at the command), so a second reader sees EPERM.
      if (err == EBUSY || (err == EPERM && haveNetAdmin())) {
        return makeError(ErrorCode::kUnavailable, group + " is owned by another program (ulogd?)",
                         err);
      }
      if (err == EPERM) {
        return makeError(ErrorCode::kUnavailable, "cannot bind " + group + ": needs CAP_NET_ADMIN",
                         err);
      }
      return s;
    }
    return {};
  }

  // Copy mode, batching and sequence numbers of the bound group.
  Status setGroupOptions() {
    Status s;
    // copy_range 0 means "as much as fits" (0xffff) to the kernel; the
    // kernel clamps larger values to 0xffff.
    const uint32_t range = options_.copyRange == 0 ? 0xffff : std::min(options_.copyRange, 0xffffu);
    if (s = configStep("set copy mode",
                       [range](nlmsghdr* nlh) {
                         nfulnl_msg_config_mode mode{};
                         mode.copy_range = htonl(range);
                         mode.copy_mode = NFULNL_COPY_PACKET;
                         // The struct is packed: 6 bytes, the size the
                         // kernel's policy expects.
                         mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof mode, &mode);
                       });
        !s)
      return s;
    // QTHRESH and TIMEOUT are be32 although the uapi comment says __u32. A
    // rule's own `queue-threshold` overrides the group's threshold.
    const uint32_t qthresh = std::max<uint32_t>(options_.queueThreshold, 1);
    if (s = configStep(
            "set queue threshold",
            [qthresh](nlmsghdr* nlh) { mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(qthresh)); });
        !s)
      return s;
    const uint32_t timeout = options_.timeoutCentis;
    if (s = configStep(
            "set flush timeout",
            [timeout](nlmsghdr* nlh) { mnl_attr_put_u32(nlh, NFULA_CFG_TIMEOUT, htonl(timeout)); });
        !s)
      return s;
    // FLAGS is be16. F_SEQ numbers this group's events from 0; the counter
    // only advances while the flag is set, so events logged between BIND and
    // now carry no NFULA_SEQ and the first numbered one is 0.
    if (s = configStep(
            "enable sequence numbers",
            [](nlmsghdr* nlh) { mnl_attr_put_u16(nlh, NFULA_CFG_FLAGS, htons(NFULNL_CFG_F_SEQ)); });
        !s)
      return s;
    return {};
  }

  Result<std::vector<LoggedPacket>> read(int timeoutMs) override {
    std::vector<LoggedPacket> out;
    out.swap(pending_);  // packets that arrived while configuring come first
    // POLLERR alone (sk_err = ENOBUFS) counts as readable; drain() reports it.
    auto ready = socket_.waitReadable(out.empty() ? timeoutMs : 0);
    if (!ready)
      return makeError(ErrorCode::kKernel,
                       "poll on the " + groupText(options_.group) + " socket failed",
                       ready.error().sysErrno);
    if (*ready) {
      if (Status s = drain(out); !s) return s.takeError();
    }
    stats_.packets += out.size();
    return out;
  }

  NflogStats stats() const override { return stats_; }
  int fd() const override { return socket_.fd(); }

 private:
  struct AckWait {
    uint32_t seq = 0;
    bool done = false;
    int error = 0;
  };

  // Reads everything queued now (non-blocking), up to kMaxPacketsPerRead.
  Status drain(std::vector<LoggedPacket>& out) {
    while (out.size() < kMaxPacketsPerRead) {
      auto r = socket_.receive(0);
      if (!r)
        return makeError(ErrorCode::kKernel,
                         "cannot read from the " + groupText(options_.group) + " socket",
                         r.error().sysErrno);
      if (!take(*r, out, nullptr)) return {};
    }
    return {};
  }

  // One receive()'s outcome: packets to `out`, the ACK for `ack` recorded.
  // False when nothing more is queued.
  bool take(const nft::NetlinkSocket::Received& r, std::vector<LoggedPacket>& out, AckWait* ack) {
    using Kind = nft::NetlinkSocket::Received::Kind;
    switch (r.kind) {
      case Kind::kTimeout:
        return false;
      case Kind::kOverrun:
        overrun();
        return true;
      case Kind::kTruncated:
        ++stats_.malformed;  // the datagram did not fit
        return true;
      case Kind::kData:
        handleDatagram(r.bytes, out, ack);
        return true;
    }
    return false;
  }

  void overrun() {
    // The kernel could not queue an skb on our socket (sk_err = ENOBUFS,
    // reported once however many skbs were dropped). The events in them
    // also show up as a gap in NFULA_SEQ. Grow the buffer once.
    ++stats_.lostOverrun;
    if (!grown_) {
      grown_ = true;
      rcvBuf_ = rcvBuf_ > (1 << 29) ? rcvBuf_ : rcvBuf_ * 2;
      socket_.setReceiveBuffer(rcvBuf_);
    }
  }

  // Splits one datagram into messages: packets go to `out`, the ACK or error
  // for `ack->seq` (when given) is recorded.
  void handleDatagram(std::span<const uint8_t> bytes, std::vector<LoggedPacket>& out,
                      AckWait* ack) {
    const bool whole = nft::NetlinkSocket::forEachMessage(bytes, [&](const nlmsghdr* nlh) {
      switch (nlh->nlmsg_type) {
        case kPacketType: {
          auto packet = parseNflogMessage(nlh);
          if (!packet) {
            ++stats_.malformed;
            break;
          }
          if (packet->seq) stats_.lostKernel += seqs_.observe(*packet->seq);
          out.push_back(std::move(*packet));
          break;
        }
        case NLMSG_DONE:
          // With a queue threshold above 1 the kernel sends a batch as
          // NLM_F_MULTI messages closed by NLMSG_DONE.
        case NLMSG_NOOP:
          break;
        case NLMSG_ERROR: {
          if (ack == nullptr || nlh->nlmsg_seq != ack->seq) break;  // stale reply
          if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(nlmsgerr)) break;
          const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
          ack->done = true;
          ack->error = -err->error;
          break;
        }
        default:
          ++stats_.malformed;
          break;
      }
    });
    if (!whole) ++stats_.malformed;  // trailing bytes not forming a message
  }

  template <class Fill>
  bool sendConfig(Fill fill, bool wantAck, uint32_t* seqOut = nullptr) {
    alignas(nlmsghdr) char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = kConfigType;
    nlh->nlmsg_flags = NLM_F_REQUEST | (wantAck ? NLM_F_ACK : 0);
    nlh->nlmsg_seq = nextSeq_++;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    // Family AF_UNSPEC: group commands ignore it (only PF_BIND/PF_UNBIND,
    // which we never send, use it).
    nfg->nfgen_family = AF_UNSPEC;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = htons(options_.group);
    fill(nlh);
    if (seqOut) *seqOut = nlh->nlmsg_seq;
    return socket_.send(nlh, nlh->nlmsg_len).ok();
  }

  // Sends one config message and waits for its ACK; packets arriving
  // meanwhile are kept for the first read().
  template <class Fill>
  Status configStep(const std::string& what, Fill fill) {
    const std::string where = what + " for " + groupText(options_.group);
    for (int attempt = 0;; ++attempt) {
      AckWait ack;
      if (!sendConfig(fill, true, &ack.seq)) {
        return makeError(ErrorCode::kUnavailable, "cannot send " + where, errno);
      }
      const auto deadline = common::SteadyClock::now() + std::chrono::milliseconds(kAckTimeoutMs);
      while (!ack.done) {
        const int left = common::msUntil(deadline);
        if (left == 0) {
          return makeError(ErrorCode::kUnavailable, "no acknowledgement to " + where, ETIMEDOUT);
        }
        auto r = socket_.receive(left);
        if (!r)
          return makeError(ErrorCode::kUnavailable, "cannot read the reply to " + where,
                           r.error().sysErrno);
        take(*r, pending_, &ack);
      }
      // nfnetlink answers EAGAIN when it had to load the nfnetlink_log
      // module (request_module) while handling the message: send it again.
      if (ack.error == EAGAIN && attempt < 3) continue;
      if (ack.error != 0) {
        return makeError(ErrorCode::kKernel,
                         "kernel refused " + where + ": " + std::strerror(ack.error), ack.error);
      }
      return {};
    }
  }

  nft::NetlinkSocket socket_;
  Options options_;
  uint32_t nextSeq_;
  std::vector<LoggedPacket> pending_;
  SeqTracker seqs_;
  NflogStats stats_;
  int rcvBuf_ = 0;
  bool grown_ = false;
  bool bound_ = false;
};

}  // namespace

Result<std::unique_ptr<NflogReader>> NflogReader::open(const Options& options) {
  // The socket belongs to the network namespace of the calling thread, and
  // NFLOG groups are per namespace.
  auto nl = nft::NetlinkSocket::open(NETLINK_NETFILTER, 0, kRecvBufferBytes);
  if (!nl) return nl.takeError();
  auto reader = std::make_unique<MnlNflogReader>(std::move(*nl), options);
  if (Status s = reader->configure(); !s) return s.takeError();
  return std::unique_ptr<NflogReader>(std::move(reader));
}

}  // namespace bulkhead::flows
