// The JS class UdpBatchSocket: a UDP socket read with recvmmsg and written with sendmmsg (Linux only; elsewhere
// the constructor throws ENOSYS and the TypeScript side uses node:dgram).
#include "common.h"

#if defined(__linux__)

#include "udp_recv_linux.h"
#include "udp_send_linux.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>

namespace trellis {
namespace {

class UdpBatchSocket : public Napi::ObjectWrap<UdpBatchSocket> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit UdpBatchSocket(const Napi::CallbackInfo& info);
  ~UdpBatchSocket() override {
    reading_ = false;  // finalized: the wrapper's reference is going away with the object
    CloseInternal();
  }

 private:
  Napi::Value GetPort(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }
  Napi::Value GetGro(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), rx_.gro()); }
  Napi::Value GetCoalesced(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rx_.coalesced()); }
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value SendMany(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value SetMark(const Napi::CallbackInfo& info);
  Napi::Value SetSendThread(const Napi::CallbackInfo& info);
  Napi::Value GetSendDropped(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), sender_ ? static_cast<double>(sender_->dropped()) : 0);
  }

  bool CheckOpen(napi_env env, const char* what);
  bool MakeDest(napi_env env, napi_value addr, napi_value port, sockaddr_storage* ss, socklen_t* len);
  static void OnReady(void* arg, int status) { static_cast<UdpBatchSocket*>(arg)->Drain(status); }
  void Drain(int status);
  void Fail(Napi::Env env, int uv_err, const char* syscall);
  void StopReading();
  void StopInternal();
  void CloseInternal();

  int fd_ = -1;
  int family_ = AF_INET;
  // Runs of equal-sized datagrams go out as one UDP_SEGMENT (GSO) message until the kernel refuses it.
  std::atomic<bool> gso_ok_{true};
  // When set, sendMany hands its datagrams to this thread (see udp_send_linux.h).
  std::unique_ptr<UdpSendThread> sender_;
  uint16_t port_ = 0;
  bool reading_ = false;
  FdWatch watch_;
  JsSink sink_;
  SharedArray buf_{napi_uint8_array, kUdpMaxBatch * kUdpSlotBytes, true};
  SharedArray lens_{napi_uint32_array, kUdpMaxBatch, false};
  SharedArray addrs_{napi_uint8_array, kUdpMaxBatch * 16, false};
  SharedArray ports_{napi_uint16_array, kUdpMaxBatch, false};
  UdpReceiver rx_;
};

Napi::Function UdpBatchSocket::Define(Napi::Env env) {
  return DefineClass(env, "UdpBatchSocket",
                     {
                         InstanceAccessor<&UdpBatchSocket::GetPort>("port"),
                         InstanceAccessor<&UdpBatchSocket::GetFd>("fd"),
                         InstanceAccessor<&UdpBatchSocket::GetClosed>("closed"),
                         InstanceAccessor<&UdpBatchSocket::GetGro>("gro"),
                         InstanceAccessor<&UdpBatchSocket::GetCoalesced>("coalesced"),
                         InstanceAccessor<&UdpBatchSocket::GetSendDropped>("sendDropped"),
                         InstanceMethod<&UdpBatchSocket::Start>("start"),
                         InstanceMethod<&UdpBatchSocket::Stop>("stop"),
                         InstanceMethod<&UdpBatchSocket::Send>("send"),
                         InstanceMethod<&UdpBatchSocket::SendMany>("sendMany"),
                         InstanceMethod<&UdpBatchSocket::Close>("close"),
                         InstanceMethod<&UdpBatchSocket::SetMark>("setMark"),
                         InstanceMethod<&UdpBatchSocket::SetSendThread>("setSendThread"),
                     });
}

