// Internals of the idp library shared between its .cpp files. Not part of the public API.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "idp/idp.hpp"

namespace tunnelgate::idp::detail {

using json = nlohmann::ordered_json;  // ordered: a zone is sent back as it came

/// A parsed address: family 4 or 6, bytes in network order (4 or 16 used).
struct ip {
  int family = 0;
  std::array<std::uint8_t, 16> bytes{};
  std::size_t size() const noexcept { return family == 4 ? 4 : 16; }
  bool operator==(const ip&) const = default;
};
std::optional<ip> parse_ip(std::string_view text);

/// An entry parsed as CIDR: address and prefix (a bare address gets the full prefix).
struct cidr {
  ip addr;
  int prefix = 0;
};
std::optional<cidr> parse_cidr(std::string_view text);
/// True when `entry` is exactly the single-host CIDR of `address` (the owned entry).
bool is_host_entry(std::string_view entry, const ip& address);

/// The addresses normalized and de-duplicated, in order. Throws errc::bad_argument.
std::vector<std::string> normalize_all(const std::vector<std::string>& addresses);

plan okta_plan(const json& zone, const std::vector<std::string>& addresses, bool exclusive);
plan entra_plan(const json& location, const std::vector<std::string>& addresses, bool exclusive);
verify_result okta_check(const json& zone, const std::vector<std::string>& addresses);
verify_result entra_check(const json& location, const std::vector<std::string>& addresses);

/// A string member or "" (never throws).
std::string str(const json& j, const char* key);

// --- HTTP ------------------------------------------------------------------------------------

struct url {
  std::string host;  ///< without brackets
  std::string port = "443";
  std::string host_header;  ///< authority as written
  std::string path;         ///< path prefix (and query), no trailing '/'
  std::string text;         ///< the URL as given, without trailing '/'
};
/// Parses an https:// URL; throws errc::bad_argument naming `what`.
url parse_https_url(std::string_view text, std::string_view what);
std::string url_encode(std::string_view s);

struct response {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  ///< names lower-case
  std::string header(const std::string& lower_name) const;
};

struct request {
  std::string method;  ///< GET, POST, PUT, PATCH, DELETE
  std::string target;  ///< path and query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;
};

/// One HTTPS exchange per call, on its own connection (Connection: close), synchronous, with
/// `timeout` per step. Throws errc::unreachable or errc::timeout; any HTTP answer is returned.
class https_client {
 public:
  https_client(const std::filesystem::path& ca_file, duration timeout);
  ~https_client();
  https_client(const https_client&) = delete;
  https_client& operator=(const https_client&) = delete;
  response send(const url& base, const request& req);

 private:
  struct state;
  std::unique_ptr<state> s_;
};

/// `<what>: <summary> (HTTP 401 E0000011)` as an error with the right errc for the status.
[[noreturn]] void throw_http_error(const std::string& what, const response& res);
/// Parses a 2xx body as a JSON object (errc::bad_response otherwise).
json parse_object(const std::string& what, const response& res);

/// The 429 handling both clients share: how long to wait, and the budget spent so far.
struct rate_budget {
  duration max;
  duration waited{0};
};
/// Sleeps for the wait the 429 `res` asks for (Okta X-Rate-Limit-Reset + 1 s, else
/// Retry-After, else 5 s; at least 1 s) when it fits in the budget, else throws
/// errc::rate_limited. `service` names the IdP in messages.
void wait_for_rate_limit(const std::string& what, const response& res, rate_budget& budget,
                         const notice_fn& notice);

}  // namespace tunnelgate::idp::detail
