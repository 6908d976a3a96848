// uem — device compliance from the UEM (DESIGN.md §5).
//
// The one public header of the library. Parts:
//   * device records and the posture policy: a pure decision from the UEM's fields
//     (evaluate(), map_platform(), parse_device_record(), parse_inventory(), parse_webhook());
//   * configuration: the `uem:` YAML section (load_config(), load_config_file());
//   * source: the seam behind which the Workspace ONE REST client (`ws1`) and the inventory
//     file (`file`) sit; make_source() builds the configured one;
//   * service: the cache (positive/negative TTL, stale grace), single flight, subscribers, the
//     background refresh and the webhook listener. The gateway and tunnelctl use only this.
//
// Thread model: a service owns one worker thread with its own io_context ("the worker").
// Every UEM request, timer, file check and webhook re-read runs there. The webhook listener
// (TLS handshakes, HTTP parsing, Basic auth, JSON bodies) runs on a second thread of its own,
// so no webhook client, however slow or hostile, can delay a lookup; it hands each
// authenticated event to the worker. Callers may use the service from any thread or executor;
// see service for each member's contract.
#pragma once

#include <utility>  // before Asio: awaitable.hpp uses std::exchange (STYLE P1)

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace tunnelgate::uem {

namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;
using duration = std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Failures of the library (not verdicts on a device: those are `reason`).
enum class errc : int {
  bad_config = 1,   ///< the `uem:` section is invalid; the message lists every problem
  file_unreadable,  ///< a configured file (inventory, secret, CA, certificate) cannot be read
  bad_inventory,    ///< the inventory file is not an array of valid device records
  bad_response,     ///< the UEM answered with a body that is not a valid device record
  unreachable,      ///< connect, TLS handshake or I/O with the UEM failed
  timeout,          ///< the UEM did not answer within connect_timeout / request_timeout
  unauthorized,     ///< the UEM refused our credentials (401/403), also after a token refresh
  rate_limited,     ///< the UEM answered 429 or we are backing off after one
  server_error,     ///< the UEM answered 5xx or an unexpected status
  token_failure,    ///< the OAuth token endpoint failed or returned an unusable token
  bad_webhook,      ///< a webhook body that is not a valid Event Notification
  stopped,          ///< the service was stopped while the operation was pending
};

const std::error_category& error_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// ---------------------------------------------------------------------------------------------
// Devices, posture and decisions
// ---------------------------------------------------------------------------------------------

/// How a device is named in a lookup. `device_id` is the UEM's numeric `Id.Value` (webhook
/// events carry it as `DeviceId`).
enum class key_kind : std::uint8_t { udid, serial, device_id };

struct device_key {
  key_kind kind = key_kind::udid;
  std::string value;

  static device_key udid(std::string v) { return {key_kind::udid, std::move(v)}; }
  static device_key serial(std::string v) { return {key_kind::serial, std::move(v)}; }
  static device_key device_id(std::string v) { return {key_kind::device_id, std::move(v)}; }
  /// "udid:<value>", "serial:<value>" or "device_id:<value>", for logs.
  std::string to_string() const;
};

/// The fields of a UEM device record the decision uses (API shape: domain.md §3).
struct device_record {
  std::string udid;               ///< `Udid`
  std::string serial;             ///< `SerialNumber`
  std::string device_id;          ///< `Id.Value` as text; empty when absent
  std::string user_email;         ///< `UserEmailAddress`; empty when absent
  std::string user_name;          ///< `UserName` (the enrollment user); empty when absent
  std::string platform;           ///< `Platform` as the UEM says it (`Apple`, `AppleOsX`…)
  std::string enrollment_status;  ///< `EnrollmentStatus`, e.g. `Enrolled`
  std::string compliance_status;  ///< `ComplianceStatus`, e.g. `Compliant`, `NonCompliant`
  bool compromised = true;        ///< `CompromisedStatus`
};

/// Why a device is admitted or refused. Stable names (to_string) reach logs, metrics, the
/// client's error message and `tunnelctl device check`.
enum class reason : std::uint8_t {
  ok = 0,           ///< admitted
  unknown_device,   ///< the UEM does not know the device (404 / not in the inventory)
  not_enrolled,     ///< `EnrollmentStatus` is not `Enrolled`
  compromised,      ///< `CompromisedStatus` is true (jailbroken / rooted)
  noncompliant,     ///< `ComplianceStatus` is not `Compliant`
  uem_unavailable,  ///< the UEM could not be asked and no cached admit is within stale grace
};
std::string_view to_string(reason r) noexcept;
std::optional<reason> reason_from_string(std::string_view s) noexcept;

/// `Platform` → DTR platform name: Apple→ios, AppleOsX→macos, Android→android,
/// WinRT→windows, Linux→linux. Empty for anything else (the field is then shown as `-`).
std::string_view map_platform(std::string_view uem_platform) noexcept;

/// Which checks the posture policy applies (`uem.posture`); all on by default.
struct posture_policy {
  bool require_enrolled = true;
  bool require_compliant = true;
  bool require_not_compromised = true;
};

/// A verdict on one device. Immutable once made; shared as decision_ptr.
struct decision {
  reason code = reason::uem_unavailable;
  /// The record the verdict was made from; empty for unknown_device and for uem_unavailable
  /// without a cached record.
  std::optional<device_record> device;
  std::string platform;  ///< map_platform(device->platform); empty when unknown
  /// For uem_unavailable: what failed (error text, never a secret). Empty otherwise.
  std::string detail;
  /// True when this admit was served from cache past its TTL because the UEM was unreachable.
  bool stale = false;

  bool admitted() const noexcept { return code == reason::ok; }
  /// `admit reason=ok platform=ios enrollment=Enrolled compliance=Compliant compromised=false`
  /// (first word `admit` or `refuse`; `-` for unknown fields). The `tunnelctl device check`
  /// line.
  std::string summary_line() const;
};
using decision_ptr = std::shared_ptr<const decision>;

/// The posture decision for a record (nullopt = unknown device). Checks run in the order
/// enrolled, not compromised, compliant, so the most telling reason is reported.
decision evaluate(const posture_policy& policy, const std::optional<device_record>& record);

// ---------------------------------------------------------------------------------------------
// Pure parsers (no I/O)
// ---------------------------------------------------------------------------------------------

/// Parses one device record in the UEM API's JSON shape. Required: `Udid`, `SerialNumber`,
/// `Platform`, `EnrollmentStatus`, `ComplianceStatus` (strings) and `CompromisedStatus` (bool).
/// Optional: `UserEmailAddress` and `UserName` (string or null), `Id` ({"Value": number}). A
/// missing or wrong-typed field is an error (errc::bad_response) whose message names the field;
/// there is never a default. Unknown fields are ignored (the UEM sends many).
struct record_result {
  std::optional<device_record> record;
  std::string error;  ///< set when record is empty
};
record_result parse_device_record(std::string_view json_text);

/// Parses an inventory: a JSON or YAML array of device records, or an object `{"Devices":
/// [...]}` (the UEM search response, so an export works as is). Every invalid record is
/// reported (`Devices[3].ComplianceStatus: missing`); duplicate UDIDs or serial numbers are
/// errors. `origin` names the file in messages.
struct inventory_result {
  std::vector<device_record> devices;
  std::vector<std::string> errors;
  bool ok() const noexcept { return errors.empty(); }
};
inventory_result parse_inventory(std::string_view text, std::string_view origin);

/// One UEM Event Notification (domain.md §3), reduced to what we act on.
struct webhook_event {
  /// `EventId` as text (the UEM sends a number); empty when absent. It names the *kind* of
  /// event (the same value for every "Compromised Status Changed"), not one event: never
  /// de-duplicate on it alone; use `identity`.
  std::string event_id;
  std::string event_type;  ///< `EventType`, e.g. `Compliance Status Changed`
  std::string event_time;  ///< `EventTime` as sent (ISO-8601 or legacy `/Date(ms)/`); may be empty
  /// The device to re-read: `Udid` when not empty, else `SerialNumber`, else `DeviceId`.
  /// Legacy payloads carry `"Udid": "System.Byte[]"`; that counts as empty.
  device_key key;
  /// The event's identity for de-duplication: 64 hex digits, SHA-256 over `EventId`,
  /// `EventType`, `Udid`, `SerialNumber`, `DeviceId` and `EventTime`, or over the whole body
  /// when `EventTime` is absent. Two deliveries of one event have the same identity; the same
  /// kind of event for another device, or later for the same device, has another.
  std::string identity;
  /// True for the event types that can change a decision: compliance, compromised,
  /// enrollment (`MDM Enrollment Complete`: it can admit a device, never revoke one by
  /// itself), unenrollment (`Break MDM Confirmed`), delete and wipe events. Types are compared
  /// without case, spaces, `_` or `-`, so the legacy spellings (`BreakMDMConfirmed`,
  /// `CompromisedStatusChanged`, `MDMEnrollmentComplete`, `DeviceEnterpriseWipeRequested`)
  /// count too. Whatever the type, the decision comes from re-reading the device.
  bool relevant = false;
  /// When the webhook listener finished reading the event (steady clock); zero from
  /// parse_webhook(). posture_sync measures its actions from here.
  clock_type::time_point received{};
};
/// Parses a webhook body. Fails (message set) on malformed JSON, a non-object, or no usable
/// device identifier; wrong-typed known fields are errors too (`EventTime`: a string or a
/// number).
struct webhook_result {
  std::optional<webhook_event> event;
  std::string error;
};
webhook_result parse_webhook(std::string_view body);

// ---------------------------------------------------------------------------------------------
// Configuration: the `uem:` section
// ---------------------------------------------------------------------------------------------

enum class source_kind : std::uint8_t { file, ws1 };
enum class auth_kind : std::uint8_t { basic, oauth };

/// A secret read from a file at load time. Never printed: to_string() is not provided and the
/// value is reachable only through reveal().
class secret {
 public:
  secret() = default;
  explicit secret(std::string v) : value_(std::move(v)) {}
  const std::string& reveal() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }

 private:
  std::string value_;
};

