// Windows TUN backend: Wintun, loaded at run time (wintun.dll beside the addon, else the application
// directory or System32). Wintun has no fd to poll, so a small waiter thread blocks on the session's read
// event and wakes the loop with uv_async_send; the loop thread drains the ring and then signals `drained_`
// so the waiter goes back to waiting (this keeps it from spinning whatever the event's reset mode).
#if defined(_WIN32)

#include <uv.h>
#include <windows.h>

#include <cstring>
#include <thread>

#include "common.h"

namespace trellis {
namespace {

struct WintunAdapter;  // opaque WINTUN_ADAPTER_HANDLE
struct WintunSession;  // opaque WINTUN_SESSION_HANDLE

struct WintunApi {
  WintunAdapter*(WINAPI* CreateAdapter)(LPCWSTR, LPCWSTR, const GUID*) = nullptr;
  void(WINAPI* CloseAdapter)(WintunAdapter*) = nullptr;
  WintunSession*(WINAPI* StartSession)(WintunAdapter*, DWORD) = nullptr;
  void(WINAPI* EndSession)(WintunSession*) = nullptr;
  HANDLE(WINAPI* GetReadWaitEvent)(WintunSession*) = nullptr;
  BYTE*(WINAPI* ReceivePacket)(WintunSession*, DWORD*) = nullptr;
  void(WINAPI* ReleaseReceivePacket)(WintunSession*, const BYTE*) = nullptr;
  BYTE*(WINAPI* AllocateSendPacket)(WintunSession*, DWORD) = nullptr;
  void(WINAPI* SendPacket)(WintunSession*, const BYTE*) = nullptr;
};

template <typename T>
bool Sym(HMODULE dll, const char* name, T* out) {
  *out = reinterpret_cast<T>(reinterpret_cast<void*>(GetProcAddress(dll, name)));
  return *out != nullptr;
}

const WintunApi* LoadWintun(int* err) {
  static WintunApi api;
  static bool loaded = false;
  if (loaded) return &api;
  HMODULE dll = nullptr;
  HMODULE self = nullptr;
  wchar_t path[MAX_PATH];
  if (GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                         reinterpret_cast<LPCWSTR>(&LoadWintun), &self)) {
    DWORD n = GetModuleFileNameW(self, path, MAX_PATH);
    std::wstring p(path, n < MAX_PATH ? n : 0);
    size_t slash = p.find_last_of(L"\\/");
    if (slash != std::wstring::npos) {
      p.resize(slash + 1);
      p += L"wintun.dll";
      dll = LoadLibraryExW(p.c_str(), nullptr, LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32);
    }
  }
  if (dll == nullptr) {
    dll = LoadLibraryExW(L"wintun.dll", nullptr, LOAD_LIBRARY_SEARCH_APPLICATION_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32);
  }
  if (dll == nullptr) {
    *err = LastSysError();
    return nullptr;
  }
  if (!Sym(dll, "WintunCreateAdapter", &api.CreateAdapter) || !Sym(dll, "WintunCloseAdapter", &api.CloseAdapter) ||
      !Sym(dll, "WintunStartSession", &api.StartSession) || !Sym(dll, "WintunEndSession", &api.EndSession) ||
      !Sym(dll, "WintunGetReadWaitEvent", &api.GetReadWaitEvent) ||
      !Sym(dll, "WintunReceivePacket", &api.ReceivePacket) ||
      !Sym(dll, "WintunReleaseReceivePacket", &api.ReleaseReceivePacket) ||
      !Sym(dll, "WintunAllocateSendPacket", &api.AllocateSendPacket) ||
      !Sym(dll, "WintunSendPacket", &api.SendPacket)) {
    FreeLibrary(dll);
    *err = UV_ENOSYS;
    return nullptr;
  }
  loaded = true;  // the DLL stays loaded for the life of the process
  return &api;
}

std::wstring Widen(const std::string& s) {
  if (s.empty()) return std::wstring();
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  std::wstring w(static_cast<size_t>(n > 0 ? n : 0), L'\0');
  if (n > 0) MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), &w[0], n);
  return w;
}

class WindowsTun final : public TunBackend {
 public:
  ~WindowsTun() override { Close(); }

  int Open(const std::string& requested, std::string* syscall) {
    int err = 0;
    *syscall = "LoadLibraryExW(wintun.dll)";
    wt_ = LoadWintun(&err);
    if (wt_ == nullptr) return err;
    name_ = requested.empty() ? std::string("Trellis") : requested;
    std::wstring wname = Widen(name_);
    *syscall = "WintunCreateAdapter";
    if (wname.size() >= 128) return UV_ENAMETOOLONG;
    adapter_ = wt_->CreateAdapter(wname.c_str(), L"Trellis", nullptr);
    if (adapter_ == nullptr) return LastSysError();
    *syscall = "WintunStartSession";
    session_ = wt_->StartSession(adapter_, 0x400000);
    if (session_ == nullptr) return LastSysError();
    read_event_ = wt_->GetReadWaitEvent(session_);
    return 0;
  }

