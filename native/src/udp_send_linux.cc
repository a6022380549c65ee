// SendDatagrams and UdpSendThread (see udp_send_linux.h).
#include "udp_send_linux.h"

#if defined(__linux__)

#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common.h"

namespace trellis {

namespace {

// Bytes the sender thread may have queued; beyond it the JS thread waits (up to kFullWait), as it waited in
// sendmmsg before, and then drops.
constexpr size_t kMaxQueuedBytes = 1 << 20;
constexpr auto kFullWait = std::chrono::milliseconds(50);
// A socket buffer that stays full: waits for room this long, this many times, before dropping the rest of a call.
constexpr int kWritableWaitMs = 20;
constexpr int kWritableTries = 5;

}  // namespace

SendResult SendDatagrams(int fd, const sockaddr_storage& dest, socklen_t dlen, iovec* iov, uint32_t count,
                         std::atomic<bool>* gso_ok) {
  struct mmsghdr msgs[kUdpMaxBatch];
  uint32_t group_size[kUdpMaxBatch];
  alignas(struct cmsghdr) char cbuf[kUdpMaxBatch][CMSG_SPACE(sizeof(uint16_t))];
  uint32_t sent = 0;
  while (sent < count) {
    const bool gso = gso_ok->load(std::memory_order_relaxed);
    // Without GSO a message is one datagram: no more than fit in one call.
    const uint32_t k = std::min<uint32_t>(gso ? count - sent : static_cast<uint32_t>(kUdpMaxBatch), count - sent);
    iovec* at = iov + sent;
    // One message per run of equal-sized datagrams (the last of a run may be shorter): the kernel cuts it at the
    // segment size, so the stack is walked once per run instead of once per datagram.
    uint32_t m = 0;
    for (uint32_t j = 0; j < k && m < kUdpMaxBatch; m++) {
      size_t seg = at[j].iov_len;
      size_t total = seg;
      uint32_t run = 1;
      while (gso && seg > 0 && j + run < k && run < kUdpMaxGsoSegments && at[j + run].iov_len > 0 &&
             at[j + run].iov_len <= seg && total + at[j + run].iov_len <= kUdpMaxGsoBytes) {
        total += at[j + run].iov_len;
        bool shorter = at[j + run].iov_len < seg;
        run++;
        if (shorter) break;
      }
      std::memset(&msgs[m], 0, sizeof msgs[m]);
      msgs[m].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&dest);
      msgs[m].msg_hdr.msg_namelen = dlen;
      msgs[m].msg_hdr.msg_iov = &at[j];
      msgs[m].msg_hdr.msg_iovlen = run;
      if (run > 1) {
        msgs[m].msg_hdr.msg_control = cbuf[m];
        msgs[m].msg_hdr.msg_controllen = sizeof cbuf[m];
        struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gso_size = static_cast<uint16_t>(seg);
        std::memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
      }
      group_size[m] = run;
      j += run;
    }
    int n = sendmmsg(fd, msgs, m, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (gso && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
        gso_ok->store(false, std::memory_order_relaxed);  // this kernel or route cannot segment: plain from now on
        continue;
      }
      return {sent, errno};
    }
    if (n == 0) return {sent, EAGAIN};
    for (int i = 0; i < n; i++) sent += group_size[i];
  }
  return {sent, 0};
}

UdpSendThread::UdpSendThread(int fd, std::atomic<bool>* gso_ok) : fd_(fd), gso_ok_(gso_ok) {
  thread_ = std::thread([this] { Run(); });
}

uint32_t UdpSendThread::Push(const sockaddr_storage& dest, socklen_t dlen, const iovec* iov, uint32_t count) {
  count = std::min(count, kSendMaxDatagrams);  // one call is sent from one iovec array (SendAll)
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) total += iov[i].iov_len;
  std::unique_lock<std::mutex> lk(mu_);
  if (stop_) return 0;
  if (fill_.bytes.size() + total > kMaxQueuedBytes && !fill_.bytes.empty()) {
    cv_.notify_one();
    cv_.wait_for(lk, kFullWait, [&] { return stop_ || fill_.bytes.size() + total <= kMaxQueuedBytes; });
    if (stop_ || fill_.bytes.size() + total > kMaxQueuedBytes) {
      dropped_.fetch_add(count, std::memory_order_relaxed);
      return 0;
    }
  }
  const bool was_empty = fill_.calls.empty();
  Outbox::Call call;
  call.dest = dest;
  call.dlen = dlen;
  call.first = static_cast<uint32_t>(fill_.lens.size());
  call.count = count;
  fill_.calls.push_back(call);
  uint8_t* at = fill_.bytes.Append(total);
  for (uint32_t i = 0; i < count; i++) {
    std::memcpy(at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
    fill_.lens.push_back(static_cast<uint32_t>(iov[i].iov_len));
  }
  lk.unlock();
  // The thread waits only on an empty queue: a wake-up per batch it has not yet picked up is enough.
  if (was_empty) cv_.notify_one();
  return count;
}

void UdpSendThread::Stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void UdpSendThread::Run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !fill_.calls.empty(); });
      if (stop_) return;
      std::swap(fill_, drain_);
    }
    cv_.notify_all();  // a Push waiting for room has it now
    SendAll(drain_);
    drain_.Clear();
  }
}

void UdpSendThread::SendAll(Outbox& box) {
  iovec iov[kSendMaxDatagrams];
  uint8_t* at = box.bytes.data();
  for (const Outbox::Call& call : box.calls) {
    for (uint32_t i = 0; i < call.count; i++) {  // count <= kSendMaxDatagrams: Push takes no more
      iov[i].iov_base = at;
      iov[i].iov_len = box.lens[call.first + i];
      at += iov[i].iov_len;
    }
    uint32_t done = 0;
    for (int tries = 0; done < call.count;) {
      SendResult r = SendDatagrams(fd_, call.dest, call.dlen, iov + done, call.count - done, gso_ok_);
      done += r.sent;
      if (r.err == 0) continue;
      // A full socket buffer: wait for room a little. Anything else (no route, refused) concerns these datagrams
      // only, as it did when the engine's thread sent them.
      if ((r.err == EAGAIN || r.err == EWOULDBLOCK || r.err == ENOBUFS) && ++tries <= kWritableTries) {
        pollfd p{fd_, POLLOUT, 0};
        poll(&p, 1, kWritableWaitMs);
        continue;
      }
      dropped_.fetch_add(call.count - done, std::memory_order_relaxed);
      break;
    }
  }
}

}  // namespace trellis

#endif
