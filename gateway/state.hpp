// Internal: what sessions share. `runtime` is one configuration generation (replaced whole on
// SIGHUP; sessions keep the one they started with); `shared_state` lives as long as the process.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "certauth/certauth.hpp"
#include "gateway/accept_control.hpp"
#include "gateway/compliance.hpp"
#include "gateway/config.hpp"
#include "gateway/egress.hpp"
#include "gateway/idp_sync.hpp"
#include "gateway/logging.hpp"
#include "gateway/metrics.hpp"
#include "gateway/posture_sync.hpp"
#include "gateway/registry.hpp"

namespace tunnelgate::gateway {

struct runtime {
  std::shared_ptr<const config> cfg;
  std::shared_ptr<certauth::trust_store> trust;
  std::unique_ptr<certauth::verifier> verifier;
  std::shared_ptr<ssl::context> tls;           ///< device-facing server context
  std::shared_ptr<ssl::context> upstream_tls;  ///< client context for https upstream proxies
  egress_options egress;
  std::shared_ptr<const egress_policy> policy;  ///< applied to every address dialled
};

/// Builds a runtime from a loaded config: trust store, verifier, TLS contexts, egress checks
/// and the egress policy (`own_endpoints`: every listening endpoint of ours; `host`: this
/// host's addresses, shared and refreshed by the daemon).
/// Throws std::runtime_error naming what is wrong and how to fix it.
std::shared_ptr<runtime> make_runtime(std::shared_ptr<const config> cfg,
                                      const std::vector<tcp::endpoint>& own_endpoints,
                                      std::shared_ptr<const host_addresses> host);

class vpn_hub;

/// What a configuration reload did (SIGHUP or POST /api/v1/reload).
struct reload_outcome {
  bool applied = false;
  std::vector<std::string> errors;    ///< why it was refused (the old configuration stays)
  std::vector<std::string> warnings;  ///< applied, but each of these waits for a restart
};

struct shared_state {
  session_registry registry;
  metrics stats;
  /// Accept-time limits (connections, handshakes in progress, per source); keeps the
  /// active_connections and pending_handshakes gauges of `stats`.
  std::shared_ptr<accept_control> accept =
      std::make_shared<accept_control>(stats.active_connections, stats.pending_handshakes);
  std::shared_ptr<compliance> comp;
  std::unique_ptr<event_log> log;
  std::unique_ptr<idp_sync> idp;          ///< idp_sync and egress.check_url; set after log
  std::shared_ptr<posture_sync> posture;  ///< posture_sync; set at start when configured
  std::shared_ptr<vpn_hub> vpn;           ///< the full-device VPN when `vpn:` is configured
  /// HTTPS for the admin API (admin.tls), made at start; null: plain HTTP.
  std::shared_ptr<ssl::context> admin_tls;
  std::atomic<bool> stopping{false};
  /// This host's addresses for the egress policy; the daemon refreshes them.
  std::shared_ptr<host_addresses> host = std::make_shared<host_addresses>();
  /// Bumped whenever the device CA bundle or a CRL changes (reload or SIGHUP): a connection
  /// admitted with an older generation checks its certificate again.
  std::atomic<std::uint64_t> trust_generation{0};
  /// Reloads the configuration now; set by the daemon, called on its first thread (where the
  /// admin API and the signals run). Empty in tests without a daemon.
  std::function<reload_outcome()> reload;

  std::shared_ptr<const runtime> current() const {
    std::lock_guard lock(mutex_);
    return runtime_;
  }
  void set_current(std::shared_ptr<const runtime> r) {
    std::lock_guard lock(mutex_);
    runtime_ = std::move(r);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const runtime> runtime_;
};

/// The compliance source says a device is no longer admitted (webhook, poll, TTL re-check):
/// every session of that device closes now, and the revocation is logged. `udid` in any
/// spelling. Callable from any thread.
void revoke_device(shared_state& st, const std::string& udid, const std::string& reason);

/// The accept-time limits of a configuration.
accept_limits accept_limits_of(const limits_config& l);

/// Serves one accepted device connection to its end (STYLE: one run() per session). `ticket`
/// is what accept_control admitted it with (its connection slot for its whole life, its
/// handshake slots until the handshake ends); without one, the connection is admitted here
/// (tests that accept on their own). `peer`: the device's address when the socket's peer is
/// not the device (a PROXY protocol header named it); nullopt: the socket's peer.
awaitable<void> run_connection(std::shared_ptr<shared_state> st, tcp::socket sock,
                               accept_ticket ticket = {},
                               std::optional<tcp::endpoint> peer = std::nullopt);

}  // namespace tunnelgate::gateway
