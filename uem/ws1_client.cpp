// The `ws1` source: Workspace ONE UEM REST over HTTPS with Boost.Beast.
//
// Everything here runs on the service's worker thread (one io_context, one thread), so the
// connection pool, the token and the rate-limit state need no locks. Coroutines capture `this`
// as a raw pointer: the service joins the worker before destroying the source.
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <deque>
#include <nlohmann/json.hpp>
#include <set>

#include "uem/internal.hpp"
#include "uem/net.hpp"

namespace tunnelgate::uem::detail {

namespace {

using json = nlohmann::json;
using response = http::response<http::string_body>;
using request = http::request<http::string_body>;
using std::chrono::duration_cast;
using std::chrono::seconds;

constexpr std::size_t max_response_body = 1024 * 1024;

struct url_parts {
  std::string host;  // without brackets
  std::string port = "443";
  std::string path;  // prefix (base_url) or full path (token_url), no trailing '/'
  std::string host_header;
};

url_parts parse_https_url(const std::string& url) {
  url_parts u;
  std::string_view rest = std::string_view(url).substr(8);  // after https://
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  u.path = slash == std::string_view::npos ? std::string() : std::string(rest.substr(slash));
  u.host_header = std::string(authority);
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      u.port = std::string(authority.substr(close + 2));
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    u.port = std::string(authority.substr(colon + 1));
  } else {
    u.host = std::string(authority);
  }
  return u;
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct connection {
  connection(const net::any_io_executor& ex, ssl::context& tls) : stream(ex, tls) {}
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  bool reused = false;
};

/// One waiting coroutine: a timer used as an event (STYLE P4). `woken` tells a wake-up
/// (cancel) from the deadline.
struct waiter_event {
  explicit waiter_event(const net::any_io_executor& ex) : timer(ex) {}
  net::steady_timer timer;
  bool woken = false;
};

struct outcome {
  std::error_code error;
  std::string detail;
  response res;
};

class ws1_source final : public source {
 public:
  ws1_source(const ws1_config& cfg, net::any_io_executor ex)
      : cfg_(cfg),
        ex_(std::move(ex)),
        tls_(ssl::context::tls_client),
        base_(parse_https_url(cfg.base_url)) {
    tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    if (!cfg_.ca_file.empty()) {
      tls_.load_verify_file(cfg_.ca_file.string(), ec);
      if (ec) {
        throw std::system_error(make_error_code(errc::file_unreadable),
                                "uem.ws1.ca_file " + cfg_.ca_file.string() +
                                    ": cannot load a PEM CA bundle: " + ec.message());
      }
    } else {
      tls_.set_default_verify_paths(ec);
    }
    if (!cfg_.tls_verify) {
      spdlog::warn(
          "uem: ws1.tls_verify is false: the UEM server's certificate is NOT checked; anyone "
          "on the path can answer for the UEM. Use only in a lab.");
    }
    if (cfg_.auth == auth_kind::basic) {
      basic_ = "Basic " + base64_encode(cfg_.username + ":" + cfg_.password.reveal());
    } else {
      token_url_ = parse_https_url(cfg_.token_url);
    }
  }

  std::string_view name() const override { return "ws1"; }

  void stop() override {
    stopped_ = true;
    for (auto* c : active_)
      beast::get_lowest_layer(c->stream).close();
    idle_.clear();
    for (auto& w : conn_waiters_) {
      w->woken = true;
      w->timer.cancel();
    }
    conn_waiters_.clear();
    for (auto& w : token_waiters_) {
      w->woken = true;
      w->timer.cancel();
    }
    token_waiters_.clear();
  }

