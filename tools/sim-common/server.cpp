// The simulators' HTTPS server: accept loop, one coroutine per connection, routing between the
// simulator's API and the /_sim/ admin endpoints, injected faults, statistics.
#include <chrono>
#include <exception>
#include <iostream>

#include "sim-common/sim_common.hpp"

namespace sim {

namespace {

constexpr auto io_timeout = std::chrono::seconds(30);
constexpr std::uint64_t body_limit = std::uint64_t{4} * 1024 * 1024;

std::function<void(std::exception_ptr)> report(std::string name, std::string what) {
  return [name = std::move(name), what = std::move(what)](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::cerr << name << ": " << what << " failed: " << x.what() << "\n";
    }
  };
}

tcp::endpoint parse_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("--listen must be IP:PORT");
  auto host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  const auto addr = net::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("--listen: not an IP address: " + host);
  int port = -1;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw std::runtime_error("--listen: bad port in " + listen);
  return {addr, static_cast<unsigned short>(port)};
}

}  // namespace

json fault::to_json() const {
  return {{"fault", kind}, {"status", status}, {"count", count}, {"reset_in", reset_in}};
}

server::server(server_options o, routes r) : opt_(std::move(o)), routes_(std::move(r)) {
  tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  tls_.use_certificate_chain_file(opt_.cert);
  tls_.use_private_key_file(opt_.key, ssl::context::pem);
  const auto ep = parse_listen(opt_.listen);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen();
}

unsigned short server::port() const {
  return acceptor_.local_endpoint().port();
}

std::string server::base_url() const {
  const auto addr = acceptor_.local_endpoint().address();
  const auto host = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
  return "https://" + host + ":" + std::to_string(port());
}

void server::run() {
  net::co_spawn(ioc_, accept_loop(this), report(opt_.name, "accept loop"));
  net::signal_set signals(ioc_, SIGTERM, SIGINT);
  signals.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) stop();
  });
  if (!opt_.port_file.empty()) write_file_atomic(opt_.port_file, std::to_string(port()) + "\n");
  std::cout << opt_.name << " listening on " << base_url() << std::endl;
  ioc_.run();
}

void server::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (auto* s : open_)
    s->close();
}

response server::json_reply(unsigned status, const json& body,
                            std::string_view content_type) const {
  response res{static_cast<http::status>(status), 11};
  res.set(http::field::server, opt_.name);
  res.set(http::field::content_type, std::string(content_type));
  res.body() = body.dump();
  return res;
}

