// Internal: the egress policy (DESIGN.md §6): the rules decide on names, this decides on the
// addresses actually used. Every address a destination resolves to passes check() before a
// socket is opened (and, with the VPN, every packet's destination), whatever the rules said
// about the name:
//   * always refused: the gateway's own listening endpoints (device, admin, webhook), and the
//     VPN's own ranges (client pools, mapped pool): devices never reach each other;
//   * refused unless `egress.allow` lists the address (never a rules file): loopback,
//     unspecified (0.0.0.0/8, ::), link-local (169.254.0.0/16, fe80::/10: cloud metadata),
//     multicast, broadcast, and every address of this host;
//   * `egress.deny` ranges: refused, even where `egress.allow` lists them;
//   * the rules again, on the address: a `block` or `bypass` CIDR rule refuses it;
//   * private and shared ranges (RFC 1918, 100.64.0.0/10, fc00::/7, fec0::/10): refused unless
//     a `tunnel`/`proxy` rule names a CIDR holding the address, or `egress.allow` lists it.
// IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses are checked, and
// connected to, as the IPv4 address; NAT64 addresses (64:ff9b::/96) are also checked as the
// IPv4 address they embed.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dtr/dtr.hpp"
#include "gateway/net.hpp"

namespace tunnelgate::gateway {

/// An address range (a bare address is /32 or /128).
struct cidr {
  net::ip::address network;
  unsigned prefix = 0;

  bool contains(const net::ip::address& a) const noexcept;
  std::string text() const;
  friend bool operator==(const cidr&, const cidr&) = default;
  /// Parses "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" or "::1". Host bits must be zero.
  /// On failure returns nullopt and sets `error` to what is wrong.
  static std::optional<cidr> parse(std::string_view text, std::string& error);
};

/// Why the egress policy refused an address. One spelling each (logs, metrics).
enum class egress_block : std::uint8_t {
  none = 0,
  own_listener,   ///< one of the gateway's own listening endpoints
  vpn_range,      ///< the VPN's client pool or mapped pool
  denied,         ///< inside an egress.deny range
  loopback,       ///< 127.0.0.0/8, ::1
  unspecified,    ///< 0.0.0.0/8, ::
  link_local,     ///< 169.254.0.0/16, fe80::/10
  multicast,      ///< 224.0.0.0/4, ff00::/8
  broadcast,      ///< 255.255.255.255 and the broadcast addresses of this host's interfaces
  host_address,   ///< an address assigned to this host
  rule_block,     ///< a `block` CIDR rule holds the address
  rule_bypass,    ///< a `bypass` CIDR rule holds the address
  private_range,  ///< a private or shared range no tunnel/proxy CIDR rule names
};
std::string_view to_string(egress_block b) noexcept;

struct egress_verdict {
  egress_block block = egress_block::none;
  net::ip::address address;  ///< the normalised address (the one to connect to)
  /// For rule_block / rule_bypass: the rule that refused (set name, rank, source line).
  const dtr::rule_set* set = nullptr;
  int rank = 0;
  int line = 0;
  bool allowed() const noexcept { return block == egress_block::none; }
};

/// The addresses of this host (getifaddrs), refreshed while the gateway runs: an address added
/// to an interface later is never reachable through the tunnel. Thread-safe.
class host_addresses {
 public:
  host_addresses() = default;
  explicit host_addresses(std::vector<net::ip::address> addresses,
                          std::vector<net::ip::address> broadcasts = {});
  /// Re-reads the interfaces; returns true when the set changed.
  bool refresh();
  bool is_local(const net::ip::address& a) const;
  bool is_broadcast(const net::ip::address& a) const;
  std::vector<net::ip::address> addresses() const;

 private:
  struct snapshot {
    std::vector<net::ip::address> addresses;
    std::vector<net::ip::address> broadcasts;
    friend bool operator==(const snapshot&, const snapshot&) = default;
  };
  std::shared_ptr<const snapshot> get() const;
  mutable std::mutex mutex_;
  std::shared_ptr<const snapshot> snap_ = std::make_shared<snapshot>();
};

struct egress_policy_options {
  std::vector<cidr> allow;  ///< egress.allow
  std::vector<cidr> deny;   ///< egress.deny
  /// The gateway's listening endpoints; an unspecified address (0.0.0.0 / ::) stands for every
  /// local address on that port.
  std::vector<tcp::endpoint> own_endpoints;
  std::shared_ptr<const host_addresses> host;  ///< null: no host addresses known
  /// Ranges no destination may be in, whatever allow and the rules say (the VPN's pools).
  std::vector<cidr> never;
};

class egress_policy {
 public:
  explicit egress_policy(egress_policy_options o);

  /// ::ffff:a.b.c.d and ::a.b.c.d (but not :: and ::1) as IPv4; everything else unchanged.
  static net::ip::address normalize(const net::ip::address& a);

  /// A tunnel's destination address, for a flow of `plat`/`app` under `rules`.
  egress_verdict check(const tcp::endpoint& ep, const dtr::policy& rules, dtr::platform plat,
                       std::string_view app) const;
  /// An upstream proxy's address (named by the rules file's `proxies:`): the same policy
  /// without the rules (the admin named that host; private ranges are fine, loopback and the
  /// other special ranges still need egress.allow).
  egress_verdict check_upstream(const tcp::endpoint& ep) const;

  const egress_policy_options& options() const noexcept { return o_; }

 private:
  /// Own endpoints, deny, then the special ranges (unless allowed). Sets `allowed`.
  egress_block common(const net::ip::address& a, std::uint16_t port, bool& allowed) const;
  egress_policy_options o_;
};

}  // namespace tunnelgate::gateway
