// Internal: the byte relay between a device's TLS stream and the egress stream.
//
// Two pumps (device→destination, destination→device) run as separate coroutines on the
// session's executor; the relay waits for both with a timer used as an event (STYLE P4) and
// doubles as the idle watchdog: no byte in either direction for `idle` closes both sides.
#pragma once

#include <array>
#include <atomic>
#include <chrono>

#include "gateway/net.hpp"

namespace tunnelgate::gateway {

struct relay_counters {
  std::atomic<std::uint64_t> up{0};    ///< device → destination
  std::atomic<std::uint64_t> down{0};  ///< destination → device
};

enum class relay_end {
  device_closed,       ///< the device finished (EOF), the destination then finished too
  destination_closed,  ///< the destination closed first
  idle_timeout,
  error,   ///< a read or write failed (reset, TLS error)
  killed,  ///< closed from outside (revocation, admin, shutdown)
};
std::string_view to_string(relay_end e) noexcept;

namespace detail {

inline tcp::socket& lowest_layer(tcp::socket& s) {
  return s;
}
template <class S>
tcp::socket& lowest_layer(ssl::stream<S>& s) {
  return s.next_layer();
}

/// Half-close towards a plain TCP destination; TLS streams cannot half-close while the other
/// direction still reads, so they end the relay instead (returns false).
inline bool half_close(tcp::socket& s) {
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_send, ec);
  return !ec;
}
template <class S>
bool half_close(ssl::stream<S>&) {
  return false;
}

struct relay_state {
  relay_state(const net::any_io_executor& ex, const bool& k) : event(ex), killed(k) {}
  net::steady_timer event;
  /// Checked by the pumps after every completion: a kill whose cancel() found no operation
  /// pending (its completion already queued) must still stop them at once.
  const bool& killed;
  int running = 2;
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
  bool end_all = false;  ///< a pump asked to stop both directions
  bool device_eof = false;
  bool destination_eof = false;
  bool failed = false;
};

template <class From, class To>
awaitable<void> pump(From* from, To* to, beast::flat_buffer* leftover,
                     std::atomic<std::uint64_t>* counter, relay_state* st, bool from_device) {
  std::array<char, std::size_t{16} * 1024> buf{};
  boost::system::error_code ec;
  if (leftover != nullptr && leftover->size() > 0) {
    const auto n =
        co_await net::async_write(*to, leftover->data(), net::redirect_error(use_awaitable, ec));
    *counter += n;
    leftover->consume(leftover->size());
  }
  while (!ec && !st->end_all && !st->killed) {
    const auto n =
        co_await from->async_read_some(net::buffer(buf), net::redirect_error(use_awaitable, ec));
    if (ec || st->killed) break;
    st->last_activity = std::chrono::steady_clock::now();
    co_await net::async_write(*to, net::buffer(buf.data(), n),
                              net::redirect_error(use_awaitable, ec));
    if (ec) break;
    *counter += n;
    st->last_activity = std::chrono::steady_clock::now();
  }
  const bool eof = ec == net::error::eof || ec == ssl::error::stream_truncated;
  if (st->killed) {
    st->end_all = true;
  } else if (eof && !st->end_all) {
    (from_device ? st->device_eof : st->destination_eof) = true;
    // Device EOF: pass the half-close on and keep the other direction running.
    if (!(from_device && half_close(*to))) st->end_all = true;
  } else if (!st->end_all) {
    st->failed = true;
    st->end_all = true;
  }
  if (st->end_all) {
    boost::system::error_code ignored;
    lowest_layer(*from).cancel(ignored);
    lowest_layer(*to).cancel(ignored);
  }
}

}  // namespace detail

/// Relays until both directions end, the idle timeout passes, or `killed` becomes true (set
/// it, then cancel or close the sockets, from the session's executor; the pumps also check it
/// after every completion). Leftover buffers hold bytes
/// already read past a protocol head on either side. Does not close the streams: the caller
/// owns the orderly TLS shutdown.
template <class Device, class Destination>
awaitable<relay_end> relay(Device& device, Destination& destination,
                           beast::flat_buffer& device_leftover,
                           beast::flat_buffer& destination_leftover, relay_counters& counters,
                           std::chrono::milliseconds idle, const bool& killed) {
  auto ex = co_await net::this_coro::executor;
  detail::relay_state st(ex, killed);
  auto done = [&st](const std::exception_ptr&) {
    if (--st.running == 0) st.event.cancel();
  };
  net::co_spawn(ex, detail::pump(&device, &destination, &device_leftover, &counters.up, &st, true),
                done);
  net::co_spawn(
      ex, detail::pump(&destination, &device, &destination_leftover, &counters.down, &st, false),
      done);

  relay_end end = relay_end::device_closed;
  bool timed_out = false;
  while (st.running > 0) {
    st.event.expires_at(st.last_activity + idle);
    boost::system::error_code ec;
    co_await st.event.async_wait(net::redirect_error(use_awaitable, ec));
    if (st.running == 0) break;
    const bool idle_now = std::chrono::steady_clock::now() - st.last_activity >= idle;
    if ((idle_now || killed) && !st.end_all) {
      timed_out = idle_now && !killed;
      st.end_all = true;
      boost::system::error_code ignored;
      detail::lowest_layer(device).cancel(ignored);
      detail::lowest_layer(destination).cancel(ignored);
    }
  }
  if (killed) {
    end = relay_end::killed;
  } else if (timed_out) {
    end = relay_end::idle_timeout;
  } else if (st.failed) {
    end = relay_end::error;
  } else if (st.destination_eof && !st.device_eof) {
    end = relay_end::destination_closed;
  }
  co_return end;
}

inline std::string_view to_string(relay_end e) noexcept {
  switch (e) {
    case relay_end::device_closed:
      return "device-closed";
    case relay_end::destination_closed:
      return "destination-closed";
    case relay_end::idle_timeout:
      return "idle-timeout";
    case relay_end::error:
      return "error";
    case relay_end::killed:
      return "killed";
  }
  return "?";
}

}  // namespace tunnelgate::gateway
