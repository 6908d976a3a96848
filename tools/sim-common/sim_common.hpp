// sim_common — what okta-sim and entra-sim share: the HTTPS server loop (single-threaded,
// keep-alive, body limit, read timeouts), the /_sim/stats and /_sim/faults admin endpoints, the
// port file, small JSON/form/time helpers, IPv4/IPv6 CIDR and RANGE containment, and atomic
// file writes. It links nothing of ours, so the production clients are tested against an
// independent implementation. uem-sim uses its small helpers too.
#pragma once

#include <utility>  // before Asio (STYLE P1)

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace sim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// ---- small helpers ----------------------------------------------------------------------

/// The whole file; throws std::runtime_error when it cannot be read.
std::string read_file(const std::string& path);
/// The file's content without trailing whitespace (a secret or token file).
std::string read_secret(const std::string& path);
/// Writes `content` to a temporary file next to `path`, flushes it to disk and renames it over
/// `path`, so a reader (or a restart after a crash) never sees a half-written file. Throws.
void write_file_atomic(const std::string& path, std::string_view content);

/// `n` random bytes as lowercase hex.
std::string random_hex(std::size_t n);
/// `n` random characters from [0-9A-Za-z].
std::string random_alnum(std::size_t n);
/// A random version-4 GUID, lowercase, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
std::string random_guid();
/// Now as ISO-8601 UTC with `frac_digits` fractional digits (0 = none): "2024-05-01T10:00:00.000Z".
std::string iso_now(int frac_digits);
/// Seconds since the epoch.
std::int64_t epoch_now();

/// Percent-decoding with '+' as space (application/x-www-form-urlencoded and query strings).
std::string url_decode(std::string_view s);
/// "a=1&b=2" -> {a:1, b:2}; a repeated key keeps the last value.
std::map<std::string, std::string> parse_form(std::string_view s);
/// Base64url (RFC 4648 §5) without padding (padding is tolerated); nullopt on a bad character.
std::optional<std::string> base64url_decode(std::string_view in);
/// Standard base64 with padding.
std::string base64(std::string_view in);

// ---- addresses ---------------------------------------------------------------------------

/// An inclusive block of addresses of one family: a CIDR or a RANGE. Bytes in network order;
/// IPv4 uses the first four.
struct ip_block {
  bool v6 = false;
  std::array<unsigned char, 16> lo{}, hi{};
};

/// "a.b.c.d/n" or "v6/n" (host bits may be set: they are masked). nullopt when malformed.
std::optional<ip_block> parse_cidr(std::string_view s);
/// "first-last" (same family, first <= last) or a single address. nullopt when malformed.
std::optional<ip_block> parse_range(std::string_view s);
/// Whether the textual address `addr` (IPv4 or IPv6) lies in `b`; false when malformed or of the
/// other family.
bool contains(const ip_block& b, std::string_view addr);

// ---- server ------------------------------------------------------------------------------

/// One request as the simulators' handlers see it. Handlers run on the server's single thread
/// and must not keep references to it.
struct exchange {
  const request& req;
  std::string method;  ///< "GET", "POST", ...
  std::string path;    ///< the target without the query
  std::string query;   ///< raw query string without '?'
  std::string peer;    ///< caller's address, IPv4-mapped IPv6 shown as IPv4
};

/// An injected fault (POST /_sim/faults).
struct fault {
  std::string kind = "none";  ///< none, status, rate_limit, garbage
  unsigned status = 500;      ///< for `status`
  long count = 0;             ///< requests still to fault; 0 = until cleared
  long reset_in = 60;         ///< for `rate_limit`: seconds until the limit resets
  json to_json() const;
};

/// What a simulator plugs into the server.
struct routes {
  /// Answers every request outside /_sim/. Counted in /_sim/stats.
  std::function<response(const exchange&)> api;
  /// Whether an injected fault applies to this request (default: all API requests).
  std::function<bool(const exchange&)> faultable;
  /// Answers an injected `status` or `rate_limit` fault in the simulator's own error shape.
  std::function<response(const exchange&, const fault&)> fault_reply;
  /// The simulator's own /_sim/ endpoints; nullopt = unknown (the server answers 404).
  std::function<std::optional<response>(const exchange&)> admin;
};

struct server_options {
  std::string name;  ///< "okta-sim": Server header, log prefix, listening line
  std::string listen = "127.0.0.1:0";
  std::string cert, key;  ///< PEM server chain and key
  std::string port_file;  ///< written atomically once listening (optional)
};

/// A single-threaded HTTPS/1.1 server. Binds in the constructor (so port() and base_url() are
/// known before run()). Serves keep-alive connections with a 30 s read/write timeout per
/// message and a 4 MiB body limit. Answers /_sim/stats and /_sim/faults itself.
class server {
 public:
  server(server_options o, routes r);
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  unsigned short port() const;
  /// "https://127.0.0.1:PORT" ("https://[::1]:PORT" for IPv6).
  std::string base_url() const;

  /// Writes the port file, prints "NAME listening on URL", serves until SIGTERM/SIGINT, returns.
  void run();

  /// A JSON answer with the simulator's Server header.
  response json_reply(unsigned status, const json& body,
                      std::string_view content_type = "application/json") const;
  /// A text/plain answer.
  response text_reply(unsigned status, std::string body) const;

 private:
  static net::awaitable<void> accept_loop(server* self);
  static net::awaitable<void> connection(server* self, tcp::socket socket);
  response dispatch(const request& req, const std::string& peer);
  std::optional<response> common_admin(const exchange& x);
  void stop();

  net::io_context ioc_{1};
  server_options opt_;
  routes routes_;
  ssl::context tls_{ssl::context::tls_server};
  tcp::acceptor acceptor_{ioc_};
  std::map<std::string, long long> counts_;  // "METHOD PATH" -> requests
  long long total_ = 0;
  fault fault_;
  std::set<beast::tcp_stream*> open_;  // live connections, closed by stop()
  bool stopped_ = false;
};

}  // namespace sim
