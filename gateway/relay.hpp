// Internal: the byte relay between a device's TLS stream and the egress stream.
//
// Two pumps (device→destination, destination→device) run as separate coroutines on the
// session's executor; the relay waits for both with a timer used as an event (STYLE P4) and
// doubles as the idle watchdog: no byte in either direction for `idle` closes both sides.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <type_traits>
#include <vector>

#include "gateway/net.hpp"
#include "gateway/tls_socket.hpp"

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
inline tcp::socket& lowest_layer(tls_socket& s) {
  return s.next_layer();
}
template <class S>
tcp::socket& lowest_layer(ssl::stream<S>& s) {
  return s.next_layer();
}

/// Passes a half-close on: FIN towards a TCP destination, close_notify towards the device (the
/// device may go on sending; OpenSSL reads after our close_notify). Asio's TLS stream (an https
/// upstream proxy) cannot half-close while the other direction still reads, so it ends the
/// relay instead (false).
inline awaitable<bool> half_close(tcp::socket& s) {
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_send, ec);
  co_return !ec;
}
inline awaitable<bool> half_close(tls_socket& s) {
  boost::system::error_code ec;
  co_await s.shutdown_send(ec);
  co_return !ec;
}
template <class S>
awaitable<bool> half_close(ssl::stream<S>&) {
  co_return false;
}

// ---- the two kinds of source: readiness (wait, then read without blocking) or not -------------

/// Streams whose pump waits for readiness before it takes a buffer: an idle tunnel holds none.
template <class S>
constexpr bool waits_for_readiness =
    std::is_same_v<S, tcp::socket> || std::is_same_v<S, tls_socket>;

inline awaitable<void> wait_readable(tls_socket& s, boost::system::error_code& ec) {
  co_await s.wait_readable(ec);
}
inline awaitable<void> wait_readable(tcp::socket& s, boost::system::error_code& ec) {
  co_await s.async_wait(tcp::socket::wait_read, net::redirect_error(use_awaitable, ec));
}
inline std::size_t try_read(tls_socket& s, net::mutable_buffer b, boost::system::error_code& ec) {
  return s.try_read(b, ec);
}
/// The socket is non-blocking (set by the pump): would_block when nothing is there.
inline std::size_t try_read(tcp::socket& s, net::mutable_buffer b, boost::system::error_code& ec) {
  return s.read_some(b, ec);
}

inline awaitable<std::size_t> write_all(tls_socket& s, net::const_buffer b,
                                        boost::system::error_code& ec) {
  co_return co_await s.write_all(b, ec);
}
template <class S>
awaitable<std::size_t> write_all(S& s, net::const_buffer b, boost::system::error_code& ec) {
  co_return co_await net::async_write(s, b, net::redirect_error(use_awaitable, ec));
}

/// Relay buffers: taken when bytes arrive, given back when the source has nothing more, kept
/// per thread for the next burst (a few, so a busy thread does not go to malloc every time).
constexpr std::size_t relay_buffer_size = std::size_t{64} * 1024;
class relay_buffer {
 public:
  relay_buffer() = default;
  relay_buffer(const relay_buffer&) = delete;
  relay_buffer& operator=(const relay_buffer&) = delete;
  ~relay_buffer() { release(); }
  char* get() {
    if (!p_) {
      auto& pool = spare();
      if (pool.empty()) {
        p_ = std::make_unique<char[]>(relay_buffer_size);
      } else {
        p_ = std::move(pool.back());
        pool.pop_back();
      }
    }
    return p_.get();
  }
  void release() {
    if (!p_) return;
    auto& pool = spare();
    if (pool.size() < 4) pool.push_back(std::move(p_));
    p_.reset();
  }

 private:
  static std::vector<std::unique_ptr<char[]>>& spare() {
    thread_local std::vector<std::unique_ptr<char[]>> pool;
    return pool;
  }
  std::unique_ptr<char[]> p_;
};

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
  bool destination_first = false;  ///< the destination finished sending before the device
  bool failed = false;
};

/// One direction. A readiness source: wait (no buffer), then read and write while bytes keep
/// coming (up to relay_buffer_size gathered from several TLS records per write), then give the
/// buffer back. Other sources (a TLS upstream proxy) keep a 16 KiB buffer.
template <class From, class To>
awaitable<void> pump(From* from, To* to, beast::flat_buffer* leftover,
                     std::atomic<std::uint64_t>* counter, relay_state* st, bool from_device) {
  boost::system::error_code ec;
  if (leftover != nullptr && leftover->size() > 0) {
    const auto n = co_await write_all(*to, leftover->data(), ec);
    *counter += n;
    leftover->consume(leftover->size());
  }
  if (leftover != nullptr) leftover->shrink_to_fit();  // the request head's buffer is done
  if constexpr (waits_for_readiness<From>) {
    lowest_layer(*from).non_blocking(true, ec);
    relay_buffer buf;
    while (!ec && !st->end_all && !st->killed) {
      co_await wait_readable(*from, ec);
      if (ec || st->killed) break;
      for (;;) {
        char* p = buf.get();
        std::size_t filled = 0;
        while (filled < relay_buffer_size) {
          const auto n = try_read(*from, net::buffer(p + filled, relay_buffer_size - filled), ec);
          if (ec) break;
          filled += n;
        }
        if (ec == net::error::would_block) ec = {};
        if (filled == 0 || st->killed) break;
        st->last_activity = std::chrono::steady_clock::now();
        boost::system::error_code wec;
        const auto n = co_await write_all(*to, net::const_buffer(p, filled), wec);
        *counter += n;
        if (wec) {
          ec = wec;
          break;
        }
        st->last_activity = std::chrono::steady_clock::now();
        if (ec) break;  // the read that ended the gathering failed (EOF, reset): after the write
      }
      buf.release();
    }
  } else {
    std::array<char, std::size_t{16} * 1024> buf{};
    while (!ec && !st->end_all && !st->killed) {
      const auto n =
          co_await from->async_read_some(net::buffer(buf), net::redirect_error(use_awaitable, ec));
      if (ec || st->killed) break;
      st->last_activity = std::chrono::steady_clock::now();
      (void)co_await write_all(*to, net::const_buffer(buf.data(), n), ec);
      if (ec) break;
      *counter += n;
      st->last_activity = std::chrono::steady_clock::now();
    }
  }
  const bool eof = ec == net::error::eof || ec == ssl::error::stream_truncated;
  if (st->killed) {
    st->end_all = true;
  } else if (eof && !st->end_all) {
    (from_device ? st->device_eof : st->destination_eof) = true;
    if (!from_device && !st->device_eof) st->destination_first = true;
    // Pass the half-close on and keep the other direction running.
    const bool passed = co_await half_close(*to);
    if (!passed) st->end_all = true;
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
  } else if (st.destination_first) {
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
