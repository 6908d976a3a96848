// Internal: the registry of live sessions (admitted device connections), by id and by device.
//
// A session lives on one io_context thread; the registry is shared by all of them and guarded
// by a mutex that is taken only when a session starts, changes phase or ends — never per byte.
// Killing posts to the session's own executor, so sockets are only touched on their thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gateway/net.hpp"
#include "gateway/relay.hpp"

namespace tunnelgate::gateway {

/// What the admin API shows about a session. Tunnel fields are empty until a tunnel starts.
struct session_info {
  std::uint64_t id = 0;
  std::string udid, user, serial, platform;
  std::string peer;  ///< device address:port
  std::chrono::system_clock::time_point start;
  // the current (or last) tunnel
  std::string app, destination, action, rule_set, rank, egress;
  std::uint64_t bytes_up = 0, bytes_down = 0;
};

/// One session's entry. Owned jointly by the session and the registry; `kill` is only invoked
/// on the session's executor and only while `alive` (both set and cleared on that executor).
struct session_entry {
  net::any_io_executor executor;
  session_info info;  ///< guarded by the registry mutex
  relay_counters counters;
  bool alive = true;
  bool killed = false;
  std::function<void()> kill;  ///< closes the session's sockets
  std::string kill_reason;
};

class session_registry {
 public:
  /// Adds a session; returns false when the device already has `max_per_device` sessions.
  bool add(const std::shared_ptr<session_entry>& e, std::size_t max_per_device);
  void remove(std::uint64_t id);
  /// Updates the info of a live session (tunnel start/end).
  void update(std::uint64_t id, const std::function<void(session_info&)>& f);

  std::vector<session_info> list() const;
  std::size_t size() const;
  std::uint64_t next_id() { return next_id_.fetch_add(1) + 1; }

  /// Closes one session / all of a device's sessions / all. Returns how many were asked to close.
  bool kill(std::uint64_t id, const std::string& reason);
  std::size_t kill_device(const std::string& udid, const std::string& reason);
  std::size_t kill_all(const std::string& reason);
  /// Udids with live sessions (for re-checks).
  std::vector<std::string> devices() const;

  /// A device's admission is in progress (from before its compliance lookup until add() or
  /// the refusal). While one is, the device is never idle: forgetting its cached decision
  /// then could leave a session that is about to start without background re-checks.
  void begin_admission(const std::string& udid);
  void end_admission(const std::string& udid);
  /// Calls `forget(udid)` for every device that has had no session and no admission for at
  /// least `idle`, and stops tracking it. `forget` runs under the registry lock (so no admission
  /// can start meanwhile) and must be quick and must not call back into the registry.
  std::size_t sweep_idle(std::chrono::steady_clock::duration idle,
                         const std::function<void(const std::string&)>& forget);

 private:
  struct device_state {
    int sessions = 0;
    int admissions = 0;
    std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
  };
  void touch(device_state& d) const;
  static void post_kill(const std::shared_ptr<session_entry>& e, const std::string& reason);

  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::shared_ptr<session_entry>> by_id_;
  std::multimap<std::string, std::uint64_t> by_device_;
  std::map<std::string, device_state> devices_;  ///< every device seen since its last sweep
  std::atomic<std::uint64_t> next_id_{0};
};

}  // namespace tunnelgate::gateway
