// Internals of the idp library shared between its .cpp files. Not part of the public API.
#pragma once

#include <array>
#include <chrono>
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

/// Whether two zone / named-location names are the same for the IdP: compared without case
/// (simple folding of ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters), every
/// other character exactly. Graph compares displayName so; see docs/idp.md for Okta.
bool same_name(std::string_view a, std::string_view b);

/// Publishing writes, reads back by id and writes again while an owned entry is missing
/// (a concurrent full replace dropped it): at most this many writes...
inline constexpr std::size_t max_write_attempts = 5;
/// ...pausing this long before the second, doubling up to max_write_backoff, with jitter.
inline constexpr std::chrono::milliseconds write_backoff{200};
inline constexpr std::chrono::milliseconds max_write_backoff{2000};

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
  /// Names lower-case; a field sent several times holds every value, joined with ", ".
  std::map<std::string, std::string> headers;
  std::string header(const std::string& lower_name) const;
};
/// Adds one received header field: a repeated field is appended to the earlier value with
/// ", " (RFC 9110 §5.3: how list fields such as Link combine), never replaces it.
void add_header(std::map<std::string, std::string>& headers, std::string lower_name,
                std::string_view value);

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
/// The wait used when a 429 names none (or a reset in the past, or a malformed value).
inline constexpr std::chrono::seconds default_rate_limit_wait{5};
/// Longer waits asked for are taken as this (68 years): never an overflow.
inline constexpr std::chrono::seconds rate_limit_wait_cap{2'147'483'647};
/// How long a 429 asks to wait.
struct rate_limit_wait {
  std::chrono::seconds wait{0};  ///< 1 s .. rate_limit_wait_cap
  bool saturated = false;        ///< the IdP asked for more than rate_limit_wait_cap
  std::string source;            ///< the header it came from, quoted safely, for messages
};
/// Pure: Okta's `X-Rate-Limit-Reset` (UTC epoch seconds) - `now` + 1 s when it is a decimal
/// number not in the past; else `Retry-After` delay-seconds (0 counts as 1 s); else
/// default_rate_limit_wait. Huge values saturate at rate_limit_wait_cap. Never throws.
rate_limit_wait rate_limit_wait_of(const response& res, std::chrono::system_clock::time_point now);
/// Sleeps for rate_limit_wait_of(res) when it fits in what is left of the budget, else throws
/// errc::rate_limited at once, saying how long the IdP asked to wait. `what` names the call.
void wait_for_rate_limit(const std::string& what, const response& res, rate_budget& budget,
                         const notice_fn& notice);

// --- JWS (jwt.cpp): the client assertion and the CAEP SETs share the signing ----------------

/// 128 random bits as 32 lower-case hex digits (a `jti`). Throws errc::bad_key when OpenSSL has
/// no randomness.
std::string random_id();
/// A compact JWS of `claims` signed with `private_key_pem` (unencrypted PEM: RSA >= 2048 gives
/// RS256, P-256 gives ES256 with the raw r||s signature). The header is `alg` followed by the
/// members of `header_fields` in order. Throws errc::bad_key.
std::string sign_jws(std::string_view private_key_pem, const json& header_fields,
                     const json& claims);

}  // namespace tunnelgate::idp::detail
