// The webhook listener for UEM Event Notifications: HTTP or HTTPS, Basic auth, one named
// coroutine per connection, limits on header and body, a timeout before every read and write.
#include <spdlog/spdlog.h>

#include <set>
#include <sstream>

#include "uem/internal.hpp"
#include "uem/net.hpp"

namespace tunnelgate::uem::detail {

namespace {

constexpr auto io_timeout = std::chrono::seconds(15);
constexpr std::size_t header_limit = std::size_t{8} * 1024;

class server final : public webhook_server, public std::enable_shared_from_this<server> {
 public:
  server(const webhook_config& cfg, const net::any_io_executor& ex, webhook_handlers h)
      : cfg_(cfg), ex_(ex), acceptor_(ex), handlers_(std::move(h)) {
    if (!cfg_.tls_cert.empty()) {
      tls_.emplace(ssl::context::tls_server);
      tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      boost::system::error_code ec;
      tls_->use_certificate_chain_file(cfg_.tls_cert.string(), ec);
      if (ec) {
        throw std::system_error(make_error_code(errc::file_unreadable),
                                "uem.webhook.tls.cert " + cfg_.tls_cert.string() +
                                    ": cannot load a PEM certificate chain: " + ec.message());
      }
      tls_->use_private_key_file(cfg_.tls_key.string(), ssl::context::pem, ec);
      if (ec) {
        throw std::system_error(make_error_code(errc::file_unreadable),
                                "uem.webhook.tls.key " + cfg_.tls_key.string() +
                                    ": cannot load the PEM private key (or it does not match "
                                    "the certificate): " +
                                    ec.message());
      }
    }
    boost::system::error_code ec;
    acceptor_.open(cfg_.listen.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(cfg_.listen, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      std::ostringstream where;
      where << cfg_.listen;
      throw std::system_error(ec, "uem.webhook.listen " + where.str() +
                                      ": cannot listen (address not local, or port in use)");
    }
    local_ = acceptor_.local_endpoint();
  }

  void start() {
    net::co_spawn(ex_, accept_loop(shared_from_this()), [](const std::exception_ptr& e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        spdlog::error("uem webhook: accept loop failed: {}", x.what());
      }
    });
    std::ostringstream where;
    where << local_;
    spdlog::info("uem webhook: listening on {}://{}", tls_ ? "https" : "http", where.str());
  }

  tcp::endpoint local_endpoint() const override { return local_; }

  void stop() override {
    stopped_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto* s : open_)
      s->close();
  }

 private:
  static net::awaitable<void> accept_loop(std::shared_ptr<server> self) {
    while (!self->stopped_) {
      boost::system::error_code ec;
      tcp::socket socket(self->ex_);
      co_await self->acceptor_.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
      if (self->stopped_) break;
      if (ec) {
        spdlog::warn("uem webhook: accept failed: {}", ec.message());
        continue;
      }
      net::co_spawn(self->ex_, connection(self, std::move(socket)),
                    [](const std::exception_ptr& e) {
                      if (!e) return;
                      try {
                        std::rethrow_exception(e);
                      } catch (const std::exception& x) {
                        spdlog::error("uem webhook: connection failed: {}", x.what());
                      }
                    });
    }
  }

  /// One connection (STYLE: named coroutine, by-value parameters).
  static net::awaitable<void> connection(std::shared_ptr<server> self, tcp::socket socket) {
    boost::system::error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    beast::tcp_stream stream(std::move(socket));
    self->open_.insert(&stream);
    if (self->tls_) {
      beast::ssl_stream<beast::tcp_stream&> tls(stream, *self->tls_);
      stream.expires_after(io_timeout);
      co_await tls.async_handshake(ssl::stream_base::server,
                                   net::redirect_error(net::use_awaitable, ec));
      if (!ec) co_await self->serve(tls, peer);
      if (!ec && !self->stopped_) {
        stream.expires_after(std::chrono::seconds(2));
        co_await tls.async_shutdown(net::redirect_error(net::use_awaitable, ec));
      }
    } else {
      co_await self->serve(stream, peer);
    }
    self->open_.erase(&stream);
    stream.close();
  }

