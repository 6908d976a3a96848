// The webhook listener for UEM Event Notifications: HTTP or HTTPS, Basic auth, one named
// coroutine per connection, a cap on connections, limits on header and body, and a deadline on
// every await on the peer: each request (handshake, header, body) is bounded in total, not per
// read, and so is the drain after an error. Runs on its own thread (the service's webhook
// executor); events go to the worker through webhook_handlers::on_event.
#include <spdlog/spdlog.h>

#include <array>
#include <set>
#include <sstream>

#include "uem/internal.hpp"
#include "uem/net.hpp"

namespace tunnelgate::uem::detail {

namespace {

constexpr std::size_t header_limit = std::size_t{8} * 1024;
/// After an answer that closes the connection: how long (in total) and how much we read and
/// discard so the client sees the answer instead of a reset.
constexpr auto drain_time = std::chrono::seconds(2);
constexpr std::size_t drain_limit = std::size_t{1024} * 1024;
constexpr auto tls_shutdown_time = std::chrono::seconds(2);
/// A burst of refused connections logs one line per this interval.
constexpr auto refusal_log_interval = std::chrono::seconds(10);

/// How one request ended, and so what the connection does next.
enum class step : std::uint8_t {
  next,    ///< answered; the connection stays open for the next request
  close,   ///< answered; close now
  drain,   ///< answered a refusal; discard what the client still sends, then close
  broken,  ///< read or write failed (closed, timed out, garbage): close without more ado
};

std::string endpoint_text(const tcp::endpoint& ep) {
  std::ostringstream s;
  s << ep;
  return s.str();
}

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
      throw std::system_error(ec, "uem.webhook.listen " + endpoint_text(cfg_.listen) +
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
    spdlog::info("uem webhook: listening on {}://{} (at most {} connections)",
                 tls_ ? "https" : "http", endpoint_text(local_), cfg_.max_connections);
    if (!tls_ && !local_.address().is_loopback()) {
      spdlog::warn(
          "uem webhook: plain HTTP on {} (uem.webhook.allow_plain_http): the UEM's Basic "
          "credentials cross the network in clear text",
          endpoint_text(local_));
    }
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
  /// Keeps a connection in open_ (for stop()) and in the count for exactly the life of its
  /// coroutine frame, also when it ends by an exception.
  class registration {
   public:
    registration(server& s, beast::tcp_stream& stream) : s_(s), stream_(stream) {
      s_.open_.insert(&stream_);
    }
    ~registration() {
      s_.open_.erase(&stream_);
      --s_.connections_;
    }
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;

   private:
    server& s_;
    beast::tcp_stream& stream_;
  };

  static net::awaitable<void> accept_loop(std::shared_ptr<server> self) {
    net::steady_timer pause(self->ex_);
    while (!self->stopped_) {
      boost::system::error_code ec;
      tcp::socket socket(self->ex_);
      co_await self->acceptor_.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
      if (self->stopped_) break;
      if (ec) {
        // E.g. out of file descriptors: do not spin on the error.
        spdlog::warn("uem webhook: accept failed: {}", ec.message());
        pause.expires_after(std::chrono::milliseconds(100));
        co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
        continue;
      }
      if (self->connections_ >= self->cfg_.max_connections) {
        self->refuse(socket);
        continue;
      }
      ++self->connections_;  // released by the connection's registration
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

  /// Over the cap: closed at once, before reading a byte or starting TLS.
  void refuse(tcp::socket& socket) {
    if (handlers_.on_refused_connection) handlers_.on_refused_connection();
    ++refused_since_log_;
    const auto now = clock_type::now();
    if (now >= next_refusal_log_) {
      boost::system::error_code ec;
      const auto peer = socket.remote_endpoint(ec);
      spdlog::warn(
          "uem webhook: {} connection(s) refused, the last from {}: {} open "
          "(uem.webhook.max_connections)",
          refused_since_log_, ec ? std::string("?") : endpoint_text(peer), cfg_.max_connections);
      refused_since_log_ = 0;
      next_refusal_log_ = now + refusal_log_interval;
    }
    boost::system::error_code ignored;
    socket.close(ignored);
  }

  /// One connection (STYLE: named coroutine, by-value parameters; every object that lives
  /// across an await is at function scope).
  static net::awaitable<void> connection(std::shared_ptr<server> self, tcp::socket socket) {
    boost::system::error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    beast::tcp_stream stream(std::move(socket));
    const registration reg(*self, stream);
    std::optional<beast::ssl_stream<beast::tcp_stream&>> tls;
    // The first request's deadline covers the TLS handshake too.
    const auto deadline = clock_type::now() + self->cfg_.request_timeout;
    if (self->tls_) {
      tls.emplace(stream, *self->tls_);
      stream.expires_at(deadline);
      co_await tls->async_handshake(ssl::stream_base::server,
                                    net::redirect_error(net::use_awaitable, ec));
      bool orderly = false;
      if (!ec) orderly = co_await self->serve(*tls, peer, deadline);
      if (orderly && !self->stopped_) {
        stream.expires_after(tls_shutdown_time);
        co_await tls->async_shutdown(net::redirect_error(net::use_awaitable, ec));
      }
    } else {
      co_await self->serve(stream, peer, deadline);
    }
    stream.close();
  }

  /// Requests on one connection until it closes. True when it ended in order (an answer
  /// that closes it), so a TLS shutdown is worth trying.
  template <class Stream>
  net::awaitable<bool> serve(Stream& stream, tcp::endpoint peer, clock_type::time_point deadline) {
    beast::flat_buffer buffer;
    auto last = step::next;
    while (last == step::next && !stopped_) {
      last = co_await one_request(stream, buffer, peer, deadline);
      // A kept-alive connection: the wait for the next request counts towards its bound.
      deadline = clock_type::now() + cfg_.request_timeout;
    }
    if (last == step::drain) co_await drain(stream);
    co_return last == step::close;
  }

  /// Reads one request (header and body together before `deadline`, however slowly the bytes
  /// come), acts on it and writes the answer.
  template <class Stream>
  net::awaitable<step> one_request(Stream& stream, beast::flat_buffer& buffer, tcp::endpoint peer,
                                   clock_type::time_point deadline) {
    auto& layer = beast::get_lowest_layer(stream);
    boost::system::error_code ec;
    http::request_parser<http::string_body> parser;
    http::response<http::string_body> res;
    webhook_result parsed;
    event_outcome outcome = event_outcome::failed;
    bool close = false;
    parser.header_limit(header_limit);
    parser.body_limit(cfg_.max_body);
    layer.expires_at(deadline);
    co_await http::async_read_header(stream, buffer, parser,
                                     net::redirect_error(net::use_awaitable, ec));
    // A Content-Length above the limit fails already here, with the header parsed.
    const bool too_big = ec == http::error::body_limit;
    if (ec && !too_big) co_return step::broken;  // closed, timed out or garbage: no answer
    res.version(parser.get().version());
    res.result(http::status::ok);
    res.set(http::field::server, "tunnelgate");
    res.set(http::field::content_type, "application/json");
    const auto method = parser.get().method();
    if (!authorized(parser.get())) {
      res.result(http::status::unauthorized);
      res.set(http::field::www_authenticate, "Basic realm=\"tunnelgate uem webhook\"");
      res.body() = R"({"error":"unauthorized"})";
      log_refusal(peer, 401, "missing or wrong Basic credentials");
      close = true;
    } else if (too_big) {
      too_large(res, peer);
      close = true;
    } else if (method == http::verb::get) {
      res.body() = R"({"status":"ok"})";  // the console's "Test Connection"
    } else if (method != http::verb::post) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET, POST");
      res.body() = R"({"error":"method not allowed"})";
      log_refusal(peer, 405, "method " + std::string(parser.get().method_string()));
      close = true;
    } else {
      layer.expires_at(deadline);  // the same bound as the header: the request in total
      co_await http::async_read(stream, buffer, parser,
                                net::redirect_error(net::use_awaitable, ec));
      if (ec == http::error::body_limit) {
        too_large(res, peer);
        close = true;
      } else if (ec) {
        co_return step::broken;
      } else {
        parsed = parse_webhook(parser.get().body());
        if (!parsed.event) {
          res.result(http::status::bad_request);
          res.body() = nlohmann_free_error(parsed.error);
          log_refusal(peer, 400, parsed.error);
        } else {
          parsed.event->received = clock_type::now();
          // The worker re-reads the device; meanwhile this connection holds no thread.
          outcome = co_await dispatch(std::move(*parsed.event));
          answer(res, outcome);
        }
      }
    }
    res.keep_alive(!close && parser.get().keep_alive());
    res.prepare_payload();
    layer.expires_after(cfg_.request_timeout);
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
    if (ec || stopped_) co_return step::broken;
    if (res.keep_alive()) co_return step::next;
    co_return close ? step::drain : step::close;
  }

  /// Hands an event to the service and resumes here (on the listener's executor) with the
  /// outcome.
  struct event_initiation {
    server* self;
    template <class Handler>
    void operator()(Handler&& handler, webhook_event ev) const {
      using handler_type = std::decay_t<Handler>;
      auto h = std::make_shared<handler_type>(std::forward<Handler>(handler));
      // Tracked: the listener's io_context must not run out of work while the worker acts.
      auto ex = net::prefer(net::get_associated_executor(*h, self->ex_),
                            net::execution::outstanding_work.tracked);
      self->handlers_.on_event(std::move(ev), [h, ex](event_outcome o) {
        net::post(ex, [h, o]() mutable { (*h)(o); });
      });
    }
  };

  net::awaitable<event_outcome> dispatch(webhook_event ev) {
    auto outcome = co_await net::async_initiate<const net::use_awaitable_t<>&, void(event_outcome)>(
        event_initiation{this}, net::use_awaitable, std::move(ev));
    co_return outcome;
  }

  static void answer(http::response<http::string_body>& res, event_outcome outcome) {
    switch (outcome) {
      case event_outcome::acted:
        res.body() = R"({"status":"accepted"})";
        break;
      case event_outcome::ignored:
        res.body() = R"({"status":"ignored"})";
        break;
      case event_outcome::duplicate:
        res.body() = R"({"status":"duplicate"})";
        break;
      case event_outcome::failed:
        // Not remembered as seen: a retry of this event is acted on.
        res.result(http::status::service_unavailable);
        res.set(http::field::retry_after, "30");
        res.body() = R"({"error":"the device could not be re-read from the UEM; retry later"})";
        break;
    }
  }

  void too_large(http::response<http::string_body>& res, const tcp::endpoint& peer) {
    res.result(http::status::payload_too_large);
    res.body() = R"({"error":"body too large"})";
    log_refusal(peer, 413,
                "body above uem.webhook.max_body (" + std::to_string(cfg_.max_body) + " bytes)");
  }

  /// After refusing a request whose body we did not read, half-close and discard what the
  /// client still sends, so closing does not reset the connection before the client has read
  /// our answer. Bounded in total time and bytes, never per read: a client trickling a byte a
  /// second is cut off after drain_time like any other.
  template <class Stream>
  net::awaitable<void> drain(Stream& stream) {
    auto& layer = beast::get_lowest_layer(stream);
    boost::system::error_code ec;
    layer.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, 4096> scratch{};
    std::size_t total = 0;
    layer.expires_after(drain_time);
    while (!ec && total < drain_limit) {
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
    spdlog::warn("uem webhook: {} to {}: {}", status, endpoint_text(peer), why);
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

  // Everything below is used on the listener's executor only (one thread): no locks.
  const webhook_config cfg_;
  net::any_io_executor ex_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_;
  webhook_handlers handlers_;
  tcp::endpoint local_;
  std::set<beast::tcp_stream*> open_;  // live connections, closed by stop()
  std::size_t connections_ = 0;        // accepted and not yet ended; at most max_connections
  std::uint64_t refused_since_log_ = 0;
  clock_type::time_point next_refusal_log_{};
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
