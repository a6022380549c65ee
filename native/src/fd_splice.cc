// The PeerAPI's receive thread moves an upload's body from its TCP socket into the partial file with splice(2),
// socket → pipe → file: the bytes stay in the kernel (no copy into JavaScript, no write back out of it). Linux only;
// elsewhere both functions answer -ENOSYS and the caller reads the socket itself.
//
// fdPipe(): [readFd, writeFd] | -errno — the pipe one transfer uses throughout, made 1 MiB when the system allows.
// fdSplice(sockFd, pipeR, pipeW, fileFd, offset, count, waitMs): number — moves up to count bytes from the socket
// to the file at offset (the file's own position is not used). Bytes the pipe still holds from a failed call are
// written first (they came from the socket already and are the next bytes of the file). It waits for the socket
// with poll(2) only while nothing has moved, never longer than waitMs, and returns once the socket has nothing more
// at hand, so the calling thread stays responsive. Returns the bytes written to the file (> 0), 0 when the socket
// ended, or -errno (-EAGAIN: nothing came within waitMs). Only bytes on the disk are counted: what a failed file
// write leaves in the pipe is written by the next call, or lost with the pipe (the sender resumes from the file).
#include "common.h"

#ifdef __linux__
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "kernel_copy.h"

namespace trellis {
namespace {

constexpr int kPipeBytes = 1 << 20;
constexpr size_t kMaxPerSplice = 1 << 20;

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return Napi::Number::New(env, -errno);
  // Larger than the default 64 KiB so one splice moves a megabyte; refused above /proc/sys/fs/pipe-max-size
  // for an unprivileged process, which only makes the moves smaller.
  fcntl(fds[1], F_SETPIPE_SZ, kPipeBytes);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, fds[0]));
  out.Set(1u, Napi::Number::New(env, fds[1]));
  return out;
}

// Writes every byte the pipe holds to the file at *pos; -errno when the file takes no more.
int DrainPipe(int pipe_r, int file, off_t* pos, size_t in_pipe, uint64_t* written) {
  while (in_pipe > 0) {
    ssize_t m = splice(pipe_r, nullptr, file, pos, in_pipe, SPLICE_F_MOVE);
    if (m > 0) {
      in_pipe -= static_cast<size_t>(m);
      *written += static_cast<uint64_t>(m);
      continue;
    }
    if (m < 0 && errno == EINTR) continue;
    return m == 0 ? -EIO : -errno;
  }
  return 0;
}

Napi::Value Splice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double sock_d, pipe_r_d, pipe_w_d, file_d, offset, count, wait_ms;
  if (!WholeNumberArg(info, 0, 0x7fffffff, &sock_d) || !WholeNumberArg(info, 1, 0x7fffffff, &pipe_r_d) ||
      !WholeNumberArg(info, 2, 0x7fffffff, &pipe_w_d) || !WholeNumberArg(info, 3, 0x7fffffff, &file_d) ||
      !WholeNumberArg(info, 4, 9007199254740991.0, &offset) || !WholeNumberArg(info, 5, 9007199254740991.0, &count) ||
      !WholeNumberArg(info, 6, 600000, &wait_ms)) {
    ArgError(env, "fdSplice(sockFd, pipeR, pipeW, fileFd, offset, count, waitMs) needs non-negative integers")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int sock = static_cast<int>(sock_d);
  const int pipe_r = static_cast<int>(pipe_r_d);
  const int pipe_w = static_cast<int>(pipe_w_d);
  const int file = static_cast<int>(file_d);
  off_t pos = static_cast<off_t>(offset);
  uint64_t left = static_cast<uint64_t>(count);
  uint64_t written = 0;
  auto result = [&](int err) {
    return Napi::Number::New(env, written > 0 || err == 0 ? static_cast<double>(written) : static_cast<double>(err));
  };

  int held = 0;
  if (ioctl(pipe_r, FIONREAD, &held) < 0) return Napi::Number::New(env, -errno);
  if (held > 0) {
    int err = DrainPipe(pipe_r, file, &pos, static_cast<size_t>(held), &written);
    if (err < 0) return result(err);
    left = left > static_cast<uint64_t>(held) ? left - static_cast<uint64_t>(held) : 0;
  }
  const int64_t deadline = MonotonicMs() + static_cast<int64_t>(wait_ms);
  while (left > 0) {
    size_t want = left > kMaxPerSplice ? kMaxPerSplice : static_cast<size_t>(left);
    ssize_t n = splice(sock, nullptr, pipe_w, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      left -= static_cast<uint64_t>(n);
      int err = DrainPipe(pipe_r, file, &pos, static_cast<size_t>(n), &written);
      if (err < 0) return result(err);
      continue;
    }
    if (n == 0) return result(0);  // the sender closed its side
    int err = errno;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) return result(-err);
    if (written > 0) break;  // what was at hand is on the disk: back to the caller's loop
    int64_t remaining = deadline - MonotonicMs();
    if (remaining <= 0) return Napi::Number::New(env, -EAGAIN);
    pollfd p{sock, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(remaining)) < 0 && errno != EINTR) return result(-errno);
    // POLLHUP/POLLERR: the next splice says what happened.
  }
  return result(0);
}

}  // namespace

void InitFdSplice(Napi::Env env, Napi::Object exports) {
  exports.Set("fdPipe", Napi::Function::New(env, Pipe, "fdPipe"));
  exports.Set("fdSplice", Napi::Function::New(env, Splice, "fdSplice"));
}

}  // namespace trellis

#else

#include <cerrno>

namespace trellis {
namespace {
Napi::Value NoSplice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), -ENOSYS); }
}  // namespace

void InitFdSplice(Napi::Env env, Napi::Object exports) {
  exports.Set("fdPipe", Napi::Function::New(env, NoSplice, "fdPipe"));
  exports.Set("fdSplice", Napi::Function::New(env, NoSplice, "fdSplice"));
}

}  // namespace trellis

#endif
