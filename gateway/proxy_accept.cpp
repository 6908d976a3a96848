// GCC 12 and coroutines (as session.cpp): no capturing coroutine lambdas, one co_await per
// statement, and no object with a destructor alive across a co_await in a block that ends in
// co_return (the header is read in its own coroutine for that reason).
#include "gateway/proxy_accept.hpp"

#include <array>

#include "gateway/proxy_protocol.hpp"
#include "gateway/state.hpp"
#include "gateway/watchdog.hpp"

namespace tunnelgate::gateway {

namespace {

struct header_read {
  proxy_header header;
  std::size_t bytes = 0;  ///< read so far (the header, or the bad bytes)
  bool timed_out = false;
};

/// Reads the header and not one byte more: at most what the parser says it still needs.
awaitable<header_read> read_header(tcp::socket& sock, std::chrono::milliseconds timeout,
                                   handshake_counter& handshakes) {
  header_read r;
  const auto ex = co_await net::this_coro::executor;
  {
    // The thread's handshake slot is held while the header is read, given back however this
    // ends (the coroutine destroyed at shutdown included).
    struct slot {
      handshake_counter& n;
      explicit slot(handshake_counter& c) : n(c) { ++n; }
      ~slot() { --n; }
      slot(const slot&) = delete;
      slot& operator=(const slot&) = delete;
    } held(handshakes);
    std::array<std::uint8_t, proxy_v2_max_header> buf{};
    watchdog deadline(ex, timeout, [&sock] {
      boost::system::error_code ignored;
      sock.cancel(ignored);  // not close: a reset still has to be sent
    });
    for (;;) {
      r.header = parse_proxy_v2(std::span<const std::uint8_t>(buf.data(), r.bytes));
      if (r.header.state != proxy_header::status::need_more) break;
      boost::system::error_code ec;
      const auto want = net::buffer(buf.data() + r.bytes, r.header.needed - r.bytes);
      const std::size_t n =
          co_await sock.async_read_some(want, net::redirect_error(use_awaitable, ec));
      if (ec) break;
      r.bytes += n;
    }
    r.timed_out = deadline.fired();
  }
  co_return r;
}

/// Resets the connection, counts the refusal, and logs it when the throttle allows.
void refuse(shared_state& st, tcp::socket& s, const tcp::endpoint& peer,
            const tcp::endpoint& sender, const accept_control::decision& d,
            std::string_view why = {}) {
  boost::system::error_code ec;
  s.set_option(net::socket_base::linger(true, 0), ec);  // RST, as refuse_at_accept
  s.close(ec);
  const auto reason = std::string(to_string(d.refusal));
  st.stats.accept_refusals.inc({reason});
  if (!d.log) return;
  const bool per_device = d.refusal == accept_refusal::source_pending_limit ||
                          d.refusal == accept_refusal::source_rate_limit;
  std::string detail(why);
  if (!detail.empty()) detail += "; ";
  detail += remedy(d.refusal);
  st.log->event(spdlog::level::warn, "accept_refused",
                {{"peer", endpoint_text(peer)},
                 {"source", per_device ? to_string(source_of(peer.address())) : std::string()},
                 {"sender", endpoint_text(sender)},
                 {"reason", reason},
                 {"unlogged_since_last", d.quiet},
                 {"detail", detail}});
}

}  // namespace

bool proxy_sender_allowed(const proxy_protocol_config& pp, const net::ip::address& peer) {
  net::ip::address a = peer;
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  for (const auto& c : pp.senders) {
    if (c.contains(a)) return true;
  }
  return false;
}

awaitable<void> run_proxied_connection(std::shared_ptr<shared_state> st, tcp::socket sock,
                                       tcp::endpoint sender,
                                       std::shared_ptr<const proxy_protocol_config> pp,
                                       std::shared_ptr<handshake_counter> handshakes) {
  const auto rt = st->current();
  const auto limits = accept_limits_of(rt->cfg->limits);
  const auto now = accept_control::clock::now();
  if (!proxy_sender_allowed(*pp, sender.address())) {
    refuse(*st, sock, sender, sender,
           st->accept->refuse(sender.address(), accept_refusal::proxy_sender_not_allowed, now));
    co_return;
  }
  // A header in progress holds one of the thread's handshake slots, so a sender that opens
  // connections and writes nothing is bounded like a device that never finishes its TLS.
  if (handshakes->load() >= limits.max_handshakes_per_thread) {
    refuse(*st, sock, sender, sender,
           st->accept->refuse(sender.address(), accept_refusal::handshakes_busy, now));
    co_return;
  }
  const header_read r = co_await read_header(sock, rt->cfg->limits.first_byte_timeout, *handshakes);
  const auto after = accept_control::clock::now();
  if (!r.header.ok()) {
    const auto why =
        r.timed_out ? accept_refusal::proxy_header_timeout : accept_refusal::proxy_header_invalid;
    std::string detail;
    if (r.header.refused()) {
      detail = std::string(to_string(r.header.refusal)) + ": " + std::string(r.header.detail);
    } else if (!r.timed_out) {
      detail = "the sender closed the connection after " + std::to_string(r.bytes) +
               " byte(s), before a complete header";
    }
    refuse(*st, sock, sender, sender, st->accept->refuse(sender.address(), why, after), detail);
    co_return;
  }
  if (r.header.cmd == proxy_header::command::local) {
    // The balancer's own health check: nothing to serve, nothing refused.
    st->stats.proxy_headers.inc({"local"});
    boost::system::error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
    co_return;
  }
  st->stats.proxy_headers.inc({"proxy"});
  const tcp::endpoint device = r.header.source.value_or(sender);
  auto d = st->accept->admit(device.address(), limits, handshakes, after);
  if (d.refusal != accept_refusal::none) {
    refuse(*st, sock, device, sender, d);
    co_return;
  }
  // Spawned rather than awaited: no temporaries in a co_await expression (GCC 12), and this
  // coroutine's frame need not outlive the header.
  const auto ex = co_await net::this_coro::executor;
  net::co_spawn(ex, run_connection(st, std::move(sock), std::move(d.ticket), device),
                [st](const std::exception_ptr& e) {
                  if (!e) return;
                  try {
                    std::rethrow_exception(e);
                  } catch (const std::exception& x) {
                    st->log->event(spdlog::level::err, "internal_error",
                                   {{"where", "session"}, {"error", x.what()}});
                  }
                });
}

}  // namespace tunnelgate::gateway
