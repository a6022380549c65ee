// Shared helpers of the trellis_tun addon: error objects with errno codes, reusable typed arrays that are
// handed to JS once per batch, the JS callback plumbing (MakeCallback + fatal-exception routing), the uv_poll
// wrapper used on POSIX, and the per-OS TUN backend interface.
#pragma once

#include <uv.h>

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace trellis {

// Batch geometry shared with the TypeScript side (exported as constants by the addon).
constexpr size_t kTunBatchBytes = 256 * 1024;  // packets are packed back-to-back in this buffer
constexpr size_t kTunMaxPacket = 65536 + 16;   // a read needs this much room: a 64 KiB TSO packet + vnet header
constexpr size_t kTunMaxBatch = 256;           // packets per callback at most (a 64 KiB super-packet makes ~50)
constexpr size_t kUdpSlotBytes = 4096;         // datagram i lives at offset i * kUdpSlotBytes
constexpr size_t kUdpMaxBatch = 64;            // datagrams per recvmmsg / per callback
constexpr uint32_t kUdpMaxGsoSegments = 64;     // UDP_MAX_SEGMENTS in the kernel
constexpr size_t kUdpMaxGsoBytes = 65000;       // one UDP_SEGMENT send stays within a single IP datagram
constexpr size_t kUdpMaxPerWakeup = 256;       // datagrams drained per poll wake-up before yielding
constexpr size_t kTunMaxPerWakeup = 512;       // packets drained per wake-up before yielding
constexpr uint32_t kUdpTruncated = 0xFFFFFFFFu;  // length reported for a datagram longer than a slot

// A JS Error whose `code` is the errno name of `uv_err` (a libuv error code, i.e. -errno on POSIX), with
// `errno` and `syscall` set the way node's own system errors do. `detail` (may be empty) names the object.
Napi::Error SysError(napi_env env, int uv_err, const char* syscall, const std::string& detail);
// Same, for -errno from the calling thread's errno (POSIX) or GetLastError() (Windows).
int LastSysError();

// A TypeError with node's ERR_INVALID_ARG_TYPE code.
Napi::Error ArgError(napi_env env, const std::string& message);

// Bytes of a TypedArray / Buffer / DataView argument. Returns false (nothing thrown) if `v` is not one.
bool GetBytes(napi_env env, napi_value v, const uint8_t** data, size_t* len);

// A typed array created once and handed to every callback. Re-created only if JS detached it.
class SharedArray {
 public:
  SharedArray(napi_typedarray_type type, size_t length, bool node_buffer)
      : type_(type), length_(length), node_buffer_(node_buffer) {}
  ~SharedArray();
  SharedArray(const SharedArray&) = delete;
  SharedArray& operator=(const SharedArray&) = delete;
  // Returns the data pointer (nullptr on failure, with a JS exception pending) and the JS value.
  void* Get(napi_env env, napi_value* out);
  void Reset();

 private:
  napi_typedarray_type type_;
  size_t length_;
  bool node_buffer_;
  napi_env env_ = nullptr;
  napi_ref ref_ = nullptr;
};

// Holds the data callback (and optional error callback) given to start(), and calls them with MakeCallback
// semantics. An exception thrown by a callback goes to napi_fatal_exception, i.e. process 'uncaughtException'.
class JsSink {
 public:
  ~JsSink();
  // Throws (JS) and returns false if `data` is not a function or `error` is neither undefined nor a function.
  bool Set(napi_env env, napi_value data, napi_value error);
  void Clear();
  bool active() const { return !data_.IsEmpty(); }
  // Returns false if the callback threw (the exception has been routed already).
  bool Deliver(napi_env env, napi_value recv, size_t argc, const napi_value* argv);
  // Clears the sink, then hands `err` to the error callback, or raises it as an uncaught exception.
  void Fail(napi_env env, napi_value recv, napi_value err);

 private:
  bool Call(napi_env env, napi_value recv, napi_value fn, size_t argc, const napi_value* argv);
  Napi::FunctionReference data_;
  Napi::FunctionReference error_;
  napi_env env_ = nullptr;
  napi_async_context ctx_ = nullptr;
};

using ReadyFn = void (*)(void* arg, int status);

#ifndef _WIN32
// A uv_poll_t watching an fd for readability. The handle is heap-allocated and freed in its close callback,
// so the owner may go away before libuv is done with the handle.
class FdWatch {
 public:
  ~FdWatch() { Close(); }
  int Start(uv_loop_t* loop, int fd, ReadyFn fn, void* arg);  // returns 0 or a uv error
  void Stop();
  void Close();  // idempotent; call before closing the fd

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  uv_poll_t* handle_ = nullptr;
  ReadyFn fn_ = nullptr;
  void* arg_ = nullptr;
};
#endif

// One OS TUN device. All methods run on the JS thread.
class TunBackend {
 public:
  virtual ~TunBackend() = default;
  const std::string& name() const { return name_; }
  // True when every packet read or written carries a 10-byte virtio_net_hdr first (Linux IFF_VNET_HDR).
  bool vnet_hdr() const { return vnet_hdr_; }
  // With vnet_hdr: lets the kernel hand over TCP super-packets (TSO, up to 64 KiB) and packets whose L4
  // checksum is left partial, as the header says, for the reader to split and finish. False when not available.
  virtual bool EnableTso() { return false; }
  bool tso() const { return tso_; }
  virtual int fd() const { return -1; }
  // One packet into dst (cap >= kTunMaxPacket): its length (> 0), 0 if none is queued, or a negative uv error.
  virtual int Read(uint8_t* dst, size_t cap) = 0;
  // With vnet_hdr: one frame, its virtio_net_hdr into hdr (10 bytes) and the packet after it into dst (cap bytes),
  // so a plain packet needs no move. Returns the frame's length with the header, 0 or a negative uv error as Read.
  virtual int ReadVnet(uint8_t* hdr, uint8_t* dst, size_t cap) { return UV_ENOSYS; }
  // One packet: 0, or a negative uv error (UV_EAGAIN / UV_ENOBUFS when the queue is full).
  virtual int Write(const uint8_t* pkt, size_t len) = 0;
  // Calls fn(arg, status) on the loop thread whenever packets may be readable. Returns 0 or a uv error.
  virtual int StartWatch(uv_loop_t* loop, ReadyFn fn, void* arg) = 0;
  virtual void StopWatch() = 0;
  // The reader stopped before the queue was empty (batch cap): make sure it is called again.
  virtual void Yielded() {}
  // Releases every OS resource; idempotent; no ReadyFn call after it.
  virtual void Close() = 0;

 protected:
  std::string name_;
  bool vnet_hdr_ = false;
  bool tso_ = false;
};

// Opens the platform TUN device. want_vnet_hdr asks for virtio_net_hdr framing where the OS has it (Linux);
// elsewhere it is ignored and vnet_hdr() stays false. On failure returns nullptr with *uv_err and *syscall set.
std::unique_ptr<TunBackend> OpenTun(const std::string& name, bool want_vnet_hdr, int* uv_err, std::string* syscall);

#ifndef _WIN32
// A TUN backend that is a plain non-blocking fd (Linux /dev/net/tun, macOS utun control socket).
class FdTunBackend : public TunBackend {
 public:
  ~FdTunBackend() override { Close(); }
  int fd() const override { return fd_; }
  int StartWatch(uv_loop_t* loop, ReadyFn fn, void* arg) override { return watch_.Start(loop, fd_, fn, arg); }
  void StopWatch() override { watch_.Stop(); }
  void Close() override;

 protected:
  int fd_ = -1;
  FdWatch watch_;
};
#endif

// Registration of the two classes (tun_device.cc, udp_linux.cc).
void InitTunDevice(Napi::Env env, Napi::Object exports);
void InitUdpBatchSocket(Napi::Env env, Napi::Object exports);
void InitFdPass(Napi::Env env, Napi::Object exports);
void InitSockMark(Napi::Env env, Napi::Object exports);
void InitChecksum(Napi::Env env, Napi::Object exports);
void InitFdSendfile(Napi::Env env, Napi::Object exports);
void InitFdSplice(Napi::Env env, Napi::Object exports);

// The routing bypass mark (tailscale's 0x80000 under mask 0xff0000): the engine's own sockets carry it so that
// policy rules keep them off the tunnel's routes.
constexpr uint32_t kBypassMark = 0x80000;

}  // namespace trellis
