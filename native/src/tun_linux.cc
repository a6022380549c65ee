// Linux TUN backend: /dev/net/tun with IFF_TUN | IFF_NO_PI (and IFF_VNET_HDR on request), non-blocking, one
// packet per read()/write(). With the vnet header the engine may write GRO-coalesced TCP super-packets, and reads
// (readv: header apart from the packet) may be TSO super-packets for tun_offload.cc to split.
#if defined(__linux__)

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace trellis {
namespace {

class LinuxTun final : public FdTunBackend {
 public:
  int Open(const std::string& requested, bool want_vnet_hdr, std::string* syscall) {
    if (requested.size() >= IFNAMSIZ) {
      *syscall = "TUNSETIFF";
      return UV_ENAMETOOLONG;
    }
    if (requested.find('/') != std::string::npos || requested == "." || requested == "..") {
      *syscall = "TUNSETIFF";
      return UV_EINVAL;
    }
    fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
      *syscall = "open /dev/net/tun";
      return -errno;
    }
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (want_vnet_hdr ? IFF_VNET_HDR : 0);
    std::memcpy(ifr.ifr_name, requested.data(), requested.size());
    if (::ioctl(fd_, TUNSETIFF, &ifr) < 0) {
      *syscall = "ioctl(TUNSETIFF)";
      return -errno;
    }
    ifr.ifr_name[IFNAMSIZ - 1] = '\0';
    name_ = ifr.ifr_name;
    if (want_vnet_hdr) {
      int size = 10;  // struct virtio_net_hdr, without the num_buffers field
      if (::ioctl(fd_, TUNSETVNETHDRSZ, &size) < 0) {
        *syscall = "ioctl(TUNSETVNETHDRSZ)";
        return -errno;
      }
      vnet_hdr_ = true;
    }
    return 0;
  }

  bool EnableTso() override {
    if (!vnet_hdr_) return false;
    // No TUN_F_TSO_ECN and no USO: the kernel segments those itself, so only plain TCP arrives coalesced.
    unsigned int flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    tso_ = ::ioctl(fd_, TUNSETOFFLOAD, flags) == 0;
    return tso_;
  }

  int Read(uint8_t* dst, size_t cap) override {
    for (;;) {
      ssize_t n = ::read(fd_, dst, cap);
      if (n >= 0) return static_cast<int>(n);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -errno;
    }
  }

  int ReadVnet(uint8_t* hdr, uint8_t* dst, size_t cap) override {
    struct iovec iov[2] = {{hdr, 10}, {dst, cap}};
    for (;;) {
      ssize_t n = ::readv(fd_, iov, 2);
      if (n >= 0) return static_cast<int>(n);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -errno;
    }
  }

  int Write(const uint8_t* pkt, size_t len) override {
    for (;;) {
      ssize_t n = ::write(fd_, pkt, len);
      if (n >= 0) return 0;
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return UV_EAGAIN;
      return -errno;
    }
  }
};

}  // namespace

std::unique_ptr<TunBackend> OpenTun(const std::string& name, bool want_vnet_hdr, int* uv_err, std::string* syscall) {
  auto tun = std::make_unique<LinuxTun>();
  int r = tun->Open(name, want_vnet_hdr, syscall);
  if (r != 0) {
    *uv_err = r;
    return nullptr;  // the destructor closes the fd
  }
  return tun;
}

}  // namespace trellis

#endif  // __linux__