  int Read(uint8_t* dst, size_t cap) override {
    for (;;) {
      DWORD size = 0;
      BYTE* p = wt_->ReceivePacket(session_, &size);
      if (p == nullptr) {
        DWORD e = GetLastError();
        if (e != ERROR_NO_MORE_ITEMS) return uv_translate_sys_error(static_cast<int>(e));
        if (drained_ != nullptr) SetEvent(drained_);
        return 0;
      }
      size_t n = size < cap ? size : cap;
      std::memcpy(dst, p, n);
      wt_->ReleaseReceivePacket(session_, p);
      if (n > 0) return static_cast<int>(n);
    }
  }

  int Write(const uint8_t* pkt, size_t len) override {
    if (len == 0 || len > 0xFFFF) return UV_EMSGSIZE;
    BYTE* p = wt_->AllocateSendPacket(session_, static_cast<DWORD>(len));
    if (p == nullptr) {
      DWORD e = GetLastError();
      return e == ERROR_BUFFER_OVERFLOW ? UV_ENOBUFS : uv_translate_sys_error(static_cast<int>(e));
    }
    std::memcpy(p, pkt, len);
    wt_->SendPacket(session_, p);
    return 0;
  }

  int StartWatch(uv_loop_t* loop, ReadyFn fn, void* arg) override {
    fn_ = fn;
    arg_ = arg;
    if (async_ == nullptr) {
      async_ = new uv_async_t;
      int r = uv_async_init(loop, async_, &WindowsTun::OnAsync);
      if (r != 0) {
        delete async_;
        async_ = nullptr;
        return r;
      }
      async_->data = this;
      quit_ = CreateEventW(nullptr, TRUE, FALSE, nullptr);
      drained_ = CreateEventW(nullptr, FALSE, FALSE, nullptr);
      waiter_ = std::thread([this] { WaitLoop(); });
    }
    watching_ = true;
    uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    uv_async_send(async_);  // drain whatever queued up while nobody was reading
    return 0;
  }

  void StopWatch() override {
    watching_ = false;
    if (async_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  }

  void Yielded() override {
    if (async_ != nullptr) uv_async_send(async_);
  }

  void Close() override {
    watching_ = false;
    if (waiter_.joinable()) {
      SetEvent(quit_);
      waiter_.join();
    }
    if (async_ != nullptr) {
      async_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(async_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
      async_ = nullptr;
    }
    if (quit_ != nullptr) CloseHandle(quit_);
    if (drained_ != nullptr) CloseHandle(drained_);
    quit_ = drained_ = nullptr;
    if (session_ != nullptr) wt_->EndSession(session_);
    if (adapter_ != nullptr) wt_->CloseAdapter(adapter_);
    session_ = nullptr;
    adapter_ = nullptr;
  }

 private:
  static void OnAsync(uv_async_t* h) {
    auto* self = static_cast<WindowsTun*>(h->data);
    if (self != nullptr && self->watching_) self->fn_(self->arg_, 0);
  }

  void WaitLoop() {
    for (;;) {
      HANDLE ready[2] = {quit_, read_event_};
      if (WaitForMultipleObjects(2, ready, FALSE, INFINITE) != WAIT_OBJECT_0 + 1) return;
      uv_async_send(async_);
      HANDLE done[2] = {quit_, drained_};
      if (WaitForMultipleObjects(2, done, FALSE, INFINITE) != WAIT_OBJECT_0 + 1) return;
    }
  }

  const WintunApi* wt_ = nullptr;
  WintunAdapter* adapter_ = nullptr;
  WintunSession* session_ = nullptr;
  HANDLE read_event_ = nullptr;
  HANDLE quit_ = nullptr;
  HANDLE drained_ = nullptr;
  uv_async_t* async_ = nullptr;
  std::thread waiter_;
  bool watching_ = false;
  ReadyFn fn_ = nullptr;
  void* arg_ = nullptr;
};

}  // namespace

std::unique_ptr<TunBackend> OpenTun(const std::string& name, bool /*want_vnet_hdr*/, int* uv_err, std::string* syscall) {
  auto tun = std::make_unique<WindowsTun>();
  int r = tun->Open(name, syscall);
  if (r != 0) {
    *uv_err = r;
    return nullptr;
  }
  return tun;
}

}  // namespace trellis

#endif  // _WIN32
