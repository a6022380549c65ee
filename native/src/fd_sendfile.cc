// Taildrop's send thread moves a file's bytes to the upload's TCP socket with sendfile(2): the kernel copies from
// the page cache to the socket, with no read into JavaScript and no write back out of it (about half the CPU per
// megabyte of the read/write path). Linux only; elsewhere the function answers -ENOSYS and the caller reads.
//
// fdSendfile(outFd, inFd, offset, count, waitMs): number — sends up to count bytes of inFd from offset (the file's
// own position is not used or moved) to the non-blocking socket outFd. When the socket is full it waits for room
// with poll(2), never longer in all than waitMs from the call's start, so the calling thread can look at a cancel
// between calls. Returns the bytes sent (> 0), 0 at the file's end, or -errno: -EAGAIN when not one byte could go
// within waitMs, -EINVAL and friends for descriptors sendfile cannot use (the caller then reads and writes itself).
#include "common.h"

#ifdef __linux__
#include <poll.h>
#include <sys/sendfile.h>
#include <time.h>

#include <cerrno>
#include <cstdint>

#include "kernel_copy.h"

namespace trellis {
namespace {

Napi::Value Sendfile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double out_fd, in_fd, offset, count, wait_ms;
  if (!WholeNumberArg(info, 0, 0x7fffffff, &out_fd) || !WholeNumberArg(info, 1, 0x7fffffff, &in_fd) ||
      !WholeNumberArg(info, 2, 9007199254740991.0, &offset) || !WholeNumberArg(info, 3, 9007199254740991.0, &count) ||
      !WholeNumberArg(info, 4, 600000, &wait_ms)) {
    ArgError(env, "fdSendfile(outFd, inFd, offset, count, waitMs) needs non-negative integers")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int out = static_cast<int>(out_fd);
  const int in = static_cast<int>(in_fd);
  off_t pos = static_cast<off_t>(offset);
  uint64_t left = static_cast<uint64_t>(count);
  uint64_t sent = 0;
  const int64_t deadline = MonotonicMs() + static_cast<int64_t>(wait_ms);
  while (left > 0) {
    // At most 1 GiB per call: sendfile moves at most 0x7ffff000 bytes at once anyway.
    size_t want = left > (1u << 30) ? (1u << 30) : static_cast<size_t>(left);
    ssize_t n = sendfile(out, in, &pos, want);
    if (n > 0) {
      sent += static_cast<uint64_t>(n);
      left -= static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) break;  // the file ends here (it shrank): the caller decides
    int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      // Bytes already sent are reported first; the next call meets the error again and reports it.
      if (sent > 0) break;
      return Napi::Number::New(env, -err);
    }
    int64_t remaining = deadline - MonotonicMs();
    if (remaining <= 0) break;
    pollfd p{out, POLLOUT, 0};
    int r = poll(&p, 1, static_cast<int>(remaining));
    if (r < 0 && errno != EINTR) {
      if (sent > 0) break;
      return Napi::Number::New(env, -errno);
    }
    // POLLERR/POLLHUP: the next sendfile reports what went wrong.
  }
  if (sent == 0 && count > 0 && left > 0 && MonotonicMs() >= deadline) return Napi::Number::New(env, -EAGAIN);
  return Napi::Number::New(env, static_cast<double>(sent));
}

}  // namespace

void InitFdSendfile(Napi::Env env, Napi::Object exports) {
  exports.Set("fdSendfile", Napi::Function::New(env, Sendfile, "fdSendfile"));
}

}  // namespace trellis

#else

#include <cerrno>

namespace trellis {
namespace {
Napi::Value NoSendfile(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), -ENOSYS); }
}  // namespace

void InitFdSendfile(Napi::Env env, Napi::Object exports) {
  exports.Set("fdSendfile", Napi::Function::New(env, NoSendfile, "fdSendfile"));
}

}  // namespace trellis

#endif