  net::awaitable<fetch_result> fetch(device_key key) override {
    fetch_result r;
    std::string target = base_.path + "/API/mdm/devices";
    switch (key.kind) {
      case key_kind::udid:
        target += "?searchby=Udid&id=" + url_encode(key.value);
        break;
      case key_kind::serial:
        target += "?searchby=Serialnumber&id=" + url_encode(key.value);
        break;
      case key_kind::device_id:
        target += "/" + url_encode(key.value);
        break;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (stopped_) {
        r.error = make_error_code(errc::stopped);
        co_return r;
      }
      const auto now = clock_type::now();
      if (now < blocked_until_) {
        r.error = make_error_code(errc::rate_limited);
        r.detail = "the UEM rate limit is exhausted; backing off for another " +
                   std::to_string(duration_cast<seconds>(blocked_until_ - now).count() + 1) + " s";
        co_return r;
      }
      request req{http::verb::get, target, 11};
      req.set(http::field::host, base_.host_header);
      req.set(http::field::user_agent, "tunnelgate-uem/0.1");
      req.set(http::field::accept, "application/json;version=" + std::to_string(cfg_.api_version));
      req.set("aw-tenant-code", cfg_.tenant_code.reveal());
      std::uint64_t used_gen = 0;
      if (cfg_.auth == auth_kind::basic) {
        req.set(http::field::authorization, basic_);
      } else {
        auto tok = co_await bearer();
        if (tok.error) {
          r.error = tok.error;
          r.detail = tok.detail;
          co_return r;
        }
        used_gen = token_gen_;
        req.set(http::field::authorization, "Bearer " + token_);
      }
      auto o = co_await exchange(req);
      if (o.error) {
        r.error = o.error;
        r.detail = o.detail;
        co_return r;
      }
      note_rate_limit(o.res);
      const auto status = o.res.result_int();
      if (status == 200) {
        auto rec = parse_device_record(o.res.body());
        if (!rec.record) {
          r.error = make_error_code(errc::bad_response);
          r.detail = "the UEM's answer for " + key.to_string() + " is not a valid device record (" +
                     rec.error + ")";
        } else if (key.kind != key_kind::device_id && !matches(*rec.record, key)) {
          r.error = make_error_code(errc::bad_response);
          r.detail = "the UEM answered a lookup of " + key.to_string() + " with a different device";
        } else {
          r.device = std::move(rec.record);
        }
        co_return r;
      }
      if (status == 404) co_return r;  // unknown device
      if ((status == 401 || status == 403) && cfg_.auth == auth_kind::oauth && attempt == 0) {
        // The token may have been revoked or expired early. Only a refusal of the current
        // token marks it for refresh: requests that were sent with it at the same time and
        // are refused after a new one arrived retry with that one, and those refused while
        // the refresh runs wait for it (bearer()), so a burst of 401s costs one token request.
        if (token_gen_ == used_gen) token_refresh_at_ = {};
        continue;
      }
      r.error = status == 401 || status == 403 ? make_error_code(errc::unauthorized)
                : status == 429                ? make_error_code(errc::rate_limited)
                                               : make_error_code(errc::server_error);
      if (status == 401 || status == 403) {
        r.detail = "the UEM answered " + std::to_string(status) +
                   ": check uem.ws1.auth and tenant_code_file (the REST API key)";
      } else if (status == 429) {
        backoff_after_429(o.res);
        r.detail =
            "the UEM answered 429 (rate limited); backing off for " +
            std::to_string(duration_cast<seconds>(blocked_until_ - clock_type::now()).count() + 1) +
            " s";
      } else {
        r.detail = "the UEM answered HTTP " + std::to_string(status);
      }
      co_return r;
    }
    r.error = make_error_code(errc::unauthorized);
    r.detail = "the UEM refused a freshly fetched OAuth token: check the client's role in the UEM";
    co_return r;
  }

 private:
  struct token_outcome {
    std::error_code error;
    std::string detail;
  };

  /// X-RateLimit-Remaining: 0 means the next request would be refused: wait for the reset.
  void note_rate_limit(const response& res) {
    const auto rem = res.find("X-RateLimit-Remaining");
    if (rem == res.end() || rem->value() != "0" || res.result_int() == 429) return;
    backoff_after_429(res);
  }

  /// Retry-After (seconds) wins; else X-RateLimit-Reset (epoch seconds); else 30 s. Bounded
  /// to [1 s, 10 min] so a bad header can neither hammer the UEM nor lock us out for long.
  void backoff_after_429(const response& res) {
    long long wait = 30;
    auto number = [](beast::string_view bv, long long& out) {
      const std::string_view v(bv.data(), bv.size());
      long long n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size()) return false;
      out = n;
      return true;
    };
    long long v = 0;
    if (auto it = res.find(http::field::retry_after); it != res.end() && number(it->value(), v)) {
      wait = v;
    } else if (auto reset = res.find("X-RateLimit-Reset");
               reset != res.end() && number(reset->value(), v)) {
      const auto epoch_now =
          duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      wait = v - epoch_now;
    }
    wait = std::clamp<long long>(wait, 1, 600);
    blocked_until_ = clock_type::now() + seconds(wait);
    spdlog::warn("uem: UEM rate limit reached; no requests for {} s", wait);
  }

