#include "gateway/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace tunnelgate::gateway {

namespace {

std::optional<unsigned long long> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  unsigned long long n = 0;
  const auto* end = v + std::strlen(v);
  const auto [p, ec] = std::from_chars(v, end, n);
  if (ec != std::errc() || p != end) return std::nullopt;
  return n;
}

}  // namespace

sd_notifier::sd_notifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket != nullptr && (socket[0] == '/' || socket[0] == '@') &&
      std::strlen(socket) < sizeof(sockaddr_un::sun_path)) {
    path_ = socket;
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) error_ = std::string("socket: ") + std::strerror(errno);
  }
  // WATCHDOG_PID, when present, must name this process (systemd's rule for forked helpers).
  const auto pid = env_number("WATCHDOG_PID");
  const auto usec = env_number("WATCHDOG_USEC");
  if (usec && *usec > 0 && (!pid || *pid == static_cast<unsigned long long>(::getpid())))
    watchdog_ = std::chrono::microseconds(*usec / 2);
}

sd_notifier::~sd_notifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool sd_notifier::notify(std::string_view state) {
  if (fd_ < 0) return path_.empty();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
  if (path_[0] == '@')
    addr.sun_path[0] = '\0';  // abstract: no terminating NUL counted
  else
    ++len;
  const auto n = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const sockaddr*>(&addr), len);
  if (n < 0 || static_cast<std::size_t>(n) != state.size()) {
    error_ = std::string("sendto ") + path_ + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool sd_notifier::reloading() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                    static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

}  // namespace tunnelgate::gateway
