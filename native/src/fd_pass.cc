// Passing an open file's descriptor over the daemon's Unix socket (SCM_RIGHTS), so the daemon reads
// a file the client opened as itself without relaying its bytes. Node cannot attach or receive descriptors on a
// net.Socket (libuv reads a stream with plain read(), and the kernel then discards any descriptor that came
// with those bytes), so the handover is its own short connection, written and read here, never by libuv:
//   client: fdSendTo(path, fd, line)  — connect, one sendmsg(line + SCM_RIGHTS), read the reply line, close.
//   daemon: the connection arrives paused; fdPeek looks at its first bytes (MSG_PEEK: nothing is consumed, no
//           descriptor installed); on the handover prefix fdReceive takes the line and the descriptor.
// fdCheckReadable and fdDup let the daemon vet the descriptor and give a thread a copy it owns.
#include "common.h"

#ifndef _WIN32
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#ifdef __linux__
#include <sys/vfs.h>
#else
#include <sys/mount.h>
#endif
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace trellis {
namespace {

constexpr size_t kMaxLine = 1024;
constexpr int kMaxFdsPerMessage = 4;  // room for a hostile sender's extras, which are closed at once

void CloseQuietly(int fd) {
  if (fd >= 0) {
    while (close(fd) < 0 && errno == EINTR) {
    }
  }
}

Napi::Value Throw(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  SysError(env, err, syscall, detail).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool IntArg(const Napi::CallbackInfo& info, size_t i, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 0x7fffffff) || static_cast<double>(static_cast<int>(d)) != d) return false;
  *out = static_cast<int>(d);
  return true;
}

// The handover itself, on the thread pool: connect, one sendmsg with the descriptor, read the reply line, close.
// Blocking calls with time limits (SO_SNDTIMEO/SO_RCVTIMEO), so a busy daemon costs the client at most that.
class SendToWorker : public Napi::AsyncWorker {
 public:
  SendToWorker(Napi::Env env, std::string path, int fd, const uint8_t* line, size_t len, int timeout_ms)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), fd_(fd),
        line_(line, line + len), timeout_ms_(timeout_ms) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof(addr.sun_path)) return Fail(-ENAMETOOLONG, "connect");
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return Fail(LastSysError(), "socket");
    fcntl(s, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
    timeval tv{};
    tv.tv_sec = timeout_ms_ / 1000;
    tv.tv_usec = (timeout_ms_ % 1000) * 1000;
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
      Fail(LastSysError(), "connect");
      CloseQuietly(s);
      return;
    }
    iovec iov{line_.data(), line_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd_, sizeof(int));
#ifdef MSG_NOSIGNAL
    const int send_flags = MSG_NOSIGNAL;
#else
    const int send_flags = 0;
#endif
    ssize_t n;
    do n = sendmsg(s, &msg, send_flags);
    while (n < 0 && errno == EINTR);
    if (n < 0 || static_cast<size_t>(n) != line_.size()) {
      Fail(n < 0 ? LastSysError() : -EIO, "sendmsg");
      CloseQuietly(s);
      return;
    }
    char buf[256];
    while (reply_.size() < kMaxLine) {
      ssize_t r = recv(s, buf, sizeof(buf), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        Fail(LastSysError(), "recv");
        break;
      }
      if (r == 0) break;
      reply_.insert(reply_.end(), buf, buf + r);
      if (std::memchr(buf, '\n', static_cast<size_t>(r)) != nullptr) break;
    }
    CloseQuietly(s);
  }

  void OnOK() override {
    if (err_ != 0) {
      deferred_.Reject(SysError(Env(), err_, syscall_, path_).Value());
      return;
    }
    size_t end = 0;
    while (end < reply_.size() && reply_[end] != '\n') end++;
    deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(Env(), reply_.data(), end));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void Fail(int err, const char* syscall) {
    err_ = err;
    syscall_ = syscall;
  }
  Napi::Promise::Deferred deferred_;
  std::string path_;
  int fd_;
  std::vector<uint8_t> line_;
  int timeout_ms_;
  std::vector<uint8_t> reply_;
  int err_ = 0;
  const char* syscall_ = "";
};