// Sets a socket buffer size, with the *FORCE variant first (it ignores rmem_max/wmem_max but needs
// CAP_NET_ADMIN). Best effort: a smaller buffer is not an error.
void SetBufferSize(int fd, int force_opt, int opt, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

UdpBatchSocket::UdpBatchSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpBatchSocket>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber()) {
    ArgError(env, "UdpBatchSocket(family, address, port): expects (4 | 6, string, number)")
        .ThrowAsJavaScriptException();
    return;
  }
  int fam = info[0].As<Napi::Number>().Int32Value();
  std::string address = info[1].As<Napi::String>().Utf8Value();
  double port = info[2].As<Napi::Number>().DoubleValue();
  if ((fam != 4 && fam != 6) || !(port >= 0 && port <= 65535) || port != static_cast<int>(port)) {
    Napi::RangeError::New(env, "UdpBatchSocket: family must be 4 or 6 and port an integer in 0..65535")
        .ThrowAsJavaScriptException();
    return;
  }
  std::string where = (fam == 6 ? "[" + address + "]" : address) + ":" + std::to_string(static_cast<int>(port));
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  socklen_t sl;
  family_ = fam == 4 ? AF_INET : AF_INET6;
  if (fam == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    sl = sizeof *sin;
    if (inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) {
      SysError(env, UV_EINVAL, "bind", where + " (not an IPv4 address)").ThrowAsJavaScriptException();
      return;
    }
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    sl = sizeof *sin6;
    if (inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) {
      SysError(env, UV_EINVAL, "bind", where + " (not an IPv6 address)").ThrowAsJavaScriptException();
      return;
    }
  }
  fd_ = socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    SysError(env, -errno, "socket", where).ThrowAsJavaScriptException();
    return;
  }
  int zero = 0, one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof zero);
  if (family_ == AF_INET6 && setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) {
    SysError(env, -errno, "setsockopt(IPV6_V6ONLY)", where).ThrowAsJavaScriptException();
    return;
  }
  // The bypass mark keeps WireGuard's datagrams off the tunnel's own routes while an exit node is in use.
  // Without CAP_NET_ADMIN (tests as a user) the kernel refuses it, and no policy rules are installed either.
  uint32_t mark = kBypassMark;
  setsockopt(fd_, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
  SetBufferSize(fd_, SO_RCVBUFFORCE, SO_RCVBUF, 4 << 20);
  SetBufferSize(fd_, SO_SNDBUFFORCE, SO_SNDBUF, 4 << 20);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
    SysError(env, -errno, "bind", where).ThrowAsJavaScriptException();
    return;
  }
  sl = sizeof ss;
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) {
    SysError(env, -errno, "getsockname", where).ThrowAsJavaScriptException();
    return;
  }
  port_ = ntohs(family_ == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  // A GSO train from the sender then stays one buffer up to this socket instead of one skb per datagram.
  rx_.EnableGro(fd_);
}

bool UdpBatchSocket::CheckOpen(napi_env env, const char* what) {
  if (fd_ >= 0) return true;
  SysError(env, UV_EBADF, what, "(socket is closed)").ThrowAsJavaScriptException();
  return false;
}

