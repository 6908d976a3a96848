// idp — publishing the gateway's egress addresses to the identity providers (DESIGN.md §7):
// the Okta IP network zone (`/api/v1/zones`) and the Microsoft Entra ipNamedLocation (Graph
// `/v1.0/identity/conditionalAccess/namedLocations`).
//
// The one public header of the library. Parts:
//   * addresses: normalize_address(), host_cidr(), contains() — pure;
//   * plans: what a publish would change, computed from the IdP's current JSON without I/O
//     (plan_okta_zone(), plan_entra_location(), ...), and the pure verify checks;
//   * the clients: okta_client and entra_client (publish, verify), synchronous;
//   * helpers the clients use, public so they can be tested: make_client_assertion() (the
//     OAuth `private_key_jwt`), parse_error_body().
//
// Thread model: every call is SYNCHRONOUS and blocking. Each network call runs its own
// io_context on the calling thread with a timeout per step (resolve, connect, TLS, request),
// so the library can be used from tunnelctl and from a background thread of the daemon. A
// client object is not thread-safe (one call at a time); separate objects are independent.
//
// Errors: every failure is thrown as idp::error (a std::runtime_error) carrying an idp::errc
// registered as a std::error_code, the HTTP status when there was an answer, and the IdP's own
// error code and text (Okta `errorCode`/`errorSummary`, OAuth `error`/`error_description`,
// Graph `error.code`/`error.message`). what() is one line: `<what failed>: <IdP text> (HTTP 400
// E0000001)`; it never contains a token, secret or key.
//
// Ownership: the entries this library "owns" in a zone or named location are exactly the
// egress addresses as single-host CIDRs (`a.b.c.d/32`, `x::y/128`). Publishing adds the missing
// ones and, only when asked (`exclusive`), removes every other entry of the same list (Okta
// `gateways`; Entra `ipRanges`). Okta `proxies` and every other field are never touched and are
// sent back unchanged. A wider CIDR or a RANGE that happens to contain an address does not count
// as the owned entry for publishing (so deleting that range cannot silently drop the gateway),
// but it does count for verify.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <variant>
#include <vector>

namespace tunnelgate::idp {

using duration = std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a call failed. Refusals by policy are not_found, not_usable, inactive and
/// too_many_entries (is_refusal(); tunnelctl exit 1); everything else means "could not do it"
/// (tunnelctl exit 2).
enum class errc : int {
  bad_argument = 1,  ///< invalid settings or address (not an https URL, not an IP address...)
  file_unreadable,   ///< a token, secret, private key or CA file cannot be read
  bad_key,           ///< the private key is not an unencrypted RSA (>= 2048) or P-256 key
  unreachable,       ///< resolving, connecting, the TLS handshake or the exchange failed
  timeout,           ///< a step did not finish within the configured timeout
  unauthorized,      ///< 401/403 from the API or the token endpoint (also after a new token)
  rate_limited,      ///< 429, and waiting for the reset would exceed max_rate_limit_wait
  http_error,        ///< any other unexpected HTTP status
  bad_response,      ///< a 2xx answer that is not the JSON expected
  ambiguous,         ///< more than one zone / named location has the given name
  not_found,         ///< the zone / named location does not exist (and create was not asked)
  not_usable,        ///< not an IP zone of usage POLICY / not an ipNamedLocation
  inactive,          ///< the zone is INACTIVE / the named location is not trusted
  too_many_entries,  ///< writing would exceed the IdP's limit (Okta 150, Entra 2000)
  /// after every write the list was read back without an owned entry (another writer kept
  /// replacing it), max_write_attempts times: not a refusal
  conflict,
};

const std::error_category& error_category() noexcept;
std::error_code make_error_code(errc e) noexcept;
/// not_found, not_usable, inactive, too_many_entries: the IdP is fine, the request is refused.
bool is_refusal(errc e) noexcept;

/// The exception every call throws. what() is the full one-line message.
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message, int http_status = 0, std::string idp_code = {},
        std::string idp_summary = {});
  std::error_code code() const noexcept { return make_error_code(code_); }
  errc value() const noexcept { return code_; }
  /// The HTTP status of the answer that failed; 0 when there was no answer.
  int http_status() const noexcept { return http_status_; }
  /// `E0000011`, `invalid_client`, `InvalidAuthenticationToken`...; empty when none.
  const std::string& idp_code() const noexcept { return idp_code_; }
  /// Okta errorSummary (with its causes), OAuth error_description or Graph error.message.
  const std::string& idp_summary() const noexcept { return idp_summary_; }

 private:
  errc code_;
  int http_status_;
  std::string idp_code_;
  std::string idp_summary_;
};