  template <class Stream>
  net::awaitable<void> serve(Stream& stream, tcp::endpoint peer) {
    auto& layer = beast::get_lowest_layer(stream);
    beast::flat_buffer buffer;
    for (;;) {
      boost::system::error_code ec;
      http::request_parser<http::string_body> parser;
      parser.header_limit(header_limit);
      parser.body_limit(cfg_.max_body);
      layer.expires_after(io_timeout);
      co_await http::async_read_header(stream, buffer, parser,
                                       net::redirect_error(net::use_awaitable, ec));
      // A Content-Length above the limit fails already here, with the header parsed.
      const bool too_big = ec == http::error::body_limit;
      if (ec && !too_big) co_return;  // closed, timed out or garbage: nothing to answer
      http::response<http::string_body> res{http::status::ok, parser.get().version()};
      res.set(http::field::server, "tunnelgate");
      res.set(http::field::content_type, "application/json");
      bool close = false;
      if (!authorized(parser.get())) {
        res.result(http::status::unauthorized);
        res.set(http::field::www_authenticate, "Basic realm=\"tunnelgate uem webhook\"");
        res.body() = R"({"error":"unauthorized"})";
        log_refusal(peer, 401, "missing or wrong Basic credentials");
        close = true;
      } else if (too_big) {
        res.result(http::status::payload_too_large);
        res.body() = R"({"error":"body too large"})";
        log_refusal(
            peer, 413,
            "body above uem.webhook.max_body (" + std::to_string(cfg_.max_body) + " bytes)");
        close = true;
      } else if (parser.get().method() == http::verb::get) {
        res.body() = R"({"status":"ok"})";  // the console's "Test Connection"
      } else if (parser.get().method() != http::verb::post) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, POST");
        res.body() = R"({"error":"method not allowed"})";
        log_refusal(peer, 405, "method " + std::string(parser.get().method_string()));
        close = true;
      } else {
        layer.expires_after(io_timeout);
        co_await http::async_read(stream, buffer, parser,
                                  net::redirect_error(net::use_awaitable, ec));
        if (ec == http::error::body_limit) {
          res.result(http::status::payload_too_large);
          res.body() = R"({"error":"body too large"})";
          log_refusal(
              peer, 413,
              "body above uem.webhook.max_body (" + std::to_string(cfg_.max_body) + " bytes)");
          close = true;
        } else if (ec) {
          co_return;
        } else {
          auto parsed = parse_webhook(parser.get().body());
          if (!parsed.event) {
            res.result(http::status::bad_request);
            res.body() = nlohmann_free_error(parsed.error);
            log_refusal(peer, 400, parsed.error);
          } else {
            const bool fresh = handlers_.on_event(*parsed.event);
            res.body() = fresh ? R"({"status":"accepted"})" : R"({"status":"duplicate"})";
          }
        }
      }
      res.keep_alive(!close && parser.get().keep_alive());
      res.prepare_payload();
      layer.expires_after(io_timeout);
      co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      if (ec || stopped_) co_return;
      if (!res.keep_alive()) {
        if (close) co_await drain(stream);
        co_return;
      }
    }
  }

  /// After refusing a request whose body we did not read, half-close and discard what the
  /// client still sends (bounded), so closing does not reset the connection before the client
  /// has read our answer.
  template <class Stream>
  net::awaitable<void> drain(Stream& stream) {
    auto& layer = beast::get_lowest_layer(stream);
    boost::system::error_code ec;
    layer.socket().shutdown(tcp::socket::shutdown_send, ec);
    char scratch[4096];
    std::size_t total = 0;
    while (!ec && total < std::size_t{1024} * 1024) {
      layer.expires_after(std::chrono::seconds(1));
      total += co_await layer.async_read_some(net::buffer(scratch),
                                              net::redirect_error(net::use_awaitable, ec));
    }
  }

  /// {"error": "..."} with the message escaped by hand (no JSON library in this TU).
  static std::string nlohmann_free_error(std::string_view msg) {
    std::string out = R"({"error":")";
    for (char c : msg) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) {
        out += c;
      }
    }
    return out + "\"}";
  }

  void log_refusal(const tcp::endpoint& peer, int status, const std::string& why) {
    if (handlers_.on_rejected) handlers_.on_rejected();
    std::ostringstream p;
    p << peer;
    spdlog::warn("uem webhook: {} to {}: {}", status, p.str(), why);
  }

  bool authorized(const http::request<http::string_body>& req) const {
    const auto it = req.find(http::field::authorization);
    if (it == req.end()) return false;
    const std::string_view v(it->value().data(), it->value().size());
    if (v.size() < 6 || !iequals(v.substr(0, 6), "Basic ")) return false;
    const auto maybe = base64_decode(v.substr(6));
    if (!maybe) return false;
    const auto& decoded = *maybe;
    const auto colon = decoded.find(':');
    if (colon == std::string::npos) return false;
    // Both comparisons always run, in constant time, so timing tells nothing about which
    // part was wrong.
    const bool user_ok = constant_time_equal(decoded.substr(0, colon), cfg_.username);
    const bool pass_ok = constant_time_equal(decoded.substr(colon + 1), cfg_.password.reveal());
    return user_ok & pass_ok;
  }

  const webhook_config cfg_;
  net::any_io_executor ex_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_;
  webhook_handlers handlers_;
  tcp::endpoint local_;
  std::set<beast::tcp_stream*> open_;  // live connections, closed by stop()
  bool stopped_ = false;
};

}  // namespace

std::shared_ptr<webhook_server> start_webhook_server(const webhook_config& cfg,
                                                     const net::any_io_executor& ex,
                                                     webhook_handlers handlers) {
  auto s = std::make_shared<server>(cfg, ex, std::move(handlers));
  s->start();
  return s;
}

}  // namespace tunnelgate::uem::detail