response server::text_reply(unsigned status, std::string body) const {
  response res{static_cast<http::status>(status), 11};
  res.set(http::field::server, opt_.name);
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

net::awaitable<void> server::accept_loop(server* self) {
  while (!self->stopped_) {
    tcp::socket socket(self->ioc_);
    boost::system::error_code ec;
    co_await self->acceptor_.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
    if (ec || self->stopped_) continue;
    net::co_spawn(self->ioc_, connection(self, std::move(socket)),
                  report(self->opt_.name, "connection"));
  }
}

// Every object with a destructor lives at function scope: GCC 12 destroyed block-scoped ones
// alive across a co_await twice in this code base.
net::awaitable<void> server::connection(server* self, tcp::socket socket) {
  boost::system::error_code ec;
  auto peer_addr = socket.remote_endpoint(ec).address();
  if (peer_addr.is_v6() && peer_addr.to_v6().is_v4_mapped()) {
    peer_addr = net::ip::make_address_v4(net::ip::v4_mapped, peer_addr.to_v6());
  }
  const std::string peer = peer_addr.to_string();
  beast::tcp_stream tcp_stream(std::move(socket));
  self->open_.insert(&tcp_stream);
  beast::ssl_stream<beast::tcp_stream&> stream(tcp_stream, self->tls_);
  beast::flat_buffer buffer;
  request req;
  response res;
  std::optional<http::request_parser<http::string_body>> parser;
  tcp_stream.expires_after(io_timeout);
  co_await stream.async_handshake(ssl::stream_base::server,
                                  net::redirect_error(net::use_awaitable, ec));
  while (!ec && !self->stopped_) {
    parser.emplace();
    parser->body_limit(body_limit);
    tcp_stream.expires_after(io_timeout);
    co_await http::async_read(stream, buffer, *parser, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        res = self->json_reply(413, {{"error", "request too large"}});
        res.keep_alive(false);
        res.prepare_payload();
        tcp_stream.expires_after(io_timeout);
        co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      }
      break;
    }
    req = parser->release();
    try {
      res = self->dispatch(req, peer);
    } catch (const std::exception& e) {
      std::cerr << self->opt_.name << ": " << req.method_string() << " " << req.target() << ": "
                << e.what() << "\n";
      res = self->json_reply(500, {{"error", "simulator error"}, {"detail", e.what()}});
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    tcp_stream.expires_after(io_timeout);
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
    if (!res.keep_alive()) break;
  }
  self->open_.erase(&tcp_stream);
  tcp_stream.close();
}

response server::dispatch(const request& req, const std::string& peer) {
  const std::string target(req.target());
  const auto q = target.find('?');
  const exchange x{req, std::string(req.method_string()), target.substr(0, q),
                   q == std::string::npos ? std::string() : target.substr(q + 1), peer};
  if (x.path.rfind("/_sim/", 0) == 0) {
    if (auto res = common_admin(x)) return std::move(*res);
    if (routes_.admin) {
      if (auto res = routes_.admin(x)) return std::move(*res);
    }
    return json_reply(404, {{"error", "unknown admin endpoint " + x.path}});
  }
  ++counts_[x.method + " " + x.path];
  ++total_;
  if (fault_.kind != "none" && (!routes_.faultable || routes_.faultable(x))) {
    const auto f = fault_;
    if (fault_.count > 0 && --fault_.count == 0) fault_ = {};
    if (f.kind == "garbage") {
      response res{http::status::ok, 11};
      res.set(http::field::server, opt_.name);
      res.set(http::field::content_type, "application/json");
      res.body() = "<html>\x01\x02 not json {";
      return res;
    }
    return routes_.fault_reply(x, f);
  }
  return routes_.api(x);
}

std::optional<response> server::common_admin(const exchange& x) {
  const auto m = x.req.method();
  if (x.path == "/_sim/stats") {
    if (m == http::verb::delete_ || m == http::verb::post) {
      counts_.clear();
      total_ = 0;
    } else if (m != http::verb::get) {
      return json_reply(405, {{"error", "use GET or DELETE"}});
    }
    return json_reply(200, {{"requests", counts_}, {"total", total_}});
  }
  if (x.path != "/_sim/faults") return std::nullopt;
  if (m == http::verb::delete_) {
    fault_ = {};
  } else if (m == http::verb::post) {
    const auto body = json::parse(x.req.body(), nullptr, false);
    if (!body.is_object()) return json_reply(400, {{"error", "expected a JSON object"}});
    fault f;
    try {
      f.kind = body.value("fault", std::string("none"));
      f.status = body.value("status", 500U);
      f.count = body.value("count", 0L);
      // uem-sim calls it retry_after; accept both.
      f.reset_in = body.value("reset_in", body.value("retry_after", 60L));
    } catch (const json::exception& e) {
      return json_reply(400, {{"error", std::string("bad fault: ") + e.what()}});
    }
    if (f.kind != "none" && f.kind != "status" && f.kind != "rate_limit" && f.kind != "garbage") {
      return json_reply(400, {{"error", "unknown fault " + f.kind}});
    }
    if (f.status < 100 || f.status > 599 || f.count < 0 || f.reset_in < 0) {
      return json_reply(400, {{"error", "status must be 100-599, count and reset_in >= 0"}});
    }
    fault_ = f;
  } else if (m != http::verb::get) {
    return json_reply(405, {{"error", "use GET, POST or DELETE"}});
  }
  return json_reply(200, fault_.to_json());
}

}  // namespace sim
