// PUBLIC: the only code in tunnelgate that changes the host's network configuration (the TUN
// device, its addresses and routes, the `inet tunnelgate` nftables table and the forwarding
// sysctls). Everything else asks through this interface and never calls netlink or nftables
// itself (STYLE.md §2 "privilege apart by construction"; DESIGN.md §6 full-device VPN).
//
// All calls are blocking and meant for startup and shutdown, before the first accept and after
// the last session; only map_add/map_remove are for run time (one nft transaction each, about
// 40-80 microseconds measured, independent of the map's size; netops.in_netns.map_update_cost).
// Every call needs CAP_NET_ADMIN in the network namespace the object was made in (the capability
// must be kept after dropping root, for the run-time map updates and the teardown). Setup errors
// are thrown as std::system_error / std::runtime_error whose text names what failed and how to fix
// it.
#pragma once

#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tunnelgate::netops {

namespace ip = boost::asio::ip;

/// An owned TUN file descriptor (IFF_TUN | IFF_NO_PI: each read or write is one bare IPv4 or
/// IPv6 packet). Move-only; the destructor closes the descriptor, and because the device is not
/// persistent, closing the last descriptor makes the kernel delete the interface together with
/// its addresses and routes. The descriptor is blocking and close-on-exec; an Asio
/// `posix::stream_descriptor` that takes it over (`release()`) switches it to non-blocking.
class tun_fd {
 public:
  tun_fd() noexcept = default;
  tun_fd(int fd, std::string name, int ifindex) noexcept;
  ~tun_fd();
  tun_fd(tun_fd&& other) noexcept;
  tun_fd& operator=(tun_fd&& other) noexcept;
  tun_fd(const tun_fd&) = delete;
  tun_fd& operator=(const tun_fd&) = delete;

  int get() const noexcept { return fd_; }
  /// Gives up ownership: the caller closes the descriptor from now on.
  int release() noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }
  const std::string& name() const noexcept { return name_; }
  int ifindex() const noexcept { return ifindex_; }

 private:
  int fd_ = -1;  ///< -1 when empty (moved from or released)
  std::string name_;
  int ifindex_ = 0;
};

/// The TUN device and what goes on it.
struct tun_spec {
  /// Interface name: 1 to 15 characters of [A-Za-z0-9_.-] (it also appears in nft rules).
  std::string name = "tunnelgate0";
  /// 68..65535; at least 1280 when address6 is set (IPv6 refuses smaller links).
  unsigned mtu = 1400;
  /// Packets the kernel queues on the device for the gateway to read (0: the kernel's 500).
  /// Forwarded TCP arrives in bursts (one GRO super-packet becomes dozens of MTU packets); a
  /// short queue drops them, and TCP through the tunnel collapses.
  unsigned txqueuelen = 2000;
  /// The gateway's own address on the tunnel and its prefix, e.g. 10.10.0.1/24 (the kernel
  /// adds the route for 10.10.0.0/24 onto the device by itself).
  ip::network_v4 address4;
  /// The gateway's IPv6 address on the tunnel, e.g. fd00:10::1/64 (added without DAD).
  std::optional<ip::network_v6> address6;
  /// Further routes onto the device, e.g. the client pools when they are not the address's
  /// own prefix. A route equal to address4's / address6's prefix is skipped (the kernel's).
  /// Added to the main table, scope link, protocol static; an existing equal route is an error.
  std::vector<ip::network_v4> routes4;
  std::vector<ip::network_v6> routes6;
};