struct ws1_config {
  std::string base_url;  ///< https://host[:port][/prefix]; host may be an IP literal
  secret tenant_code;    ///< from tenant_code_file; sent as `aw-tenant-code`
  int api_version = 1;   ///< `Accept: application/json;version=N`, 1..4
  auth_kind auth = auth_kind::basic;
  std::string username;           ///< basic
  secret password;                ///< basic, from password_file
  std::string token_url;          ///< oauth, https://…/connect/token
  std::string client_id;          ///< oauth
  secret client_secret;           ///< oauth, from client_secret_file
  std::filesystem::path ca_file;  ///< extra trust for the UEM server; empty = system store
  bool tls_verify = true;         ///< false only for labs; logged loudly at start
  duration connect_timeout{std::chrono::seconds(5)};
  duration request_timeout{std::chrono::seconds(10)};
  int max_connections = 4;  ///< concurrent connections to the UEM (each kept alive)
};

struct cache_config {
  duration positive_ttl{std::chrono::minutes(5)};   ///< how long an admit is fresh
  duration negative_ttl{std::chrono::seconds(30)};  ///< how long a refusal is fresh
  duration stale_grace{std::chrono::minutes(10)};   ///< admit kept past its TTL while the UEM
                                                    ///< is unreachable; then fail closed
};

