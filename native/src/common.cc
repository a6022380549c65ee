#include "common.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace trellis {

Napi::Error SysError(napi_env env, int uv_err, const char* syscall, const std::string& detail) {
  char code[64];
  char text[160];
  uv_err_name_r(uv_err, code, sizeof code);
  uv_strerror_r(uv_err, text, sizeof text);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  // libuv only names the errno values it maps (e.g. not EBADFD): ask libc for the others.
  if (std::strncmp(code, "Unknown", 7) == 0 && uv_err < 0) {
    const char* name = strerrorname_np(-uv_err);
    if (name != nullptr) {
      std::snprintf(code, sizeof code, "%s", name);
      std::snprintf(text, sizeof text, "%s", std::strerror(-uv_err));
    }
  }
#endif
  std::string msg(syscall);
  if (!detail.empty()) msg += " " + detail;
  msg += ": ";
  msg += text;
  msg += " (";
  msg += code;
  msg += ")";
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  err.Set("errno", Napi::Number::New(env, uv_err));
  err.Set("syscall", Napi::String::New(env, syscall));
  return err;
}

int LastSysError() {
#ifdef _WIN32
  return uv_translate_sys_error(static_cast<int>(GetLastError()));
#else
  return -errno;
#endif
}

Napi::Error ArgError(napi_env env, const std::string& message) {
  Napi::Error err = Napi::TypeError::New(env, message);
  err.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  return err;
}

static size_t ElementSize(napi_typedarray_type type) {
  switch (type) {
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      return 8;
    default:
      return 1;
  }
}

bool GetBytes(napi_env env, napi_value v, const uint8_t** data, size_t* len) {
  bool is = false;
  void* ptr = nullptr;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0;
    if (napi_get_typedarray_info(env, v, &type, &count, &ptr, nullptr, nullptr) != napi_ok) return false;
    *data = static_cast<const uint8_t*>(ptr);
    *len = ptr ? count * ElementSize(type) : 0;
    return true;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    size_t bytes = 0;
    if (napi_get_dataview_info(env, v, &bytes, &ptr, nullptr, nullptr) != napi_ok) return false;
    *data = static_cast<const uint8_t*>(ptr);
    *len = ptr ? bytes : 0;
    return true;
  }
  return false;
}

SharedArray::~SharedArray() { Reset(); }

void SharedArray::Reset() {
  if (ref_ != nullptr) napi_delete_reference(env_, ref_);
  ref_ = nullptr;
}

void* SharedArray::Get(napi_env env, napi_value* out) {
  if (ref_ != nullptr) {
    napi_value v = nullptr;
    void* data = nullptr;
    size_t count = 0;
    if (napi_get_reference_value(env, ref_, &v) == napi_ok && v != nullptr &&
        napi_get_typedarray_info(env, v, nullptr, &count, &data, nullptr, nullptr) == napi_ok &&
        data != nullptr && count == length_) {
      *out = v;
      return data;
    }
    Reset();  // detached (transferred away by JS): make a new one
  }
  napi_value v = nullptr;
  void* data = nullptr;
  if (node_buffer_) {
    if (napi_create_buffer(env, length_, &data, &v) != napi_ok) return nullptr;
  } else {
    napi_value ab = nullptr;
    if (napi_create_arraybuffer(env, length_ * ElementSize(type_), &data, &ab) != napi_ok) return nullptr;
    if (napi_create_typedarray(env, type_, length_, ab, 0, &v) != napi_ok) return nullptr;
  }
  if (napi_create_reference(env, v, 1, &ref_) != napi_ok) return nullptr;
  env_ = env;
  *out = v;
  return data;
}

JsSink::~JsSink() {
  if (ctx_ != nullptr) napi_async_destroy(env_, ctx_);
}

bool JsSink::Set(napi_env env, napi_value data, napi_value error) {
  napi_valuetype t1 = napi_undefined, t2 = napi_undefined;
  napi_typeof(env, data, &t1);
  if (error != nullptr) napi_typeof(env, error, &t2);
  if (t1 != napi_function || (t2 != napi_undefined && t2 != napi_function)) {
    ArgError(env, "start(onData, onError?) expects functions").ThrowAsJavaScriptException();
    return false;
  }
  if (ctx_ == nullptr) {
    napi_value name;
    napi_create_string_utf8(env, "TrellisNativeIO", NAPI_AUTO_LENGTH, &name);
    if (napi_async_init(env, nullptr, name, &ctx_) != napi_ok) return false;
    env_ = env;
  }
  data_ = Napi::Persistent(Napi::Function(env, data));
  if (t2 == napi_function) {
    error_ = Napi::Persistent(Napi::Function(env, error));
  } else {
    error_.Reset();
  }
  return true;
}

void JsSink::Clear() {
  data_.Reset();
  error_.Reset();
}

bool JsSink::Call(napi_env env, napi_value recv, napi_value fn, size_t argc, const napi_value* argv) {
  napi_value result = nullptr;
  if (napi_make_callback(env, ctx_, recv, fn, argc, argv, &result) == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value ex = nullptr;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);  // -> process 'uncaughtException', like an exception in any I/O callback
  }
  return false;
}

bool JsSink::Deliver(napi_env env, napi_value recv, size_t argc, const napi_value* argv) {
  if (data_.IsEmpty()) return false;
  Napi::Function fn = data_.Value();
  return Call(env, recv, fn, argc, argv);
}

void JsSink::Fail(napi_env env, napi_value recv, napi_value err) {
  // Reading is over: drop both callbacks first, so the error callback may start() again.
  Napi::Function fn;
  if (!error_.IsEmpty()) fn = error_.Value();
  Clear();
  if (!fn.IsEmpty()) {
    Call(env, recv, fn, 1, &err);
  } else {
    napi_fatal_exception(env, err);
  }
}

#ifndef _WIN32
int FdWatch::Start(uv_loop_t* loop, int fd, ReadyFn fn, void* arg) {
  fn_ = fn;
  arg_ = arg;
  if (handle_ == nullptr) {
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, fd);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      return r;
    }
    handle_->data = this;
  }
  return uv_poll_start(handle_, UV_READABLE, OnPoll);
}

void FdWatch::Stop() {
  if (handle_ != nullptr) uv_poll_stop(handle_);
}

void FdWatch::Close() {
  if (handle_ == nullptr) return;
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  handle_ = nullptr;
}

void FdWatch::OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<FdWatch*>(handle->data);
  if (self != nullptr && self->fn_ != nullptr) self->fn_(self->arg_, status);
}

void FdTunBackend::Close() {
  watch_.Close();  // uv_close stops polling synchronously, so the fd can be closed right away
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}
#endif

}  // namespace trellis