/// Address translation and forwarding for the VPN (see install_nat and docs/vpn.md).
struct nat_spec {
  std::string tun_name = "tunnelgate0";  ///< the TUN made by create_tun (must exist)
  ip::network_v4 pool4;                  ///< client addresses (CSTP X-CSTP-Address)
  std::optional<ip::network_v6> pool6;   ///< client IPv6 addresses (X-CSTP-Address-IP6)
  ip::network_v4 mapped_pool4;           ///< DNS-mapped addresses, DNATed through @mapped4
  /// Source address of everything from pool4 that leaves the host (snat, not masquerade).
  /// Must be assigned to an interface of this host: that interface gets IPv4 forwarding
  /// (unless egress_interface4 names another).
  ip::address_v4 egress4;
  /// Required when pool6 is set; same rules as egress4 for IPv6.
  std::optional<ip::address_v6> egress6;
  /// The interface replies to the VPN's traffic arrive on, when it is not the one holding the
  /// egress address (an address on lo or a dummy, with the uplink elsewhere). Empty: the
  /// interface holding egress4 / egress6; an address on loopback then is an error.
  std::string egress_interface4;
  std::string egress_interface6;
  /// Linux forwards IPv6 per interface only through `force_forwarding` (kernel 6.17 and
  /// later). On an older kernel the only switch is net.ipv6.conf.all.forwarding, which turns
  /// every interface into a router (and stops accept_ra=1 interfaces from taking router
  /// advertisements). install_nat refuses that unless this is true.
  bool allow_global_ipv6_forwarding = false;
};

/// One sysctl install_nat changed, for the startup log (teardown writes `previous` back).
struct sysctl_change {
  std::string path;  ///< e.g. /proc/sys/net/ipv4/conf/eth0/forwarding
  std::string previous;
  std::string value;
};

/// The host's network configuration. Not thread-safe except map_add/map_remove, which may be
/// called from any thread at any time between install_nat and teardown (they take a mutex).
class netops {
 public:
  virtual ~netops() = default;

  /// For a starting gateway, before create_tun: removes what a killed run left behind: a TUN
  /// or TAP device named `tun_name` (refused with an error if that name belongs to another
  /// kind of interface) and the `inet tunnelgate` table, restoring the forwarding sysctls the
  /// dead run recorded in the table's comment. Does nothing when there is nothing to remove.
  virtual void cleanup_stale(const std::string& tun_name) = 0;

  /// Opens /dev/net/tun, creates the (non-persistent) device spec.name, replacing a stale TUN
  /// of that name, and configures it through rtnetlink: MTU, link up, addresses, routes. At
  /// most one TUN per object. Throws (and removes what it made) when any step fails.
  virtual tun_fd create_tun(const tun_spec& spec) = 0;

  /// After create_tun: finds the interfaces that hold egress4/egress6 (or takes
  /// egress_interface4/6), restores the sysctls a stale table records, replaces any
  /// `inet tunnelgate` table with a fresh one in one nft transaction (the rules are listed in
  /// nft.cpp and docs/vpn.md), then turns on forwarding for exactly the TUN and the egress
  /// interfaces (IPv4: net.ipv4.conf.<if>.forwarding; IPv6: net.ipv6.conf.<if>.force_forwarding,
  /// or all.forwarding when allowed, see nat_spec). Once per object. On failure nothing stays.
  virtual void install_nat(const nat_spec& spec) = 0;

  /// What install_nat changed, in the order it changed them (empty before or after).
  virtual std::vector<sysctl_change> sysctl_changes() const = 0;

  /// Maps `mapped` (inside mapped_pool4) to `real`: new flows from the TUN to `mapped` go to
  /// `real`. Idempotent for the same pair; a different `real` replaces the entry atomically.
  /// Flows already established keep their translation (conntrack) until they end. Throws
  /// std::logic_error before install_nat, std::invalid_argument outside the mapped pool,
  /// std::runtime_error if nft fails (the mirror of the map is then unchanged).
  virtual void map_add(const ip::address_v4& mapped, const ip::address_v4& real) = 0;
  /// Removes the entry for `mapped`; returns false when there was none. Established flows
  /// keep their translation until conntrack expires them. False before install_nat or after
  /// teardown; std::runtime_error if nft fails.
  virtual bool map_remove(const ip::address_v4& mapped) = 0;

  /// Undoes everything this object did, in this order: restores the sysctls it changed,
  /// deletes the TUN it created (its routes go with it; only if that interface still has the
  /// same index), deletes the nft table. Idempotent, never throws; returns what it could not
  /// undo (for the log). The destructor calls it.
  virtual std::vector<std::string> teardown() noexcept = 0;
};

/// The real implementation (libnl-route-3, libnftables, /proc/sys) in the caller's network
/// namespace. Throws std::runtime_error when the netlink socket or the nft context cannot be made.
std::unique_ptr<netops> make_system_netops();

}  // namespace tunnelgate::netops