/// The error fields of an error answer, whichever shape it has: Okta API
/// (`errorCode`, `errorSummary`, `errorCauses[].errorSummary`), OAuth 2 / Entra token endpoint
/// (`error`, `error_description`; line breaks folded), Graph (`error.code`, `error.message`).
/// Both fields are empty when the body is none of these. Never throws. Control characters are
/// replaced and the text is bounded, so it is safe to print.
struct error_body {
  std::string code;
  std::string summary;
};
error_body parse_error_body(std::string_view body) noexcept;

// ---------------------------------------------------------------------------------------------
// Addresses (pure)
// ---------------------------------------------------------------------------------------------

/// An IPv4 or IPv6 address in canonical text (inet_ntop of inet_pton), or nullopt when `text`
/// is not one. No brackets, prefixes or zone ids.
std::optional<std::string> normalize_address(std::string_view text);
/// `a.b.c.d/32` or `x::y/128` for a normalized address.
std::string host_cidr(std::string_view address);
/// Whether `entry` contains `address`. `entry` is a CIDR (`10.0.0.0/8`, host bits ignored), a
/// range (`10.0.0.1-10.0.0.9`, inclusive, both ends the same family, low <= high) or a single
/// address, IPv4 or IPv6. Different families never match (IPv4-mapped IPv6 is not IPv4).
/// Malformed entries or addresses contain nothing.
bool contains(std::string_view entry, std::string_view address);

// ---------------------------------------------------------------------------------------------
// Plans and checks (pure: the IdP's JSON in, what to write out)
// ---------------------------------------------------------------------------------------------

enum class change_kind : char { add = '+', remove = '-', keep = '=' };
struct change {
  change_kind kind = change_kind::add;
  std::string value;  ///< the entry: `127.0.0.2/32`, `10.0.0.1-10.0.0.9`...
  bool operator==(const change&) const = default;
};

/// What publishing would do.
struct plan {
  /// The body to send when changed: Okta the whole zone (PUT is a full replace: every field
  /// except `gateways` is the current value, unknown fields included); Entra the PATCH body
  /// (`@odata.type` and `ipRanges`); for a creation the POST body. Empty when !changed.
  std::string body;
  std::vector<change> diff;  ///< '=' kept owned entries, '+' added, '-' removed, in that order
  bool changed = false;
  std::size_t added = 0;
  std::size_t removed = 0;
  std::size_t entries = 0;  ///< entries counted against the limit after the change
};

/// Okta: the limit of entries (gateways + proxies) in a zone: 1000 for usage BLOCKLIST, else
/// 150.
inline constexpr std::size_t okta_zone_limit = 150;
inline constexpr std::size_t okta_blocklist_limit = 1000;
/// Entra: ranges per named location the client refuses to exceed.
inline constexpr std::size_t entra_location_limit = 2000;

/// `addresses` must be normalized (normalize_address) and non-empty, else errc::bad_argument.
/// `zone_json` is the zone as GET returned it (errc::bad_response when it is not an object).
/// Throws errc::too_many_entries when the changed zone would exceed the limit; an unchanged zone
/// is never refused.
plan plan_okta_zone(std::string_view zone_json, const std::vector<std::string>& addresses,
                    bool exclusive);
/// The POST body of a new zone: `type IP`, `usage POLICY`, `status ACTIVE`, the addresses as
/// CIDR gateways.
plan plan_okta_create(std::string_view name, const std::vector<std::string>& addresses);
/// Entra: the same over `ipRanges` (iPv4CidrRange / iPv6CidrRange entries).
plan plan_entra_location(std::string_view location_json, const std::vector<std::string>& addresses,
                         bool exclusive);
