// `baseline-server`: the same mTLS handshake with nothing of the gateway behind it: OpenSSL's
// own chain check, then a fixed 403 to each request. Run on the same core as the gateway would,
// it shows what share of the gateway's handshake cost is OpenSSL and what share is ours
// (certauth, compliance, DTR).
//   --tunnel-answers   answer CONNECT with 200 and each GET with the sink's 1 KiB answer, so
//                      `tunnels` and `resume` run against it (a gateway with no work in it);
//   --session-tickets  send session tickets (TLS 1.3) / accept resumption, for `resume`.
#include <array>
#include <iostream>

#include "bench.hpp"

namespace bench {

namespace {

struct baseline_config {
  bool tunnel_answers = false;
};

net::awaitable<void> baseline_session(tls_stream s, baseline_config cfg) {
  std::string buf;
  error_code ec;
  std::array<char, 256> scratch{};
  const std::string forbidden = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
  const std::string established = "HTTP/1.1 200 Connection Established\r\n\r\n";
  const std::string body(answer_body_size, 'x');
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(answer_body_size) +
                         "\r\nConnection: keep-alive\r\n\r\n" + body;
  co_await s.async_handshake(ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
  while (!ec) {
    const std::size_t n = co_await net::async_read_until(
        s, net::dynamic_buffer(buf), "\r\n\r\n", net::redirect_error(net::use_awaitable, ec));
    if (ec) break;
    const bool is_connect = buf.rfind("CONNECT ", 0) == 0;
    const bool is_get = buf.rfind("GET ", 0) == 0;
    buf.erase(0, n);
    if (!cfg.tunnel_answers || (!is_connect && !is_get)) {
      co_await net::async_write(s, net::buffer(forbidden),
                                net::redirect_error(net::use_awaitable, ec));
      // Wait for the client to close (it has what it came for).
      co_await s.async_read_some(net::buffer(scratch), net::redirect_error(net::use_awaitable, ec));
      break;
    }
    const std::string& a = is_connect ? established : ok;
    co_await net::async_write(s, net::buffer(a), net::redirect_error(net::use_awaitable, ec));
  }
}

net::awaitable<void> baseline_accept(tcp::acceptor& a, ssl::context& ctx, baseline_config cfg) {
  for (;;) {
    error_code ec;
    tcp::socket s = co_await a.async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    s.set_option(tcp::no_delay(true));
    net::co_spawn(a.get_executor(), baseline_session(tls_stream(std::move(s), ctx), cfg),
                  net::detached);
  }
}

}  // namespace

int run_baseline_server(const options& o) {
  net::io_context io(1);
  ssl::context ctx(ssl::context::tls_server);
  ctx.use_certificate_chain_file(o.cert);
  ctx.use_private_key_file(o.key, ssl::context::pem);
  ctx.load_verify_file(o.ca);
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (o.session_tickets) {
    // Stateless tickets (OpenSSL's default key), and a session id context, which resumption
    // with client certificates requires.
    static const unsigned char sid_ctx[] = "tunnel-bench";
    SSL_CTX_set_session_id_context(ctx.native_handle(), sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_SERVER);
  } else {
    SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  }
  tcp::acceptor a(io, parse_endpoint(o.gateway));
  std::cout << "baseline server listening on 127.0.0.1:" << a.local_endpoint().port() << std::endl;
  net::signal_set stop(io, SIGINT, SIGTERM);
  stop.async_wait([&](error_code, int) { io.stop(); });
  net::co_spawn(io, baseline_accept(a, ctx, {o.tunnel_answers}), net::detached);
  io.run();
  return 0;
}

}  // namespace bench
