// `tunnels` and `resume`: each iteration is a new TCP connection, an mTLS handshake, `CONNECT
// origin` and its 200 (unless --no-connect), `GET /` and its 1 KiB answer from the sink, then
// close. Latency runs from the start of the TCP connect to the last byte of the answer.
// `tunnels` makes every handshake a full one; `resume` keeps each worker's last session and
// offers it on the next connection, and counts how many handshakes the server resumed.
// Closed loop (--concurrency workers back to back) or, for `tunnels --rate R`, open loop: a new
// tunnel every 1/R s whatever the answers do.
#include <iostream>

#include "bench.hpp"

namespace bench {

namespace {

struct tunnel_stats {
  std::uint64_t started = 0, completed = 0, errors = 0, body_bytes = 0;
  std::uint64_t resumed = 0, full = 0, no_ticket = 0;
  std::uint64_t skipped = 0;  ///< open loop: not started, too many in flight
  std::uint64_t in_flight = 0;
  std::vector<double> latency_us;
  std::map<std::string, std::uint64_t> error_kinds;
};

/// What every iteration of one run shares; lives in run_tunnels' frame for the whole run.
struct tunnel_shared {
  net::any_io_executor ex;  ///< the one io_context every coroutine runs on
  ssl::context* ctx = nullptr;
  tcp::endpoint gw;
  std::string connect_req;  ///< empty: --no-connect
  std::string get_req;
  source_pool* sources = nullptr;
  tunnel_stats* st = nullptr;
  clock_type::time_point end;
};

/// A worker's session to offer on its next connection (resume only).
struct session_slot {
  SSL_SESSION* s = nullptr;
  session_slot() = default;
  ~session_slot() {
    if (s != nullptr) SSL_SESSION_free(s);
  }
  session_slot(const session_slot&) = delete;
  session_slot& operator=(const session_slot&) = delete;
  void reset(SSL_SESSION* n) {
    if (s != nullptr) SSL_SESSION_free(s);
    s = n;
  }
};

net::awaitable<void> one_tunnel(const tunnel_shared& sh, session_slot* slot) {
  const auto& ex = sh.ex;
  tls_stream s(ex, *sh.ctx);
  std::string buf;
  http_answer a;
  failure f;
  error_code ec;
  const auto from = sh.sources->next();
  if (slot != nullptr && slot->s != nullptr) SSL_set_session(s.native_handle(), slot->s);
  ++sh.st->started;
  const auto t0 = clock_type::now();
  const guard g(ex, s.next_layer(), io_timeout);
  f = co_await open_tunnel(s, sh.gw, from, sh.connect_req, buf);
  if (f.empty()) {
    co_await net::async_write(s, net::buffer(sh.get_req),
                              net::redirect_error(net::use_awaitable, ec));
    if (ec) f = "GET write: " + ec.message();
  }
  if (f.empty()) f = co_await read_answer(s, buf, a);
  if (f.empty() && a.status != 200) f = "GET answered " + std::to_string(a.status);
  if (f.empty() && a.body_bytes != answer_body_size) {
    f = "GET answer of " + std::to_string(a.body_bytes) + " bytes";
  }
  const auto t1 = clock_type::now();
  if (f.empty()) {
    ++sh.st->completed;
    sh.st->body_bytes += a.body_bytes;
    sh.st->latency_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (slot != nullptr) {
      SSL* ssl = s.native_handle();
      ++(SSL_session_reused(ssl) != 0 ? sh.st->resumed : sh.st->full);
      // TLS 1.3 tickets come after the handshake; the answers read above have brought them.
      // A copy: closing without close_notify marks the connection's own session as not
      // resumable when the SSL object goes.
      SSL_SESSION* current = SSL_get1_session(ssl);
      SSL_SESSION* next = current != nullptr ? SSL_SESSION_dup(current) : nullptr;
      if (current != nullptr) SSL_SESSION_free(current);
      if (next != nullptr && SSL_SESSION_is_resumable(next) != 0) {
        slot->reset(next);
      } else {
        if (next != nullptr) SSL_SESSION_free(next);
        ++sh.st->no_ticket;
      }
    }
  } else {
    ++sh.st->errors;
    ++sh.st->error_kinds[g.fired() ? "timeout (" + f + ")" : f];
  }
  if (f.empty()) {
    // Close as a browser or curl does: close_notify, then the server's (or its EOF; the origin
    // closed after its answer, so the server closes too). Without it OpenSSL on the server side
    // drops a stateful TLS 1.3 ticket issued on this connection. Not part of the latency.
    co_await s.async_shutdown(net::redirect_error(net::use_awaitable, ec));
  }
  s.next_layer().close(ec);
}

net::awaitable<void> closed_loop_worker(const tunnel_shared* sh, bool resume) {
  session_slot slot;
  while (clock_type::now() < sh->end)
    co_await one_tunnel(*sh, resume ? &slot : nullptr);
}

net::awaitable<void> open_loop_one(const tunnel_shared* sh) {
  ++sh->st->in_flight;
  co_await one_tunnel(*sh, nullptr);
  --sh->st->in_flight;
}

/// Starts a tunnel every 1/rate s until the end, whatever the answers do (no coordinated
/// omission); at most `cap` in flight, the rest counted as skipped.
net::awaitable<void> open_loop(const tunnel_shared* sh, double rate, std::uint64_t cap) {
  const auto& ex = sh->ex;
  net::steady_timer t(ex);
  const auto interval =
      std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / rate));
  error_code ec;
  for (auto next = clock_type::now(); next < sh->end; next += interval) {
    t.expires_at(next);
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (sh->st->in_flight >= cap) {
      ++sh->st->skipped;
      continue;
    }
    net::co_spawn(ex, open_loop_one(sh), net::detached);
  }
}

}  // namespace