/// The POST body of a new ipNamedLocation with `isTrusted: true`.
plan plan_entra_create(std::string_view name, const std::vector<std::string>& addresses);

/// Whether each address is trusted by a zone / named location.
struct verify_result {
  std::string id;
  std::string name;
  std::string status;  ///< Okta `ACTIVE`/`INACTIVE`; Entra `trusted`/`untrusted`
  /// ACTIVE zone of type IP and usage POLICY / trusted ipNamedLocation. When false, every
  /// address is in `missing`.
  bool active = false;
  std::vector<std::string> present;  ///< addresses inside an entry (CIDR or RANGE)
  std::vector<std::string> missing;
  bool ok() const noexcept { return active && missing.empty(); }
};
/// Okta: addresses inside the zone's `gateways` (CIDR and RANGE). `proxies` do not count: Okta
/// skips proxy addresses when it decides where a request comes from.
verify_result check_okta_zone(std::string_view zone_json,
                              const std::vector<std::string>& addresses);
/// Entra: addresses inside the location's `ipRanges`.
verify_result check_entra_location(std::string_view location_json,
                                   const std::vector<std::string>& addresses);

// ---------------------------------------------------------------------------------------------
// OAuth private_key_jwt
// ---------------------------------------------------------------------------------------------

struct assertion_claims {
  std::string client_id;  ///< iss and sub
  std::string audience;   ///< aud: the token endpoint URL
  std::string key_id;     ///< header `kid`; omitted when empty
  std::chrono::system_clock::time_point issued_at = std::chrono::system_clock::now();
  std::chrono::seconds lifetime{300};  ///< exp = iat + lifetime
};
/// A signed JWT client assertion: RS256 for an RSA key (>= 2048 bits), ES256 for a P-256 key
/// (the signature is the raw 64-byte r||s of RFC 7518, not DER). `jti` is 128 random bits.
/// `private_key_pem` is an unencrypted PEM private key (PKCS#8 or traditional). Throws
/// errc::bad_key.
std::string make_client_assertion(std::string_view private_key_pem, const assertion_claims& claims);
std::string base64url_encode(std::string_view data);
/// nullopt when `text` is not unpadded base64url.
std::optional<std::string> base64url_decode(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A secret read from a file. Never printed: the value is reachable only through reveal().
class secret {
 public:
  secret() = default;
  explicit secret(std::string v) : value_(std::move(v)) {}
  const std::string& reveal() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }

 private:
  std::string value_;
};
/// Reads a token or client secret: the whole file without trailing CR/LF. Throws
/// errc::file_unreadable, or errc::bad_argument when it is empty. `what` names it in messages.
secret read_secret_file(const std::filesystem::path& path, std::string_view what);

/// Called with progress notes worth telling an operator (e.g. "rate limited: waiting 3 s").
/// Never given a secret. May be empty.
using notice_fn = std::function<void(const std::string&)>;

/// Settings shared by both clients.
struct http_settings {
  /// PEM CA bundle to trust instead of the system store (a private CA, the simulators' dev
  /// CA). TLS verification, host name included, is always on.
  std::filesystem::path ca_file;
  duration timeout{std::chrono::seconds(10)};  ///< per step: resolve, connect, TLS, request
  /// Total time a call may spend waiting for rate limits to reset (429); a wait that would
  /// exceed it fails with errc::rate_limited instead.
  duration max_rate_limit_wait{std::chrono::seconds(60)};
  notice_fn notice;
};

/// Okta API token: `Authorization: SSWS <token>`.
struct okta_ssws {
  secret token;
};
/// Okta OAuth service app: client credentials with a private_key_jwt assertion against
/// `{org_url}/oauth2/v1/token`.
struct okta_oauth {
  std::string client_id;
  std::filesystem::path private_key;  ///< PEM, RSA or EC P-256, unencrypted; read per token
  std::string key_id;                 ///< `kid` of the key registered with the app; optional
  std::string scopes = "okta.networkZones.manage";
};

