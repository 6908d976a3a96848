// Internal: what is decided about a device connection at accept time, before any TLS work —
// the gateway-wide connection cap, the per-thread cap on handshakes in progress, and the
// per-source limits (connections still in their handshake, new connections per second).
//
// One enum of accept refusals with one spelling each (the `reason` label of
// tunnelgate_accept_refusals_total and of `accept_refused` log lines), decided in exactly one
// place (accept_control::admit) and answered in one place (the accept loop in server.cpp, which
// closes the socket without a byte written).
//
// A source is the peer's IPv4 address (/32) or its IPv6 /64 (one subscriber's prefix);
// IPv4-mapped IPv6 peers count as their IPv4 address.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gateway/net.hpp"

namespace tunnelgate::gateway {

enum class accept_refusal : std::uint8_t {
  none = 0,
  max_connections,       ///< limits.max_connections connections are open
  handshakes_busy,       ///< this thread has limits.max_handshakes_per_thread in progress
  source_pending_limit,  ///< the source has limits.max_pending_per_source unfinished handshakes
  source_rate_limit,     ///< the source opened more than limits.handshake_rate_per_source/s
  // On a listener with proxy_protocol (gateway/proxy_accept.cpp). Accept refusals, not
  // handshake refusals: decided before any TLS byte, the socket reset with nothing written,
  // and about the transport in front of the device, not the device's TLS or certificate.
  proxy_sender_not_allowed,  ///< the TCP peer is not one of the listener's senders
  proxy_header_invalid,      ///< the first bytes are not a valid PROXY protocol v2 header
  proxy_header_timeout,      ///< no complete header within limits.first_byte_timeout
};
inline constexpr std::size_t accept_refusal_count = 8;

/// The one spelling of each refusal ("max-connections", "source-rate-limit", ...).
std::string_view to_string(accept_refusal r) noexcept;

/// The administrator's fix, for the log line.
std::string_view remedy(accept_refusal r) noexcept;

/// The source a peer address counts against (IPv4 /32 or IPv6 /64).
struct source_key {
  std::uint64_t prefix = 0;  ///< IPv4: the address; IPv6: the first 64 bits
  bool v6 = false;
  bool operator==(const source_key&) const = default;
};
source_key source_of(const net::ip::address& a) noexcept;
std::string to_string(const source_key& k);

struct accept_limits {
  std::size_t max_connections = 10000;
  std::size_t max_handshakes_per_thread = 1000;
  std::size_t max_pending_per_source = 256;  ///< 0: no limit
  double rate_per_source = 100;              ///< new connections per second; 0: no limit
  double burst_per_source = 200;             ///< bucket size
};

/// Counts one thread's handshakes in progress (one per accept loop: one acceptor per thread).
using handshake_counter = std::atomic<std::size_t>;

class accept_control;

/// What an admitted connection holds: its place in the connection count for its whole life,
/// and its handshake slots (the thread's and the source's) until handshake_done() or its end.
/// Move-only; releases everything it holds when destroyed.
class accept_ticket {
 public:
  accept_ticket() = default;
  accept_ticket(accept_ticket&& o) noexcept { *this = std::move(o); }
  accept_ticket& operator=(accept_ticket&& o) noexcept;
  accept_ticket(const accept_ticket&) = delete;
  accept_ticket& operator=(const accept_ticket&) = delete;
  ~accept_ticket() { release(); }

  /// The handshake finished (either way): the thread's and the source's slots are free again.
  void handshake_done() noexcept;
  bool holds_connection() const noexcept { return ctl_ != nullptr; }

 private:
  friend class accept_control;
  void release() noexcept;
  std::shared_ptr<accept_control> ctl_;  ///< null: holds nothing
  std::shared_ptr<handshake_counter> thread_;
  source_key source_;
  bool in_handshake_ = false;
};

/// Shared by every accept loop; thread-safe. Lives as long as any ticket it issued.
class accept_control : public std::enable_shared_from_this<accept_control> {
 public:
  using clock = std::chrono::steady_clock;

  /// `connections` and `pending` are the gauges this keeps (tunnelgate_active_connections,
  /// tunnelgate_pending_handshakes); they must outlive it.
  accept_control(std::atomic<std::int64_t>& connections, std::atomic<std::int64_t>& pending)
      : connections_(connections), pending_(pending) {}

  struct decision {
    accept_refusal refusal = accept_refusal::none;
    accept_ticket ticket;     ///< holds the slots when admitted
    bool log = false;         ///< refused, and this source/reason has not been logged lately
    std::uint64_t quiet = 0;  ///< refusals of this kind not logged since the last line
  };

  /// Decides one accepted connection from `peer` under `limits`; on refusal nothing is held.
  decision admit(const net::ip::address& peer, const accept_limits& limits,
                 const std::shared_ptr<handshake_counter>& thread, clock::time_point now);

  /// Records a refusal decided outside admit() (the PROXY protocol checks) for the log
  /// throttle: once per source of `peer` and reason per log_interval (max_connections and
  /// handshakes_busy: once per reason). Nothing is held; the decision carries `r`.
  decision refuse(const net::ip::address& peer, accept_refusal r, clock::time_point now);

  std::int64_t connections() const noexcept { return connections_.load(); }
  /// Connections admitted whose handshake has not finished, all threads.
  std::int64_t pending() const noexcept { return pending_.load(); }
  /// Sources with state (pending connections or a partly spent rate bucket).
  std::size_t sources() const;

  /// Once per refusal log line per source and reason (per reason for the gateway-wide caps).
  static constexpr auto log_interval = std::chrono::seconds(10);
  /// The source table is swept of idle entries when it grows past this many.
  static constexpr std::size_t sweep_threshold = 65536;

 private:
  friend class accept_ticket;
  struct key_hash {
    std::size_t operator()(const source_key& k) const noexcept {
      return std::hash<std::uint64_t>{}(k.prefix * 0x9E3779B97F4A7C15ULL + (k.v6 ? 1 : 0));
    }
  };
  struct source_state {
    std::size_t pending = 0;
    double tokens = 0;
    clock::time_point refilled{};
    clock::time_point logged{};  ///< last refusal line for this source
    std::uint64_t quiet = 0;
  };
  struct global_log {
    clock::time_point logged{};
    std::uint64_t quiet = 0;
  };

  void end_handshake(const source_key& k) noexcept;
  void sweep(clock::time_point now, const accept_limits& limits);
  static bool should_log(clock::time_point& logged, std::uint64_t& quiet, clock::time_point now,
                         std::uint64_t& out_quiet);

  std::atomic<std::int64_t>& connections_;
  std::atomic<std::int64_t>& pending_;
  mutable std::mutex mutex_;
  std::unordered_map<source_key, source_state, key_hash> sources_;
  /// refuse()'s log throttle, per source and reason (a sender that is not allowed must not hide
  /// another's invalid headers); swept like sources_.
  struct refusal_key {
    source_key source;
    accept_refusal reason = accept_refusal::none;
    bool operator==(const refusal_key&) const = default;
  };
  struct refusal_hash {
    std::size_t operator()(const refusal_key& k) const noexcept {
      return key_hash{}(k.source) ^ (static_cast<std::size_t>(k.reason) * 0xC2B2AE3D27D4EB4FULL);
    }
  };
  std::unordered_map<refusal_key, global_log, refusal_hash> refusal_logs_;
  clock::time_point refusals_swept_{};
  global_log global_[accept_refusal_count];  ///< by accept_refusal value (max_connections,
                                             ///< handshakes_busy)
  clock::time_point swept_{};
};

}  // namespace tunnelgate::gateway
