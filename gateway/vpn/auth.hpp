// The XML authentication exchange of the AnyConnect protocol (`POST /`), without I/O.
//
// openconnect 9 opens with `POST /` carrying `<config-auth client="vpn" type="init">`. The
// gateway authenticates the device by its TLS client certificate alone, so it answers the
// first request with `<config-auth type="complete">` and `<auth id="success">` plus the
// session cookie (`Set-Cookie: webvpn=...`); openconnect then sends
// `CONNECT /CSCOSSLC/tunnel` with `Cookie: webvpn=...` (see tunnel.hpp).
//
// The request body is parsed with expat (a well-kept, non-recursive, strictly conforming
// parser): bounded to max_body_size, DOCTYPE refused outright (so no entity can be declared,
// let alone expanded), nesting bounded, every extracted field bounded and free of control
// characters. What the body says is informational (logs): identity comes from the certificate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tunnelgate::gateway::vpn::auth {

inline constexpr std::size_t max_body_size = std::size_t{16} * 1024;
/// Longest text or attribute value kept from a body.
inline constexpr std::size_t max_field_size = 512;
/// Deepest element nesting accepted (openconnect's deepest is 3: config-auth/auth/username).
inline constexpr int max_depth = 8;
/// Most <auth-method> capabilities kept.
inline constexpr std::size_t max_auth_methods = 16;

enum class request_type : std::uint8_t {
  init,        ///< the first request of an authentication
  auth_reply,  ///< the answer to a login form (the gateway never sends one)
  logout,      ///< AnyConnect ends a session (openconnect 9 sends none)
};
/// "init", "auth-reply", "logout": the attribute values.
std::string_view to_string(request_type t) noexcept;

/// Why a body is refused (answer 400 and log the spelling).
enum class error : std::uint8_t {
  none = 0,
  empty,            ///< no body
  too_large,        ///< more than max_body_size bytes
  not_xml,          ///< not well-formed XML, or not UTF-8 (expat's verdict; line/column set)
  doctype,          ///< a DOCTYPE declaration: DTDs and entities are refused outright
  too_deep,         ///< elements nested deeper than max_depth
  not_config_auth,  ///< the root element is not <config-auth>
  bad_client,       ///< the client attribute is missing or not "vpn"
  bad_type,         ///< the type attribute is missing or not init, auth-reply or logout
  bad_field,        ///< a kept field is too long, has control characters or child elements
  duplicate_field,  ///< a kept field appears twice
};
/// "ok", "empty", "too_large", "not_xml", "doctype", "too_deep", "not_config_auth",
/// "bad_client", "bad_type", "bad_field", "duplicate_field".
std::string_view to_string(error e) noexcept;

/// <device-id> and its attributes. All client-chosen: for logs, never for identity.
struct device_id {
  std::string platform;          ///< the text: "linux-64", "win", "mac-intel", "android", ...
  std::string platform_version;  ///< attribute platform-version (openconnect --mobile-*)
  std::string device_type;       ///< attribute device-type
  std::string unique_id;         ///< attribute unique-id
};

struct request {
  request_type type = request_type::init;
  std::string aggregate_auth_version;  ///< root attribute; "2" from openconnect 9
  std::string version;                 ///< <version>: "v9.01-3" from Debian's openconnect
  std::string version_who;             ///< its `who` attribute: "vpn"
  device_id device;
  std::string group_access;               ///< <group-access>: the URL the client was given
  std::string group_select;               ///< <group-select>: a chosen auth group (--authgroup)
  std::vector<std::string> auth_methods;  ///< <capabilities><auth-method>, in order
  bool client_cert_fail = false;  ///< <client-cert-fail/>: the client has no usable certificate
  /// <session-token> of a logout. A secret: compare it, never log it.
  std::string session_token;
};

struct parse_result {
  error err = error::none;
  request value;  ///< filled when err == none
  /// Where expat stopped (1-based), for not_xml; 0 otherwise.
  std::size_t line = 0, column = 0;
};

/// Parses a request body. Pure: no I/O, no state. Unknown elements are skipped (within
/// max_depth); <auth> and <opaque> contents are never kept (an auth-reply carries passwords).
parse_result parse_request(std::string_view body);

/// One header field of an answer, in sending order.
using header = std::pair<std::string, std::string>;

/// An HTTP answer, for the caller to send (it adds Content-Length and Connection).
struct answer {
  unsigned status = 200;
  std::vector<header> headers;
  std::string body;
};

/// True for a session token the gateway may issue: 16 to 256 bytes of base64 or base64url
/// (A-Z a-z 0-9 + / = - _). Those are valid cookie octets (RFC 6265) and need no XML escaping.
bool valid_token(std::string_view token) noexcept;

/// The answer that ends authentication: 200, Content-Type text/xml, X-Transcend-Version: 1,
/// Set-Cookie: webvpn=<token>; Secure; HttpOnly, and a `complete` document with
/// <auth id="success"> and <session-token> (openconnect takes the cookie from either; AnyConnect
/// reads the element). `message` (XML-escaped) is shown by clients that display it.
/// Throws std::invalid_argument when !valid_token(token): tokens are made by the gateway.
answer success(std::string_view token, std::string_view message = {});

/// A refusal openconnect reports and gives up on: 200 with an `auth-request` document whose
/// <auth id="main"> has no form and an <error> carrying `message` (XML-escaped; control
/// characters dropped). openconnect prints the message and exits ("Failed to complete
/// authentication"); a 401/403 would only print "Unexpected 403 result from server", and any
/// other status makes it retry without XML. `reason` goes in an X-Tunnel-Reason header.
answer failure(std::string_view reason, std::string_view message);

/// Where the webvpn cookie was in a Cookie header value.
struct cookie_result {
  enum class status : std::uint8_t {
    found,      ///< `value` is the token
    missing,    ///< no webvpn cookie
    duplicate,  ///< webvpn given twice: refuse rather than pick one
    malformed,  ///< webvpn present but its value is not valid_token()
  };
  status state = status::missing;
  std::string_view value;  ///< points into the header value
};
/// Finds `webvpn=<token>` in a Cookie header value ("a=1; webvpn=...; b=2"). Cookie names are
/// case-sensitive. A request with several Cookie headers: call once per header and refuse when
/// more than one finds a cookie.
cookie_result find_session_cookie(std::string_view cookie_header) noexcept;

}  // namespace tunnelgate::gateway::vpn::auth