/// How an Okta client authenticates.
using okta_auth = std::variant<okta_ssws, okta_oauth>;

struct okta_settings {
  std::string org_url;  ///< https://acme.okta.com (a path prefix is kept; no trailing '/')
  std::string zone;     ///< zone id (`nzo...`) or name
  okta_auth auth;
  http_settings http;
};

struct entra_settings {
  std::string tenant;    ///< tenant id or domain
  std::string location;  ///< named location id (GUID) or display name
  std::string client_id;
  secret client_secret;
  std::string login_url = "https://login.microsoftonline.com";
  std::string graph_url = "https://graph.microsoft.com";
  http_settings http;
};

struct publish_options {
  bool dry_run = false;    ///< compute and report; write nothing
  bool exclusive = false;  ///< remove every entry of the list that is not owned
  bool create = false;     ///< create the zone / location (by name) when it does not exist
};

struct publish_result {
  std::string id;    ///< empty for a creation under dry_run
  std::string name;  ///< Okta `name` / Entra `displayName`
  std::vector<change> diff;
  bool changed = false;  ///< something was (or, under dry_run, would be) written
  bool created = false;  ///< the zone was (would be) created
  bool dry_run = false;
  std::size_t added = 0;
  std::size_t removed = 0;
  std::size_t entries = 0;  ///< entries counted against the limit after the change
  /// Writes it took (0 when nothing was written). More than 1: another writer replaced the
  /// list between our read and our write, and the diff and counts are those of the last write.
  std::size_t writes = 0;
};

/// Publishing and verifying one Okta zone. Keeps an OAuth access token between calls (a 401
/// on a kept token fetches a new one once). Not thread-safe.
class okta_client {
 public:
  /// Checks the settings (errc::bad_argument); reads nothing yet.
  explicit okta_client(okta_settings settings);
  ~okta_client();
  okta_client(const okta_client&) = delete;
  okta_client& operator=(const okta_client&) = delete;

  /// Finds the zone (`GET /api/v1/zones/{id}` when `zone` looks like an id, else by name in
  /// `GET /api/v1/zones`), plans, and writes with `PUT /api/v1/zones/{id}` (or creates with
  /// `POST /api/v1/zones`) unless nothing changes or dry_run. Refuses (is_refusal) a missing
  /// zone without create, a non-IP or BLOCKLIST zone, an INACTIVE zone (status is never
  /// changed) and more than 150 entries, all before writing. `create` creates by name only (a
  /// missing `nzo...` id is not_found). A name matches without case (several matches:
  /// errc::ambiguous naming their ids; a match is never created again). After each PUT the zone
  /// is read back by id; while an owned entry is missing (a concurrent full replace dropped it)
  /// it is re-planned and written again, at most 5 writes with a jittered backoff from 200 ms,
  /// then errc::conflict. Addresses are normalized here (errc::bad_argument for a bad one). A
  /// 429 sleeps the calling thread until the reset (at most max_rate_limit_wait in total per
  /// call; a longer wait asked for fails at once with errc::rate_limited).
  publish_result publish(const std::vector<std::string>& addresses, const publish_options& options);
  /// Reads the zone and checks every address. A missing zone throws errc::not_found.
  verify_result verify(const std::vector<std::string>& addresses);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

/// The same for one Entra ipNamedLocation through Microsoft Graph, with a client-credentials
/// token from `{login_url}/{tenant}/oauth2/v2.0/token` (scope
/// `https://graph.microsoft.com/.default`). Publishing PATCHes only `ipRanges`; an untrusted
/// location is refused (isTrusted is never changed). A display name matches without case, as
/// in Graph; writes are read back and repeated like okta_client's. Not thread-safe.
class entra_client {
 public:
  explicit entra_client(entra_settings settings);
  ~entra_client();
  entra_client(const entra_client&) = delete;
  entra_client& operator=(const entra_client&) = delete;