struct webhook_config {
  bool enabled = false;           ///< true when the `webhook:` section is present
  net::ip::tcp::endpoint listen;  ///< IP literal and port (0 = any free port)
  std::string username;
  secret password;                 ///< from password_file
  std::filesystem::path tls_cert;  ///< both set = HTTPS; both empty = plain HTTP
  std::filesystem::path tls_key;
  std::size_t max_body = std::size_t{64} * 1024;  ///< bytes; larger bodies get 413
  /// Plain HTTP on an address that is not loopback sends the Basic credentials in clear text:
  /// load_config refuses it unless this is true (then it adds a warning).
  bool allow_plain_http = false;
  /// Concurrent webhook connections; further ones are closed as soon as they are accepted.
  std::size_t max_connections = 16;
  /// Bounds each request in total, not per read: the TLS handshake (first request), the wait
  /// for it, its header and its body; writing the answer has the same bound again.
  duration request_timeout{std::chrono::seconds(10)};
};

struct config {
  source_kind source = source_kind::file;
  std::filesystem::path file;  ///< the inventory (source: file)
  ws1_config ws1;
  cache_config cache;
  posture_policy posture;
  webhook_config webhook;
  duration poll_interval{std::chrono::seconds(1)};  ///< file change check, expiry refresh tick
};

