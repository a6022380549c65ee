// The JS class TunDevice: OS-independent part. Readiness comes from the backend (uv_poll on POSIX, a waiter
// thread + uv_async on Windows); packets are read in batches into one shared Buffer, lengths into one shared
// Uint32Array, and handed to JS with one callback per batch. On Linux with a virtio_net_hdr the batch holds plain
// IP packets only: TunBatchReader (tun_offload.cc) strips the header and splits TCP super-packets.
#include <cstring>

#include "common.h"
#include "tun_offload.h"

namespace trellis {
namespace {

class TunDevice : public Napi::ObjectWrap<TunDevice> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TunDevice(const Napi::CallbackInfo& info);
  ~TunDevice() override {
    reading_ = false;  // finalized: the wrapper's reference is going away with the object
    CloseInternal();
  }

 private:
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetVnetHdr(const Napi::CallbackInfo& info);
  Napi::Value GetTso(const Napi::CallbackInfo& info);
  Napi::Value OffloadStats(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !backend_); }
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value WriteMany(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bool CheckOpen(napi_env env, const char* what);
  static void OnReady(void* arg, int status);
  void Drain(int status);
  void Fail(Napi::Env env, int uv_err, const char* syscall);
  void StopReading();
  void StopInternal();
  void CloseInternal();

  std::unique_ptr<TunBackend> backend_;
  std::string name_;
  bool reading_ = false;
  JsSink sink_;
  TunBatchReader reader_;
  SharedArray buf_{napi_uint8_array, kTunBatchBytes, true};
  SharedArray lens_{napi_uint32_array, kTunMaxBatch, false};
};

Napi::Function TunDevice::Define(Napi::Env env) {
  return DefineClass(env, "TunDevice",
                     {
                         InstanceAccessor<&TunDevice::GetName>("name"),
                         InstanceAccessor<&TunDevice::GetFd>("fd"),
                         InstanceAccessor<&TunDevice::GetVnetHdr>("vnetHdr"),
                         InstanceAccessor<&TunDevice::GetTso>("tso"),
                         InstanceAccessor<&TunDevice::GetClosed>("closed"),
                         InstanceMethod<&TunDevice::Start>("start"),
                         InstanceMethod<&TunDevice::Stop>("stop"),
                         InstanceMethod<&TunDevice::Write>("write"),
                         InstanceMethod<&TunDevice::WriteMany>("writeMany"),
                         InstanceMethod<&TunDevice::Close>("close"),
                         InstanceMethod<&TunDevice::OffloadStats>("offloadStats"),
                     });
}

TunDevice::TunDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunDevice>(info) {
  Napi::Env env = info.Env();
  std::string requested;
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsString()) {
      ArgError(env, "TunDevice(name): name must be a string").ThrowAsJavaScriptException();
      return;
    }
    requested = info[0].As<Napi::String>().Utf8Value();
  }
  bool want_vnet_hdr = false;
  bool want_tso = false;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value v = info[1].As<Napi::Object>().Get("vnetHdr");
    want_vnet_hdr = v.IsBoolean() && v.As<Napi::Boolean>().Value();
    Napi::Value t = info[1].As<Napi::Object>().Get("tso");
    want_tso = t.IsBoolean() && t.As<Napi::Boolean>().Value();
  }
  int err = 0;
  std::string syscall;
  backend_ = OpenTun(requested, want_vnet_hdr, &err, &syscall);
  if (!backend_) {
    SysError(env, err, syscall.c_str(), requested.empty() ? std::string("(any)") : requested)
        .ThrowAsJavaScriptException();
    return;
  }
  name_ = backend_->name();
  if (want_tso) backend_->EnableTso();
}

Napi::Value TunDevice::GetVnetHdr(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), backend_ ? backend_->vnet_hdr() : false);
}

Napi::Value TunDevice::GetTso(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), backend_ ? backend_->tso() : false);
}

Napi::Value TunDevice::OffloadStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const trellis::OffloadStats& st = reader_.stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("superPackets", Napi::Number::New(env, static_cast<double>(st.super_packets)));
  o.Set("segments", Napi::Number::New(env, static_cast<double>(st.segments)));
  o.Set("dropped", Napi::Number::New(env, static_cast<double>(st.dropped)));
  return o;
}

Napi::Value TunDevice::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), backend_ ? backend_->fd() : -1);
}

bool TunDevice::CheckOpen(napi_env env, const char* what) {
  if (backend_) return true;
  SysError(env, UV_EBADF, what, name_ + " (device is closed)").ThrowAsJavaScriptException();
  return false;
}

Napi::Value TunDevice::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "start")) return env.Undefined();
  if (!sink_.Set(env, info[0], info.Length() > 1 ? static_cast<napi_value>(info[1]) : nullptr)) {
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    SysError(env, UV_EINVAL, "napi_get_uv_event_loop", name_).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int r = backend_->StartWatch(loop, &TunDevice::OnReady, this);
  if (r != 0) {
    sink_.Clear();
    SysError(env, r, "uv_poll_start", name_).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!reading_) {
    reading_ = true;
    Ref();  // an object that is reading stays alive, like a listening socket
  }
  return env.Undefined();
}