  publish_result publish(const std::vector<std::string>& addresses, const publish_options& options);
  verify_result verify(const std::vector<std::string>& addresses);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Directory: devices, users and sessions (posture_sync, issue 15)
// ---------------------------------------------------------------------------------------------

/// An Okta device (Devices API), reduced to what posture_sync decides on.
struct okta_device {
  std::string id;      ///< `guo...`
  std::string status;  ///< ACTIVE, SUSPENDED, DEACTIVATED, CREATED
  std::string display_name;
  std::string platform;
  std::string udid;    ///< profile.udid; empty when absent
  std::string serial;  ///< profile.serialNumber; empty when absent
};

/// An Okta user, reduced to what posture_sync needs.
struct okta_user {
  std::string id;  ///< `00u...`
  std::string status;
  std::string login;
  std::string email;
};

struct okta_directory_settings {
  std::string org_url;  ///< https://acme.okta.com
  /// OAuth scopes the calls need (Okta API reference): okta.devices.manage (device search and
  /// lifecycle), okta.users.read (user search), okta.users.manage (clearing sessions).
  okta_auth auth;
  http_settings http;
};

/// Okta devices, users and user sessions. Synchronous, not thread-safe (like okta_client).
/// Every search follows Okta's pagination (Link rel="next" on the same server).
class okta_directory {
 public:
  explicit okta_directory(okta_directory_settings settings);
  ~okta_directory();
  okta_directory(const okta_directory&) = delete;
  okta_directory& operator=(const okta_directory&) = delete;

  /// `GET /api/v1/devices?search=profile.udid eq "U"` (or profile.serialNumber). Search
  /// results can lag behind changes: decide on a device's status from get_device(). A value
  /// with a quote, backslash or control character is errc::bad_argument.
  std::vector<okta_device> find_devices_by_udid(std::string_view udid);
  std::vector<okta_device> find_devices_by_serial(std::string_view serial);
  /// `GET /api/v1/devices/{id}`; nullopt when Okta answers 404.
  std::optional<okta_device> get_device(std::string_view id);
  /// `POST /api/v1/devices/{id}/lifecycle/suspend` / `unsuspend` (204).
  void suspend_device(std::string_view id);
  void unsuspend_device(std::string_view id);
  /// `GET /api/v1/users?search=profile.login eq "X" or profile.email eq "X"`.
  std::vector<okta_user> find_users(std::string_view login_or_email);
  /// `DELETE /api/v1/users/{id}/sessions?oauthTokens=true&forgetDevices=false` (204): ends the
  /// user's Okta sessions and revokes the OAuth tokens issued to them.
  void clear_user_sessions(std::string_view user_id);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

struct entra_directory_settings {
  std::string tenant;
  std::string client_id;
  secret client_secret;
  std::string login_url = "https://login.microsoftonline.com";
  std::string graph_url = "https://graph.microsoft.com";
  http_settings http;
};

/// Entra users through Graph (application permission User.RevokeSessions.All).
class entra_directory {
 public:
  explicit entra_directory(entra_directory_settings settings);
  ~entra_directory();
  entra_directory(const entra_directory&) = delete;
  entra_directory& operator=(const entra_directory&) = delete;

