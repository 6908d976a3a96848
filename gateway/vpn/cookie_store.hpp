// Internal: the VPN session cookies (the `webvpn` cookie of the OpenConnect protocol). The
// certificate-authenticated `POST /` hands one out; the `CONNECT /CSCOSSLC/tunnel` that
// follows (on a new TLS connection, as openconnect does) redeems it. A cookie is random (256
// bits), short-lived, single use, and bound to the device identity and the fingerprint of the
// certificate it was issued to: a cookie stolen and presented with another device's
// certificate is refused. Only a hash of each cookie is kept. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace tunnelgate::gateway {

class cookie_store {
 public:
  using clock = std::chrono::steady_clock;

  /// Who a cookie was issued to.
  struct grant {
    std::string udid;         ///< canonical_udid() form
    std::string fingerprint;  ///< SHA-256 of the device certificate (DER), hex
  };

  /// Why a cookie was not redeemed. One spelling each (to_string), used as X-Tunnel-Reason.
  enum class refusal : std::uint8_t {
    none = 0,
    missing,   ///< no webvpn cookie in the request
    unknown,   ///< never issued, or forgotten after it expired
    expired,   ///< issued, not used within its lifetime
    used,      ///< single use: already redeemed
    revoked,   ///< the device was refused or revoked after the cookie was issued
    mismatch,  ///< presented with another device or another certificate than it was issued to
  };
  static std::string_view to_string(refusal r) noexcept;

  /// `now` is injected by tests.
  explicit cookie_store(
      clock::duration ttl, std::function<clock::time_point()> now = [] { return clock::now(); })
      : ttl_(ttl), now_(std::move(now)) {}

  /// Unredeemed cookies a device may hold: issuing one more revokes its oldest.
  static constexpr std::size_t max_per_device = 8;
  /// Cookies kept in all (tombstones included): beyond it issue() refuses.
  static constexpr std::size_t max_cookies = 200'000;

  /// A new cookie for `g`, valid for the store's lifetime setting; empty when the store is
  /// full (the caller answers 503).
  std::string issue(const grant& g);

  /// Redeems `cookie` for the device `presenter` (identity and certificate of the connection
  /// presenting it). Single use: a second redeem of the same cookie gives `used`, unless the
  /// tunnel it opened was lost and released it as resumable (below).
  /// `replaces`: when the same device and certificate present a cookie whose tunnel is still
  /// up (openconnect gives up on a silent connection before the gateway does, and reconnects
  /// with the same cookie), the redeem succeeds and *replaces is the id of that tunnel's
  /// session, which the caller ends (ocserv does the same). Without `replaces`, that is `used`.
  refusal redeem(std::string_view cookie, const grant& presenter,
                 std::uint64_t* replaces = nullptr);

  /// The tunnel opened with `cookie` runs as session `id` (for redeem's `replaces`).
  void bind(std::string_view cookie, std::uint64_t id);

  /// The tunnel opened with `cookie` ended. `resumable`: it was lost (the connection dropped,
  /// no DPD answer) rather than ended on purpose, so the same device and certificate may
  /// redeem the cookie once more within one lifetime from now: openconnect reconnects after a
  /// network drop with the same cookie and asks for its previous address. Otherwise (the
  /// device left, or the session was killed) the cookie stays used.
  void release(std::string_view cookie, bool resumable);

  /// The device was refused or revoked: its unredeemed cookies die.
  void revoke_device(const std::string& udid);

  /// Drops entries whose lifetime has passed more than one lifetime ago (call periodically);
  /// returns how many.
  std::size_t sweep();
  std::size_t size() const;

 private:
  struct entry {
    grant g;
    clock::time_point expires;
    refusal state = refusal::none;  ///< none: redeemable; used or revoked: a tombstone
    bool resumable = false;         ///< used, but released for one reconnect
    std::uint64_t holder = 0;       ///< the session of the tunnel it opened, while it runs
  };
  clock::duration ttl_;
  std::function<clock::time_point()> now_;
  mutable std::mutex mutex_;
  std::map<std::string, entry, std::less<>> by_hash_;  ///< SHA-256(cookie), hex
  /// udid -> hashes of the cookies issued to it, oldest first (may hold stale hashes).
  std::map<std::string, std::deque<std::string>, std::less<>> issued_;
};

}  // namespace tunnelgate::gateway
