// UdpReceiver: recvmmsg into the slot buffer, directly or through UDP_GRO (see udp_recv_linux.h).
#include "udp_recv_linux.h"

#if defined(__linux__)

#include <netinet/in.h>
#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace trellis {
namespace {

// The source of a datagram as JS gets it: 16 bytes (IPv4 as ::ffff:a.b.c.d) and a port.
void SourceOf(const sockaddr_storage& ss, uint8_t* a, uint16_t* port) {
  const auto* sa = reinterpret_cast<const sockaddr*>(&ss);
  if (sa->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    std::memset(a, 0, 10);
    a[10] = a[11] = 0xff;
    std::memcpy(a + 12, &sin->sin_addr, 4);
    *port = ntohs(sin->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(a, &sin6->sin6_addr, 16);
    *port = ntohs(sin6->sin6_port);
  } else {
    std::memset(a, 0, 16);
    *port = 0;
  }
}

}  // namespace

void UdpReceiver::EnableGro(int fd) {
  int one = 1;
  gro_ = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
}

UdpFill UdpReceiver::Fill(int fd, const UdpSlots& out, bool may_read) {
  if (!gro_) return may_read ? FillDirect(fd, out) : UdpFill{};
  UdpFill r;
  r.count = TakePending(out, 0);
  if (r.count == kUdpMaxBatch || !may_read) return r;
  // Ask for as many trains as should fill the slots left: a read of 64 full trains would be ~2,800 datagrams
  // (and 4 MiB of scratch touched) to hand out before the loop sees anything else.
  size_t want = kUdpMaxBatch - r.count;
  size_t trains = std::min(kGroMsgs, (want + per_train_ - 1) / per_train_);
  int n = ReadCoalesced(fd, trains);
  if (n < 0) {
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
      r.drained = true;
    } else {
      r.err = -n;
    }
    return r;
  }
  r.drained = static_cast<size_t>(n) < trains;
  r.count = TakePending(out, r.count);
  return r;
}

void UdpReceiver::PrepareMessage(size_t i, uint8_t* base, size_t len) {
  iov_[i].iov_base = base;
  iov_[i].iov_len = len;
  std::memset(&msgs_[i], 0, sizeof msgs_[i]);
  msgs_[i].msg_hdr.msg_name = &names_[i];
  msgs_[i].msg_hdr.msg_namelen = sizeof names_[i];
  msgs_[i].msg_hdr.msg_iov = &iov_[i];
  msgs_[i].msg_hdr.msg_iovlen = 1;
}

UdpFill UdpReceiver::FillDirect(int fd, const UdpSlots& out) {
  UdpFill r;
  for (size_t i = 0; i < kUdpMaxBatch; i++) {
    PrepareMessage(i, out.buf + i * kUdpSlotBytes, kUdpSlotBytes);
  }
  int n = recvmmsg(fd, msgs_, kUdpMaxBatch, MSG_DONTWAIT, nullptr);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      r.drained = true;
    } else {
      r.err = e;
    }
    return r;
  }
  for (int i = 0; i < n; i++) {
    out.lens[i] = (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) ? kUdpTruncated : msgs_[i].msg_len;
    SourceOf(names_[i], out.addrs + i * 16, &out.ports[i]);
  }
  r.count = static_cast<size_t>(n);
  r.drained = r.count < kUdpMaxBatch;
  return r;
}

// Reads up to `want` coalesced trains into the scratch buffers. Returns how many, or -errno.
int UdpReceiver::ReadCoalesced(int fd, size_t want) {
  if (!scratch_) {
    scratch_.reset(new (std::nothrow) uint8_t[kGroMsgs * kGroChunk]);
    if (!scratch_) return -ENOMEM;
  }
  for (size_t i = 0; i < want; i++) {
    PrepareMessage(i, scratch_.get() + i * kGroChunk, kGroChunk);
    msgs_[i].msg_hdr.msg_control = cbuf_[i];
    msgs_[i].msg_hdr.msg_controllen = sizeof cbuf_[i];
  }
  int n = recvmmsg(fd, msgs_, static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
  if (n < 0) return -errno;
  size_t datagrams = 0;
  for (int i = 0; i < n; i++) {
    msghdr& h = msgs_[i].msg_hdr;
    Train& t = trains_[i];
    t.len = msgs_[i].msg_len;
    t.seg = t.len;
    t.trunc = (h.msg_flags & MSG_TRUNC) != 0;
    // No UDP_GRO message means a plain datagram; a size of 0 or beyond the train would be nonsense: one datagram.
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_GRO || c->cmsg_len < CMSG_LEN(sizeof(int))) continue;
      int g = 0;
      std::memcpy(&g, CMSG_DATA(c), sizeof g);
      if (g > 0 && static_cast<uint32_t>(g) < t.len) t.seg = static_cast<uint32_t>(g);
    }
    SourceOf(names_[i], t.addr, &t.port);
    size_t d = t.seg == 0 ? 1 : (t.len + t.seg - 1) / t.seg;
    datagrams += d;
    if (d > 1) coalesced_ += static_cast<double>(d);
  }
  nread_ = static_cast<size_t>(n);
  cur_ = 0;
  off_ = 0;
  if (n > 0) per_train_ = std::max<size_t>(1, (datagrams + n - 1) / static_cast<size_t>(n));
  return n;
}

// Hands pending datagrams out to slots [at, kUdpMaxBatch): each one copied into its own slot, with its train's
// source. Returns the next free slot.
size_t UdpReceiver::TakePending(const UdpSlots& out, size_t at) {
  size_t i = at;
  for (; i < kUdpMaxBatch && cur_ < nread_; i++) {
    const Train& t = trains_[cur_];
    size_t left = t.len - off_;
    size_t len = std::min<size_t>(t.seg, left);
    // With MSG_TRUNC the train went on past the buffer: its last datagram here may be cut short.
    bool cut = t.trunc && off_ + t.seg >= t.len;
    if (cut || len > kUdpSlotBytes) {
      out.lens[i] = kUdpTruncated;
    } else {
      std::memcpy(out.buf + i * kUdpSlotBytes, scratch_.get() + cur_ * kGroChunk + off_, len);
      out.lens[i] = static_cast<uint32_t>(len);
    }
    std::memcpy(out.addrs + i * 16, t.addr, 16);
    out.ports[i] = t.port;
    off_ += len;
    if (cut || off_ >= t.len) {
      cur_++;
      off_ = 0;
    }
  }
  return i;
}

}  // namespace trellis

#endif
