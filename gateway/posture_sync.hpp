// Internal: posture_sync (issue 15, docs/posture-sync.md). When the UEM reports a device no
// longer admitted, suspend it in Okta, end its user's Okta sessions (OAuth tokens included)
// and Entra sign-in sessions, and send a CAEP device-compliance-change event; when it is
// admitted again, unsuspend it (only if this gateway suspended it) and send `compliant`.
//
// Threads: submit() is cheap and callable from any thread (the UEM worker calls it); the
// actions run on `workers` threads of their own, each with its own IdP clients (they are
// synchronous), so a slow IdP never holds up the UEM or a device. Every action is retried with
// backoff until it succeeds or the device changes again; a mapping problem (no Okta device,
// several users) is reported and not retried.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/config.hpp"
#include "gateway/metrics.hpp"

namespace tunnelgate::uem {
struct change;
class service;
}  // namespace tunnelgate::uem

namespace tunnelgate::gateway {

using steady_clock = std::chrono::steady_clock;

/// What the UEM says about one device, as posture_sync needs it.
struct posture_report {
  std::string udid;
  std::string serial;
  std::string platform;    ///< DTR platform name (ios, android, macos, windows, linux) or empty
  std::string user_name;   ///< the UEM's enrollment user name
  std::string user_email;  ///< the UEM's enrollment e-mail
  bool admitted = false;
  std::string reason;  ///< the UEM verdict: ok, noncompliant, compromised, not_enrolled...
  /// The UEM event that caused it: `webhook "Compliance Status Changed" 148 (3f2a9c1e)`, or
  /// the cache's cause (ttl_refresh, file_reload, lookup).
  std::string event;
  /// `event` names a webhook event (the event's re-read), not only the cache's cause: the same
  /// transition reported again by the cache ("webhook") keeps this name and time.
  bool named_event = false;
  steady_clock::time_point observed = steady_clock::now();  ///< when the event reached us
  /// The device's name in logs: `udid:…` or `serial:…`.
  std::string device() const;
};

/// What one action is. Each has one spelling (to_string), used in logs and metrics.
enum class posture_provider : std::uint8_t { okta, entra, caep };
enum class posture_action : std::uint8_t {
  suspend_device,    ///< okta: POST /api/v1/devices/{id}/lifecycle/suspend
  unsuspend_device,  ///< okta: …/unsuspend
  clear_sessions,    ///< okta: DELETE /api/v1/users/{id}/sessions?oauthTokens=true
  revoke_sessions,   ///< entra: POST /v1.0/users/{upn}/revokeSignInSessions
  send_event,        ///< caep: the SET to the SSF receiver
};
/// How an attempt ended. The outcomes after `retry` are final and change nothing at the IdP.
enum class posture_result : std::uint8_t {
  done,              ///< the IdP did it
  already,           ///< nothing to do: the device is already suspended / active
  retry,             ///< failed (network, 5xx, 429 beyond the budget...); tried again later
  device_not_found,  ///< no Okta device has the UDID / serial number
  device_ambiguous,  ///< several Okta devices have it: none is touched
  device_inactive,   ///< the Okta device is DEACTIVATED or not yet ACTIVE
  not_ours,          ///< suspended before the UEM event, not by this gateway: left suspended
  user_not_found,    ///< no Okta / Entra user for the UEM's enrollment user
  user_ambiguous,    ///< several Okta users match: none is touched
  no_user,           ///< the UEM names no enrollment user (or e-mail) for the device
  superseded,        ///< the device changed again before this action succeeded
};
std::string_view to_string(posture_provider p) noexcept;
std::string_view to_string(posture_action a) noexcept;
std::string_view to_string(posture_result r) noexcept;

/// One line of the audit: an attempt of one action and how it ended.
struct posture_audit {
  std::string device;  ///< udid:… / serial:…
  std::string user;    ///< the user acted on (login, e-mail or UPN); empty when none
  posture_provider provider = posture_provider::okta;
  posture_action action = posture_action::suspend_device;
  posture_result result = posture_result::done;
  std::string event;   ///< posture_report::event
  std::string detail;  ///< the IdP's id, the error text, why not...
  unsigned attempt = 1;
  double seconds = 0;  ///< from the UEM event to the end of this attempt
};
using posture_audit_fn = std::function<void(const posture_audit&)>;

class event_log;
class posture_sync;

/// The audit line: event `posture_sync` with device, user, provider, action, result,
/// uem_event, detail, attempt and seconds; info for done/already, warn otherwise.
void log_posture_audit(event_log& log, const posture_audit& a);

/// Feeds `sync` from the UEM service: its cache changes and every webhook event's re-read
/// (also for devices that are not cached). The subscriptions last while the handles live.
std::vector<std::shared_ptr<void>> connect_posture_sync(uem::service& svc,
                                                        const std::shared_ptr<posture_sync>& sync);

/// The report for a cache change: nullopt when there is nothing to act on (the UEM could not
/// be asked: uem_unavailable is never a reason to suspend or to restore).
std::optional<posture_report> posture_report_from(const uem::change& c);

class posture_sync {
 public:
  /// Checks the settings by building one set of clients (throws idp::error); starts the
  /// workers. `audit` is called on the worker threads, once per attempt.
  posture_sync(const posture_sync_config& cfg, posture_audit_fn audit);
  ~posture_sync();
  posture_sync(const posture_sync&) = delete;
  posture_sync& operator=(const posture_sync&) = delete;

  /// A device's current state. Acts when it differs from what this gateway last acted on:
  /// not admitted → the revocation actions; admitted after a revocation → the restore actions
  /// (an admitted device never revoked is left alone). Thread-safe, never blocks on I/O.
  void submit(posture_report report);

  /// Runs every action for `report` once, now, on the calling thread, without the queue
  /// (tunnelctl posture-sync apply). For an admitted device it unsuspends a SUSPENDED Okta
  /// device whoever suspended it (the operator asked). Returns the audit lines (also given to
  /// `audit`).
  std::vector<posture_audit> apply_once(const posture_report& report);

  /// The public JWKS of the CAEP signing key; empty without caep.
  std::string jwks() const;
  /// Actions waiting (due now or later, retries included).
  std::size_t pending() const;
  /// Prometheus text: tunnelgate_posture_sync_actions_total{provider,action,result},
  /// tunnelgate_posture_sync_action_seconds{provider,action} (from the UEM event to the
  /// action done) and tunnelgate_posture_sync_pending.
  std::string render_metrics() const;
  /// Stops the workers, waiting at most `bound` for calls in progress; false when some are
  /// still running (they are detached and keep this object's state alive).
  bool stop(std::chrono::milliseconds bound);

  struct state;  // shared with the worker threads

 private:
  std::shared_ptr<state> state_;
};

}  // namespace tunnelgate::gateway
