#include "gateway/egress_check.hpp"

#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

namespace tunnelgate::gateway {

namespace {

struct parsed_url {
  bool tls = false;
  std::string host;  ///< without brackets
  std::string port;
  std::string authority;
  std::string target = "/";
};

parsed_url parse_url(const std::string& url) {
  parsed_url u;
  std::string_view rest;
  if (url.rfind("https://", 0) == 0) {
    u.tls = true;
    u.port = "443";
    rest = std::string_view(url).substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    u.port = "80";
    rest = std::string_view(url).substr(7);
  } else {
    throw std::runtime_error("'" + url + "' is not an http:// or https:// URL");
  }
  const auto slash = rest.find_first_of("/?");
  u.authority = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) u.target = std::string(rest.substr(slash));
  if (u.target.front() == '?') u.target.insert(0, "/");
  const std::string_view a = u.authority;
  if (!a.empty() && a.front() == '[') {
    const auto close = a.find(']');
    if (close == std::string_view::npos) throw std::runtime_error("'" + url + "': unclosed '['");
    u.host = std::string(a.substr(1, close - 1));
    if (close + 1 < a.size()) u.port = std::string(a.substr(close + 2));
  } else if (const auto colon = a.rfind(':'); colon != std::string_view::npos) {
    u.host = std::string(a.substr(0, colon));
    u.port = std::string(a.substr(colon + 1));
  } else {
    u.host = std::string(a);
  }
  if (u.host.empty() || u.authority.find('@') != std::string::npos)
    throw std::runtime_error("'" + url + "': expected http(s)://HOST[:PORT][/PATH]");
  return u;
}

std::string normalized(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0)
    text.remove_suffix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0)
    text.remove_prefix(1);
  boost::system::error_code ec;
  const auto a = net::ip::make_address(std::string(text), ec);
  return ec ? std::string() : a.to_string();
}

}  // namespace

std::string parse_seen_address(std::string_view body) {
  if (auto plain = normalized(body); !plain.empty()) return plain;
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("ip") && j["ip"].is_string())
    return normalized(j["ip"].get<std::string>());
  return {};
}

namespace {

/// One fetch's inputs and outputs; it outlives the coroutine (a local of fetch_seen_address).
struct fetch_job {
  const parsed_url& u;
  const net::ip::address& source;
  ssl::context& ctx;
  std::chrono::milliseconds timeout;
  std::string body;
  std::string failure;
  unsigned status = 0;
};

// A named coroutine taking a pointer, not a capturing lambda (STYLE P2: GCC 12 destroyed
// captures of coroutine lambdas twice).
awaitable<void> run_fetch(fetch_job* job) {
  auto io = co_await net::this_coro::executor;
  const auto& u = job->u;
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  const auto found = co_await resolver.async_resolve(u.host, u.port, use_awaitable);
  beast::tcp_stream tcp_layer(io);
  job->failure = "no address of " + u.host + " in the egress address's family";
  for (const auto& e : found) {
    if (e.endpoint().address().is_v4() != job->source.is_v4()) continue;
    tcp_layer.socket().close(ec);
    tcp_layer.socket().open(e.endpoint().protocol());
    tcp_layer.socket().bind(tcp::endpoint(job->source, 0));
    tcp_layer.expires_after(job->timeout);
    co_await tcp_layer.async_connect(e.endpoint(), net::redirect_error(use_awaitable, ec));
    job->failure = ec ? "connecting to " + u.authority + " failed: " + ec.message() : "";
    if (!ec) break;
  }
  http::request<http::empty_body> req{http::verb::get, u.target, 11};
  req.set(http::field::host, u.authority);
  req.set(http::field::user_agent, "tunnelgate-egress-check");
  req.set(http::field::accept, "text/plain, application/json");
  req.keep_alive(false);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(4096);
  beast::ssl_stream<beast::tcp_stream> s(std::move(tcp_layer), job->ctx);
  if (job->failure.empty() && u.tls) {
    boost::system::error_code literal_ec;
    (void)net::ip::make_address(u.host, literal_ec);
    if (literal_ec) SSL_set_tlsext_host_name(s.native_handle(), u.host.c_str());
    s.set_verify_mode(ssl::verify_peer);
    s.set_verify_callback(ssl::host_name_verification(u.host));
    beast::get_lowest_layer(s).expires_after(job->timeout);
    co_await s.async_handshake(ssl::stream_base::client, use_awaitable);
    beast::get_lowest_layer(s).expires_after(job->timeout);
    co_await http::async_write(s, req, use_awaitable);
    co_await http::async_read(s, buf, parser, use_awaitable);
  } else if (job->failure.empty()) {
    auto& plain = beast::get_lowest_layer(s);
    plain.expires_after(job->timeout);
    co_await http::async_write(plain, req, use_awaitable);
    co_await http::async_read(plain, buf, parser, use_awaitable);
  }
  if (job->failure.empty()) {
    job->status = parser.get().result_int();
    job->body = parser.get().body();
  }
}

}  // namespace

std::string fetch_seen_address(const std::string& url, const net::ip::address& source,
                               const std::filesystem::path& ca_file,
                               std::chrono::milliseconds timeout) {
  const auto u = parse_url(url);
  net::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(ca_file.string(), ec);
  }
  if (ec) throw std::runtime_error("cannot load trust for " + url + ": " + ec.message());
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);

  fetch_job job{u, source, ctx, timeout, {}, {}, 0};
  std::exception_ptr error;
  net::co_spawn(io, run_fetch(&job), [&error](std::exception_ptr e) { error = e; });
  io.run_for(timeout * 4);  // resolve + connect + handshake + exchange, each bounded
  if (!io.stopped()) throw std::runtime_error("fetching " + url + " timed out");
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("fetching " + url + " failed: " + e.code().message());
    }
  }
  const auto& failure = job.failure;
  const auto status = job.status;
  const auto& body = job.body;
  if (!failure.empty()) throw std::runtime_error(failure);
  if (status != 200) throw std::runtime_error(url + " answered HTTP " + std::to_string(status));
  auto seen = parse_seen_address(body);
  if (seen.empty())
    throw std::runtime_error(url +
                             " answered no address (expected the caller's IP as text or "
                             "{\"ip\": ...})");
  return seen;
}

}  // namespace tunnelgate::gateway