  /// The current bearer token, fetching one when missing, near expiry or after the UEM
  /// refused it (fetch() then clears token_refresh_at_). One fetch at a time: whoever comes
  /// while it runs waits for it and shares its result. Never forced by the caller: a request
  /// refused with an older token than the current one must use the current one, not fetch
  /// another (that was the stampede of issue 13).
  net::awaitable<token_outcome> bearer() {
    token_outcome out;
    if (!token_.empty() && clock_type::now() < token_refresh_at_) co_return out;
    if (token_fetching_) {
      const auto gen = token_gen_;
      auto w = std::make_shared<waiter_event>(ex_);
      token_waiters_.push_back(w);
      w->timer.expires_after(cfg_.request_timeout + cfg_.connect_timeout);
      boost::system::error_code ec;
      co_await w->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (stopped_) {
        out.error = make_error_code(errc::stopped);
      } else if (!w->woken || token_gen_ == gen) {
        out.error = make_error_code(errc::token_failure);
        out.detail = token_error_.empty() ? "timed out waiting for the OAuth token" : token_error_;
      }
      co_return out;
    }
    token_fetching_ = true;
    out = co_await fetch_token();
    token_fetching_ = false;
    token_error_ = out.detail;
    for (auto& w : token_waiters_) {
      w->woken = true;
      w->timer.cancel();
    }
    token_waiters_.clear();
    co_return out;
  }

  net::awaitable<token_outcome> fetch_token() {
    token_outcome out;
    request req{http::verb::post, token_url_.path.empty() ? "/" : token_url_.path, 11};
    req.set(http::field::host, token_url_.host_header);
    req.set(http::field::user_agent, "tunnelgate-uem/0.1");
    req.set(http::field::accept, "application/json");
    req.set(http::field::content_type, "application/x-www-form-urlencoded");
    req.body() = "grant_type=client_credentials&client_id=" + url_encode(cfg_.client_id) +
                 "&client_secret=" + url_encode(cfg_.client_secret.reveal());
    req.prepare_payload();
    auto o = co_await exchange_once(token_url_, req);
    if (o.error) {
      out.error = make_error_code(errc::token_failure);
      out.detail = "OAuth token request to " + cfg_.token_url + " failed: " + o.detail;
      co_return out;
    }
    const auto status = o.res.result_int();
    if (status != 200) {
      out.error = make_error_code(errc::token_failure);
      out.detail = "OAuth token endpoint " + cfg_.token_url + " answered HTTP " +
                   std::to_string(status) +
                   (status == 400 || status == 401
                        ? ": check uem.ws1.auth.oauth.client_id and client_secret_file"
                        : "");
      co_return out;
    }
    const auto j = json::parse(o.res.body(), nullptr, false);
    const auto bad = [&](const std::string& why) {
      out.error = make_error_code(errc::token_failure);
      out.detail =
          "OAuth token endpoint " + cfg_.token_url + " returned an unusable answer: " + why;
    };
    if (j.is_discarded() || !j.is_object()) {
      bad("not a JSON object");
    } else if (!j.contains("access_token") || !j["access_token"].is_string() ||
               j["access_token"].get<std::string>().empty()) {
      bad("access_token missing or not a string");
    } else if (!j.contains("expires_in") || !j["expires_in"].is_number_integer() ||
               j["expires_in"].get<long long>() <= 0) {
      bad("expires_in missing or not a positive integer");
    } else if (j.contains("token_type") &&
               (!j["token_type"].is_string() ||
                !iequals(j["token_type"].get<std::string>(), "Bearer"))) {
      bad("token_type is not Bearer");
    } else {
      const auto life = seconds(j["expires_in"].get<long long>());
      // Refresh shortly before expiry: a tenth of the lifetime, at most a minute.
      const auto margin = std::min<seconds>(seconds(60), life / 10);
      token_ = j["access_token"].get<std::string>();
      token_refresh_at_ = clock_type::now() + life - margin;
      ++token_gen_;
      spdlog::info("uem: OAuth token obtained, valid {} s", life.count());
    }
    co_return out;
  }

