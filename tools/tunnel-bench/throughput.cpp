// `throughput`: bytes through N parallel tunnels (--streams), up then down, to a sink: the
// external `tunnel-bench sink` (--origin) or, without --origin, one this process runs itself on
// 127.0.0.1. The sink protocol on plain TCP (it sits behind the server under test): the
// client's first byte says 'U' or 'D', followed by 8 bytes N (big-endian). Upload: the sink
// reads N bytes, then answers the count it read as 8 bytes. Download: the sink writes N bytes
// and closes. Every byte is counted at the far end (upload) or here (download).
#include <algorithm>
#include <array>
#include <iostream>
#include <numeric>

#include "bench.hpp"

namespace bench {

namespace {

constexpr std::size_t chunk = std::size_t{64} * 1024;

void put_u64(unsigned char* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
}
std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | p[i];
  return v;
}

// ---- the in-process sink (no --origin) --------------------------------------------------

net::awaitable<void> sink_session(tcp::socket s) {
  std::vector<unsigned char> buf(chunk);
  std::array<unsigned char, 9> head{};
  error_code ec;
  co_await net::async_read(s, net::buffer(head, 1), net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  if (head[0] == 'U') {
    co_await net::async_read(s, net::buffer(head.data() + 1, 8),
                             net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    const std::uint64_t want = get_u64(head.data() + 1);
    std::uint64_t total = 0;
    while (total < want) {
      const std::size_t n =
          co_await s.async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
      total += n;
      if (ec) break;
    }
    put_u64(head.data(), total);
    co_await net::async_write(s, net::buffer(head, 8), net::redirect_error(net::use_awaitable, ec));
  } else if (head[0] == 'D') {
    co_await net::async_read(s, net::buffer(head.data() + 1, 8),
                             net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    std::uint64_t left = get_u64(head.data() + 1);
    while (left > 0 && !ec) {
      const std::size_t n = left < chunk ? static_cast<std::size_t>(left) : chunk;
      co_await net::async_write(s, net::buffer(buf.data(), n),
                                net::redirect_error(net::use_awaitable, ec));
      left -= n;
    }
  }
  s.shutdown(tcp::socket::shutdown_send, ec);
  s.close(ec);
}

net::awaitable<void> sink_accept(tcp::acceptor& a) {
  for (;;) {
    error_code ec;
    tcp::socket s = co_await a.async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    net::co_spawn(a.get_executor(), sink_session(std::move(s)), net::detached);
  }
}

// ---- one tunnel's transfer ----------------------------------------------------------------

struct transfer_result {
  bool done = false;
  std::uint64_t bytes = 0;
  clock_type::time_point start{}, end{};
  std::string error;
};

struct transfer_job {
  net::any_io_executor ex;  ///< the one io_context every coroutine runs on
  ssl::context* ctx;
  tcp::endpoint gw;
  std::optional<net::ip::address> from;
  std::string connect_req;  ///< empty: --no-connect
  char dir;
  std::uint64_t bytes;
  transfer_result* r;
};

net::awaitable<void> transfer(transfer_job job) {
  const auto& ex = job.ex;
  tls_stream s(ex, *job.ctx);
  std::string head;
  std::vector<unsigned char> buf(chunk, 0x5a);
  std::array<unsigned char, 9> hdr{};
  error_code ec;
  transfer_result& r = *job.r;
  const guard g(ex, s.next_layer(), std::chrono::seconds(120));  // a stalled tunnel ends the run
  r.error = co_await open_tunnel(s, job.gw, job.from, job.connect_req, head);
  r.start = clock_type::now();
  if (r.error.empty()) {
    hdr[0] = static_cast<unsigned char>(job.dir);
    put_u64(hdr.data() + 1, job.bytes);
    co_await net::async_write(s, net::buffer(hdr), net::redirect_error(net::use_awaitable, ec));
  }
  if (r.error.empty() && !ec && job.dir == 'U') {
    std::uint64_t left = job.bytes;
    while (left > 0 && !ec) {
      const std::size_t n = left < chunk ? static_cast<std::size_t>(left) : chunk;
      co_await net::async_write(s, net::buffer(buf.data(), n),
                                net::redirect_error(net::use_awaitable, ec));
      left -= n;
    }
    // The sink answers its byte count once it has read them all: the upload ends there.
    if (!ec && head.size() < 8) {
      co_await net::async_read(s, net::dynamic_buffer(head),
                               net::transfer_at_least(8 - head.size()),
                               net::redirect_error(net::use_awaitable, ec));
    }
    if (!ec) r.bytes = get_u64(reinterpret_cast<const unsigned char*>(head.data()));
  } else if (r.error.empty() && !ec) {
    std::uint64_t got = head.size();
    while (got < job.bytes && !ec) {
      got +=
          co_await s.async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
    }
    r.bytes = got;
    if (got == job.bytes) ec = {};
  }
  r.end = clock_type::now();
  if (r.error.empty() && ec) r.error = (g.fired() ? "timeout: " : "transfer: ") + ec.message();
  if (r.error.empty() && r.bytes != job.bytes) {
    r.error =
        "transferred " + std::to_string(r.bytes) + " of " + std::to_string(job.bytes) + " bytes";
  }
  r.done = true;
}

}  // namespace

int run_throughput(const options& o) {
  net::io_context io(1);
  auto ctx = make_client_context(o, false);
  const auto gw = parse_endpoint(o.gateway);
  source_pool sources(o.sources, o.streams);
  std::optional<tcp::acceptor> sink;
  std::string target = o.origin;
  if (target.empty()) {
    sink.emplace(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    target = "127.0.0.1:" + std::to_string(sink->local_endpoint().port());
    net::co_spawn(io, sink_accept(*sink), net::detached);
  }
  const std::uint64_t bytes = o.megabytes * 1000 * 1000;
  const std::string req = o.no_connect ? std::string() : connect_request(target);
  int rc = 0;
  auto report = report_head(o);
  report["origin"] = target;
  report["streams"] = o.streams;
  report["bytes_per_stream"] = bytes;
  std::uint64_t errors = 0;
  for (char dir : {'U', 'D'}) {
    if ((dir == 'U' && o.direction == "down") || (dir == 'D' && o.direction == "up")) continue;
    std::vector<transfer_result> results(o.streams);
    cpu_meter cpu(o.target_pid);
    cpu.start();
    for (auto& r : results)
      net::co_spawn(io,
                    transfer({io.get_executor(), &ctx, gw, sources.next(), req, dir, bytes, &r}),
                    net::detached);
    io.restart();
    const auto all_done = [&] {
      return std::all_of(results.begin(), results.end(), [](const auto& r) { return r.done; });
    };
    while (!io.stopped() && !all_done())
      io.run_one();
    const auto cpu_s = cpu.stop();
    std::uint64_t total = 0;
    clock_type::time_point first = clock_type::time_point::max(), last{};
    std::map<std::string, std::uint64_t> kinds;
    for (const auto& r : results) {
      total += r.bytes;
      if (!r.error.empty()) ++kinds[r.error];
      first = std::min(first, r.start);
      last = std::max(last, r.end);
    }
    const std::uint64_t phase_errors =
        std::accumulate(kinds.begin(), kinds.end(), std::uint64_t{0},
                        [](auto a, const auto& k) { return a + k.second; });
    errors += phase_errors;
    const double secs = std::chrono::duration<double>(last - first).count();
    const std::uint64_t expected = bytes * o.streams;
    json phase;
    phase["bytes"] = total;
    phase["bytes_expected"] = expected;
    phase["seconds"] = num(secs);
    phase["mb_per_s"] = num(static_cast<double>(total) / 1e6 / secs);
    phase["server_cpu_s"] = num(cpu_s);
    phase["bytes_per_cpu_second"] = per_cpu(static_cast<double>(total), cpu_s);
    phase["errors"] = phase_errors;
    phase["error_kinds"] = kinds;
    report[dir == 'U' ? "up" : "down"] = phase;
    if (phase_errors > 0 || total != expected) rc = 1;
    if (o.json) continue;
    // The shape of these lines is what tools/bench-gateway reads.
    const char* name = dir == 'U' ? "up  " : "down";
    if (phase_errors > 0) {
      std::cout << "throughput " << name << ": failed: " << kinds.begin()->first << " ("
                << phase_errors << " of " << o.streams << " tunnels)\n";
      continue;
    }
    std::cout << "throughput " << name << ": " << total / 1000000 << " MB in " << secs
              << " s = " << static_cast<double>(total) / 1e6 / secs << " MB/s (TLS " << o.tls
              << ", "
              << (o.streams == 1 ? std::string("one tunnel")
                                 : std::to_string(o.streams) + " tunnels")
              << ")\n";
    if (cpu_s) {
      std::cout << "  server cpu: " << *cpu_s
                << " s = " << per_cpu(static_cast<double>(total) / 1e6, cpu_s).dump()
                << " MB per server CPU-second\n";
    }
  }
  report["errors"] = errors;
  if (o.json) print_report(o, report);
  return rc;
}

}  // namespace bench
