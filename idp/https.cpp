// A small synchronous HTTPS client on Boost.Beast: one connection per request, a timeout on
// every step, TLS verification (host name included) always on. The calls are asynchronous
// operations driven to completion by the client's own io_context on the calling thread, which
// is how Beast bounds each step with a timer.
#include <utility>  // before Asio: awaitable.hpp uses std::exchange (STYLE P1)

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <charconv>
#include <thread>

#include "idp/internal.hpp"
#include "support/support.hpp"

namespace tunnelgate::idp::detail {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

constexpr std::size_t max_body = std::size_t{8} * 1024 * 1024;

/// Runs the operation `start` begins until it completes, with `deadline` for the whole of it;
/// when the deadline passes, `cancel` is called and the operation completes with an error.
template <class Start, class Cancel>
beast::error_code run(net::io_context& ioc, duration deadline, Start start, Cancel cancel,
                      bool& timed_out) {
  beast::error_code result = net::error::would_block;
  bool done = false;
  start([&result, &done](const beast::error_code& ec, auto&&...) {
    result = ec;
    done = true;
  });
  ioc.restart();
  ioc.run_for(deadline);
  if (!done) {
    timed_out = true;
    cancel();
    ioc.restart();
    ioc.run();
  }
  return result;
}

}  // namespace

struct https_client::state {
  state() : tls(ssl::context::tls_client) {}
  net::io_context ioc;
  ssl::context tls;
  duration timeout{};
};

https_client::https_client(const std::filesystem::path& ca_file, duration timeout)
    : s_(std::make_unique<state>()) {
  s_->timeout = timeout;
  s_->tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (!ca_file.empty()) {
    s_->tls.load_verify_file(ca_file.string(), ec);
    if (ec) {
      throw error(errc::file_unreadable,
                  "cannot load the CA bundle " + ca_file.string() + ": " + ec.message());
    }
  } else {
    s_->tls.set_default_verify_paths(ec);
  }
}

https_client::~https_client() = default;

response https_client::send(const url& base, const request& req) {
  auto& ioc = s_->ioc;
  const auto timeout = s_->timeout;
  const auto where = base.host_header;
  bool timed_out = false;
  const auto fail = [&](const std::string& step, const beast::error_code& ec) {
    if (timed_out || ec == beast::error::timeout) {
      throw error(errc::timeout, step + " " + where + " timed out after " +
                                     std::to_string(timeout.count()) + " ms");
    }
    throw error(errc::unreachable, step + " " + where + " failed: " + ec.message());
  };

  std::vector<tcp::endpoint> endpoints;
  unsigned short port = 0;
  {
    const auto [end, ec] =
        std::from_chars(base.port.data(), base.port.data() + base.port.size(), port);
    if (ec != std::errc() || end != base.port.data() + base.port.size() || port == 0) {
      throw error(errc::bad_argument, "bad port in " + base.text);
    }
  }
  boost::system::error_code ec;
  const auto literal = net::ip::make_address(base.host, ec);
  const bool ip_literal = !ec;
  if (ip_literal) {
    endpoints.emplace_back(literal, port);
  } else {
    tcp::resolver resolver(ioc);
    tcp::resolver::results_type results;
    ec = run(
        ioc, timeout,
        [&](auto handler) {
          resolver.async_resolve(base.host, base.port,
                                 [&results, handler](const beast::error_code& e,
                                                     tcp::resolver::results_type r) mutable {
                                   results = std::move(r);
                                   handler(e);
                                 });
        },
        [&] { resolver.cancel(); }, timed_out);
    if (ec) fail("resolving", ec);
    for (const auto& e : results)
      endpoints.push_back(e.endpoint());
  }

  beast::ssl_stream<beast::tcp_stream> stream(ioc, s_->tls);
  auto& layer = beast::get_lowest_layer(stream);
  ec = net::error::host_not_found;
  for (const auto& ep : endpoints) {
    layer.expires_after(timeout);
    ec = run(
        ioc, timeout + timeout, [&](auto handler) { layer.async_connect(ep, handler); },
        [&] { layer.close(); }, timed_out);
    if (!ec) break;
    layer.close();
  }
  if (ec) fail("connecting to", ec);

  if (!ip_literal) SSL_set_tlsext_host_name(stream.native_handle(), base.host.c_str());
  stream.set_verify_mode(ssl::verify_peer);
  stream.set_verify_callback(ssl::host_name_verification(base.host));
  layer.expires_after(timeout);
  ec = run(
      ioc, timeout + timeout,
      [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); },
      [&] { layer.close(); }, timed_out);
  if (ec) {
    std::string why = ec.message();
    if (const auto v = SSL_get_verify_result(stream.native_handle()); v != X509_V_OK) {
      why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
    }
    if (timed_out || ec == beast::error::timeout) fail("TLS handshake with", ec);
    throw error(errc::unreachable, "TLS handshake with " + where + " failed: " + why);
  }

  http::request<http::string_body> r;
  r.method_string(req.method);
  r.target(req.target.empty() ? "/" : req.target);
  r.version(11);
  r.set(http::field::host, base.host_header);
  r.set(http::field::user_agent, "tunnelgate-idp/0.1");
  r.set(http::field::accept, "application/json");
  r.keep_alive(false);
  for (const auto& [name, value] : req.headers)
    r.set(name, value);
  if (!req.content_type.empty()) r.set(http::field::content_type, req.content_type);
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    r.body() = req.body;
    r.prepare_payload();
  }
  layer.expires_after(timeout);
  ec = run(
      ioc, timeout + timeout, [&](auto handler) { http::async_write(stream, r, handler); },
      [&] { layer.close(); }, timed_out);
  if (ec) fail("sending the request to", ec);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  parser.header_limit(64 * 1024);
  layer.expires_after(timeout);
  ec = run(
      ioc, timeout + timeout,
      [&](auto handler) { http::async_read(stream, buffer, parser, handler); },
      [&] { layer.close(); }, timed_out);
  if (ec) fail("reading the answer from", ec);
  beast::error_code ignored;
  layer.socket().shutdown(tcp::socket::shutdown_both, ignored);
  layer.close();

  auto res = parser.release();
  response out;
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  for (const auto& f : res) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const auto value = f.value();
    add_header(out.headers, std::move(name), std::string_view(value.data(), value.size()));
  }
  return out;
}

