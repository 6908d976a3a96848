// The pieces every mode shares: addresses, the client side of a tunnel, the guard timer.
#include <netinet/in.h>
#include <sys/socket.h>

#include <stdexcept>

#include "bench.hpp"

namespace bench {

tcp::endpoint parse_endpoint(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("'" + s + "': expected ADDRESS:PORT");
  auto host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  error_code ec;
  const auto addr = net::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("'" + s + "': '" + host + "' is not an IP address");
  unsigned long port = 0;
  try {
    port = std::stoul(s.substr(colon + 1));
  } catch (const std::logic_error&) {
    port = 70000;
  }
  if (port > 65535) throw std::runtime_error("'" + s + "': bad port");
  return {addr, static_cast<unsigned short>(port)};
}

source_pool::source_pool(const std::string& cidr, std::size_t limit) {
  if (cidr.empty()) return;
  const auto slash = cidr.find('/');
  error_code ec;
  const auto addr = net::ip::make_address_v4(cidr.substr(0, slash), ec);
  int bits = 32;
  if (slash != std::string::npos) {
    try {
      bits = std::stoi(cidr.substr(slash + 1));
    } catch (const std::logic_error&) {
      bits = -1;
    }
  }
  if (ec || bits < 8 || bits > 32)
    throw std::runtime_error("--sources '" + cidr +
                             "': expected an IPv4 CIDR such as 127.1.0.0/16");
  const std::uint32_t mask = bits == 32 ? 0xffffffffU : ~((1U << (32 - bits)) - 1);
  const std::uint32_t net_addr = addr.to_uint() & mask;
  if (bits >= 31) {
    first_ = addr.to_uint();
    count_ = 1;
  } else {
    first_ = net_addr + 1;  // skip the network and broadcast addresses
    count_ = (std::size_t{1} << (32 - bits)) - 2;
  }
  if (limit > 0 && count_ > limit) count_ = limit;
}

std::optional<net::ip::address> source_pool::next() {
  if (count_ == 0) return std::nullopt;
  const auto a = net::ip::address_v4(first_ + static_cast<std::uint32_t>(next_));
  next_ = (next_ + 1) % count_;
  return net::ip::address(a);
}

ssl::context make_client_context(const options& o, bool resumption) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(o.ca);
  if (!o.cert.empty()) ctx.use_certificate_chain_file(o.cert);
  if (!o.key.empty()) ctx.use_private_key_file(o.key, ssl::context::pem);
  ctx.set_verify_mode(ssl::verify_peer);
  const int v = o.tls == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  SSL_CTX_set_min_proto_version(ctx.native_handle(), v);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), v);
  // Idle tunnels (hold, revoke) give their 16 KiB record buffers back to the allocator.
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (resumption) {
    // The driver keeps the session itself (SSL_get1_session / SSL_set_session). No client
    // cache: closing without close_notify would remove the session from it, and removal marks
    // the very session we hold as not resumable.
    SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  } else {
    // Every connection is a full handshake: no tickets, no client-side session cache.
    SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
  }
  return ctx;
}

std::string connect_request(const std::string& origin) {
  return "CONNECT " + origin + " HTTP/1.1\r\nHost: " + origin + "\r\n\r\n";
}

std::string get_request(const std::string& origin, bool close) {
  return "GET / HTTP/1.1\r\nHost: " + origin +
         "\r\nConnection: " + (close ? "close" : "keep-alive") + "\r\n\r\n";
}

namespace detail {

void parse_head(std::string_view head, int& status, long long& content_length) {
  status = 0;
  content_length = -1;
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return;
  const auto sp = head.find(' ');
  if (sp == std::string_view::npos || sp + 4 > head.size()) return;
  int code = 0;
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    if (head[i] < '0' || head[i] > '9') return;
    code = code * 10 + (head[i] - '0');
  }
  status = code;
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const auto end = head.find("\r\n", pos + 2);
    const auto line =
        head.substr(pos + 2, end == std::string_view::npos ? head.npos : end - pos - 2);
    constexpr std::string_view name = "content-length:";
    if (line.size() > name.size()) {
      bool match = true;
      for (std::size_t i = 0; i < name.size() && match; ++i)
        match = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i]))) == name[i];
      if (match) {
        long long v = 0;
        for (char c : line.substr(name.size())) {
          if (c >= '0' && c <= '9') v = v * 10 + (c - '0');
        }
        content_length = v;
      }
    }
    pos = end;
  }
}

}  // namespace detail

net::awaitable<failure> open_tunnel(tls_stream& s, tcp::endpoint to,
                                    std::optional<net::ip::address> from,
                                    const std::string& connect_req, std::string& buf) {
  error_code ec;
  auto& sock = s.next_layer();
  sock.open(to.protocol(), ec);
  if (ec) co_return "socket: " + ec.message();
  if (from) {
    // The port is chosen at connect() with the whole 4-tuple, not at bind(): many connections
    // from one source address then share ports towards different servers.
    const int one = 1;
    (void)::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sock.bind(tcp::endpoint(*from, 0), ec);
    if (ec) co_return "bind: " + ec.message();
  }
  co_await sock.async_connect(to, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return "connect: " + ec.message();
  sock.set_option(tcp::no_delay(true), ec);
  co_await s.async_handshake(ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return "handshake: " + ec.message();
  if (connect_req.empty()) co_return "";
  co_await net::async_write(s, net::buffer(connect_req),
                            net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return "CONNECT write: " + ec.message();
  http_answer a;
  auto f = co_await read_answer(s, buf, a);
  if (!f.empty()) co_return "CONNECT " + f;
  if (a.status != 200) co_return "CONNECT answered " + std::to_string(a.status);
  co_return "";
}

guard::guard(const net::any_io_executor& ex, tcp::socket& s, clock_type::duration limit)
    : timer_(ex, limit), state_(std::make_shared<state>()) {
  timer_.async_wait([&s, st = state_](error_code ec) {
    // After the guard is gone `s` may be gone too (the expiry may have been queued already).
    if (ec || st->done) return;
    st->fired = true;
    s.close(ec);
  });
}

guard::~guard() {
  state_->done = true;
  try {
    timer_.cancel();
  } catch (const boost::system::system_error&) {
    // Nothing to cancel then; `done` keeps the handler off the socket anyway.
  }
}

}  // namespace bench
