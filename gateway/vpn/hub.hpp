// Internal: the full-device VPN's shared half (DESIGN.md §6): the TUN device and its NAT
// (through netops), the client address pool, the session cookies, the in-tunnel DNS server with
// the mapped pool for host-name rules, the per-packet egress decision, and the dispatch of
// packets read from the TUN to the session that owns their destination address.
//
// Threads: the TUN reader, the DNS server and the expiry timer run on the hub's executor (the
// daemon's first io_context). Sessions run on their own executors; they call to_tun() and
// decide() from there (thread-safe), and receive packets through their link's post().
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "gateway/config.hpp"
#include "gateway/egress.hpp"
#include "gateway/logging.hpp"
#include "gateway/metrics.hpp"
#include "gateway/net.hpp"
#include "gateway/vpn/cookie_store.hpp"
#include "gateway/vpn/dns_map.hpp"
#include "gateway/vpn/packet.hpp"
#include "gateway/vpn/pool.hpp"

namespace tunnelgate::netops {
class netops;
}

namespace tunnelgate::gateway {

struct shared_state;
struct runtime;

/// One VPN session as the hub sees it: where its packets go. Owned by the session; the hub
/// holds it weakly in its address map while the session is attached.
struct vpn_link {
  net::any_io_executor executor;
  /// Called on `executor` with one IP packet from the TUN for this session; the buffer has
  /// 8 free bytes in front of the packet for the CSTP header (packet = buf[8..]).
  std::function<void(std::vector<std::uint8_t>)> deliver;
  std::string udid;
  std::string user;
  dtr::platform platform = dtr::platform::windows;
  net::ip::address_v4 address;
  /// Bytes posted to `executor` and not yet delivered: the TUN reader drops beyond a bound,
  /// so a device that does not read cannot pile work onto its thread.
  std::atomic<std::size_t> in_flight{0};
};

/// Why a packet from a device was not forwarded: the `reason` label of
/// tunnelgate_vpn_dropped_packets_total. One spelling each.
enum class vpn_drop : std::uint8_t {
  none = 0,
  malformed,        ///< not a valid IPv4/IPv6 packet (packet::error says how; logged once)
  spoofed,          ///< its source is not the session's address
  to_gateway,       ///< to the gateway's tunnel address, other than DNS
  unmapped,         ///< to a mapped-pool address with no live DNS mapping
  no_rule_set,      ///< no full-device rule set for the platform
  blocked,          ///< a `block` rule (or the set's default) decides the destination
  bypass,           ///< a `bypass` rule: the device should have sent it outside the tunnel
  proxy,            ///< a `proxy` rule: not carried by the VPN (docs/vpn.md)
  not_tunnelled,    ///< the host name of a mapped flow no longer decides `tunnel` on this port
  egress_policy,    ///< the egress policy refused the real destination (loopback, private, ...)
  ipv6,             ///< an IPv6 destination without an IPv6 egress address
  flow_table_full,  ///< the session holds limits' worth of flows already
};
std::string_view to_string(vpn_drop d) noexcept;

/// The decision on a new flow (the first packet of a 5-tuple).
struct vpn_verdict {
  vpn_drop drop = vpn_drop::none;
  std::string host;       ///< the host name for a mapped destination, else empty
  net::ip::address real;  ///< where the flow really goes (the DNAT target for mapped ones)
  std::string rule_set;
  int rank = 0;
  int line = 0;
  std::string detail;          ///< for the log: the egress policy's reason, the rule
  vpn::dns_map::flow mapping;  ///< keeps a mapped entry alive while the flow lives
  bool allowed() const noexcept { return drop == vpn_drop::none; }
};

class vpn_hub : public std::enable_shared_from_this<vpn_hub> {
 public:
  /// Bytes from the TUN in flight to one session beyond which packets for it are dropped.
  static constexpr std::size_t max_in_flight = std::size_t{4} << 20;

  /// Sets the host up (stale state removed, TUN, NAT) and starts the TUN reader, the DNS
  /// server and the expiry timer on `ex`. Throws std::runtime_error naming what failed and
  /// the fix (CAP_NET_ADMIN, /dev/net/tun, an address conflict).
  /// `st` outlives the hub (it owns it: shared_state::vpn).
  static std::shared_ptr<vpn_hub> start(shared_state* st, std::shared_ptr<const config> cfg,
                                        const net::any_io_executor& ex);
  ~vpn_hub();

  /// Stops the reader, the DNS server and the timer, and undoes the host changes. Idempotent,
  /// never throws. Call only after the io_contexts stopped (no session may still write to the
  /// TUN), or at a failed start.
  void stop() noexcept;

  /// A device may hold vpn.max_tunnels_per_device tunnels at once; the ticket holds one.
  class tunnel_ticket {
   public:
    tunnel_ticket() = default;
    tunnel_ticket(tunnel_ticket&& o) noexcept
        : hub_(std::exchange(o.hub_, nullptr)), udid_(std::move(o.udid_)) {}
    tunnel_ticket& operator=(tunnel_ticket&& o) noexcept;
    ~tunnel_ticket() { release(); }
    void release() noexcept;
    explicit operator bool() const noexcept { return hub_ != nullptr; }

   private:
    friend class vpn_hub;
    tunnel_ticket(vpn_hub* h, std::string udid) : hub_(h), udid_(std::move(udid)) {}
    vpn_hub* hub_ = nullptr;
    std::string udid_;
  };
  /// An empty ticket when the device is at its limit.
  tunnel_ticket take_tunnel(const std::string& udid);

