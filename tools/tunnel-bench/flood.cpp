// `flood`: a handshake flood as an attacker sends it — at --rate attempts per second (open loop),
// each one a TCP connection that sends a TLS ClientHello and is reset soon after. An attempt
// counts as a *server flight* when the server answered the ClientHello (its first byte arrived
// within --flight-wait ms), as *closed* when the server closed or reset the connection without a
// byte (an accept-time refusal), and as *silent* otherwise. Run a canary next to it (`tunnels
// --rate R` from another source address) to see what the flood does to well-behaved devices.
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <iostream>

#include "bench.hpp"

namespace bench {

namespace {

struct flood_stats {
  std::uint64_t attempts = 0;
  std::uint64_t flights = 0;  ///< the server answered the ClientHello
  std::uint64_t closed = 0;   ///< closed or reset by the server before answering
  std::uint64_t silent = 0;   ///< neither within the wait
  std::uint64_t connect_errors = 0;
  std::uint64_t skipped = 0;  ///< the in-flight cap was reached (the driver's limit)
  std::uint64_t in_flight = 0;
  std::map<std::string, std::uint64_t> connect_error_kinds;
};

struct flood_shared {
  net::any_io_executor ex;
  tcp::endpoint gw;
  std::string hello;
  clock_type::duration wait;
  source_pool* sources;
  flood_stats* st;
};

/// One ClientHello, made once by OpenSSL against a memory BIO (the same bytes every time: the
/// server cannot tell, and it costs the driver nothing per attempt).
std::string client_hello(const options& o) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) throw std::runtime_error("flood: SSL_CTX_new failed");
  const int v = o.tls == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  SSL_CTX_set_min_proto_version(ctx, v);
  SSL_CTX_set_max_proto_version(ctx, v);
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  (void)SSL_do_handshake(ssl);  // wants to read: the ClientHello is in wbio
  char* data = nullptr;
  const long n = BIO_get_mem_data(wbio, &data);
  std::string hello(data, static_cast<std::size_t>(n > 0 ? n : 0));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  if (hello.empty()) throw std::runtime_error("flood: OpenSSL produced no ClientHello");
  return hello;
}

net::awaitable<void> one_attempt(const flood_shared* sh) {
  ++sh->st->in_flight;
  ++sh->st->attempts;
  tcp::socket s(sh->ex);
  error_code ec;
  const auto from = sh->sources->next();
  s.open(sh->gw.protocol(), ec);
  if (!ec && from) s.bind(tcp::endpoint(*from, 0), ec);
  if (!ec) {
    const guard g(sh->ex, s, io_timeout);
    co_await s.async_connect(sh->gw, net::redirect_error(net::use_awaitable, ec));
  }
  if (ec == net::error::connection_reset || ec == net::error::connection_refused) {
    ++sh->st->closed;  // turned away before the connection was even up
  } else if (ec) {
    ++sh->st->connect_errors;
    ++sh->st->connect_error_kinds[ec.message()];
  } else {
    co_await net::async_write(s, net::buffer(sh->hello),
                              net::redirect_error(net::use_awaitable, ec));
    char byte = 0;
    std::size_t n = 0;
    bool timed_out = false;
    if (!ec) {
      const guard g(sh->ex, s, sh->wait);
      n = co_await s.async_read_some(net::buffer(&byte, 1),
                                     net::redirect_error(net::use_awaitable, ec));
      timed_out = g.fired();
    }
    if (n == 1)
      ++sh->st->flights;
    else if (timed_out)
      ++sh->st->silent;
    else
      ++sh->st->closed;
  }
  // The attacker's reset: no close_notify, no FIN, no TIME_WAIT.
  if (s.is_open()) {
    s.set_option(net::socket_base::linger(true, 0), ec);
    s.close(ec);
  }
  --sh->st->in_flight;
}

net::awaitable<void> flood_loop(const flood_shared* sh, double rate, clock_type::time_point end,
                                std::uint64_t cap) {
  net::steady_timer t(sh->ex);
  const auto interval =
      std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / rate));
  error_code ec;
  for (auto next = clock_type::now(); next < end; next += interval) {
    t.expires_at(next);
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (sh->st->in_flight >= cap) {
      ++sh->st->skipped;
      continue;
    }
    net::co_spawn(sh->ex, one_attempt(sh), net::detached);
  }
}

}  // namespace

int run_flood(const options& o) {
  if (o.rate <= 0) throw std::runtime_error("flood: give --rate ATTEMPTS_PER_SECOND");
  const long files = raise_open_files_limit();
  net::io_context io(1);
  source_pool sources(o.sources, 0);
  flood_stats st;
  flood_shared sh{io.get_executor(),
                  parse_endpoint(o.gateway),
                  client_hello(o),
                  std::chrono::duration_cast<clock_type::duration>(
                      std::chrono::duration<double, std::milli>(o.flight_wait_ms)),
                  &sources,
                  &st};
  cpu_meter cpu(o.target_pid);
  cpu.start();
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(o.duration));
  const auto cap = static_cast<std::uint64_t>(std::max(16L, files / 2 - 64));
  net::co_spawn(io, flood_loop(&sh, o.rate, end, cap), net::detached);
  io.run();
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  const auto cpu_s = cpu.stop();
  auto per_s = [&](std::uint64_t n) { return num(static_cast<double>(n) / secs); };
  auto r = report_head(o);
  r["rate_asked"] = o.rate;
  r["seconds"] = num(secs);
  r["attempts"] = st.attempts;
  r["attempts_per_s"] = per_s(st.attempts);
  r["server_flights"] = st.flights;
  r["server_flights_per_s"] = per_s(st.flights);
  r["closed_unanswered"] = st.closed;
  r["silent"] = st.silent;
  r["connect_errors"] = st.connect_errors;
  r["connect_error_kinds"] = st.connect_error_kinds;
  r["skipped"] = st.skipped;
  r["server_cpu_s"] = num(cpu_s);
  print_report(o, r);
  return st.attempts > 0 ? 0 : 1;
}

}  // namespace bench