void TunDevice::StopReading() {
  if (backend_) backend_->StopWatch();
  if (reading_) {
    reading_ = false;
    Unref();
  }
}

void TunDevice::StopInternal() {
  StopReading();
  sink_.Clear();
}

void TunDevice::CloseInternal() {
  StopInternal();
  if (backend_) {
    backend_->Close();
    backend_.reset();
  }
}

Napi::Value TunDevice::Stop(const Napi::CallbackInfo& info) {
  StopInternal();
  return info.Env().Undefined();
}

Napi::Value TunDevice::Close(const Napi::CallbackInfo& info) {
  CloseInternal();
  return info.Env().Undefined();
}

void TunDevice::OnReady(void* arg, int status) { static_cast<TunDevice*>(arg)->Drain(status); }

void TunDevice::Fail(Napi::Env env, int uv_err, const char* syscall) {
  Napi::Error err = SysError(env, uv_err, syscall, name_);
  Napi::Object self = Value();
  StopReading();
  sink_.Fail(env, self, err.Value());
}

void TunDevice::Drain(int status) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (!backend_ || !reading_) return;
  if (status < 0) {
    // The poll error (EPOLLERR) says little; a read tells why (EBADFD once the interface was deleted).
    napi_value ignored = nullptr;
    auto* probe = static_cast<uint8_t*>(buf_.Get(env, &ignored));
    int r = probe != nullptr ? backend_->Read(probe, kTunMaxPacket) : 0;
    if (r < 0) {
      Fail(env, r, "read");
    } else {
      Fail(env, status, "poll");
    }
    return;
  }
  size_t total = 0;
  while (backend_ && reading_) {
    napi_value buf_v = nullptr, lens_v = nullptr;
    auto* base = static_cast<uint8_t*>(buf_.Get(env, &buf_v));
    auto* lens = static_cast<uint32_t*>(lens_.Get(env, &lens_v));
    if (base == nullptr || lens == nullptr) {
      Fail(env, UV_ENOMEM, "read");
      return;
    }
    TunBatchReader::Result got = reader_.Fill(*backend_, base, lens);
    const size_t count = got.count;
    const int err = got.err;
    const bool empty = got.empty;
    total += count;
    if (count > 0) {
      napi_value argv[3] = {buf_v, lens_v, Napi::Number::New(env, static_cast<double>(count))};
      Napi::Object self = Value();
      if (!sink_.Deliver(env, self, 3, argv)) {
        // The callback threw (already routed to 'uncaughtException'); resume on the next wake-up, unless a
        // super-packet is half cut: its segments are owed now (no wake-up would come for them).
        if (!reader_.busy()) {
          if (backend_ && reading_) backend_->Yielded();
          return;
        }
        continue;
      }
    }
    if (err != 0) {
      if (backend_ && reading_) Fail(env, err, "read");
      return;
    }
    if (empty || count == 0) return;  // count 0 without either cannot happen; never spin on it
    if (total >= kTunMaxPerWakeup && !reader_.busy()) {
      if (backend_ && reading_) backend_->Yielded();  // let other I/O run; poll is level-triggered
      return;
    }
  }
}

Napi::Value TunDevice::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (info.Length() < 1 || !GetBytes(env, info[0], &data, &len)) {
    ArgError(env, "write(packet): packet must be a Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!CheckOpen(env, "write")) return env.Undefined();
  int r = backend_->Write(data, len);
  if (r == 0) return Napi::Boolean::New(env, true);
  if (r == UV_EAGAIN || r == UV_ENOBUFS) return Napi::Boolean::New(env, false);
  SysError(env, r, "write", name_).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value TunDevice::WriteMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber()) {
    ArgError(env, "writeMany(packets, count): expects an array and a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!CheckOpen(env, "write")) return env.Undefined();
  Napi::Array arr = info[0].As<Napi::Array>();
  int64_t want = info[1].As<Napi::Number>().Int64Value();
  if (want < 0 || static_cast<uint64_t>(want) > arr.Length()) {
    Napi::RangeError::New(env, "writeMany: count out of range").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t done = 0;
  for (uint32_t i = 0; i < static_cast<uint32_t>(want); i++) {
    napi_value item = nullptr;
    const uint8_t* data = nullptr;
    size_t len = 0;
    if (napi_get_element(env, arr, i, &item) != napi_ok || !GetBytes(env, item, &data, &len)) {
      ArgError(env, "writeMany: packets[" + std::to_string(i) + "] is not a Uint8Array")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int r = backend_->Write(data, len);
    if (r == UV_EAGAIN || r == UV_ENOBUFS) break;
    if (r != 0) {
      Napi::Error e = SysError(env, r, "write", name_);
      e.Set("written", Napi::Number::New(env, done));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    done++;
  }
  return Napi::Number::New(env, done);
}

}  // namespace

void InitTunDevice(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = TunDevice::Define(env);
  exports.Set("TunDevice", ctor);
  InitTunOffload(env, exports);
}

}  // namespace trellis