  /// `POST /v1.0/users/{id or UPN}/revokeSignInSessions`: invalidates the user's refresh
  /// tokens and session cookies. errc::not_found when Graph does not know the user.
  void revoke_sign_in_sessions(std::string_view user);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// CAEP device-compliance-change Security Event Tokens (posture_sync, issue 15; docs/caep.md)
// ---------------------------------------------------------------------------------------------

/// The CAEP event type this library sends.
inline constexpr const char* caep_device_compliance_change =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

/// Where the subject goes: `okta` = inside the event object (`subject`), with `event_timestamp`
/// (seconds) — what Okta's SSF receiver documents; `caep_final` = top-level `sub_id` of format
/// `complex` (CAEP 1.0 Final), with `event_timestamp` in the event too.
enum class caep_subject_format { okta, caep_final };
/// "okta" / "caep-final".
std::string_view to_string(caep_subject_format f) noexcept;
/// The inverse of to_string() (exact, lower-case); nullopt for anything else.
std::optional<caep_subject_format> caep_subject_format_from_string(std::string_view s) noexcept;

struct caep_settings {
  std::string receiver_url;  ///< https://acme.okta.com/security/api/v1/security-events
  std::string issuer;        ///< `iss`: the transmitter (the gateway), e.g. https://gw.example.com
  std::string audience;      ///< `aud`: the receiver's issuer, e.g. https://acme.okta.com
  /// PEM, RSA >= 2048 (RS256) or EC P-256 (ES256), unencrypted.
  std::filesystem::path private_key;
  std::string key_id;  ///< `kid`; required
  caep_subject_format subject_format = caep_subject_format::okta;
  /// `Authorization: Bearer <token>` for receivers that require one (RFC 8935 §2.1 allows it);
  /// empty = no Authorization header (Okta: the signature authenticates).
  secret bearer_token;
  http_settings http;
};

/// One compliance change to report.
struct caep_change {
  /// The device subject's `sub` (format iss_sub with iss = settings.issuer): UDID, or serial
  /// when no UDID. Required.
  std::string device_id;
  std::string user_email;  ///< the user subject (format `email`); empty = no user subject
  std::string tenant;      ///< a `tenant` subject (format opaque, `id`); empty = none
  bool compliant = false;  ///< current_status (previous_status is the opposite)
  /// event_timestamp (whole seconds).
  std::chrono::system_clock::time_point when = std::chrono::system_clock::now();
  std::string initiating_entity = "policy";  ///< admin|user|policy|system; empty = omitted
  /// English text for admins (reason_admin {"en": ...}); empty = omitted.
  std::string reason_admin;
  std::string txn;  ///< the `txn` claim (e.g. the UEM event identity); empty = omitted
};

/// The signed SET (compact JWS, header {alg, typ: "secevent+jwt", kid}) with claims iss, jti,
/// iat, aud, txn (when given), sub_id (caep_final only) and one event. `jti` is 128 random bits,
/// `iat` now. Throws errc::bad_key (the key), errc::bad_argument (empty issuer, audience,
/// key_id or device_id; an initiating_entity outside admin|user|policy|system). Pure apart from
/// the random jti and the clock; receiver_url, private_key and http are not used.
std::string make_caep_set(std::string_view private_key_pem, const caep_settings& settings,
                          const caep_change& change);
/// The public JWKS of a private key: {"keys":[{kty,kid,use:"sig",alg,n,e}]} for RSA,
/// {"keys":[{kty,kid,use:"sig",alg,crv,x,y}]} for P-256. Throws errc::bad_key, or
/// errc::bad_argument for an empty key_id.
std::string make_jwks(std::string_view private_key_pem, std::string_view key_id);

/// Sends SETs to one receiver (RFC 8935 push delivery). Synchronous, not thread-safe.
class caep_client {
 public:
  /// Checks the settings and reads and checks the key: errc::bad_argument (a receiver URL that
  /// is not https, an empty issuer, audience or key_id), errc::file_unreadable, errc::bad_key.
  explicit caep_client(caep_settings settings);
  ~caep_client();
  caep_client(const caep_client&) = delete;
  caep_client& operator=(const caep_client&) = delete;

  /// POSTs one SET (`Content-Type: application/secevent+jwt`); 202 or 204 = delivered. A 429
  /// waits for the reset and resends the same SET (same jti: it was not accepted), within
  /// http.max_rate_limit_wait, else errc::rate_limited. An RFC 8935 error answer
  /// (`{"err","description"}`) throws errc::unauthorized for authentication_failed,
  /// invalid_key, invalid_issuer, invalid_audience and access_denied, errc::http_error
  /// otherwise; idp_code() is the `err`. Any other status throws as the other clients do;
  /// network failures throw errc::unreachable / errc::timeout. The change is checked as
  /// make_caep_set() does.
  void send(const caep_change& change);
  /// make_jwks() of the configured key and key_id (what the receiver must know).
  const std::string& jwks() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace tunnelgate::idp

template <>
struct std::is_error_code_enum<tunnelgate::idp::errc> : std::true_type {};