/// One problem in the configuration, `file:line:column: uem.key.path: message`.
struct config_error {
  /// Empty when the message names the file itself (a file that cannot be read).
  std::string file;
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based; 0 when unknown
  std::string message;
  std::string to_string() const;
};

struct config_result {
  std::optional<config> value;
  std::vector<config_error> errors;  ///< all of them; empty exactly when value is set
  /// Settings that are accepted but weaken security (e.g. `webhook.allow_plain_http` on a
  /// non-loopback address), in the same `file:line:column: uem.key.path: message` form. The
  /// library does not log them: the caller (the gateway's start, reload and --check-config)
  /// should print each one as a warning.
  std::vector<config_error> warnings;
  explicit operator bool() const noexcept { return value.has_value(); }
};

/// Parses the `uem:` key of a YAML document (other top-level keys belong to the gateway and
/// are not checked here). Unknown or repeated keys and secrets given inline are errors;
/// relative paths resolve against `base_dir`; secret files are read now.
config_result load_config(std::string_view yaml_text, std::string_view origin,
                          const std::filesystem::path& base_dir);
/// Reads `path` and calls load_config with its folder as base_dir.
config_result load_config_file(const std::filesystem::path& path);

// ---------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------

/// What a source says about one device: an error (the UEM could not answer), or found /
/// not found.
struct fetch_result {
  std::error_code error;                ///< set: the source could not answer
  std::string detail;                   ///< for an error: what failed, log-safe
  std::optional<device_record> device;  ///< empty without error: unknown device
};

/// The seam between the cache and the UEM. Every member runs on the service's worker.
class source {
 public:
  virtual ~source() = default;
  /// Asks about one device.
  virtual net::awaitable<fetch_result> fetch(device_key key) = 0;
  /// Called every poll_interval, and before the re-read a webhook event triggers (so an
  /// event is acted on with the inventory as it is now, not at the next poll); returns true
  /// when the data behind the source changed (a reloaded inventory), so every cached device
  /// is re-read. Default: never.
  virtual bool poll_changed() { return false; }
  /// Stops pending I/O; fetches after stop() fail with errc::stopped.
  virtual void stop() {}
  virtual std::string_view name() const = 0;
};

/// Builds the configured source bound to `ex` (the worker's executor). Throws
/// std::system_error (errc::file_unreadable, bad_inventory, bad_config) when it cannot start,
/// e.g. an unreadable inventory or CA file; the message names the file and the fix.
std::unique_ptr<source> make_source(const config& cfg, net::any_io_executor ex);

// ---------------------------------------------------------------------------------------------
// Service: cache, single flight, subscribers, webhook
// ---------------------------------------------------------------------------------------------

/// A change of a device's decision. `before` is never null.
struct change {
  /// The key of the cache entry whose decision changed, exactly as the caller of lookup() /
  /// check() gave it (the latest lookup that started a fetch for it), whatever the cause:
  /// a webhook naming the device by another case, by serial number or by DeviceId still
  /// reports the key that was looked up.
  device_key key;
  decision_ptr before;
  decision_ptr after;
  std::string_view cause;  ///< "webhook", "file_reload", "ttl_refresh", "lookup"
};

struct service_options {
  bool webhook = true;             ///< start the webhook listener when configured
  bool background_refresh = true;  ///< tick every poll_interval (file reload, TTL refresh)
  /// Injected clock for the cache (tests); default steady_clock::now.
  std::function<clock_type::time_point()> now;
  /// Source to use instead of make_source(cfg) (tests, benchmarks).
  std::function<std::unique_ptr<source>(net::any_io_executor)> make_source;
};

struct service_stats {
  std::uint64_t lookups = 0;     ///< lookup()/check() calls
  std::uint64_t cache_hits = 0;  ///< answered from a fresh (or stale-grace) entry
  std::uint64_t fetches = 0;     ///< requests to the source
  /// Webhook events answered 200 after dedup: acted on (device re-read) or of a type that
  /// cannot change a decision.
  std::uint64_t webhook_events = 0;
  std::uint64_t webhook_duplicates = 0;
  std::uint64_t webhook_rejected = 0;  ///< 400/401/405/413 answers
  /// Events answered 503 because the device could not be re-read (the UEM was unreachable);
  /// they are not remembered as seen, so the UEM's retry is acted on.
  std::uint64_t webhook_reread_failures = 0;
  /// Connections closed at accept because uem.webhook.max_connections were open.
  std::uint64_t webhook_connections_refused = 0;
  /// The source's most recent answer (fetch without error) and failure; empty: none yet.
  std::optional<clock_type::time_point> last_answer;
  std::optional<clock_type::time_point> last_failure;
};