int run_tunnels(const options& o, bool resume) {
  if (o.origin.empty()) throw std::runtime_error(o.mode + ": give --origin ADDR:PORT (the sink)");
  if (resume && o.rate > 0) throw std::runtime_error("resume: --rate is for `tunnels` only");
  const long files = raise_open_files_limit();
  net::io_context io(1);
  auto ctx = make_client_context(o, resume);
  source_pool sources(o.sources, 0);
  tunnel_stats st;
  tunnel_shared sh;
  sh.ex = io.get_executor();
  sh.ctx = &ctx;
  sh.gw = parse_endpoint(o.gateway);
  sh.connect_req = o.no_connect ? std::string() : connect_request(o.origin);
  sh.get_req = get_request(o.origin, true);
  sh.sources = &sources;
  sh.st = &st;
  cpu_meter cpu(o.target_pid);
  cpu.start();
  const auto start = clock_type::now();
  sh.end = start + std::chrono::duration_cast<clock_type::duration>(
                       std::chrono::duration<double>(o.duration));
  if (o.rate > 0) {
    const auto cap = static_cast<std::uint64_t>(std::max(16L, files - 64));
    net::co_spawn(io, open_loop(&sh, o.rate, cap), net::detached);
  } else {
    for (unsigned i = 0; i < o.concurrency; ++i)
      net::co_spawn(io, closed_loop_worker(&sh, resume), net::detached);
  }
  io.run();
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  const auto cpu_s = cpu.stop();

  auto r = report_head(o);
  r["origin"] = o.origin;
  if (o.rate > 0) {
    r["rate_asked"] = o.rate;
  } else {
    r["concurrency"] = o.concurrency;
  }
  r["seconds"] = num(secs);
  r["started"] = st.started;
  r["completed"] = st.completed;
  r["errors"] = st.errors;
  if (o.rate > 0) r["skipped"] = st.skipped;
  r["rate_per_s"] = num(static_cast<double>(st.completed) / secs);
  r["server_cpu_s"] = num(cpu_s);
  r["per_cpu_second"] = per_cpu(static_cast<double>(st.completed), cpu_s);
  r["latency_ms"] = latency_json(st.latency_us);
  r["body_bytes"] = st.body_bytes;
  r["body_bytes_expected"] = st.completed * answer_body_size;
  bool ok = st.completed > 0 && st.errors == 0 && st.skipped == 0;
  if (resume) {
    r["resumed"] = st.resumed;
    r["full"] = st.full;
    r["no_ticket"] = st.no_ticket;
    const bool no_tickets = st.completed > 0 && st.resumed == 0;
    r["resumption"] = no_tickets ? "none: the server sent no session ticket" : "yes";
    if (no_tickets) ok = false;
  }
  r["error_kinds"] = st.error_kinds;
  print_report(o, r);
  if (resume && st.completed > 0 && st.resumed == 0) {
    std::cerr << "tunnel-bench resume: the server sent no session ticket (TLS " << o.tls
              << "): no handshake could be resumed\n";
  }
  return ok ? 0 : 1;
}

}  // namespace bench
