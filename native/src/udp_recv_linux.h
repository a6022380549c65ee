// The receive side of UdpBatchSocket (udp_linux.cc): fills the JS slot buffer from recvmmsg, either directly or,
// with UDP_GRO, by splitting the coalesced buffers the kernel hands over into one slot per datagram.
#pragma once

#if defined(__linux__)

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common.h"

namespace trellis {

// Where a batch goes: kUdpMaxBatch slots of kUdpSlotBytes, a length, a 16-byte address and a port per slot.
struct UdpSlots {
  uint8_t* buf;
  uint32_t* lens;
  uint8_t* addrs;
  uint16_t* ports;
};

struct UdpFill {
  size_t count = 0;     // slots filled
  int err = 0;          // errno of a failed recvmmsg (never EAGAIN), after `count` slots were filled anyway
  bool drained = false;  // the socket's queue was seen empty
};

class UdpReceiver {
 public:
  // Asks the kernel for UDP_GRO on fd; without it (kernel < 5.0, or refused) reads stay one datagram per slot.
  void EnableGro(int fd);
  bool gro() const { return gro_; }
  // Datagrams that arrived inside a coalesced train of two or more: shows that GRO is at work.
  double coalesced() const { return coalesced_; }
  // Datagrams of the last read are still waiting for a slot: Fill() hands them out before reading again.
  bool pending() const { return cur_ < nread_; }
  // Fills slots from what is pending and then, if may_read and slots are left, from one recvmmsg.
  UdpFill Fill(int fd, const UdpSlots& out, bool may_read);

 private:
  // Points message i at `len` bytes from `base`, with room for its source address and no control data.
  void PrepareMessage(size_t i, uint8_t* base, size_t len);
  UdpFill FillDirect(int fd, const UdpSlots& out);
  size_t TakePending(const UdpSlots& out, size_t at);
  int ReadCoalesced(int fd, size_t want);

  // A read with GRO: up to kGroMsgs buffers of kGroChunk (one coalesced train, up to 64 datagrams, each).
  static constexpr size_t kGroMsgs = kUdpMaxBatch;
  static constexpr size_t kGroChunk = 65536;
  struct Train {
    uint32_t len;  // bytes received
    uint32_t seg;  // datagram size (the last may be shorter); len when not coalesced
    bool trunc;    // the buffer was too small: bytes past len are lost
    uint8_t addr[16];
    uint16_t port;
  };

  bool gro_ = false;
  // Allocated on the first GRO read and never touched by us beyond what the kernel wrote: pages never written
  // stay unbacked, so the 4 MiB cost only what the traffic fills.
  std::unique_ptr<uint8_t[]> scratch_;
  size_t nread_ = 0;  // trains from the last read
  size_t cur_ = 0;    // the train being handed out, and the offset of its next datagram
  size_t off_ = 0;
  // Datagrams per train of the last read: how many trains to ask for to fill a batch without overshooting.
  size_t per_train_ = 1;
  double coalesced_ = 0;
  Train trains_[kGroMsgs];
  struct mmsghdr msgs_[kUdpMaxBatch];
  struct iovec iov_[kUdpMaxBatch];
  struct sockaddr_storage names_[kUdpMaxBatch];
  alignas(struct cmsghdr) char cbuf_[kGroMsgs][CMSG_SPACE(sizeof(int))];
};

}  // namespace trellis

#endif