  /// One request on a pooled keep-alive connection to the UEM. A reused connection that the
  /// server closed meanwhile fails on first use: then the request is retried once on a new one.
  net::awaitable<outcome> exchange(request req) {
    outcome o;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto c = co_await acquire(o);
      if (!c) co_return o;
      const bool reused = c->reused;
      o = co_await round_trip(c.get(), req);
      const bool keep = !o.error && o.res.keep_alive() && !stopped_;
      release(std::move(c), keep);
      if (!o.error || !reused || stopped_ || o.error == make_error_code(errc::timeout)) break;
      spdlog::debug("uem: kept-alive connection failed ({}); retrying on a new one", o.detail);
    }
    co_return o;
  }

  /// One request on a connection of its own (the token endpoint may be another host).
  net::awaitable<outcome> exchange_once(url_parts dest, request req) {
    outcome o;
    auto c = co_await connect(dest, o);
    if (!c) co_return o;
    o = co_await round_trip(c.get(), req);
    active_.erase(c.get());
    beast::error_code ignored;
    beast::get_lowest_layer(c->stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return o;
  }

  net::awaitable<std::unique_ptr<connection>> acquire(outcome& o) {
    for (;;) {
      if (stopped_) {
        o.error = make_error_code(errc::stopped);
        co_return nullptr;
      }
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        c->reused = true;
        active_.insert(c.get());
        co_return c;
      }
      if (open_ < cfg_.max_connections) {
        ++open_;
        auto c = co_await connect(base_, o);
        if (!c) {
          --open_;
          wake_one();
        }
        co_return c;
      }
      auto w = std::make_shared<waiter_event>(ex_);
      conn_waiters_.push_back(w);
      w->timer.expires_after(cfg_.request_timeout);
      boost::system::error_code ec;
      co_await w->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (!w->woken) {
        std::erase(conn_waiters_, w);
        o.error = make_error_code(errc::timeout);
        o.detail = "all " + std::to_string(cfg_.max_connections) +
                   " UEM connections stayed busy for " +
                   std::to_string(cfg_.request_timeout.count()) + " ms (ws1.max_connections)";
        co_return nullptr;
      }
    }
  }

  void release(std::unique_ptr<connection> c, bool keep) {
    active_.erase(c.get());
    if (keep) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
    wake_one();
  }

  void wake_one() {
    if (conn_waiters_.empty()) return;
    auto w = conn_waiters_.front();
    conn_waiters_.pop_front();
    w->woken = true;
    w->timer.cancel();
  }

