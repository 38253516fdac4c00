// A fake NFLOG reader for unit tests of the flow feed: tests hand it
// nfnetlink_log datagrams laid out as the kernel sends them
// (nfulnl_log_packet(): nlmsghdr, nfgenmsg, NFULA_* attributes), built with
// libmnl; read() splits each datagram into messages and decodes them with
// the reader's own parser (parseNflogMessage), so what the feed sees is what
// the real reader would return for those bytes.
#pragma once

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../../src/flows/nflog_parse.h"
#include "bulkhead/flows/nflog.h"

namespace bulkhead::testing {

// One NFULNL_MSG_PACKET message appended to a datagram.
class NflogDatagram {
 public:
  NflogDatagram() : buf_(MNL_SOCKET_BUFFER_SIZE, 0) {}

  // An event of `group` with the attributes the kernel sends for an IPv4
  // or IPv6 packet logged on the forward hook.
  NflogDatagram& packet(const std::string& prefix, uint32_t inIfindex, const std::string& payload,
                        uint32_t seq, uint16_t group = 1771) {
    auto* nlh = mnl_nlmsg_put_header(buf_.data() + used_);
    nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
    const bool v6 = !payload.empty() && (uint8_t(payload[0]) >> 4) == 6;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = htons(group);
    nfulnl_msg_packet_hdr hdr{htons(v6 ? 0x86dd : 0x0800), NF_INET_FORWARD, 0};
    mnl_attr_put(nlh, NFULA_PACKET_HDR, sizeof hdr, &hdr);
    mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix.c_str());
    mnl_attr_put_u32(nlh, NFULA_IFINDEX_INDEV, htonl(inIfindex));
    mnl_attr_put_u32(nlh, NFULA_SEQ, htonl(seq));
    mnl_attr_put(nlh, NFULA_PAYLOAD, payload.size(), payload.data());
    used_ += MNL_ALIGN(nlh->nlmsg_len);
    return *this;
  }

  std::vector<uint8_t> bytes() const {
    return std::vector<uint8_t>(buf_.begin(), buf_.begin() + long(used_));
  }

 private:
  std::vector<uint8_t> buf_;
  size_t used_ = 0;
};

// What the test feeds in; shared with the reader the feed owns.
class NflogFeedQueue {
 public:
  void push(std::vector<uint8_t> datagram) {
    {
      std::lock_guard lock(mu_);
      datagrams_.push_back(std::move(datagram));
    }
    cv_.notify_all();
  }
  // Waits up to timeoutMs for a datagram.
  bool pop(std::vector<uint8_t>* out, int timeoutMs) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                      [&] { return !datagrams_.empty(); }))
      return false;
    *out = std::move(datagrams_.front());
    datagrams_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<uint8_t>> datagrams_;
};

class FakeNflogReader final : public flows::NflogReader {
 public:
  explicit FakeNflogReader(std::shared_ptr<NflogFeedQueue> queue) : queue_(std::move(queue)) {}

  Result<std::vector<flows::LoggedPacket>> read(int timeoutMs) override {
    std::vector<flows::LoggedPacket> out;
    std::vector<uint8_t> datagram;
    if (!queue_->pop(&datagram, timeoutMs)) return out;
    std::lock_guard lock(mu_);
    int left = int(datagram.size());
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data()); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      auto p = flows::parseNflogMessage(nlh);
      if (!p) {
        ++stats_.malformed;
        continue;
      }
      if (p->seq) stats_.lostKernel += seq_.observe(*p->seq);
      ++stats_.packets;
      out.push_back(std::move(*p));
    }
    return out;
  }
  flows::NflogStats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }
  int fd() const override { return -1; }

 private:
  std::shared_ptr<NflogFeedQueue> queue_;
  mutable std::mutex mu_;
  flows::SeqTracker seq_;
  flows::NflogStats stats_;
};

}  // namespace bulkhead::testing
