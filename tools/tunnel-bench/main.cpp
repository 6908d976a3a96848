// tunnel-bench — the gateway's load driver (DESIGN.md §9). Two measurements against a running
// tunnelgate, each printed as one plain line:
//   handshakes  full mTLS handshakes (no resumption) per second, each followed by one CONNECT
//               that the rules refuse, so the figure includes admission and a DTR decision;
//   throughput  MB/s through one CONNECT tunnel to a sink that tunnel-bench runs itself.
// The client side runs on one io_context (one thread) so it can be pinned to one core with
// taskset, apart from the gateway. `baseline-server` is the same mTLS handshake with nothing
// behind it, for comparison. See tools/bench-gateway for the whole measurement.
#include <utility>  // before Asio (STYLE P1)

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace po = boost::program_options;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using tls_stream = ssl::stream<tcp::socket>;

constexpr auto io_timeout = std::chrono::seconds(10);

struct options {
  std::string gateway;
  std::string ca, cert, key;
  std::string tls = "1.3";
  unsigned concurrency = 16;
  double duration = 5;
  std::string target = "refused.bench.test:443";
  std::uint64_t megabytes = 256;
  std::string direction = "both";
};

tcp::endpoint parse_endpoint(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("'" + s + "': expected ADDRESS:PORT");
  auto host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {net::ip::make_address(host),
          static_cast<unsigned short>(std::stoul(s.substr(colon + 1)))};
}

ssl::context make_context(const options& o) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(o.ca);
  ctx.use_certificate_chain_file(o.cert);
  ctx.use_private_key_file(o.key, ssl::context::pem);
  ctx.set_verify_mode(ssl::verify_peer);
  const int v = o.tls == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  SSL_CTX_set_min_proto_version(ctx.native_handle(), v);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), v);
  // Every connection is a full handshake: no tickets, no client-side session cache.
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  return ctx;
}

// Reads an HTTP response head (up to the blank line) from the stream; returns the status code.
net::awaitable<int> read_status(tls_stream& s, std::string& buf) {
  buf.clear();
  std::size_t n =
      co_await net::async_read_until(s, net::dynamic_buffer(buf), "\r\n\r\n", net::use_awaitable);
  int status = 0;
  if (buf.size() >= 12 && buf.compare(0, 5, "HTTP/") == 0) status = std::stoi(buf.substr(9, 3));
  buf.erase(0, n);
  co_return status;
}

// ---- handshakes -----------------------------------------------------------------------------

struct handshake_stats {
  std::uint64_t done = 0;
  std::uint64_t errors = 0;
  std::map<int, std::uint64_t> statuses;
  std::map<std::string, std::uint64_t> error_kinds;
};

net::awaitable<void> handshake_worker(ssl::context& ctx, tcp::endpoint gw, std::string request,
                                      clock_type::time_point end, handshake_stats& st) {
  auto ex = co_await net::this_coro::executor;
  std::string buf;
  while (clock_type::now() < end) {
    tls_stream s(ex, ctx);
    // No connection may hang the run: a stuck one is closed after io_timeout and counted.
    net::steady_timer guard(ex, io_timeout);
    guard.async_wait([&s](boost::system::error_code ec) {
      if (!ec) s.next_layer().close(ec);
    });
    try {
      co_await s.next_layer().async_connect(gw, net::use_awaitable);
      s.next_layer().set_option(tcp::no_delay(true));
      co_await s.async_handshake(ssl::stream_base::client, net::use_awaitable);
      co_await net::async_write(s, net::buffer(request), net::use_awaitable);
      const int status = co_await read_status(s, buf);
      ++st.statuses[status];
      ++st.done;
    } catch (const boost::system::system_error& e) {
      ++st.errors;
      ++st.error_kinds[e.code().message()];
    }
    boost::system::error_code ignored;
    s.next_layer().close(ignored);
  }
}

int run_handshakes(const options& o) {
  net::io_context io(1);
  auto ctx = make_context(o);
  const auto gw = parse_endpoint(o.gateway);
  // --target "" sends a plain GET instead (for a baseline against `openssl s_server -www`).
  const std::string request =
      o.target.empty() ? std::string("GET / HTTP/1.0\r\n\r\n")
                       : "CONNECT " + o.target + " HTTP/1.1\r\nHost: " + o.target + "\r\n\r\n";
  handshake_stats st;
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(o.duration));
  for (unsigned i = 0; i < o.concurrency; ++i)
    net::co_spawn(io, handshake_worker(ctx, gw, request, end, st), net::detached);
  io.run();
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  std::cout << "handshakes: " << st.done << " in " << secs
            << " s = " << static_cast<std::uint64_t>(static_cast<double>(st.done) / secs)
            << "/s (TLS " << o.tls << ", concurrency " << o.concurrency << ", errors " << st.errors
            << ")\n";
  for (const auto& [status, n] : st.statuses)
    std::cout << "  answer " << status << ": " << n << "\n";
  for (const auto& [what, n] : st.error_kinds)
    std::cout << "  error " << what << ": " << n << "\n";
  return st.done > 0 && st.errors == 0 ? 0 : 1;
}

