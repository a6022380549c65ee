// macOS TUN backend: a utun kernel-control socket. Every packet on it carries a 4-byte address-family header
// (network order), stripped on read and added on write.
#if defined(__APPLE__)

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_utun.h>
#include <sys/ioctl.h>
#include <sys/kern_control.h>
#include <sys/socket.h>
#include <sys/sys_domain.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace trellis {
namespace {

class DarwinTun final : public FdTunBackend {
 public:
  int Open(const std::string& requested, std::string* syscall) {
    *syscall = "connect(utun)";
    uint32_t unit = 0;  // 0: the kernel picks the first free utunN
    if (!requested.empty()) {
      if (requested.size() >= IFNAMSIZ) return UV_ENAMETOOLONG;
      if (requested.size() < 5 || requested.size() > 9 || requested.compare(0, 4, "utun") != 0) return UV_EINVAL;
      uint32_t n = 0;
      for (size_t i = 4; i < requested.size(); i++) {
        char c = requested[i];
        if (c < '0' || c > '9') return UV_EINVAL;
        n = n * 10 + static_cast<uint32_t>(c - '0');
      }
      unit = n + 1;  // sc_unit is the utun number plus one
    }
    fd_ = ::socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL);
    if (fd_ < 0) {
      *syscall = "socket(PF_SYSTEM)";
      return -errno;
    }
    struct ctl_info info;
    std::memset(&info, 0, sizeof info);
    std::strncpy(info.ctl_name, UTUN_CONTROL_NAME, sizeof info.ctl_name - 1);
    if (::ioctl(fd_, CTLIOCGINFO, &info) < 0) {
      *syscall = "ioctl(CTLIOCGINFO)";
      return -errno;
    }
    struct sockaddr_ctl addr;
    std::memset(&addr, 0, sizeof addr);
    addr.sc_len = sizeof addr;
    addr.sc_family = AF_SYSTEM;
    addr.ss_sysaddr = AF_SYS_CONTROL;
    addr.sc_id = info.ctl_id;
    addr.sc_unit = unit;
    if (::connect(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0) return -errno;
    char ifname[IFNAMSIZ + 1];
    std::memset(ifname, 0, sizeof ifname);
    socklen_t len = IFNAMSIZ;
    if (::getsockopt(fd_, SYSPROTO_CONTROL, UTUN_OPT_IFNAME, ifname, &len) < 0) {
      *syscall = "getsockopt(UTUN_OPT_IFNAME)";
      return -errno;
    }
    name_ = ifname;
    int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) < 0 || ::fcntl(fd_, F_SETFD, FD_CLOEXEC) < 0) {
      *syscall = "fcntl";
      return -errno;
    }
    return 0;
  }

  int Read(uint8_t* dst, size_t cap) override {
    uint32_t family = 0;
    struct iovec iov[2] = {{&family, sizeof family}, {dst, cap}};
    for (;;) {
      ssize_t n = ::readv(fd_, iov, 2);
      if (n > 4) return static_cast<int>(n - 4);
      if (n == 0) return 0;
      if (n > 0) continue;  // header only: nothing to deliver
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -errno;
    }
  }

  int Write(const uint8_t* pkt, size_t len) override {
    if (len == 0) return UV_EINVAL;
    uint32_t family = htonl((pkt[0] >> 4) == 6 ? AF_INET6 : AF_INET);
    struct iovec iov[2] = {{&family, sizeof family}, {const_cast<uint8_t*>(pkt), len}};
    for (;;) {
      if (::writev(fd_, iov, 2) >= 0) return 0;
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return UV_EAGAIN;
      return -errno;
    }
  }
};

}  // namespace

std::unique_ptr<TunBackend> OpenTun(const std::string& name, bool /*want_vnet_hdr*/, int* uv_err, std::string* syscall) {
  auto tun = std::make_unique<DarwinTun>();
  int r = tun->Open(name, syscall);
  if (r != 0) {
    *uv_err = r;
    return nullptr;
  }
  return tun;
}

}  // namespace trellis

#endif  // __APPLE__
