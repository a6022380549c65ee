// Sockets that carry the routing bypass mark (SO_MARK, Linux): while an exit node takes the default route, the
// engine's own connections (control, DERP) must still leave by the physical network, and the policy rules send
// marked traffic to the main table. Node cannot set SO_MARK, so the addon creates the TCP socket, marks it and
// hands over its descriptor; JavaScript wraps it in a net.Socket and connects it there.
#include "common.h"

#ifdef __linux__
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace trellis {
namespace {

// markedTcpSocket(family: 4 | 6, mark: number): number — a non-blocking, close-on-exec, unconnected TCP socket.
Napi::Value MarkedTcpSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    ArgError(env, "markedTcpSocket(family, mark) needs two numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int family = info[0].As<Napi::Number>().Int32Value();
  uint32_t mark = info[1].As<Napi::Number>().Uint32Value();
  if (family != 4 && family != 6) {
    ArgError(env, "markedTcpSocket: family must be 4 or 6").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    SysError(env, -errno, "socket", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    int err = errno;
    close(fd);
    SysError(env, -err, "setsockopt(SO_MARK)", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitSockMark(Napi::Env env, Napi::Object exports) {
  exports.Set("markedTcpSocket", Napi::Function::New(env, MarkedTcpSocket, "markedTcpSocket"));
}

}  // namespace trellis

#else

namespace trellis {
void InitSockMark(Napi::Env, Napi::Object) {}
}  // namespace trellis

#endif