  net::awaitable<std::unique_ptr<connection>> connect(url_parts dest, outcome& o) {
    auto c = std::make_unique<connection>(ex_, tls_);
    auto& layer = beast::get_lowest_layer(c->stream);
    active_.insert(c.get());  // from now on stop() can close it
    boost::system::error_code ec;
    std::vector<tcp::endpoint> endpoints;
    unsigned short port = 0;
    std::from_chars(dest.port.data(), dest.port.data() + dest.port.size(), port);
    const auto addr = net::ip::make_address(dest.host, ec);
    const bool ip_literal = !ec;
    if (ip_literal) {
      endpoints.emplace_back(addr, port);
    } else {
      tcp::resolver resolver(ex_);
      auto results = co_await resolver.async_resolve(dest.host, dest.port,
                                                     net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        active_.erase(c.get());
        o.error = make_error_code(errc::unreachable);
        o.detail = "cannot resolve " + dest.host + ": " + ec.message();
        co_return nullptr;
      }
      for (const auto& e : results)
        endpoints.push_back(e.endpoint());
    }
    const auto where = dest.host_header;
    // Loop ourselves (STYLE P5) with a timeout per attempt.
    ec = net::error::host_not_found;
    for (const auto& ep : endpoints) {
      if (stopped_) break;
      layer.expires_after(cfg_.connect_timeout);
      co_await layer.async_connect(ep, net::redirect_error(net::use_awaitable, ec));
      if (!ec) break;
      layer.close();
    }
    if (ec || stopped_) {
      active_.erase(c.get());
      o.error = stopped_                      ? make_error_code(errc::stopped)
                : ec == beast::error::timeout ? make_error_code(errc::timeout)
                                              : make_error_code(errc::unreachable);
      o.detail = ec == beast::error::timeout
                     ? "connecting to " + where + " timed out (ws1.connect_timeout)"
                     : "cannot connect to " + where + ": " + ec.message();
      co_return nullptr;
    }
    if (!ip_literal) SSL_set_tlsext_host_name(c->stream.native_handle(), dest.host.c_str());
    if (cfg_.tls_verify) {
      c->stream.set_verify_mode(ssl::verify_peer);
      c->stream.set_verify_callback(ssl::host_name_verification(dest.host));
    } else {
      c->stream.set_verify_mode(ssl::verify_none);
    }
    layer.expires_after(cfg_.connect_timeout);
    co_await c->stream.async_handshake(ssl::stream_base::client,
                                       net::redirect_error(net::use_awaitable, ec));
    if (ec || stopped_) {
      active_.erase(c.get());
      o.error = stopped_                      ? make_error_code(errc::stopped)
                : ec == beast::error::timeout ? make_error_code(errc::timeout)
                                              : make_error_code(errc::unreachable);
      std::string why = ec.message();
      if (const auto v = SSL_get_verify_result(c->stream.native_handle()); v != X509_V_OK) {
        why += std::string(" (") + X509_verify_cert_error_string(v) +
               "; set uem.ws1.ca_file to the CA that issued the UEM's certificate)";
      }
      o.detail = "TLS handshake with " + where + " failed: " + why;
      co_return nullptr;
    }
    co_return c;
  }

  /// Writes the request and reads the answer; request_timeout bounds both together.
  net::awaitable<outcome> round_trip(connection* c, request req) {
    outcome o;
    auto& layer = beast::get_lowest_layer(c->stream);
    boost::system::error_code ec;
    layer.expires_after(cfg_.request_timeout);
    co_await http::async_write(c->stream, req, net::redirect_error(net::use_awaitable, ec));
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_response_body);
    parser.header_limit(16 * 1024);
    if (!ec) {
      layer.expires_after(cfg_.request_timeout);
      co_await http::async_read(c->stream, c->buffer, parser,
                                net::redirect_error(net::use_awaitable, ec));
    }
    if (ec) {
      o.error = stopped_                      ? make_error_code(errc::stopped)
                : ec == beast::error::timeout ? make_error_code(errc::timeout)
                                              : make_error_code(errc::unreachable);
      o.detail = ec == beast::error::timeout ? "the UEM did not answer within " +
                                                   std::to_string(cfg_.request_timeout.count()) +
                                                   " ms (ws1.request_timeout)"
                                             : "request to the UEM failed: " + ec.message();
      if (ec == http::error::body_limit) o.error = make_error_code(errc::bad_response);
      co_return o;
    }
    o.res = parser.release();
    co_return o;
  }

  const ws1_config cfg_;
  net::any_io_executor ex_;
  ssl::context tls_;
  const url_parts base_;
  url_parts token_url_;
  std::string basic_;  // the Authorization header for basic auth

  std::vector<std::unique_ptr<connection>> idle_;  // kept-alive connections
  std::set<connection*> active_;                   // in use (closed by stop())
  int open_ = 0;                                   // idle + in use, at most max_connections
  std::deque<std::shared_ptr<waiter_event>> conn_waiters_;

  std::string token_;
  std::uint64_t token_gen_ = 0;                // bumped on every new token
  clock_type::time_point token_refresh_at_{};  // fetch a new token from here on
  bool token_fetching_ = false;
  std::string token_error_;  // the last fetch's error, for waiters
  std::deque<std::shared_ptr<waiter_event>> token_waiters_;

  clock_type::time_point blocked_until_{};  // no requests before (429 / remaining 0)
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<source> make_ws1_source(const ws1_config& cfg, net::any_io_executor ex) {
  return std::make_unique<ws1_source>(cfg, std::move(ex));
}

}  // namespace tunnelgate::uem::detail
