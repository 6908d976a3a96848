// `hold`: open K tunnels (handshake + CONNECT + 200, or --no-connect), from many loopback source
// addresses, and keep them idle and established; the server's RSS before (baseline), with all
// K up (peak), and --settle seconds after closing them all. Before closing, one GET through
// every tunnel shows that each is still established end to end.
#include <iostream>
#include <memory>

#include "bench.hpp"

namespace bench {

namespace {

/// Descriptors the driver needs besides the tunnels (stdio, epoll, timers, the CA file...).
constexpr long spare_files = 64;

struct held {
  std::unique_ptr<tls_stream> s;
  std::string buf;
  bool up = false;
};

struct hold_stats {
  std::uint64_t opened = 0, errors = 0, verified = 0, verify_errors = 0, body_bytes = 0;
  std::vector<double> open_us;
  std::map<std::string, std::uint64_t> error_kinds;
};

struct hold_shared {
  net::any_io_executor ex;  ///< the one io_context every coroutine runs on
  ssl::context* ctx = nullptr;
  tcp::endpoint gw;
  std::string connect_req;
  std::string get_req;
  source_pool* sources = nullptr;
  std::vector<held>* tunnels = nullptr;
  std::size_t next = 0;  ///< the next tunnel a worker takes
  hold_stats* st = nullptr;
};

net::awaitable<void> open_one(hold_shared& sh, held& h) {
  const auto& ex = sh.ex;
  h.s = std::make_unique<tls_stream>(ex, *sh.ctx);
  const auto from = sh.sources->next();
  const auto t0 = clock_type::now();
  const guard g(ex, h.s->next_layer(), io_timeout);
  const failure f = co_await open_tunnel(*h.s, sh.gw, from, sh.connect_req, h.buf);
  if (f.empty()) {
    h.up = true;
    ++sh.st->opened;
    sh.st->open_us.push_back(
        std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  } else {
    ++sh.st->errors;
    ++sh.st->error_kinds[g.fired() ? "timeout (" + f + ")" : f];
    h.s.reset();
  }
}

net::awaitable<void> open_worker(hold_shared* sh) {
  while (sh->next < sh->tunnels->size()) {
    held& h = (*sh->tunnels)[sh->next++];
    co_await open_one(*sh, h);
  }
}

net::awaitable<void> verify_one(hold_shared& sh, held& h) {
  const auto& ex = sh.ex;
  error_code ec;
  http_answer a;
  failure f;
  const guard g(ex, h.s->next_layer(), io_timeout);
  co_await net::async_write(*h.s, net::buffer(sh.get_req),
                            net::redirect_error(net::use_awaitable, ec));
  f = ec ? "GET write: " + ec.message() : std::string();
  if (f.empty()) f = co_await read_answer(*h.s, h.buf, a);
  if (f.empty() && (a.status != 200 || a.body_bytes != answer_body_size)) {
    f = "GET answered " + std::to_string(a.status) + " with " + std::to_string(a.body_bytes) +
        " bytes";
  }
  if (f.empty()) {
    ++sh.st->verified;
    sh.st->body_bytes += a.body_bytes;
  } else {
    ++sh.st->verify_errors;
    ++sh.st->error_kinds["verify: " + (g.fired() ? "timeout" : f)];
  }
}

net::awaitable<void> verify_worker(hold_shared* sh) {
  while (sh->next < sh->tunnels->size()) {
    held& h = (*sh->tunnels)[sh->next++];
    if (h.up) co_await verify_one(*sh, h);
  }
}

void run_workers(net::io_context& io, hold_shared& sh, unsigned n,
                 net::awaitable<void> (*worker)(hold_shared*)) {
  sh.next = 0;
  for (unsigned i = 0; i < n; ++i)
    net::co_spawn(io, worker(&sh), net::detached);
  io.restart();
  io.run();
}

void sleep_for(net::io_context& io, double seconds) {
  net::steady_timer t(
      io, std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds)));
  t.wait();
}

}  // namespace

