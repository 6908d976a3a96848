// The mapped-pool table behind hostname rules on the VPN.
//
// A device cannot tell the gateway which host name a packet is for, so the gateway answers DNS
// for names whose decision is `tunnel` with an address of its own from the mapped pool (default
// 100.64.0.0/16, routed into the tunnel by X-CSTP-Split-Include). A packet to that address is
// translated to the name's real address. This table holds the mapping:
//
// - the same name gets the same mapped address for as long as its entry lives;
// - an entry lives until it has no open flow and is past its expiry, which is the later of
//   (last DNS answer + the TTL given in it) and (end of its last flow + `linger`);
// - flows hold an entry open through a `flow` handle (RAII reference count);
// - when every mapped address is taken, an entry without open flows that is past its expiry
//   is evicted (the one that expired first); with none, mapping fails and the DNS server
//   answers SERVFAIL: an unexpired answer a device may still hold never comes to stand for
//   another name;
// - a name answered again with other real addresses keeps its old target while flows to it
//   are open (their verdicts were decided on it); the new target applies once they end.
//
// Every change the DNAT map needs (add, update, remove) is returned, in order, by the call that
// made it: map() and expire(). The table itself does no I/O. Thread-safe: one mutex, held for
// table operations only (never while the caller applies changes).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>

namespace tunnelgate::gateway::vpn {

/// Which rule decided a name, copied so an entry outlives a reloaded rules policy.
struct rule_ref {
  std::string rule_set;
  int rank = 0;  ///< 0 = the set's default
  int line = 0;  ///< source line of the rule
  friend bool operator==(const rule_ref&, const rule_ref&) = default;
};

/// One entry, as lookups return it (a copy).
struct dns_mapping {
  std::string name;  ///< lower case, no trailing dot
  boost::asio::ip::address_v4 mapped;
  std::vector<boost::asio::ip::address> real;  ///< what the name resolved to, in answer order
  rule_ref rule;
  std::chrono::steady_clock::time_point expires;  ///< meaningful while open_flows == 0
  std::size_t open_flows = 0;
};

/// A change to apply to the DNAT map, in the order given.
struct dns_map_change {
  enum class kind : std::uint8_t {
    add,     ///< mapped -> real is new
    update,  ///< the name re-resolved to other addresses: replace mapped's target
    remove,  ///< mapped is free again (expired or evicted)
  };
  kind what = kind::add;
  boost::asio::ip::address_v4 mapped;
  std::vector<boost::asio::ip::address> real;  ///< empty for remove
  std::string name;
};

class dns_map {
  struct state;

 public:
  using clock = std::chrono::steady_clock;
  using now_fn = std::function<clock::time_point()>;

  struct options {
    /// The mapped pool (its network and broadcast addresses are not used).
    boost::asio::ip::network_v4 pool{boost::asio::ip::make_network_v4("100.64.0.0/16")};
    /// Addresses of the pool not to use (e.g. the gateway's own, if it sits inside).
    std::vector<boost::asio::ip::address_v4> reserved;
    /// How long an entry outlives the end of its last flow: a device may still hold the
    /// answer in its cache after the TTL, and open a new connection to it.
    std::chrono::seconds linger{60};
  };

  /// Throws std::invalid_argument for a pool the address pool refuses (see address_pool).
  /// `now` is the clock (tests inject one); empty means steady_clock::now.
  explicit dns_map(options opts, now_fn now = {});
  ~dns_map();
  dns_map(const dns_map&) = delete;
  dns_map& operator=(const dns_map&) = delete;

  enum class error : std::uint8_t {
    none = 0,
    bad_name,      ///< not a DNS name (empty label, label over 63, name over 253, bad bytes)
    no_addresses,  ///< `real` is empty: nothing to map to
    exhausted,     ///< every mapped address has an entry with open flows
  };
  /// "ok", "bad_name", "no_addresses", "exhausted".
  static std::string_view to_string(error e) noexcept;

  struct map_result {
    error err = error::none;
    boost::asio::ip::address_v4 mapped;   ///< the address to answer with (when err == none)
    std::vector<dns_map_change> changes;  ///< apply these, in order, before answering
  };

  /// The mapped address for `name` (case and a trailing dot ignored), creating or refreshing
  /// its entry: `real` and `rule` replace the entry's, and its expiry becomes at least
  /// now + ttl. `ttl` is the TTL of the answer the gateway is about to send.
  map_result map(std::string_view name, std::vector<boost::asio::ip::address> real, rule_ref rule,
                 std::chrono::seconds ttl);

  /// A flow to a mapped address: keeps the entry alive while the handle lives. Move-only.
  class flow {
   public:
    flow() = default;
    flow(flow&& other) noexcept;
    flow& operator=(flow&& other) noexcept;
    flow(const flow&) = delete;
    flow& operator=(const flow&) = delete;
    ~flow();

    explicit operator bool() const noexcept { return state_ != nullptr; }
    /// The entry as it was when the flow opened (name, real addresses, rule).
    const dns_mapping& mapping() const noexcept { return mapping_; }
    /// Ends the flow now; idempotent.
    void close() noexcept;

   private:
    friend class dns_map;
    std::shared_ptr<state> state_;
    dns_mapping mapping_;
  };

  /// Opens a flow to `mapped`, or returns an empty handle when no entry holds that address.
  /// An entry past its expiry that expire() has not removed yet still counts: its DNAT entry
  /// is still installed, so table and DNAT map agree.
  flow open_flow(const boost::asio::ip::address_v4& mapped);

  /// Removes every entry past its expiry without open flows; returns the removals.
  std::vector<dns_map_change> expire();

  std::optional<dns_mapping> lookup(const boost::asio::ip::address_v4& mapped) const;
  std::optional<dns_mapping> find(std::string_view name) const;

  /// Entries in the table.
  std::size_t size() const;
  /// Mapped addresses in the pool.
  std::size_t capacity() const noexcept;
  /// True for an address of the mapped pool (whether it has an entry or not).
  bool in_pool(const boost::asio::ip::address_v4& a) const noexcept;
  boost::asio::ip::network_v4 pool() const noexcept;

  /// `name` as the table keys it: lower case, without a trailing dot; empty when it is not a
  /// DNS name.
  static std::string normalise_name(std::string_view name);

 private:
  std::shared_ptr<state> state_;
};

}  // namespace tunnelgate::gateway::vpn