  const vpn_config& settings() const noexcept { return vpn_; }
  cookie_store& cookies() noexcept { return cookies_; }
  vpn::address_pool& pool() noexcept { return pool_; }
  net::ip::address_v4 tunnel_address() const noexcept { return tunnel_address_; }

  /// While the returned handle lives, packets from the TUN to link->address go to `link`.
  class attachment {
   public:
    attachment() = default;
    attachment(attachment&& o) noexcept
        : hub_(std::exchange(o.hub_, nullptr)), address_(std::move(o.address_)) {}
    attachment& operator=(attachment&&) = delete;
    ~attachment();

   private:
    friend class vpn_hub;
    attachment(vpn_hub* h, const net::ip::address_v4& a) : hub_(h), address_(a) {}
    vpn_hub* hub_ = nullptr;
    net::ip::address_v4 address_;
  };
  attachment attach(const std::shared_ptr<vpn_link>& link);

  /// Decides a new flow from `link`'s device (any thread): the rules for its platform on the
  /// destination (and, for a mapped address, on the host name it stands for), then the egress
  /// policy on the address really used.
  vpn_verdict decide(const vpn::packet::info& p, const vpn_link& link,
                     const std::shared_ptr<const runtime>& rt);

  /// Writes one packet from a device to the TUN (any thread). False when the kernel refused
  /// it (counted).
  bool to_tun(std::span<const std::uint8_t> packet);

  /// Counts a dropped packet.
  void count_drop(vpn_drop d);

  /// The split-include routes and split-DNS domains a device of `plat` gets (docs/vpn.md):
  /// the full-device set's `tunnel` CIDR rules and the mapped pool; the domains of its
  /// `tunnel` and `proxy` host rules.
  struct split {
    std::vector<net::ip::network_v4> include_v4;
    std::vector<net::ip::network_v6> include_v6;
    std::vector<std::string> dns;
    bool full_tunnel = false;  ///< the set tunnels by default: route everything
  };
  static split split_for(const dtr::policy& rules, dtr::platform plat, const cidr& mapped_pool);

  /// Prometheus text for the VPN's counters and gauges.
  std::string render_metrics() const;

 private:
  vpn_hub(shared_state* st, std::shared_ptr<const config> cfg, net::any_io_executor ex);
  void setup();
  static awaitable<void> tun_reader(std::shared_ptr<vpn_hub> self);
  static awaitable<void> dns_udp(std::shared_ptr<vpn_hub> self);
  static awaitable<void> dns_udp_query(std::shared_ptr<vpn_hub> self,
                                       std::vector<std::uint8_t> query,
                                       net::ip::udp::endpoint from);
  static awaitable<void> dns_tcp(std::shared_ptr<vpn_hub> self);
  static awaitable<void> dns_tcp_client(std::shared_ptr<vpn_hub> self, tcp::socket s);
  static awaitable<void> expiry(std::shared_ptr<vpn_hub> self);
  /// Answers one DNS query from `client` (a device's tunnel address).
  /// Empty: no answer (not a query, or not from a device's tunnel address).
  awaitable<std::vector<std::uint8_t>> answer(const std::vector<std::uint8_t>& query,
                                              const net::ip::address& client);
  /// Pauses a loop after an error it cannot fix at once (EMFILE, a TUN gone), so it does not
  /// spin a core.
  static awaitable<void> back_off(std::shared_ptr<vpn_hub> self);
  void apply(const std::vector<vpn::dns_map_change>& changes);
  std::shared_ptr<vpn_link> link_for(const net::ip::address_v4& a) const;

  shared_state* st_;                   ///< owns the hub
  std::shared_ptr<const config> cfg_;  ///< the configuration the hub was set up with
  vpn_config vpn_;
  net::any_io_executor ex_;
  net::ip::address_v4 tunnel_address_;
  std::unique_ptr<netops::netops> ops_;
  std::unique_ptr<net::posix::stream_descriptor> tun_;
  int tun_fd_ = -1;  ///< for to_tun() from any thread (owned by tun_)
  std::unique_ptr<net::ip::udp::socket> dns_udp_;
  std::unique_ptr<tcp::acceptor> dns_tcp_;
  std::unique_ptr<net::steady_timer> timer_;
  vpn::address_pool pool_;
  cookie_store cookies_;
  vpn::dns_map map_;
  mutable std::shared_mutex links_mutex_;
  std::map<net::ip::address_v4, std::weak_ptr<vpn_link>> links_;
  std::atomic<bool> stopped_{false};
  std::mutex tunnels_mutex_;
  std::map<std::string, int> tunnels_;  ///< udid -> tunnels open
  // Owned by the hub's executor:
  int dns_in_flight_ = 0;  ///< UDP queries being answered
  int dns_tcp_clients_ = 0;
  log_budget dns_log_{20};

  counter_family drops_{"tunnelgate_vpn_dropped_packets_total",
                        "Packets from devices the VPN did not forward, by reason",
                        {"reason"}};
  counter_family dns_answers_{
      "tunnelgate_vpn_dns_answers_total", "In-tunnel DNS answers, by decision", {"decision"}};
  std::atomic<std::uint64_t> packets_up_{0}, packets_down_{0}, no_session_{0}, tun_errors_{0};
  std::atomic<std::uint64_t> device_backlog_drops_{0}, dns_dropped_{0};

 public:
  /// Counts a packet from the TUN dropped because its device does not read fast enough.
  void count_backlog_drop() noexcept { ++device_backlog_drops_; }
};

}  // namespace tunnelgate::gateway
