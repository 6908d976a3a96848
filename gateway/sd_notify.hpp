// Internal: systemd's notification protocol (sd_notify(3)), written out: one datagram to the
// AF_UNIX socket named by $NOTIFY_SOCKET. Without that variable (not under systemd, or not
// Type=notify) every call does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tunnelgate::gateway {

class sd_notifier {
 public:
  /// Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (with $WATCHDOG_PID, when set, naming us).
  sd_notifier();
  sd_notifier(const sd_notifier&) = delete;
  sd_notifier& operator=(const sd_notifier&) = delete;
  ~sd_notifier();

  bool enabled() const noexcept { return fd_ >= 0; }
  /// Sends `state` ("READY=1", "STATUS=...", newline-separated assignments). False when it
  /// could not be sent (the reason is in last_error()); nothing to do is true.
  bool notify(std::string_view state);
  /// READY=1 with a STATUS line.
  bool ready(std::string_view status) { return notify("READY=1\nSTATUS=" + std::string(status)); }
  /// RELOADING=1 with MONOTONIC_USEC (systemd 253 wants it; older ones ignore it).
  bool reloading();
  bool stopping() { return notify("STOPPING=1"); }
  bool watchdog() { return notify("WATCHDOG=1"); }
  /// How often to send WATCHDOG=1 (half of WATCHDOG_USEC), when the unit has WatchdogSec=.
  std::optional<std::chrono::microseconds> watchdog_interval() const noexcept { return watchdog_; }
  const std::string& last_error() const noexcept { return error_; }

 private:
  int fd_ = -1;
  std::string path_;  ///< the socket's address; a leading '@' is the abstract namespace
  std::optional<std::chrono::microseconds> watchdog_;
  std::string error_;
};

}  // namespace tunnelgate::gateway