int run_hold(const options& o) {
  if (o.origin.empty()) throw std::runtime_error("hold: give --origin ADDR:PORT (the sink)");
  if (o.sessions == 0) throw std::runtime_error("hold: give --sessions K (K > 0)");
  const long files = raise_open_files_limit();
  if (static_cast<long>(o.sessions) + spare_files > files) {
    throw std::runtime_error("hold: " + std::to_string(o.sessions) + " sessions need " +
                             std::to_string(o.sessions + spare_files) +
                             " open files in this process, but its limit (RLIMIT_NOFILE, raised "
                             "to the hard limit) is " +
                             std::to_string(files) + "; lower --sessions or raise `ulimit -Hn`");
  }
  if (const auto limit = open_files_limit(o.target_pid)) {
    // A tunnel costs the server two descriptors (device side and origin side), one without
    // CONNECT (HAProxy in TCP mode forwards too); warn, the figures would show the refusals.
    const long need = 2L * o.sessions + 16;
    if (need > *limit) {
      std::cerr << "tunnel-bench hold: warning: the target process may open " << *limit
                << " files; " << o.sessions << " tunnels need about " << need << "\n";
    }
  }
  net::io_context io(1);
  auto ctx = make_client_context(o, false);
  source_pool sources(o.sources, o.sessions);
  std::vector<held> tunnels(o.sessions);
  hold_stats st;
  hold_shared sh;
  sh.ex = io.get_executor();
  sh.ctx = &ctx;
  sh.gw = parse_endpoint(o.gateway);
  sh.connect_req = o.no_connect ? std::string() : connect_request(o.origin);
  sh.get_req = get_request(o.origin, false);
  sh.sources = &sources;
  sh.tunnels = &tunnels;
  sh.st = &st;

  const auto rss_base = rss_kib(o.target_pid);
  cpu_meter cpu(o.target_pid);
  cpu.start();
  const auto start = clock_type::now();
  run_workers(io, sh, o.concurrency, &open_worker);
  const double open_secs = std::chrono::duration<double>(clock_type::now() - start).count();
  const auto cpu_s = cpu.stop();
  // Let the server finish what it does after the answer (logs, registry) before measuring.
  sleep_for(io, 1.0);
  const auto rss_peak = rss_kib(o.target_pid);
  run_workers(io, sh, o.concurrency, &verify_worker);
  for (auto& h : tunnels) {
    error_code ec;
    if (h.s) h.s->next_layer().close(ec);
    h.s.reset();
  }
  sleep_for(io, o.settle);
  const auto rss_after = rss_kib(o.target_pid);

  auto r = report_head(o);
  r["origin"] = o.origin;
  r["sessions"] = o.sessions;
  r["sources"] = sources.size();
  r["concurrency"] = o.concurrency;
  r["opened"] = st.opened;
  r["errors"] = st.errors + st.verify_errors;
  r["open_seconds"] = num(open_secs);
  r["rate_per_s"] = num(static_cast<double>(st.opened) / open_secs);
  r["server_cpu_s"] = num(cpu_s);
  r["per_cpu_second"] = per_cpu(static_cast<double>(st.opened), cpu_s);
  r["open_latency_ms"] = latency_json(st.open_us);
  r["verified"] = st.verified;
  r["body_bytes"] = st.body_bytes;
  r["body_bytes_expected"] = st.verified * answer_body_size;
  json rss;
  const auto opt = [](const std::optional<long>& v) { return v ? json(*v) : json(nullptr); };
  rss["baseline_kib"] = opt(rss_base);
  rss["peak_kib"] = opt(rss_peak);
  rss["after_close_kib"] = opt(rss_after);
  if (rss_base && rss_peak && st.opened > 0) {
    rss["per_session_kib"] =
        num(static_cast<double>(*rss_peak - *rss_base) / static_cast<double>(st.opened));
  } else {
    rss["per_session_kib"] = nullptr;
  }
  rss["after_close_minus_baseline_kib"] =
      rss_base && rss_after ? json(*rss_after - *rss_base) : json(nullptr);
  rss["settle_s"] = o.settle;
  r["rss"] = rss;
  r["error_kinds"] = st.error_kinds;
  print_report(o, r);
  return st.opened == o.sessions && st.verified == o.sessions && st.errors == 0 &&
                 st.verify_errors == 0
             ? 0
             : 1;
}

}  // namespace bench
