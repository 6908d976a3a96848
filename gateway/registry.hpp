// Internal: the registry of live sessions (admitted device connections), by id and by device.
//
// A session lives on one io_context thread; the registry is shared by all of them and guarded
// by a mutex that is taken only when a session starts, changes phase or ends — never per byte.
// Killing posts to the session's own executor, so sockets are only touched on their thread.
// Every per-session and per-device operation costs O(log n) in the devices tracked; the idle
// sweep costs O(devices it forgets), taking them from a queue ordered by idle time.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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

/// The one spelling of a device's UDID used as its key everywhere in the gateway (registry,
/// compliance lookups, logs, admin API): ASCII upper case. UDIDs are hexadecimal or GUIDs, and
/// the UEM compares them without regard to case; a certificate that spells one in lower case
/// is the same device.
std::string canonical_udid(std::string_view udid);

/// One session's entry. Owned jointly by the session and the registry; `kill` and `recheck`
/// are only invoked on the session's executor and only while `alive` (set and cleared there).
struct session_entry {
  net::any_io_executor executor;
  session_info info;  ///< guarded by the registry mutex
  relay_counters counters;
  bool alive = true;
  bool killed = false;
  /// Waiting for the next request (nothing in flight): a draining shutdown closes it at once.
  /// Read and written on the session's executor only.
  bool idle = false;
  std::function<void()> kill;  ///< closes the session's sockets
  /// Checks the session's certificate against the current trust store (after a CA or CRL
  /// change) and closes the session when it no longer passes.
  std::function<void()> recheck;
  std::string kill_reason;
};

class session_registry {
 public:
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;
  session_registry() = default;
  /// `now`: the clock idle times are read from (tests); the default is steady_clock::now.
  explicit session_registry(clock_fn now) : now_(std::move(now)) {}

  /// A session's place in the registry: removed when this handle is destroyed, so no exit
  /// path (an exception included) can leave a device counted after its session ended.
  class registration {
   public:
    registration() = default;
    registration(registration&& o) noexcept : reg_(std::exchange(o.reg_, nullptr)), id_(o.id_) {}
    registration& operator=(registration&& o) noexcept;
    ~registration() { reset(); }
    explicit operator bool() const noexcept { return reg_ != nullptr; }
    void reset();

   private:
    friend class session_registry;
    registration(session_registry* r, std::uint64_t id) : reg_(r), id_(id) {}
    session_registry* reg_ = nullptr;
    std::uint64_t id_ = 0;
  };

  /// An admission in progress (see begin_admission); ends when destroyed.
  class admission_ticket {
   public:
    admission_ticket(admission_ticket&& o) noexcept
        : reg_(std::exchange(o.reg_, nullptr)), udid_(std::move(o.udid_)) {}
    admission_ticket& operator=(admission_ticket&&) = delete;
    ~admission_ticket() { end(); }
    void end();

   private:
    friend class session_registry;
    admission_ticket(session_registry* r, std::string udid) : reg_(r), udid_(std::move(udid)) {}
    session_registry* reg_ = nullptr;
    std::string udid_;
  };

  /// Adds a session; an empty registration when the device already has `max_per_device`.
  registration add(const std::shared_ptr<session_entry>& e, std::size_t max_per_device);
  /// Updates the info of a live session (tunnel start/end).
  void update(std::uint64_t id, const std::function<void(session_info&)>& f);

  std::vector<session_info> list() const;
  std::size_t size() const;
  std::uint64_t next_id() { return next_id_.fetch_add(1) + 1; }

  /// Closes one session / all of a device's sessions / all. Returns how many were asked to close.
  bool kill(std::uint64_t id, const std::string& reason);
  std::size_t kill_device(const std::string& udid, const std::string& reason);
  std::size_t kill_all(const std::string& reason);
  /// Kills the sessions that are waiting for their next request (session_entry::idle), as seen
  /// on each session's executor; returns how many sessions were asked.
  std::size_t kill_idle(const std::string& reason);
  /// On the session's own executor: closes it now with `reason` (first reason wins).
  static void kill_here(session_entry& e, const std::string& reason);
  /// Runs every live session's `recheck` on its own executor; returns how many were asked.
  std::size_t recheck_all();
  /// Udids with live sessions (for re-checks).
  std::vector<std::string> devices() const;

  /// A device's admission is in progress (from before its compliance lookup until add() or
  /// the refusal): the ticket ends it. While one is, the device is never idle: forgetting its
  /// cached decision then could leave a session about to start without background re-checks.
  admission_ticket begin_admission(const std::string& udid);
  /// Calls `forget(udid)` for every device that has had no session and no admission for at
  /// least `idle`, longest idle first, and stops tracking it. `forget` runs under the registry
  /// lock (so no admission can start meanwhile) and must be quick and must not call back into
  /// the registry. Costs O(devices forgotten): devices with sessions are never looked at.
  std::size_t sweep_idle(std::chrono::steady_clock::duration idle,
                         const std::function<void(const std::string&)>& forget);

 private:
  /// Idle devices by the time they became idle; values point at devices_ keys (map nodes do
  /// not move).
  using idle_queue = std::multimap<std::chrono::steady_clock::time_point, const std::string*>;
  struct device_state {
    int sessions = 0;
    int admissions = 0;
    /// Invariant: set exactly while sessions == 0 && admissions == 0, to the device's place in
    /// idle_ (whose key is the time it became idle).
    std::optional<idle_queue::iterator> idle;
  };
  using device_map = std::map<std::string, device_state>;
  device_map::iterator track(const std::string& udid);
  void busy(device_state& d);
  void touch(device_map::iterator it);
  std::chrono::steady_clock::time_point now() const;
  void end_admission(const std::string& udid);
  void remove(std::uint64_t id);
  static void post_kill(const std::shared_ptr<session_entry>& e, const std::string& reason);

  const clock_fn now_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::shared_ptr<session_entry>> by_id_;
  std::multimap<std::string, std::uint64_t> by_device_;
  device_map devices_;  ///< every device seen since its last sweep
  idle_queue idle_;     ///< the devices_ that are idle, oldest first
  std::atomic<std::uint64_t> next_id_{0};
};

}  // namespace tunnelgate::gateway
