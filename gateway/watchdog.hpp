// Internal: a deadline for the await in progress (STYLE P4: no per-op cancellation on 1.74).
#pragma once

#include <functional>
#include <memory>

#include "gateway/net.hpp"

namespace tunnelgate::gateway {

/// Calls `on_expiry` (typically: close the socket) if still armed when `timeout` elapses.
/// Destroying or disarming it guarantees `on_expiry` will not run afterwards, even if the timer
/// had already fired and its handler is queued. Single-threaded use on one executor.
class watchdog {
 public:
  template <class Executor, class Duration>
  watchdog(const Executor& ex, Duration timeout, std::function<void()> on_expiry)
      : state_(std::make_shared<state>(ex)) {
    state_->on_expiry = std::move(on_expiry);
    state_->timer.expires_after(timeout);
    state_->timer.async_wait([s = state_](const boost::system::error_code& ec) {
      if (ec || !s->armed) return;
      s->fired = true;
      s->armed = false;
      auto f = std::move(s->on_expiry);
      f();
    });
  }
  ~watchdog() { disarm(); }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  void disarm() {
    state_->armed = false;
    state_->on_expiry = nullptr;
    state_->timer.cancel();
  }
  bool fired() const noexcept { return state_->fired; }

 private:
  struct state {
    template <class Executor>
    explicit state(const Executor& ex) : timer(ex) {}
    net::steady_timer timer;
    std::function<void()> on_expiry;
    bool armed = true;
    bool fired = false;
  };
  std::shared_ptr<state> state_;
};

}  // namespace tunnelgate::gateway
