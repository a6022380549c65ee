// Sending for UdpBatchSocket (Linux): runs of equal-sized datagrams go to sendmmsg as UDP_SEGMENT (GSO) messages,
// either at once in the caller's thread or from a sender thread of the socket's own (UdpSendThread).
//
// Why a thread: sendmmsg does the kernel's UDP, IP and (on a veth or bridge) much of the receiving side's work in
// the calling thread. On the engine's thread that was 40 % of a userspace upload's time, in series with the
// stack and the AEAD; on a thread of its own it runs beside them. The datagrams are copied into the thread's
// queue (a memcpy per flush, a few per cent of the send's cost), so the engine's message slots are free at once
// as before and nothing about their reuse changes.
#pragma once

#if defined(__linux__)

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace trellis {

// Datagrams gathered for one sendmmsg (a flush of the engine's send ring, 128, fits).
constexpr uint32_t kSendMaxDatagrams = 256;

struct SendResult {
  uint32_t sent;  // datagrams the kernel took
  int err;        // 0, or the errno that stopped the send (EAGAIN and ENOBUFS included)
};

// Sends iov[0..count) (count <= kSendMaxDatagrams) to dest, each run of equal-sized datagrams (the last of a run
// may be shorter) as one GSO message while *gso_ok; clears *gso_ok for good when the kernel refuses GSO.
SendResult SendDatagrams(int fd, const sockaddr_storage& dest, socklen_t dlen, iovec* iov, uint32_t count,
                         std::atomic<bool>* gso_ok);

class UdpSendThread {
 public:
  UdpSendThread(int fd, std::atomic<bool>* gso_ok);
  ~UdpSendThread() { Stop(); }
  UdpSendThread(const UdpSendThread&) = delete;
  UdpSendThread& operator=(const UdpSendThread&) = delete;

  // Copies iov[0..count) (at most kSendMaxDatagrams of them) into the queue for dest; returns how many it took, 0
  // when the queue stays full (the datagrams are dropped, as a full socket buffer drops them: WireGuard and the
  // protocols inside recover).
  uint32_t Push(const sockaddr_storage& dest, socklen_t dlen, const iovec* iov, uint32_t count);
  // Ends the thread (what is still queued is dropped); the socket may be closed after this returns.
  void Stop();
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  // Bytes appended back to back. Unlike std::vector::resize, growing does not zero the new bytes first: Push copies
  // over them at once, and the zeroing cost as much as the copy (perf: memset was 5 % of the engine's thread in an
  // upload through the userspace stack).
  class Bytes {
   public:
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    uint8_t* data() { return buf_.get(); }
    void clear() { size_ = 0; }  // capacity kept: steady traffic allocates nothing
    // Room for n more bytes at the end, uninitialized; returns where they start.
    uint8_t* Append(size_t n) {
      if (size_ + n > cap_) {
        size_t cap = cap_ ? cap_ : 64 * 1024;
        while (cap < size_ + n) cap *= 2;
        std::unique_ptr<uint8_t[]> grown(new uint8_t[cap]);
        if (size_) std::memcpy(grown.get(), buf_.get(), size_);
        buf_ = std::move(grown);
        cap_ = cap;
      }
      uint8_t* at = buf_.get() + size_;
      size_ += n;
      return at;
    }

   private:
    std::unique_ptr<uint8_t[]> buf_;
    size_t size_ = 0;
    size_t cap_ = 0;
  };

  // Datagrams back to back with their lengths, and the calls they came in (one destination each).
  struct Outbox {
    struct Call {
      sockaddr_storage dest;
      socklen_t dlen;
      uint32_t first;
      uint32_t count;
    };
    Bytes bytes;
    std::vector<uint32_t> lens;
    std::vector<Call> calls;
    void Clear() {
      bytes.clear();
      lens.clear();
      calls.clear();
    }
  };

  void Run();
  void SendAll(Outbox& box);

  const int fd_;
  std::atomic<bool>* const gso_ok_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  Outbox fill_;   // the JS thread appends here (under mu_)
  Outbox drain_;  // the sender thread sends from here (its own)
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

}  // namespace trellis

#endif