Napi::Value UdpBatchSocket::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "start")) return env.Undefined();
  if (!sink_.Set(env, info[0], info.Length() > 1 ? static_cast<napi_value>(info[1]) : nullptr)) {
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  int r = loop != nullptr ? watch_.Start(loop, fd_, &UdpBatchSocket::OnReady, this) : UV_EINVAL;
  if (r != 0) {
    sink_.Clear();
    SysError(env, r, "uv_poll_start", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!reading_) {
    reading_ = true;
    Ref();
  }
  return env.Undefined();
}

void UdpBatchSocket::StopReading() {
  watch_.Stop();
  if (reading_) {
    reading_ = false;
    Unref();
  }
}

void UdpBatchSocket::StopInternal() {
  StopReading();
  sink_.Clear();
}

void UdpBatchSocket::CloseInternal() {
  StopInternal();
  sender_.reset();  // joins the sender thread: it must not meet the descriptor's number reused
  watch_.Close();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Napi::Value UdpBatchSocket::Stop(const Napi::CallbackInfo& info) {
  StopInternal();
  return info.Env().Undefined();
}

Napi::Value UdpBatchSocket::Close(const Napi::CallbackInfo& info) {
  CloseInternal();
  return info.Env().Undefined();
}

// setMark(mark: number): SO_MARK on the socket (a full tunnel's policy rules keep marked datagrams off the tunnel,
// the wg-quick way). Needs CAP_NET_ADMIN; throws a system error otherwise.
Napi::Value UdpBatchSocket::SetMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ArgError(env, "setMark(mark) needs a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!CheckOpen(env, "setMark")) return env.Undefined();
  uint32_t mark = info[0].As<Napi::Number>().Uint32Value();
  if (setsockopt(fd_, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    SysError(env, -errno, "setsockopt(SO_MARK)", "").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

void UdpBatchSocket::Fail(Napi::Env env, int uv_err, const char* syscall) {
  Napi::Error err = SysError(env, uv_err, syscall, "");
  Napi::Object self = Value();
  StopReading();
  sink_.Fail(env, self, err.Value());
}

void UdpBatchSocket::Drain(int status) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (fd_ < 0 || !reading_) return;
  if (status < 0) {
    Fail(env, status, "poll");
    return;
  }
  size_t total = 0;
  bool drained = false;
  for (int round = 0; fd_ >= 0 && reading_; round++) {
    // What a read brought in is always handed out before returning (no readiness event would come back for
    // it); reading again stops at the per-wake-up cap, and once the queue was seen empty (uv_poll is
    // level-triggered).
    bool may_read = !drained && total < kUdpMaxPerWakeup && round < 32;
    if (!may_read && !rx_.pending()) return;
    napi_value vb = nullptr, vl = nullptr, va = nullptr, vp = nullptr;
    auto* base = static_cast<uint8_t*>(buf_.Get(env, &vb));
    auto* lens = static_cast<uint32_t*>(lens_.Get(env, &vl));
    auto* addrs = static_cast<uint8_t*>(addrs_.Get(env, &va));
    auto* ports = static_cast<uint16_t*>(ports_.Get(env, &vp));
    if (base == nullptr || lens == nullptr || addrs == nullptr || ports == nullptr) {
      Fail(env, UV_ENOMEM, "recvmmsg");
      return;
    }
    UdpFill f = rx_.Fill(fd_, UdpSlots{base, lens, addrs, ports}, may_read);
    drained = drained || f.drained;
    if (f.count > 0) {
      napi_value argv[5] = {vb, vl, va, vp, Napi::Number::New(env, static_cast<double>(f.count))};
      Napi::Object self = Value();
      if (!sink_.Deliver(env, self, 5, argv)) return;  // threw: routed to 'uncaughtException'
      total += f.count;
    }
    int e = f.err;
    // ICMP-reported errors (queued on the socket) and EINTR are cleared by the failed call: try again.
    if (e == 0 || e == EINTR || e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN) {
      continue;
    }
    Fail(env, -e, "recvmmsg");
    return;
  }
}

bool UdpBatchSocket::MakeDest(napi_env env, napi_value addr, napi_value port, sockaddr_storage* ss,
                              socklen_t* len) {
  const uint8_t* a = nullptr;
  size_t alen = 0;
  double p = -1;
  napi_get_value_double(env, port, &p);
  if (!GetBytes(env, addr, &a, &alen) || alen != 16 || !(p >= 1 && p <= 65535) || p != static_cast<int>(p)) {
    ArgError(env, "destination must be a 16-byte address and a port in 1..65535").ThrowAsJavaScriptException();
    return false;
  }
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool mapped = std::memcmp(a, kMapped, 12) == 0;
  std::memset(ss, 0, sizeof *ss);
  if (family_ == AF_INET) {
    if (!mapped) {
      SysError(env, UV_EAFNOSUPPORT, "sendmmsg", "(IPv6 destination on an IPv4 socket)").ThrowAsJavaScriptException();
      return false;
    }
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(p));
    std::memcpy(&sin->sin_addr, a + 12, 4);
    *len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(p));
    std::memcpy(&sin6->sin6_addr, a, 16);
    *len = sizeof *sin6;
  }
  return true;
}

Napi::Value UdpBatchSocket::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data = nullptr;
  size_t len = 0;
  sockaddr_storage dest;
  socklen_t dlen = 0;
  if (info.Length() < 3 || !GetBytes(env, info[0], &data, &len)) {
    ArgError(env, "send(buf, addr, port): buf must be a Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!CheckOpen(env, "sendto") || !MakeDest(env, info[1], info[2], &dest, &dlen)) return env.Undefined();
  for (;;) {
    if (sendto(fd_, data, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&dest), dlen) >= 0) {
      return Napi::Boolean::New(env, true);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return Napi::Boolean::New(env, false);
    SysError(env, -errno, "sendto", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

Napi::Value UdpBatchSocket::SendMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsArray() || !info[1].IsNumber()) {
    ArgError(env, "sendMany(bufs, count, addr, port): bufs must be an array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  sockaddr_storage dest;
  socklen_t dlen = 0;
  if (!CheckOpen(env, "sendmmsg") || !MakeDest(env, info[2], info[3], &dest, &dlen)) return env.Undefined();
  Napi::Array arr = info[0].As<Napi::Array>();
  int64_t want = info[1].As<Napi::Number>().Int64Value();
  if (want < 0 || static_cast<uint64_t>(want) > arr.Length()) {
    Napi::RangeError::New(env, "sendMany: count out of range").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Up to kSendMaxDatagrams a round: each run of equal-sized datagrams one GSO message (SendDatagrams), so a
  // flush of a few TSO super-packets' worth is one system call.
  struct iovec iov[kSendMaxDatagrams];
  uint32_t sent = 0;
  while (sent < static_cast<uint32_t>(want)) {
    uint32_t k = std::min<uint32_t>(kSendMaxDatagrams, static_cast<uint32_t>(want) - sent);
    for (uint32_t j = 0; j < k; j++) {
      napi_value item = nullptr;
      const uint8_t* data = nullptr;
      size_t len = 0;
      if (napi_get_element(env, arr, sent + j, &item) != napi_ok || !GetBytes(env, item, &data, &len)) {
        ArgError(env, "sendMany: bufs[" + std::to_string(sent + j) + "] is not a Uint8Array")
            .ThrowAsJavaScriptException();
        return env.Undefined();
      }
      iov[j].iov_base = const_cast<uint8_t*>(data);
      iov[j].iov_len = len;
    }
    if (sender_) {
      uint32_t took = sender_->Push(dest, dlen, iov, k);
      sent += took;
      if (took < k) break;  // the thread's queue stayed full: dropped
      continue;
    }
    SendResult r = SendDatagrams(fd_, dest, dlen, iov, k, &gso_ok_);
    sent += r.sent;
    if (r.err == 0) continue;
    if (r.err == EAGAIN || r.err == EWOULDBLOCK || r.err == ENOBUFS) break;
    Napi::Error e = SysError(env, -r.err, "sendmmsg", "");
    e.Set("sent", Napi::Number::New(env, sent));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, sent);
}

// setSendThread(on): sendMany's datagrams go out from a thread of the socket's own (on) or at once (off).
Napi::Value UdpBatchSocket::SetSendThread(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    ArgError(env, "setSendThread(on): expects a boolean").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!CheckOpen(env, "setSendThread")) return env.Undefined();
  bool on = info[0].As<Napi::Boolean>().Value();
  if (on && !sender_) sender_ = std::make_unique<UdpSendThread>(fd_, &gso_ok_);
  if (!on) sender_.reset();
  return env.Undefined();
}

}  // namespace

void InitUdpBatchSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("UdpBatchSocket", UdpBatchSocket::Define(env));
  exports.Set("udpBatchSupported", Napi::Boolean::New(env, true));
}

}  // namespace trellis

#else  // not Linux

namespace trellis {

void InitUdpBatchSocket(Napi::Env env, Napi::Object exports) {
  auto ctor = Napi::Function::New(
      env,
      [](const Napi::CallbackInfo& info) -> Napi::Value {
        SysError(info.Env(), UV_ENOSYS, "UdpBatchSocket", "(recvmmsg/sendmmsg batching is Linux-only)")
            .ThrowAsJavaScriptException();
        return info.Env().Undefined();
      },
      "UdpBatchSocket");
  exports.Set("UdpBatchSocket", ctor);
  exports.Set("udpBatchSupported", Napi::Boolean::New(env, false));
}

}  // namespace trellis

#endif
