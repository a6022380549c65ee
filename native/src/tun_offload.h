// Transmit-side offload for a Linux TUN read with a virtio_net_hdr after TUNSETOFFLOAD: the kernel hands over TCP
// super-packets (TSO, up to 64 KiB, one per burst of a flow) and packets whose TCP/UDP checksum it left for the
// device to finish. They are cut into MSS-sized segments and their checksums completed here, as a NIC would, in
// the native read loop: the kernel's TCP stack works once per 64 KiB, and JavaScript sees only plain IP packets.
// Nothing here allocates after construction, and no frame, however malformed, makes it read or write out of
// bounds: what does not describe a packet is dropped and counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common.h"

namespace trellis {

constexpr size_t kVnetHdrLen = 10;  // struct virtio_net_hdr without num_buffers (TUNSETVNETHDRSZ 10)
// A super-packet that would give more segments is dropped: 64 KiB in 4096 segments is a gso_size under 16 bytes,
// which the kernel's TCP never uses (its MSS floor, tcp_min_snd_mss, is 48). It bounds the work one frame can ask.
constexpr size_t kTsoMaxSegments = 4096;
// Headers repeated in front of every segment, IP (with IPv6 extension headers) and TCP, at most this long: a real
// one is at most 120 bytes (IPv4 and TCP options) or 100 plus a few extension headers. With kTsoMaxSegments it
// bounds what one frame can make: 2 MiB of headers, not 4096 copies of a 64 KiB one.
constexpr size_t kTsoMaxHeaders = 512;

struct OffloadStats {
  uint64_t super_packets = 0;  // TCP super-packets accepted for splitting
  uint64_t segments = 0;       // segments they gave
  uint64_t dropped = 0;        // frames whose offload header does not describe the packet under it
};

// RFC 1071: the one's-complement sum of p[0, n) as big-endian 16-bit words, plus `initial`, folded to 16 bits
// (not complemented).
uint16_t InternetSum(const uint8_t* p, size_t n, uint32_t initial);

// Cuts one super-packet at a time. Classify looks at a frame; for a super-packet, Start points at its bytes
// (which must stay put and unchanged until busy() is false) and each Next writes one segment.
class TsoSplitter {
 public:
  enum class Frame { kPacket, kSuper, kDrop };
  // hdr: the frame's kVnetHdrLen header bytes; pkt[0, len): the packet after it. kPacket: pkt is a plain IP
  // packet now (a partial checksum was finished in place); kSuper: a valid TCP super-packet, to cut with
  // Start/Next; kDrop: malformed, counted in stats.dropped.
  Frame Classify(const uint8_t* hdr, uint8_t* pkt, size_t len);
  // Starts cutting the super-packet Classify just accepted, whose bytes are now at src.
  void Start(const uint8_t* src);
  // Writes the next segment at dst: its length, or 0 if it needs more than cap bytes (nothing written then).
  size_t Next(uint8_t* dst, size_t cap);
  bool busy() const { return src_ != nullptr; }
  // Instead of Start/Next: cuts the super-packet Classify just accepted where it lies, at[0, len), into
  // consecutive segments at[0, ...) when they fit in cap bytes and `slots` lengths; returns how many (their
  // lengths in lens), or 0 when they do not fit (nothing changed then).
  size_t SplitInPlace(uint8_t* at, size_t cap, uint32_t* lens, size_t slots);
  // For the super-packet Classify just accepted: how many segments, and how many bytes they take in all.
  size_t segment_count() const { return payload_ == 0 ? 1 : (payload_ + mss_ - 1) / mss_; }
  size_t split_bytes() const { return segment_count() * hdr_len_ + payload_; }

  OffloadStats stats;

 private:
  bool FinishChecksum(uint8_t* pkt, size_t len, size_t start, size_t offset);
  bool CheckSuper(const uint8_t* hdr, const uint8_t* pkt, size_t len);
  // Writes segment `index` at seg, whose payload (chunk bytes, from offset `sent`) is already at seg + hdr_len_:
  // the headers from tmpl (unless they are there already) with this segment's fields, and both checksums.
  void FinishSegment(uint8_t* seg, const uint8_t* tmpl, uint32_t index, size_t sent, size_t chunk, bool last);

  // The super-packet being cut (layout set by CheckSuper, src_ by Start).
  const uint8_t* src_ = nullptr;
  bool v6_ = false;
  size_t l4_ = 0;        // where the TCP header starts
  size_t hdr_len_ = 0;   // IP + TCP headers: repeated in front of every segment
  size_t mss_ = 0;       // payload bytes per segment (gso_size)
  size_t payload_ = 0;   // payload bytes in all
  size_t sent_ = 0;      // payload bytes already cut
  uint32_t index_ = 0;   // segments already cut
  uint32_t seq0_ = 0;
  uint16_t id0_ = 0;
  uint8_t flags0_ = 0;
  uint32_t pseudo_ = 0;  // pseudo-header sum without the length: addresses and protocol
};

// Fills TUN read batches for TunDevice: packets back to back in `base`, lengths in `lens`. With a virtio_net_hdr
// it strips the header (read apart with readv, so a plain packet lands in place), finishes partial checksums and
// splits super-packets where they were read; one whose segments do not fit in the rest of the batch is copied
// aside and continues into the next batch.
class TunBatchReader {
 public:
  struct Result {
    size_t count = 0;    // packets in the batch
    int err = 0;         // a read error (negative uv code) that ended the batch
    bool empty = false;  // the device queue ran dry
  };
  Result Fill(TunBackend& backend, uint8_t* base, uint32_t* lens);
  // True while a super-packet is half cut: the next Fill continues it before reading.
  bool busy() const { return splitter_.busy(); }
  const OffloadStats& stats() const { return splitter_.stats; }

 private:
  TsoSplitter splitter_;
  // A super-packet too big for the rest of its batch is copied here, so its segments can fill the batch buffer.
  std::unique_ptr<uint8_t[]> scratch_;
};

// Registers splitForTest(frame) and batchesForTest(frames) on the addon's exports: the splitter as a pure
// function and the batch reader over scripted frames, for tests and fuzzing only.
void InitTunOffload(Napi::Env env, Napi::Object exports);

}  // namespace trellis