// fdSendTo(socketPath, fd, line: Buffer, timeoutMs): Promise<Buffer> — the daemon's reply line (no newline).
// fd must stay open until the promise settles.
Napi::Value FdSendTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1, timeout_ms = 0;
  const uint8_t* line = nullptr;
  size_t line_len = 0;
  if (info.Length() < 4 || !info[0].IsString() || !IntArg(info, 1, &fd) ||
      !GetBytes(env, info[2], &line, &line_len) || !IntArg(info, 3, &timeout_ms) || line_len == 0 ||
      line_len > kMaxLine) {
    ArgError(env, "fdSendTo(path: string, fd: number, line: Buffer (1..1024 bytes), timeoutMs: number)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new SendToWorker(env, info[0].As<Napi::String>().Utf8Value(), fd, line, line_len, timeout_ms);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// fdPeek(socketFd, timeoutMs, maxBytes): Promise<Buffer> — the first bytes waiting on a connection, without
// taking them (empty at end of stream or when none came in time). Waits on the thread pool, not the loop.
class PeekWorker : public Napi::AsyncWorker {
 public:
  PeekWorker(Napi::Env env, int fd, int timeout_ms, size_t max)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), timeout_ms_(timeout_ms),
        bytes_(max) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    pollfd p{fd_, POLLIN, 0};
    int r;
    do r = poll(&p, 1, timeout_ms_);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
      bytes_.clear();
      return;
    }
    ssize_t n;
    do n = recv(fd_, bytes_.data(), bytes_.size(), MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    bytes_.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  void OnOK() override { deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(Env(), bytes_.data(), bytes_.size())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  int timeout_ms_;
  std::vector<uint8_t> bytes_;
};

Napi::Value FdPeek(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1, timeout_ms = 0, max = 0;
  if (!IntArg(info, 0, &fd) || !IntArg(info, 1, &timeout_ms) || !IntArg(info, 2, &max) || max < 1 ||
      max > static_cast<int>(kMaxLine)) {
    ArgError(env, "fdPeek(fd: number, timeoutMs: number, maxBytes: 1..1024)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new PeekWorker(env, fd, timeout_ms, static_cast<size_t>(max));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// fdReceive(socketFd, maxBytes): { bytes: Buffer, fd: number } — one recvmsg; fd is -1 when none came. Any
// further descriptors a sender attached are closed here, so nothing it sends can leak into the daemon.
Napi::Value FdReceive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int s = -1, max = 0;
  if (!IntArg(info, 0, &s) || !IntArg(info, 1, &max) || max < 1 || max > static_cast<int>(kMaxLine)) {
    ArgError(env, "fdReceive(fd: number, maxBytes: 1..1024)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(max));
  iovec iov{bytes.data(), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
#ifdef MSG_CMSG_CLOEXEC
  const int flags = MSG_DONTWAIT | MSG_CMSG_CLOEXEC;
#else
  const int flags = MSG_DONTWAIT;
#endif
  ssize_t n;
  do n = recvmsg(s, &msg, flags);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Throw(env, LastSysError(), "recvmsg");
  int got = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (got < 0) {
        got = fd;
#ifndef MSG_CMSG_CLOEXEC
        fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
      } else {
        CloseQuietly(fd);
      }
    }
  }
  // MSG_CTRUNC: descriptors that did not fit were closed by the kernel; the message is refused as a whole.
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    CloseQuietly(got);
    got = -1;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, bytes.data(), static_cast<size_t>(n)));
  out.Set("fd", Napi::Number::New(env, got));
  return out;
}

// Whether reads of fd's file come from a local disk or memory. A network or FUSE filesystem can make a read block
// for as long as its server likes, and the daemon's reads run on the thread pool every thread of it shares; such a
// file is refused, and the client streams it instead (a hang then stays in the client).
bool OnLocalFilesystem(int fd) {
#ifdef __linux__
  struct statfs fs;
  if (fstatfs(fd, &fs) < 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53:      // ext2/3/4
    case 0x58465342:  // xfs
    case 0x9123683E:  // btrfs
    case 0x01021994:  // tmpfs
    case 0x858458F6:  // ramfs
    case 0x794C7630:  // overlayfs
    case 0xF2F52010:  // f2fs
    case 0x2FC12FC1:  // zfs
    case 0xCA451A4E:  // bcachefs
    case 0x4D44:      // vfat
    case 0x2011BAB0:  // exfat
    case 0x5346544E:  // ntfs
    case 0x7366746E:  // ntfs3
    case 0x52654973:  // reiserfs
    case 0x3153464A:  // jfs
    case 0x73717368:  // squashfs
    case 0x9660:      // iso9660
    case 0x15013346:  // udf
    case 0x482B:      // hfsplus
    case 0x3434:      // nilfs
      return true;
    default:
      return false;
  }
#else
  struct statfs fs;
  return fstatfs(fd, &fs) == 0 && (fs.f_flags & MNT_LOCAL) != 0;
#endif
}

// fdCheckReadable(fd): number — the size of the regular file fd reads; throws EBADF if fd cannot be read,
// EINVAL if it is anything but a regular file (a FIFO or a device could block a reader or never end), EREMOTE if
// the file is not on a local filesystem (see OnLocalFilesystem).
Napi::Value FdCheckReadable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!IntArg(info, 0, &fd)) {
    ArgError(env, "fdCheckReadable(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return Throw(env, LastSysError(), "fcntl");
  int mode = fl & O_ACCMODE;
  if (mode != O_RDONLY && mode != O_RDWR) return Throw(env, -EBADF, "fcntl", "not open for reading");
  struct stat st;
  if (fstat(fd, &st) < 0) return Throw(env, LastSysError(), "fstat");
  if (!S_ISREG(st.st_mode)) return Throw(env, -EINVAL, "fstat", "not a regular file");
  if (!OnLocalFilesystem(fd)) return Throw(env, -EREMOTE, "fstatfs", "not on a local filesystem");
  return Napi::Number::New(env, static_cast<double>(st.st_size));
}

// fdDup(fd): number — a copy (close-on-exec) for a thread to own and close when its reads are done.
Napi::Value FdDup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!IntArg(info, 0, &fd)) {
    ArgError(env, "fdDup(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return Throw(env, LastSysError(), "fcntl");
  return Napi::Number::New(env, d);
}

// fdClose(fd): closes a descriptor this code was handed. Not fs.close: in a worker thread node warns about
// closing a descriptor that thread did not open ("unmanaged mode"), and these were opened by another process.
Napi::Value FdClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!IntArg(info, 0, &fd)) {
    ArgError(env, "fdClose(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (close(fd) < 0 && errno != EINTR) return Throw(env, LastSysError(), "close");
  return env.Undefined();
}

// fdPeerUid(socketFd): number — the user ID of the process at the other end of a Unix socket (SO_PEERCRED on
// Linux, getpeereid elsewhere): the daemon gives a handed descriptor only to a request from the same user.
Napi::Value FdPeerUid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!IntArg(info, 0, &fd)) {
    ArgError(env, "fdPeerUid(socketFd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
#ifdef __linux__
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return Throw(env, LastSysError(), "getsockopt");
  return Napi::Number::New(env, static_cast<double>(cred.uid));
#else
  uid_t uid;
  gid_t gid;
  if (getpeereid(fd, &uid, &gid) < 0) return Throw(env, LastSysError(), "getpeereid");
  return Napi::Number::New(env, static_cast<double>(uid));
#endif
}

}  // namespace

void InitFdPass(Napi::Env env, Napi::Object exports) {
  exports.Set("fdSendTo", Napi::Function::New(env, FdSendTo, "fdSendTo"));
  exports.Set("fdPeek", Napi::Function::New(env, FdPeek, "fdPeek"));
  exports.Set("fdReceive", Napi::Function::New(env, FdReceive, "fdReceive"));
  exports.Set("fdCheckReadable", Napi::Function::New(env, FdCheckReadable, "fdCheckReadable"));
  exports.Set("fdDup", Napi::Function::New(env, FdDup, "fdDup"));
  exports.Set("fdClose", Napi::Function::New(env, FdClose, "fdClose"));
  exports.Set("fdPeerUid", Napi::Function::New(env, FdPeerUid, "fdPeerUid"));
}

}  // namespace trellis
#else
namespace trellis {
// Windows: named pipes carry no descriptors; the client streams the file's bytes instead.
void InitFdPass(Napi::Env, Napi::Object) {}
}  // namespace trellis
#endif
