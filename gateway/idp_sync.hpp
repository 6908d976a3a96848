// Internal: keeps the egress addresses registered with the identity providers (idp_sync) and
// checks what address the outside world sees (egress.check_url). Runs on its own thread: the
// idp clients are synchronous, and a slow IdP must never hold up a device.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/config.hpp"

namespace tunnelgate::gateway {

class event_log;

/// The last known state of one target: "okta", "entra" or "egress_check".
struct sync_status {
  std::string target;
  /// okta/entra: pending | in_zone | missing | error; egress_check: pending | match |
  /// mismatch | error.
  std::string state = "pending";
  std::string detail;  ///< human text: what is missing, the error, the address seen
  std::chrono::system_clock::time_point last_sync{};  ///< zero until the first attempt ended
  std::uint64_t drifts = 0;   ///< times the address was found missing after being in the zone
  std::uint64_t repairs = 0;  ///< publishes that changed something
};

class idp_sync {
 public:
  explicit idp_sync(event_log& log);
  ~idp_sync();
  idp_sync(const idp_sync&) = delete;
  idp_sync& operator=(const idp_sync&) = delete;

  /// Uses `cfg` from now on (start and SIGHUP) and syncs at once. Starts the thread the first
  /// time a configuration has idp_sync or egress.check_url. Thread-safe.
  void configure(std::shared_ptr<const config> cfg);
  /// Stops the thread, waiting at most `bound` for a call to an IdP in progress. Returns false
  /// when that call is still running: the thread is then detached and still uses this object
  /// and the log, so the caller must keep both alive until the process exits.
  bool stop(std::chrono::milliseconds bound);

  std::vector<sync_status> status() const;
  /// Prometheus text: tunnelgate_idp_zone_state, tunnelgate_idp_last_sync_timestamp_seconds,
  /// tunnelgate_idp_drift_total, tunnelgate_egress_check_state.
  std::string render_metrics() const;
  /// Lines for /readyz, and whether a target blocks readiness (pending, or missing: logins
  /// through this gateway would fail).
  std::string readiness(bool& ready) const;

 private:
  void loop();
  void round(const std::shared_ptr<const config>& cfg);
  void sync_provider(const config& cfg, const std::string& target,
                     const std::vector<std::string>& addresses);
  void check_egress(const config& cfg);
  void set(const sync_status& s);

  event_log& log_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<const config> cfg_;
  bool dirty_ = false;
  bool stopping_ = false;
  bool exited_ = false;  ///< the thread left its loop
  std::vector<sync_status> status_;
  std::thread thread_;
  // Clients live across rounds (an OAuth token is reused); rebuilt when the config changes.
  std::shared_ptr<const config> clients_for_;
  std::unique_ptr<idp::okta_client> okta_;
  std::unique_ptr<idp::entra_client> entra_;
};

}  // namespace tunnelgate::gateway
