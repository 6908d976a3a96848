// The VPN address pool: one IPv4 address (and, with an IPv6 prefix, one IPv6 address) per
// session, handed out as a lease that gives it back when it is destroyed.
//
// Order: addresses never handed out come first, in ascending order; after that the address
// released longest ago. A just-released address is therefore reused only when every other one
// is taken, so a device that reconnects, or a stale route or DNS answer, rarely meets its
// address on another device. Allocation and release are O(1); one mutex guards the pool, held
// for a few list operations only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

namespace tunnelgate::gateway::vpn {

class address_pool {
  struct state;

 public:
  /// The pool keeps 9 bytes per address, so it is capped at 2^20 addresses (a /12).
  static constexpr std::size_t max_addresses = std::size_t{1} << 20;

  /// A pool over `v4` (prefix /12 to /30; the host bits of the address given are ignored).
  /// Its network and broadcast addresses are never handed out, nor any address in `reserved`
  /// (the gateway's own tunnel address, its DNS address; reserved addresses outside the pool
  /// are ignored). With `v6`, a lease also carries the address of that prefix with the same
  /// host number as its IPv4 address (10.8.0.7 in 10.8.0.0/24 pairs with fd00::7 in fd00::/64),
  /// so the prefix must have at least as many host bits as `v4`; an IPv6 address in `reserved`
  /// takes its host number out of the pool too.
  /// Throws std::invalid_argument for a prefix out of range or a pool with no usable address.
  explicit address_pool(const boost::asio::ip::network_v4& v4,
                        const std::vector<boost::asio::ip::address>& reserved = {},
                        const std::optional<boost::asio::ip::network_v6>& v6 = std::nullopt);

  /// One session's addresses. Move-only; destroying it (or release()) returns them to the pool.
  /// A lease may outlive its pool object: the pool's state lives until the last lease is gone.
  class lease {
   public:
    lease() = default;
    lease(lease&& other) noexcept;
    lease& operator=(lease&& other) noexcept;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease();

    /// False for an empty lease (the pool was exhausted, or the address asked for was taken).
    explicit operator bool() const noexcept { return state_ != nullptr; }
    boost::asio::ip::address_v4 v4() const noexcept { return v4_; }
    /// Set when the pool has an IPv6 prefix.
    std::optional<boost::asio::ip::address_v6> v6() const noexcept { return v6_; }
    /// Returns the addresses now; the lease becomes empty. Idempotent.
    void release() noexcept;

   private:
    friend class address_pool;
    std::shared_ptr<state> state_;
    std::uint32_t slot_ = 0;
    boost::asio::ip::address_v4 v4_;
    std::optional<boost::asio::ip::address_v6> v6_;
  };

  /// The next address in pool order, or an empty lease when every address is taken.
  lease allocate();
  /// Exactly `wanted` (openconnect asks for its previous address when it reconnects, and
  /// refuses a different one), or an empty lease when it is taken, reserved or not in the pool.
  lease allocate(const boost::asio::ip::address_v4& wanted);

  /// Addresses the pool hands out (network, broadcast and reserved ones excluded).
  std::size_t size() const noexcept;
  /// Addresses free now.
  std::size_t available() const;
  std::size_t in_use() const { return size() - available(); }
  /// True for an address this pool can hand out (leased or not).
  bool contains(const boost::asio::ip::address_v4& a) const noexcept;

  boost::asio::ip::network_v4 ipv4_network() const noexcept;
  std::optional<boost::asio::ip::network_v6> ipv6_network() const noexcept;

 private:
  lease make_lease(std::uint32_t slot);
  std::shared_ptr<state> state_;
};

}  // namespace tunnelgate::gateway::vpn