/// Whether the service can admit anyone now (for the gateway's /readyz): not when the source
/// failed its last request and no cached admit is left within positive_ttl + stale_grace of
/// the source's last answer.
struct service_health {
  bool can_admit = true;
  std::string detail;  ///< why not, log-safe
};

/// Cache semantics:
///   * an admit is fresh for positive_ttl, a refusal for negative_ttl;
///   * a lookup of a fresh entry is answered from memory; otherwise one fetch per device runs
///     however many callers wait (single flight) and all get its result;
///   * when a fetch fails and the cached decision was an admit made less than
///     positive_ttl + stale_grace ago, the admit stays (marked stale) and the source is tried
///     again at most once a second; after that the answer is uem_unavailable (fail closed);
///   * an error never admits; uem_unavailable is answered for up to a second before the next
///     attempt, so an outage does not multiply requests;
///   * admitted entries are re-read when their TTL expires (background refresh), so a live
///     session learns about changes even without a webhook.
class service {
 public:
  /// Builds the source and starts the worker thread (and the webhook listener when
  /// configured and options.webhook). Throws std::system_error when the source or the
  /// listener cannot start (message names the problem and the fix).
  static std::shared_ptr<service> create(const config& cfg, service_options options = {});
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  /// The decision for a device. Callable from a coroutine on any executor: a fresh entry is
  /// returned without suspending to another thread; otherwise the fetch runs on the worker
  /// and the caller resumes on its own executor. Never throws for UEM failures (they become
  /// uem_unavailable); after stop() the answer is uem_unavailable.
  net::awaitable<decision_ptr> lookup(device_key key);
  /// Blocking variant for plain threads (tunnelctl). Must not be called on the worker
  /// (i.e. from a subscriber callback or a source).
  decision_ptr check(const device_key& key);
  /// The fresh (or stale-grace) cached decision, or nullptr. Never blocks on I/O; the cheap
  /// path the gateway takes first.
  decision_ptr cached(const device_key& key) const;

  /// Subscribers are called on the worker thread, after the cache is updated, for every
  /// change of a cached device's decision (admitted or reason or platform differs), whatever
  /// the cause. They must not block; post work to your own executor. The callback stays
  /// registered while the returned handle lives; dropping the handle waits for a call running
  /// on another thread, and no call starts after it (so the callback may capture `this`).
  using subscriber = std::function<void(const change&)>;
  std::shared_ptr<void> subscribe(subscriber callback);

  /// A webhook event acted on, with the decision its re-read of the device produced, whether
  /// or not the device is cached (subscribe() only sees cached devices). Not called when the
  /// re-read failed (the event is answered 503 and the UEM retries it).
  struct event_read {
    webhook_event event;
    decision_ptr decision;
  };
  using event_subscriber = std::function<void(const event_read&)>;
  /// Called on the worker thread after the change subscribers, for every relevant webhook
  /// event acted on. Must not block. Registered while the returned handle lives.
  std::shared_ptr<void> subscribe_events(event_subscriber callback);

  /// Drops a device from the cache (e.g. when its last session ends), so it is no longer
  /// refreshed in the background.
  void forget(const device_key& key);

  /// The webhook listener's bound endpoint (port resolved), when it runs.
  std::optional<net::ip::tcp::endpoint> webhook_endpoint() const;

  service_stats stats() const;
  service_health health() const;
  const config& configuration() const noexcept;

  /// Stops the listener, timers and the source, fails pending lookups with uem_unavailable
  /// and joins the worker. Idempotent; the destructor calls it. Not callable on the worker.
  void stop();

  struct impl;  // defined in the library

 private:
  explicit service(std::shared_ptr<impl> i) : impl_(std::move(i)) {}
  std::shared_ptr<impl> impl_;
};

}  // namespace tunnelgate::uem

template <>
struct std::is_error_code_enum<tunnelgate::uem::errc> : std::true_type {};
