// The TUN device: /dev/net/tun and TUNSETIFF; the owned descriptor.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "gateway/netops/detail.hpp"

namespace tunnelgate::netops {

tun_fd::tun_fd(int fd, std::string name, int ifindex) noexcept
    : fd_(fd), name_(std::move(name)), ifindex_(ifindex) {}

tun_fd::~tun_fd() {
  if (fd_ >= 0) ::close(fd_);
}

tun_fd::tun_fd(tun_fd&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), name_(std::move(other.name_)), ifindex_(other.ifindex_) {}

tun_fd& tun_fd::operator=(tun_fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    name_ = std::move(other.name_);
    ifindex_ = other.ifindex_;
  }
  return *this;
}

int tun_fd::release() noexcept {
  return std::exchange(fd_, -1);
}

namespace detail {

tun_fd open_tun(const std::string& name) {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    std::string hint;
    if (e == ENOENT || e == ENODEV || e == ENXIO)
      hint = " (the tun driver is missing: `modprobe tun`, or give the container /dev/net/tun)";
    else if (e == EACCES || e == EPERM)
      hint = " (CAP_NET_ADMIN missing or the device node is not accessible)";
    throw std::system_error(e, std::generic_category(), "netops: opening /dev/net/tun" + hint);
  }
  ifreq ifr{};
  // IFF_NO_PI: packets without the 4-byte protocol header. IFF_TUN_EXCL: fail instead of
  // attaching to an existing (persistent) device of that name, so the device is always ours.
  // ifr_flags is a short and IFF_TUN_EXCL is its top bit: C++20 converts modulo 2^16.
  ifr.ifr_flags =
      static_cast<short>(static_cast<unsigned short>(IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL));
  std::memcpy(ifr.ifr_name, name.data(), name.size());  // valid_ifname: shorter than IFNAMSIZ
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    const int e = errno;
    ::close(fd);
    std::string hint;
    if (e == EBUSY || e == EEXIST)
      hint =
          " (an interface of that name exists and is in use: stop the other tunnelgate or "
          "pick another vpn.tun name)";
    else if (e == EPERM || e == EACCES)
      hint = " (CAP_NET_ADMIN missing: run as root or grant the capability)";
    throw std::system_error(e, std::generic_category(),
                            "netops: creating TUN device " + name + " (TUNSETIFF)" + hint);
  }
  return tun_fd(fd, name, 0);
}

}  // namespace detail
}  // namespace tunnelgate::netops
