// Internal to gateway/netops (tests/netops may test it): the pieces system_netops is made of.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/netops/netops.hpp"

struct nl_sock;
struct nft_ctx;

namespace tunnelgate::netops::detail {

/// Linux interface names that are also safe inside a quoted nft string: [A-Za-z0-9_.-]{1,15}.
bool valid_ifname(const std::string& name);

// ---- rtnetlink (netlink.cpp) -------------------------------------------------------------

struct link_info {
  int ifindex = 0;
  std::string name;
  std::string kind;       ///< IFLA_INFO_KIND ("tun" for TUN and TAP, "veth", ...); empty if none
  bool loopback = false;  ///< IFF_LOOPBACK
};

/// One NETLINK_ROUTE socket (libnl-route-3). Every method throws std::runtime_error naming the
/// operation, the object and libnl's reason, with a hint for the usual causes.
class rtnl {
 public:
  rtnl();
  ~rtnl();
  rtnl(const rtnl&) = delete;
  rtnl& operator=(const rtnl&) = delete;

  std::optional<link_info> find_link(const std::string& name);
  std::optional<link_info> find_link(int ifindex);
  /// RTM_DELLINK; returns false when the interface was already gone.
  bool delete_link(int ifindex, const std::string& name_for_errors);
  void set_mtu_and_up(int ifindex, const std::string& name, unsigned mtu, unsigned txqueuelen);
  void add_address(int ifindex, const std::string& name, const ip::network_v4& a);
  void add_address(int ifindex, const std::string& name, const ip::network_v6& a);
  void add_route(int ifindex, const std::string& name, const ip::network_v4& dst);
  void add_route(int ifindex, const std::string& name, const ip::network_v6& dst);
  /// The interface a local address is assigned to, if any.
  std::optional<link_info> link_of_address(const ip::address_v4& a);
  std::optional<link_info> link_of_address(const ip::address_v6& a);

 private:
  std::optional<link_info> link_of_address(int family, const unsigned char* bytes, int len);
  nl_sock* sk_ = nullptr;
};

// ---- TUN (tun.cpp) ------------------------------------------------------------------------

/// open("/dev/net/tun") + TUNSETIFF(IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL): fails with EBUSY if
/// an interface of that name exists. The returned tun_fd has no ifindex yet (0).
tun_fd open_tun(const std::string& name);

// ---- nftables (nft.cpp) ------------------------------------------------------------------

/// One libnftables context. run() executes a buffer of nft commands as one transaction and
/// returns what nft printed; on failure it throws std::runtime_error with nft's own messages.
class nft {
 public:
  nft();
  ~nft();
  nft(const nft&) = delete;
  nft& operator=(const nft&) = delete;

  std::string run(const std::string& commands, const std::string& what);
  /// Like run, but returns nullopt instead of throwing (for teardown and probing).
  std::optional<std::string> try_run(const std::string& commands, std::string* error = nullptr);
  void set_terse(bool on);

 private:
  nft_ctx* ctx_ = nullptr;
};

/// Everything ruleset() needs besides the nat_spec.
struct ruleset_params {
  /// Interfaces whose IPv4 / IPv6 forwarding we turned on (it was off): forwarded traffic that
  /// arrives there and does not concern the TUN is dropped, as it was before (rule F7).
  std::vector<std::string> guard4;
  std::vector<std::string> guard6;
  /// IPv6 forwarding was switched on globally (it was off): drop all IPv6 forwarding that does
  /// not concern the TUN (rule F7, global form).
  bool guard6_global = false;
  /// The table's comment: the restore record of the sysctls (see encode_restore).
  std::string comment;
};

inline constexpr const char* table_family = "inet";
inline constexpr const char* table_name = "tunnelgate";

/// The nft script that atomically replaces `table inet tunnelgate` with the VPN's ruleset.
std::string ruleset(const nat_spec& spec, const ruleset_params& p);
/// Deletes `table inet tunnelgate` if it exists (create-then-delete in one transaction).
std::string delete_table_script();
std::string map_add_script(const ip::address_v4& mapped, const ip::address_v4& real);
std::string map_replace_script(const ip::address_v4& mapped, const ip::address_v4& old_real,
                               const ip::address_v4& real);
std::string map_remove_script(const ip::address_v4& mapped);

// ---- sysctls (sysctl.cpp) -----------------------------------------------------------------

/// The value of a /proc/sys file without the trailing newline; nullopt if it does not exist.
std::optional<std::string> read_sysctl(const std::string& path);
/// Throws std::system_error naming the path (EACCES/EPERM: CAP_NET_ADMIN missing).
void write_sysctl(const std::string& path, const std::string& value);

/// "v4:eth0:forwarding=0 v6:all:forwarding=0 ..." (short: nft comments hold 128 bytes).
std::string encode_restore(const std::vector<sysctl_change>& changes);
/// Parses encode_restore's text found in a (possibly foreign) table comment; entries that are
/// not forwarding sysctls of a valid interface name are ignored.
std::vector<sysctl_change> decode_restore(const std::string& text);
/// Writes each change's `previous` back, last change first; missing files (an interface that
/// is gone) are skipped. Returns the failures.
std::vector<std::string> restore_sysctls(const std::vector<sysctl_change>& changes);

/// "/proc/sys/net/ipv4/conf/<scope>/<key>"; family is 4 or 6.
std::string conf_path(int family, const std::string& scope, const std::string& key);

}  // namespace tunnelgate::netops::detail