void add_header(std::map<std::string, std::string>& headers, std::string lower_name,
                std::string_view value) {
  // A repeated field is the list of its values joined with ", " (RFC 9110 §5.3): Okta sends
  // `rel="self"` and `rel="next"` as two Link fields, and a map keeping the last would lose one.
  const auto [it, inserted] = headers.try_emplace(std::move(lower_name), value);
  if (!inserted) {
    it->second += ", ";
    it->second += value;
  }
}

std::string response::header(const std::string& lower_name) const {
  const auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

url parse_https_url(std::string_view text, std::string_view what) {
  try {
    auto p = support::parse_https_url(text, what);
    return {std::move(p.host), std::move(p.port), std::move(p.host_header), std::move(p.path),
            std::move(p.text)};
  } catch (const support::error& e) {
    throw error(errc::bad_argument, e.message());
  }
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

namespace {

/// The digits of a header value (optional whitespace around them), saturated at `cap`;
/// nullopt when it is not a plain non-negative decimal number.
std::optional<long long> header_number(std::string_view v, long long cap) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  long long n = 0;
  for (const char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    // Stop growing at the cap instead of overflowing: 99999999999999999999 is "very long".
    if (n <= cap) n = n * 10 + (c - '0');
  }
  return std::min(n, cap);
}

/// A header value from the network made safe to quote in a message.
std::string quoted_value(std::string_view v) {
  std::string out;
  for (const char ch : v.substr(0, 40)) {
    const auto c = static_cast<unsigned char>(ch);
    out += c < 0x20 || c >= 0x7f ? '?' : ch;
  }
  if (v.size() > 40) out += "...";
  return out;
}

}  // namespace

rate_limit_wait rate_limit_wait_of(const response& res, std::chrono::system_clock::time_point now) {
  using std::chrono::seconds;
  // Values are saturated far above rate_limit_wait_cap (but far below overflow) before any
  // arithmetic, so `reset - now` and the conversion to milliseconds cannot overflow.
  constexpr long long parse_cap = 1'000'000'000'000'000LL;
  const long long cap = rate_limit_wait_cap.count();
  const long long now_s = std::chrono::duration_cast<seconds>(now.time_since_epoch()).count();
  const auto finish = [cap](long long s, std::string source) {
    rate_limit_wait w;
    w.saturated = s > cap;
    w.wait = seconds(std::clamp<long long>(s, 1, cap));
    w.source = std::move(source);
    return w;
  };
  const auto reset = res.header("x-rate-limit-reset");
  if (const auto v = header_number(reset, parse_cap); v && *v >= now_s) {
    // Okta: the reset as UTC epoch seconds; one more second covers clock skew and rounding.
    return finish(*v - now_s + 1, "X-Rate-Limit-Reset: " + quoted_value(reset));
  }
  // A reset in the past (clock skew, a stale header) or a malformed one says nothing about
  // when to try again: fall through to Retry-After, else the default wait, never zero.
  const auto retry = res.header("retry-after");
  if (const auto v = header_number(retry, parse_cap)) {
    return finish(*v, "Retry-After: " + quoted_value(retry));  // Graph: seconds
  }
  // An HTTP-date Retry-After is not parsed either: the default wait.
  std::string source = "no usable X-Rate-Limit-Reset or Retry-After";
  if (!reset.empty()) source = "X-Rate-Limit-Reset: " + quoted_value(reset) + " unusable";
  if (!retry.empty()) source = "Retry-After: " + quoted_value(retry) + " unusable";
  return finish(default_rate_limit_wait.count(), source + "; default wait");
}

void wait_for_rate_limit(const std::string& what, const response& res, rate_budget& budget,
                         const notice_fn& notice) {
  const auto w = rate_limit_wait_of(res, std::chrono::system_clock::now());
  const long long wait = w.wait.count();
  // At most rate_limit_wait_cap (68 years) in milliseconds: no overflow.
  const auto need = std::chrono::duration_cast<duration>(w.wait);
  const auto left = budget.max > budget.waited ? budget.max - budget.waited : duration{0};
  if (need > left) {
    const auto body = parse_error_body(res.body);
    std::string msg =
        what + ": " + (body.summary.empty() ? "rate limited" : body.summary) + " (HTTP 429" +
        (body.code.empty() ? "" : " " + body.code) + "); gave up: the limit resets in " +
        (w.saturated ? "more than " : "") + std::to_string(wait) + " s (" + w.source +
        "), beyond the rate-limit wait allowed (" + std::to_string(budget.max.count() / 1000) +
        " s, " + std::to_string(budget.waited.count() / 1000) + " s already waited)";
    throw error(errc::rate_limited, msg, 429, body.code, body.summary);
  }
  if (notice) {
    notice(what + ": rate limited (HTTP 429); waiting " + std::to_string(wait) +
           " s for the limit to reset");
  }
  std::this_thread::sleep_for(need);
  budget.waited += need;
}

}  // namespace tunnelgate::idp::detail
