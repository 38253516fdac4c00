// Decoding the network and transport headers of a logged packet. NFLOG hands
// us the packet from the network header on, cut at the copy range, so a
// short buffer is normal: decode what is there, never read past it.
#include <cstring>
#include <optional>
#include <span>

#include "bulkhead/flows/event.h"

namespace bulkhead::flows {

namespace {

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoDccp = 33;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint8_t kProtoDestOpts = 60;
constexpr uint8_t kProtoMobility = 135;
constexpr uint8_t kProtoHip = 139;
constexpr uint8_t kProtoShim6 = 140;
constexpr uint8_t kProtoSctp = 132;
constexpr uint8_t kProtoUdpLite = 136;

// More extension headers than this is not a packet anyone sends; stop there
// rather than walk an attacker's chain.
constexpr int kMaxExtensionHeaders = 16;

uint16_t be16At(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}

bool isExtensionHeader(uint8_t proto) {
  switch (proto) {
    case kProtoHopByHop:
    case kProtoRouting:
    case kProtoFragment:
    case kProtoAh:
    case kProtoDestOpts:
    case kProtoMobility:
    case kProtoHip:
    case kProtoShim6:
      return true;
  }
  return false;
}

bool hasPortFields(uint8_t proto) {
  return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoUdpLite ||
         proto == kProtoSctp || proto == kProtoDccp;
}

// The transport header's fields we report. `l4` is what remains of the
// packet after the network headers.
void decodeTransport(std::span<const uint8_t> l4, bool ipv6, DecodedPacket& out) {
  if (hasPortFields(out.proto)) {
    // All five start with source and destination port.
    if (l4.size() < 4) {
      out.truncated = true;
      return;
    }
    out.sport = be16At(l4, 0);
    out.dport = be16At(l4, 2);
    out.hasPorts = true;
    return;
  }
  if (out.proto == (ipv6 ? kProtoIcmpv6 : kProtoIcmp)) {
    if (l4.size() < 2) {
      out.truncated = true;
      return;
    }
    out.icmpType = l4[0];
    out.icmpCode = l4[1];
  }
}

std::optional<DecodedPacket> decodeIpv4(std::span<const uint8_t> b) {
  if (b.size() < 20) return std::nullopt;  // not even the addresses
  const size_t headerLen = size_t{b[0] & 0x0fu} * 4;
  if (headerLen < 20) return std::nullopt;  // IHL below 5: not IPv4
  const uint16_t totalLen = be16At(b, 2);
  // tot_len 0 is legal for GSO packets of more than 64 KiB (IPv4 BIG TCP,
  // kernel 6.3+): the length is the buffer's then. A non-zero length below
  // the header's own is garbage. A length beyond the buffer is the copy
  // range at work; a shorter one leaves link-layer padding behind, cut it.
  if (totalLen != 0) {
    if (totalLen < headerLen) return std::nullopt;
    if (totalLen < b.size()) b = b.first(totalLen);
  }
  DecodedPacket out;
  out.src.family = out.dst.family = policy::Family::kIpv4;
  std::memcpy(out.src.bytes.data(), &b[12], 4);
  std::memcpy(out.dst.bytes.data(), &b[16], 4);
  out.proto = b[9];
  // Fragment offset (13 bits, in units of 8 bytes): only the first fragment
  // carries the transport header.
  if ((be16At(b, 6) & 0x1fff) != 0) return out;
  if (b.size() < headerLen) {  // options cut off
    out.truncated = true;
    return out;
  }
  decodeTransport(b.subspan(headerLen), false, out);
  return out;
}

// The length of extension header `proto` at `at`; 0 when the buffer ends
// before the header says how long it is.
size_t extensionHeaderLength(std::span<const uint8_t> b, size_t at, uint8_t proto) {
  switch (proto) {
    case kProtoAh:
      // AH counts 4-octet units, not counting the first two (RFC 4302).
      return b.size() < at + 2 ? 0 : (size_t{b[at + 1]} + 2) * 4;
    case kProtoFragment:
      return b.size() < at + 8 ? 0 : 8;
    default:
      // Next header, length in 8-octet units not counting the first 8.
      return b.size() < at + 2 ? 0 : (size_t{b[at + 1]} + 1) * 8;
  }
}

std::optional<DecodedPacket> decodeIpv6(std::span<const uint8_t> b) {
  if (b.size() < 40) return std::nullopt;
  const uint16_t payloadLen = be16At(b, 4);
  // payload_len 0 means a jumbogram or a BIG TCP GSO packet: use the buffer.
  if (payloadLen != 0 && size_t{payloadLen} + 40 < b.size()) b = b.first(size_t{payloadLen} + 40);
  DecodedPacket out;
  out.src.family = out.dst.family = policy::Family::kIpv6;
  std::memcpy(out.src.bytes.data(), &b[8], 16);
  std::memcpy(out.dst.bytes.data(), &b[24], 16);
  uint8_t next = b[6];
  size_t at = 40;
  for (int seen = 0;; ++seen) {
    out.proto = next;  // where the walk stops, whatever stops it
    if (!isExtensionHeader(next)) {
      // The upper-layer protocol (or ESP, No Next Header: nothing more to
      // decode in them).
      if (b.size() < at) {
        out.truncated = true;
        return out;
      }
      decodeTransport(b.subspan(at), true, out);
      return out;
    }
    if (seen == kMaxExtensionHeaders) return out;  // too many
    const size_t len = extensionHeaderLength(b, at, next);
    if (len == 0 || b.size() < at + len) {
      out.truncated = true;
      return out;
    }
    // Fragment offset in the upper 13 bits: a later fragment has no
    // transport header; report the protocol it belongs to.
    if (next == kProtoFragment && (be16At(b, at + 2) >> 3) != 0) {
      out.proto = b[at];
      return out;
    }
    next = b[at];
    at += len;
  }
}

}  // namespace

std::optional<DecodedPacket> decodePacket(std::span<const uint8_t> packet) {
  if (packet.empty()) return std::nullopt;
  switch (packet[0] >> 4) {
    case 4:
      return decodeIpv4(packet);
    case 6:
      return decodeIpv6(packet);
  }
  return std::nullopt;
}

}  // namespace bulkhead::flows
