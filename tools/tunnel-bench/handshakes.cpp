// `handshakes`: full mTLS handshakes (no resumption) per second, each followed by one request:
// a CONNECT the rules refuse (admission and a DTR decision included), or with --no-connect (or
// --target "") a `GET / HTTP/1.0` that the peer forwards to the origin.
#include <iostream>

#include "bench.hpp"

namespace bench {

namespace {

struct handshake_stats {
  std::uint64_t done = 0;
  std::uint64_t errors = 0;
  std::map<int, std::uint64_t> statuses;
  std::map<std::string, std::uint64_t> error_kinds;
};

struct handshake_job {
  net::any_io_executor ex;  ///< the one io_context every coroutine runs on
  ssl::context* ctx;
  tcp::endpoint gw;
  std::string request;
  clock_type::time_point end;
  source_pool* sources;
  handshake_stats* st;
};

net::awaitable<void> one_handshake(const handshake_job& job) {
  const auto& ex = job.ex;
  tls_stream s(ex, *job.ctx);
  std::string buf;
  http_answer a;
  failure f;
  const std::string no_connect;  // the request below follows the handshake instead
  // No connection may hang the run: a stuck one is closed after io_timeout and counted.
  const guard g(ex, s.next_layer(), io_timeout);
  const auto from = job.sources->next();
  f = co_await open_tunnel(s, job.gw, from, no_connect, buf);
  if (f.empty()) {
    error_code ec;
    co_await net::async_write(s, net::buffer(job.request),
                              net::redirect_error(net::use_awaitable, ec));
    f = ec ? "write: " + ec.message() : std::string();
  }
  if (f.empty()) f = co_await read_answer(s, buf, a);
  if (f.empty()) {
    ++job.st->statuses[a.status];
    ++job.st->done;
  } else {
    ++job.st->errors;
    ++job.st->error_kinds[g.fired() ? "timeout" : f];
  }
  error_code ignored;
  s.next_layer().close(ignored);
}

net::awaitable<void> handshake_worker(handshake_job job) {
  while (clock_type::now() < job.end)
    co_await one_handshake(job);
}

}  // namespace

int run_handshakes(const options& o) {
  net::io_context io(1);
  auto ctx = make_client_context(o, false);
  source_pool sources(o.sources, 0);
  // A plain GET instead of the CONNECT: for a peer that forwards straight to an origin, or for a
  // baseline against `openssl s_server -www`.
  const bool get = o.no_connect || o.target.empty();
  const std::string request =
      get ? std::string("GET / HTTP/1.0\r\n\r\n") : connect_request(o.target);
  handshake_stats st;
  cpu_meter cpu(o.target_pid);
  cpu.start();
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(o.duration));
  for (unsigned i = 0; i < o.concurrency; ++i) {
    net::co_spawn(io,
                  handshake_worker({io.get_executor(), &ctx, parse_endpoint(o.gateway), request,
                                    end, &sources, &st}),
                  net::detached);
  }
  io.run();
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  const auto cpu_s = cpu.stop();
  const double rate = static_cast<double>(st.done) / secs;
  if (o.json) {
    auto r = report_head(o);
    r["request"] = get ? "GET" : "CONNECT " + o.target;
    r["concurrency"] = o.concurrency;
    r["seconds"] = num(secs);
    r["completed"] = st.done;
    r["errors"] = st.errors;
    r["rate_per_s"] = num(rate);
    r["server_cpu_s"] = num(cpu_s);
    r["per_cpu_second"] = per_cpu(static_cast<double>(st.done), cpu_s);
    json answers = json::object();
    for (const auto& [status, n] : st.statuses)
      answers[std::to_string(status)] = n;
    r["answers"] = answers;
    r["error_kinds"] = st.error_kinds;
    print_report(o, r);
  } else {
    // The first line's shape is what tools/bench-gateway reads.
    std::cout << "handshakes: " << st.done << " in " << secs
              << " s = " << static_cast<std::uint64_t>(rate) << "/s (TLS " << o.tls
              << ", concurrency " << o.concurrency << ", errors " << st.errors << ")\n";
    if (cpu_s) {
      std::cout << "  server cpu: " << *cpu_s
                << " s = " << per_cpu(static_cast<double>(st.done), cpu_s).dump()
                << " handshakes per server CPU-second\n";
    }
    for (const auto& [status, n] : st.statuses)
      std::cout << "  answer " << status << ": " << n << "\n";
    for (const auto& [what, n] : st.error_kinds)
      std::cout << "  error " << what << ": " << n << "\n";
  }
  return st.done > 0 && st.errors == 0 ? 0 : 1;
}

}  // namespace bench
