// TCP segmentation and checksum completion for frames read from a Linux TUN with a virtio_net_hdr (see
// tun_offload.h). The segment rules are the kernel's (tcp_gso_segment): every segment repeats the IP and TCP
// headers; IPv4 gets its total length, an ID counting up from the super-packet's and a new header checksum, IPv6
// its payload length; the sequence number advances by the payload before it; FIN and PSH stay only on the last
// segment and CWR only on the first; each TCP checksum is computed whole (the partial one left by the kernel is
// ignored). Fields are read only after the bounds they need are checked.
#include "tun_offload.h"

#include <algorithm>
#include <cstring>

namespace trellis {
namespace {

constexpr uint8_t kFlagNeedsCsum = 1;
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpV4 = 1;
constexpr uint8_t kGsoTcpV6 = 4;
constexpr size_t kTcpCsumOffset = 16;
constexpr size_t kUdpCsumOffset = 6;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpCwr = 0x80;

// The header's fields are little-endian: the virtio byte order a legacy TUN uses on the little-endian hosts we
// build for (no TUNSETVNETLE/BE is set).
uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void PutBe16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint16_t Fold(uint64_t s) {
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}
bool LittleEndianHost() {
  const uint16_t one = 1;
  uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// Sum of the pseudo-header's addresses and protocol (the L4 length is added per packet).
uint32_t PseudoSum(const uint8_t* pkt, bool v6, uint8_t proto) {
  return static_cast<uint32_t>(v6 ? InternetSum(pkt + 8, 32, 0) : InternetSum(pkt + 12, 8, 0)) + proto;
}

// Writes the TCP/UDP checksum of pkt[l4, total) at l4 + csum_offset (which the caller has bounds-checked).
void SetL4Checksum(uint8_t* pkt, size_t l4, size_t total, size_t csum_offset, uint32_t pseudo, bool udp) {
  pkt[l4 + csum_offset] = 0;
  pkt[l4 + csum_offset + 1] = 0;
  const size_t l4_len = total - l4;
  uint32_t initial = pseudo + static_cast<uint32_t>(l4_len & 0xffff) + static_cast<uint32_t>(l4_len >> 16);
  uint16_t c = static_cast<uint16_t>(~InternetSum(pkt + l4, l4_len, initial));
  if (c == 0 && udp) c = 0xffff;  // UDP: 0 would mean "no checksum"
  PutBe16(pkt + l4 + csum_offset, c);
}

}  // namespace

uint16_t InternetSum(const uint8_t* p, size_t n, uint32_t initial) {
  // Whole words in host order, four at a time: folded, the sum is the big-endian one with its two bytes swapped
  // when the host is little-endian (RFC 1071's byte-order independence), and 2^16 = 1 modulo 2^16 - 1 lets 32-bit
  // words stand for pairs of 16-bit ones. A uint64 takes 2^32 such words before it could overflow.
  uint64_t acc = 0;
  while (n >= 16) {
    uint32_t w[4];
    std::memcpy(w, p, 16);
    acc += static_cast<uint64_t>(w[0]) + w[1] + w[2] + w[3];
    p += 16;
    n -= 16;
  }
  while (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    uint16_t w = 0;  // the odd byte is the high half of a big-endian word padded with zero
    std::memcpy(&w, p, 1);
    acc += w;
  }
  uint16_t s = Fold(acc);
  if (LittleEndianHost()) s = static_cast<uint16_t>((s >> 8) | (s << 8));
  return Fold(static_cast<uint64_t>(s) + initial);
}

TsoSplitter::Frame TsoSplitter::Classify(const uint8_t* hdr, uint8_t* pkt, size_t len) {
  const uint8_t flags = hdr[0];
  const uint8_t gso = hdr[1];
  if (len == 0) {
    stats.dropped++;
    return Frame::kDrop;
  }
  if (gso == kGsoNone) {
    if ((flags & kFlagNeedsCsum) == 0) return Frame::kPacket;  // DATA_VALID and the like need nothing
    if (FinishChecksum(pkt, len, Le16(hdr + 6), Le16(hdr + 8))) return Frame::kPacket;
    stats.dropped++;
    return Frame::kDrop;
  }
  // Anything else was not asked for: ECN (no TUN_F_TSO_ECN), UDP (no TUN_F_USO*).
  if ((gso != kGsoTcpV4 && gso != kGsoTcpV6) || !CheckSuper(hdr, pkt, len)) {
    stats.dropped++;
    return Frame::kDrop;
  }
  return Frame::kSuper;
}

bool TsoSplitter::FinishChecksum(uint8_t* pkt, size_t len, size_t start, size_t offset) {
  const int version = pkt[0] >> 4;
  bool l4_ok;
  if (version == 4) {
    const size_t ihl = static_cast<size_t>(pkt[0] & 15) * 4;
    l4_ok = ihl >= 20 && start == ihl && len >= ihl;
  } else {
    l4_ok = version == 6 && start >= 40 && len >= 40;
  }
  if (!l4_ok || (offset != kTcpCsumOffset && offset != kUdpCsumOffset) || start + offset + 2 > len) return false;
  const bool udp = offset == kUdpCsumOffset;
  // The offset says which checksum (and which pseudo-header protocol); the IP header must agree where it can.
  const uint8_t proto = udp ? kProtoUdp : kProtoTcp;
  if ((version == 4 && pkt[9] != proto) || (version == 6 && start == 40 && pkt[6] != proto)) return false;
  SetL4Checksum(pkt, start, len, offset, PseudoSum(pkt, version == 6, proto), udp);
  return true;
}

bool TsoSplitter::CheckSuper(const uint8_t* hdr, const uint8_t* pkt, size_t len) {
  const bool v6 = hdr[1] == kGsoTcpV6;
  const size_t vnet_hdr_len = Le16(hdr + 2);
  const size_t mss = Le16(hdr + 4);
  const size_t l4 = Le16(hdr + 6);
  const size_t csum_offset = Le16(hdr + 8);
  // The kernel's hdr_len is only a hint (the linear part of its buffer), but never more than the packet.
  if (mss == 0 || csum_offset != kTcpCsumOffset || vnet_hdr_len > len) return false;
  const int version = pkt[0] >> 4;
  if (v6) {
    // Next header must say TCP, unless extension headers come first (their chain is the kernel's to get right).
    if (version != 6 || l4 < 40 || len < 40 || (l4 == 40 && pkt[6] != kProtoTcp)) return false;
  } else {
    const size_t ihl = static_cast<size_t>(pkt[0] & 15) * 4;
    if (version != 4 || ihl < 20 || l4 != ihl || len < 20 || pkt[9] != kProtoTcp) return false;
  }
  if (l4 + 20 > len) return false;
  const size_t tcp_len = static_cast<size_t>(pkt[l4 + 12] >> 4) * 4;
  const size_t hdr_len = l4 + tcp_len;
  if (tcp_len < 20 || hdr_len > len || hdr_len > kTsoMaxHeaders) return false;
  const size_t payload = len - hdr_len;
  const size_t segments = payload == 0 ? 1 : (payload + mss - 1) / mss;
  // The largest segment must still be one IP packet (a 16-bit length field).
  if (segments > kTsoMaxSegments || hdr_len + std::min(mss, payload) - (v6 ? 40 : 0) > 0xffff) return false;
  v6_ = v6;
  l4_ = l4;
  hdr_len_ = hdr_len;
  mss_ = mss;
  payload_ = payload;
  seq0_ = (static_cast<uint32_t>(Be16(pkt + l4 + 4)) << 16) | Be16(pkt + l4 + 6);
  id0_ = v6 ? 0 : Be16(pkt + 4);
  flags0_ = pkt[l4 + 13];
  pseudo_ = PseudoSum(pkt, v6, kProtoTcp);
  return true;
}

void TsoSplitter::Start(const uint8_t* src) {
  src_ = src;
  sent_ = 0;
  index_ = 0;
  stats.super_packets++;
}

size_t TsoSplitter::Next(uint8_t* dst, size_t cap) {
  if (src_ == nullptr) return 0;
  const size_t chunk = std::min(mss_, payload_ - sent_);
  const size_t total = hdr_len_ + chunk;
  if (total > cap) return 0;
  std::memcpy(dst + hdr_len_, src_ + hdr_len_ + sent_, chunk);
  const bool last = sent_ + chunk >= payload_;
  FinishSegment(dst, src_, index_, sent_, chunk, last);
  sent_ += chunk;
  index_++;
  stats.segments++;
  if (last) src_ = nullptr;
  return total;
}

size_t TsoSplitter::SplitInPlace(uint8_t* at, size_t cap, uint32_t* lens, size_t slots) {
  const size_t n = segment_count();
  if (n > slots || split_bytes() > cap) return 0;
  // Last segment first: segment i moves right by i headers, past the payload of every segment before it, and the
  // headers at `at` (the template) are overwritten only by segment 0, which is done last.
  for (size_t i = n; i-- > 0;) {
    const size_t sent = i * mss_;
    const size_t chunk = std::min(mss_, payload_ - sent);
    uint8_t* seg = at + i * (hdr_len_ + mss_);
    if (i > 0) std::memmove(seg + hdr_len_, at + hdr_len_ + sent, chunk);
    FinishSegment(seg, at, static_cast<uint32_t>(i), sent, chunk, i == n - 1);
    lens[i] = static_cast<uint32_t>(hdr_len_ + chunk);
  }
  stats.super_packets++;
  stats.segments += n;
  return n;
}

void TsoSplitter::FinishSegment(uint8_t* seg, const uint8_t* tmpl, uint32_t index, size_t sent, size_t chunk,
                                bool last) {
  const size_t total = hdr_len_ + chunk;
  if (seg != tmpl) std::memcpy(seg, tmpl, hdr_len_);
  if (v6_) {
    PutBe16(seg + 4, static_cast<uint32_t>(total - 40));
  } else {
    PutBe16(seg + 2, static_cast<uint32_t>(total));
    PutBe16(seg + 4, (id0_ + index) & 0xffff);
    seg[10] = 0;
    seg[11] = 0;
    PutBe16(seg + 10, static_cast<uint16_t>(~InternetSum(seg, l4_, 0)));
  }
  uint8_t* tcp = seg + l4_;
  const uint32_t seq = seq0_ + static_cast<uint32_t>(sent);  // wraps modulo 2^32, as sequence numbers do
  PutBe16(tcp + 4, seq >> 16);
  PutBe16(tcp + 6, seq & 0xffff);
  uint8_t f = flags0_;
  if (!last) f &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));  // only the last segment ends the burst
  if (index > 0) f &= static_cast<uint8_t>(~kTcpCwr);          // only the first carries the window-reduced mark
  tcp[13] = f;
  SetL4Checksum(seg, l4_, total, kTcpCsumOffset, pseudo_, false);
}