// ---- throughput -----------------------------------------------------------------------------
// The sink speaks a tiny protocol on plain TCP (it sits behind the gateway): the client's first
// byte says 'U' or 'D', followed by 8 bytes N (big-endian). Upload: the sink reads N bytes, then
// answers the count it read as 8 bytes. Download: the sink writes N bytes and closes.

constexpr std::size_t chunk = 64 * 1024;

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

net::awaitable<void> sink_session(tcp::socket s) {
  std::vector<unsigned char> buf(chunk);
  std::array<unsigned char, 9> head{};
  boost::system::error_code ec;
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
    boost::system::error_code ec;
    tcp::socket s = co_await a.async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    net::co_spawn(a.get_executor(), sink_session(std::move(s)), net::detached);
  }
}

struct transfer_result {
  bool ok = false;
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::string error;
};

net::awaitable<void> transfer(ssl::context& ctx, tcp::endpoint gw, std::string target, char dir,
                              std::uint64_t bytes, transfer_result& r) {
  auto ex = co_await net::this_coro::executor;
  tls_stream s(ex, ctx);
  std::string head;
  std::vector<unsigned char> buf(chunk, 0x5a);
  std::array<unsigned char, 9> hdr{};
  const std::string request = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n";
  net::steady_timer guard(ex, std::chrono::seconds(120));  // a stalled tunnel ends the run
  guard.async_wait([&s](boost::system::error_code ec) {
    if (!ec) s.next_layer().close(ec);
  });
  try {
    co_await s.next_layer().async_connect(gw, net::use_awaitable);
    s.next_layer().set_option(tcp::no_delay(true));
    co_await s.async_handshake(ssl::stream_base::client, net::use_awaitable);
    co_await net::async_write(s, net::buffer(request), net::use_awaitable);
    const int status = co_await read_status(s, head);
    if (status != 200) {
      r.error = "the gateway answered " + std::to_string(status) + " to CONNECT " + target +
                " (the rules must tunnel the sink's address)";
      co_return;
    }
    const auto start = clock_type::now();
    if (dir == 'U') {
      hdr[0] = 'U';
      put_u64(hdr.data() + 1, bytes);
      co_await net::async_write(s, net::buffer(hdr), net::use_awaitable);
      std::uint64_t left = bytes;
      while (left > 0) {
        const std::size_t n = left < chunk ? static_cast<std::size_t>(left) : chunk;
        co_await net::async_write(s, net::buffer(buf.data(), n), net::use_awaitable);
        left -= n;
      }
      // The sink answers its byte count once it has read them all: the upload ends there.
      if (head.size() < 8)
        co_await net::async_read(s, net::dynamic_buffer(head),
                                 net::transfer_at_least(8 - head.size()), net::use_awaitable);
      r.bytes = get_u64(reinterpret_cast<const unsigned char*>(head.data()));
    } else {
      hdr[0] = 'D';
      put_u64(hdr.data() + 1, bytes);
      co_await net::async_write(s, net::buffer(hdr), net::use_awaitable);
      std::uint64_t got = head.size();
      boost::system::error_code ec;
      while (got < bytes) {
        const std::size_t n = co_await s.async_read_some(
            net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
        got += n;
        if (ec) break;
      }
      r.bytes = got;
    }
    r.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    r.ok = r.bytes == bytes;
    if (!r.ok)
      r.error =
          "transferred " + std::to_string(r.bytes) + " of " + std::to_string(bytes) + " bytes";
  } catch (const boost::system::system_error& e) {
    r.error = e.code().message();
  }
}

int run_throughput(const options& o) {
  net::io_context io(1);
  auto ctx = make_context(o);
  const auto gw = parse_endpoint(o.gateway);
  tcp::acceptor sink(io, {net::ip::make_address("127.0.0.1"), 0});
  const std::string target = "127.0.0.1:" + std::to_string(sink.local_endpoint().port());
  net::co_spawn(io, sink_accept(sink), net::detached);
  const std::uint64_t bytes = o.megabytes * 1000 * 1000;
  int rc = 0;
  for (char dir : {'U', 'D'}) {
    if ((dir == 'U' && o.direction == "down") || (dir == 'D' && o.direction == "up")) continue;
    transfer_result r;
    net::co_spawn(io, transfer(ctx, gw, target, dir, bytes, r), [&](std::exception_ptr) {});
    io.restart();
    while (!io.stopped() && r.seconds == 0 && r.error.empty())
      io.run_one();
    const char* name = dir == 'U' ? "up  " : "down";
    if (!r.ok) {
      std::cout << "throughput " << name << ": failed: " << r.error << "\n";
      rc = 1;
      continue;
    }
    std::cout << "throughput " << name << ": " << r.bytes / 1000000 << " MB in " << r.seconds
              << " s = " << static_cast<double>(r.bytes) / 1e6 / r.seconds << " MB/s (TLS " << o.tls
              << ", one tunnel)\n";
  }
  return rc;
}

// ---- baseline server -------------------------------------------------------------------------
// The same mTLS handshake with nothing of the gateway behind it: OpenSSL's own chain check, then
// a fixed 403 to the request. Run on the same core as the gateway would, it shows what share of
// the gateway's handshake cost is OpenSSL and what share is ours (certauth, compliance, DTR).

net::awaitable<void> baseline_session(tls_stream s) {
  std::string buf;
  boost::system::error_code ec;
  co_await s.async_handshake(ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  co_await net::async_read_until(s, net::dynamic_buffer(buf), "\r\n\r\n",
                                 net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  static const std::string answer = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
  co_await net::async_write(s, net::buffer(answer), net::redirect_error(net::use_awaitable, ec));
  co_await s.async_read_some(net::buffer(buf.data(), buf.size()),
                             net::redirect_error(net::use_awaitable, ec));
}

net::awaitable<void> baseline_accept(tcp::acceptor& a, ssl::context& ctx) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s = co_await a.async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    s.set_option(tcp::no_delay(true));
    net::co_spawn(a.get_executor(), baseline_session(tls_stream(std::move(s), ctx)), net::detached);
  }
}

int run_baseline_server(const options& o) {
  net::io_context io(1);
  ssl::context ctx(ssl::context::tls_server);
  ctx.use_certificate_chain_file(o.cert);
  ctx.use_private_key_file(o.key, ssl::context::pem);
  ctx.load_verify_file(o.ca);
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  tcp::acceptor a(io, parse_endpoint(o.gateway));
  std::cout << "baseline server listening on 127.0.0.1:" << a.local_endpoint().port() << std::endl;
  net::signal_set stop(io, SIGINT, SIGTERM);
  stop.async_wait([&](boost::system::error_code, int) { io.stop(); });
  net::co_spawn(io, baseline_accept(a, ctx), net::detached);
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  po::options_description desc(
      "tunnel-bench handshakes|throughput --gateway ADDR:PORT --ca CA.pem --cert DEV.pem --key "
      "DEV.key [options]\n"
      "tunnel-bench baseline-server --gateway LISTEN:PORT --ca CLIENT_CA.pem --cert SERVER.pem "
      "--key SERVER.key\n  (a bare OpenSSL mTLS server answering 403, for comparison)");
  desc.add_options()("help,h", "this help")("gateway", po::value(&o.gateway)->required(),
                                            "the gateway's device listener")(
      "ca", po::value(&o.ca)->required(), "CA that signed the gateway's certificate")(
      "cert", po::value(&o.cert)->required(), "device certificate (PEM, chain)")(
      "key", po::value(&o.key)->required(), "device key")(
      "tls", po::value(&o.tls)->default_value("1.3"), "TLS version: 1.2 or 1.3")(
      "concurrency", po::value(&o.concurrency)->default_value(16),
      "handshakes: connections in flight")("duration", po::value(&o.duration)->default_value(5),
                                           "handshakes: seconds to run")(
      "target", po::value(&o.target)->default_value(o.target),
      "handshakes: the CONNECT target sent after each handshake (one the rules refuse); \"\" "
      "sends GET / HTTP/1.0 instead")("megabytes", po::value(&o.megabytes)->default_value(256),
                                      "throughput: MB each way")(
      "direction", po::value(&o.direction)->default_value("both"), "throughput: up, down or both");
  po::options_description hidden;
  std::string mode;
  hidden.add_options()("mode", po::value(&mode));
  po::positional_options_description pos;
  pos.add("mode", 1);
  po::options_description all;
  all.add(desc).add(hidden);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    if (vm.count("help") != 0 || argc == 1) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    if (o.tls != "1.2" && o.tls != "1.3") throw std::runtime_error("--tls must be 1.2 or 1.3");
    if (o.direction != "up" && o.direction != "down" && o.direction != "both")
      throw std::runtime_error("--direction must be up, down or both");
    if (mode == "handshakes") return run_handshakes(o);
    if (mode == "throughput") return run_throughput(o);
    if (mode == "baseline-server") return run_baseline_server(o);
    throw std::runtime_error("the mode must be 'handshakes', 'throughput' or 'baseline-server'");
  } catch (const std::exception& e) {
    std::cerr << "tunnel-bench: " << e.what() << "\n";
    return 2;
  }
}