TunBatchReader::Result TunBatchReader::Fill(TunBackend& backend, uint8_t* base, uint32_t* lens) {
  Result r;
  size_t off = 0;
  for (;;) {
    // What is left of a super-packet first: its segments take the room a read would need.
    while (splitter_.busy()) {
      if (r.count == kTunMaxBatch) return r;
      size_t n = splitter_.Next(base + off, kTunBatchBytes - off);
      if (n == 0) return r;  // the batch is full: the rest goes into the next one
      lens[r.count++] = static_cast<uint32_t>(n);
      off += n;
    }
    if (r.count == kTunMaxBatch || kTunBatchBytes - off < kTunMaxPacket) return r;
    if (!backend.vnet_hdr()) {
      int n = backend.Read(base + off, kTunMaxPacket);
      if (n <= 0) {
        r.err = n;
        r.empty = n == 0;
        return r;
      }
      lens[r.count++] = static_cast<uint32_t>(n);
      off += static_cast<size_t>(n);
      continue;
    }
    uint8_t hdr[kVnetHdrLen] = {};
    int n = backend.ReadVnet(hdr, base + off, kTunMaxPacket - kVnetHdrLen);
    if (n <= 0) {
      r.err = n;
      r.empty = n == 0;
      return r;
    }
    // A frame shorter than its header is dropped by Classify as an empty packet.
    const size_t len = static_cast<size_t>(n) > kVnetHdrLen ? static_cast<size_t>(n) - kVnetHdrLen : 0;
    switch (splitter_.Classify(hdr, base + off, len)) {
      case TsoSplitter::Frame::kPacket:
        lens[r.count++] = static_cast<uint32_t>(len);
        off += len;
        break;
      case TsoSplitter::Frame::kSuper: {
        // Where it was read, when its segments fit in the rest of the batch (the usual case: a read leaves room
        // for 64 KiB, the headers add ~4 %); otherwise from a copy, continuing into the next batch.
        size_t n = splitter_.SplitInPlace(base + off, kTunBatchBytes - off, lens + r.count, kTunMaxBatch - r.count);
        if (n > 0) {
          for (size_t i = 0; i < n; i++) off += lens[r.count + i];
          r.count += n;
          break;
        }
        if (!scratch_) scratch_.reset(new uint8_t[kTunMaxPacket]);
        std::memcpy(scratch_.get(), base + off, len);
        splitter_.Start(scratch_.get());
        break;
      }
      case TsoSplitter::Frame::kDrop:
        break;
    }
  }
}

}  // namespace trellis
