// The real netops: libnl-route-3 for the TUN, libnftables for the table, /proc/sys for
// forwarding.
//
// Forwarding, as verified in tests/netops (netops.packets.ipv4_forwarding_follows_the_input_
// interface and netops.packets.ipv6_forwarding_flag_per_interface_does_not_forward):
// - IPv4 forwarding is per interface, decided on the interface a packet ARRIVES on
//   (net.ipv4.conf.<in>.forwarding; conf.all and ip_forward are not consulted). Devices'
//   packets arrive on the TUN, replies arrive on the egress interface, so both get
//   forwarding=1 and nothing else does. Side effects on those two interfaces: they act as a
//   router (ICMP redirects are accepted only if conf.all allows them too, and the kernel turns
//   LRO off on them; teardown does not turn LRO back on). Forwarding of anything else that arrives
//   on the egress interface is dropped by rule F7 (nft.cpp).
// - IPv6 has no such switch before Linux 6.17: net.ipv6.conf.<if>.forwarding only makes the
//   interface behave as a router (no SLAAC/RA with accept_ra=1) and forwards nothing; only
//   conf.all.forwarding forwards. Linux 6.17 added conf.<if>.force_forwarding, again decided
//   on the arriving interface. We use force_forwarding when the kernel has it, else the
//   global switch if nat_spec.allow_global_ipv6_forwarding says so, else refuse.
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <type_traits>

#include "gateway/netops/detail.hpp"

namespace tunnelgate::netops {

namespace {

using detail::conf_path;
using detail::read_sysctl;

bool contains(const ip::network_v4& net, const ip::address_v4& a) {
  const auto len = net.prefix_length();
  const std::uint32_t mask = len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
  return (a.to_uint() & mask) == (net.address().to_uint() & mask);
}

void check_ifname(const std::string& name, const char* what) {
  if (!detail::valid_ifname(name))
    throw std::invalid_argument(std::string("netops: ") + what + " '" + name +
                                "' must be 1-15 characters of [A-Za-z0-9_.-]");
}

class system_netops final : public netops {
 public:
  system_netops() = default;
  ~system_netops() override { teardown(); }

  void cleanup_stale(const std::string& tun_name) override;
  tun_fd create_tun(const tun_spec& spec) override;
  void install_nat(const nat_spec& spec) override;
  std::vector<sysctl_change> sysctl_changes() const override;
  void map_add(const ip::address_v4& mapped, const ip::address_v4& real) override;
  bool map_remove(const ip::address_v4& mapped) override;
  std::vector<std::string> teardown() noexcept override;

 private:
  /// If an `inet tunnelgate` table exists: restores the sysctls its comment records and, if
  /// `remove`, deletes it. Returns whether it existed.
  bool recover_stale_table(bool remove);
  void remove_stale_tun(const std::string& name);
  std::vector<sysctl_change> plan_forwarding(const nat_spec& s, const detail::link_info& e4,
                                             const std::optional<detail::link_info>& e6,
                                             detail::ruleset_params& p);

  detail::rtnl rtnl_;
  mutable std::mutex mu_;  // guards nft_ and everything below
  detail::nft nft_;
  std::string tun_name_;  ///< the TUN create_tun made; with tun_ifindex_ == 0: none
  int tun_ifindex_ = 0;
  bool table_installed_ = false;
  ip::network_v4 mapped_pool_;
  /// Mirror of @mapped4 (mapped -> real). Exact while table_installed_: the table is ours,
  /// created empty by install_nat, and only map_add/map_remove change the map.
  std::map<ip::address_v4, ip::address_v4> map_;
  std::vector<sysctl_change> changes_;  ///< what install_nat wrote, in order
};

bool system_netops::recover_stale_table(bool remove) {
  std::string err;
  nft_.set_terse(true);  // the comment without the (possibly long) map
  auto listing = nft_.try_run(
      std::string("list table ") + detail::table_family + " " + detail::table_name + "\n", &err);
  nft_.set_terse(false);
  if (!listing) {
    if (err.find("No such file or directory") != std::string::npos) return false;
    throw std::runtime_error("netops: nft: listing table inet tunnelgate failed:\n" + err);
  }
  // A killed run left its table: put back the forwarding sysctls it had changed (their
  // previous values are in the table's comment) before anything reads them as "previous".
  const auto problems = detail::restore_sysctls(detail::decode_restore(*listing));
  if (!problems.empty())
    throw std::runtime_error("netops: restoring the sysctls of a previous run: " + problems[0]);
  if (remove) nft_.run(detail::delete_table_script(), "deleting the stale table inet tunnelgate");
  return true;
}

void system_netops::remove_stale_tun(const std::string& name) {
  const auto link = rtnl_.find_link(name);
  if (!link) return;
  if (link->kind != "tun")
    throw std::runtime_error("netops: interface " + name + " exists and is not a TUN device (" +
                             (link->kind.empty() ? std::string("no kind") : "kind " + link->kind) +
                             "); tunnelgate leaves it alone: remove it or choose another vpn.tun "
                             "name");
  // A TUN of our name is a leftover: a persistent device, or one whose descriptor a dead
  // run's child still holds. The name is the lock: two gateways on one host need two names.
  rtnl_.delete_link(link->ifindex, name);
}

void system_netops::cleanup_stale(const std::string& tun_name) {
  check_ifname(tun_name, "vpn.tun name");
  std::lock_guard lock(mu_);
  if (!table_installed_) recover_stale_table(true);
  if (tun_ifindex_ == 0) remove_stale_tun(tun_name);
}

tun_fd system_netops::create_tun(const tun_spec& spec) {
  check_ifname(spec.name, "vpn.tun name");
  if (spec.mtu < 68 || spec.mtu > 65535)
    throw std::invalid_argument("netops: vpn.mtu " + std::to_string(spec.mtu) +
                                " is outside 68..65535");
  if (spec.address6 && spec.mtu < 1280)
    throw std::invalid_argument("netops: vpn.mtu " + std::to_string(spec.mtu) +
                                " is below 1280, the IPv6 minimum, with an IPv6 pool");
  std::lock_guard lock(mu_);
  if (tun_ifindex_ != 0)
    throw std::logic_error("netops: create_tun called twice (" + tun_name_ + " exists)");

  remove_stale_tun(spec.name);
  tun_fd fd = detail::open_tun(spec.name);
  const auto link = rtnl_.find_link(spec.name);
  if (!link) throw std::runtime_error("netops: TUN " + spec.name + " vanished after TUNSETIFF");
  tun_name_ = spec.name;
  tun_ifindex_ = link->ifindex;
  try {
    // Up before routes: the kernel refuses a route through a device that is down.
    rtnl_.set_mtu_and_up(tun_ifindex_, spec.name, spec.mtu, spec.txqueuelen);
    rtnl_.add_address(tun_ifindex_, spec.name, spec.address4);
    if (spec.address6) rtnl_.add_address(tun_ifindex_, spec.name, *spec.address6);
    for (const auto& r : spec.routes4)
      if (r.canonical() != spec.address4.canonical()) rtnl_.add_route(tun_ifindex_, spec.name, r);
    for (const auto& r : spec.routes6)
      if (!spec.address6 || r.canonical() != spec.address6->canonical())
        rtnl_.add_route(tun_ifindex_, spec.name, r);
  } catch (...) {
    try {
      rtnl_.delete_link(tun_ifindex_, spec.name);
    } catch (...) {  // closing fd removes it anyway (not persistent)
    }
    tun_ifindex_ = 0;
    tun_name_.clear();
    throw;
  }
  return tun_fd(fd.release(), spec.name, tun_ifindex_);
}

std::vector<sysctl_change> system_netops::plan_forwarding(
    const nat_spec& s, const detail::link_info& e4, const std::optional<detail::link_info>& e6,
    detail::ruleset_params& p) {
  std::vector<sysctl_change> plan;
  auto want = [&](const std::string& path) {
    const auto prev = read_sysctl(path);
    if (!prev) throw std::runtime_error("netops: " + path + " does not exist");
    if (*prev == "1") return false;
    plan.push_back({path, *prev, "1"});
    return true;
  };

  want(conf_path(4, s.tun_name, "forwarding"));
  if (want(conf_path(4, e4.name, "forwarding"))) p.guard4.push_back(e4.name);

  if (!s.pool6) return plan;
  if (read_sysctl(conf_path(6, "all", "forwarding")).value_or("0") == "1")
    return plan;  // the host already forwards IPv6 everywhere: nothing to turn on
  if (read_sysctl(conf_path(6, s.tun_name, "force_forwarding"))) {
    want(conf_path(6, s.tun_name, "force_forwarding"));
    if (want(conf_path(6, e6->name, "force_forwarding"))) p.guard6.push_back(e6->name);
    return plan;
  }
  if (!s.allow_global_ipv6_forwarding)
    throw std::runtime_error(
        "netops: IPv6 forwarding for the VPN needs net.ipv6.conf.<interface>.force_forwarding "
        "(Linux 6.17 or later); this kernel only has net.ipv6.conf.all.forwarding, which makes "
        "every interface a router (interfaces with accept_ra=1 then ignore router "
        "advertisements). Set vpn.allow_global_ipv6_forwarding to accept that, set "
        "net.ipv6.conf.all.forwarding=1 yourself, or remove the IPv6 pool");
  // all.forwarding=1 also sets default and every interface to 1, and writing 0 back later
  // resets them all to 0: record the interfaces that were already 1 (written back after all)
  // and default, before all (restore runs last change first).
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc/sys/net/ipv6/conf", ec)) {
    const auto scope = d.path().filename().string();
    if (scope == "all" || scope == "default" || !detail::valid_ifname(scope)) continue;
    if (read_sysctl(conf_path(6, scope, "forwarding")).value_or("0") == "1")
      plan.push_back({conf_path(6, scope, "forwarding"), "1", "1"});
  }
  want(conf_path(6, "default", "forwarding"));
  want(conf_path(6, "all", "forwarding"));
  p.guard6_global = true;
  return plan;
}

void system_netops::install_nat(const nat_spec& s) {
  check_ifname(s.tun_name, "vpn.tun name");
  if (s.pool6 && !s.egress6)
    throw std::invalid_argument("netops: an IPv6 pool needs an IPv6 egress address");
  if (s.mapped_pool4.prefix_length() == 0 || s.pool4.prefix_length() == 0)
    throw std::invalid_argument("netops: pool and mapped_pool must not be 0.0.0.0/0");

  std::lock_guard lock(mu_);
  if (table_installed_) throw std::logic_error("netops: install_nat called twice");
  const auto tun = rtnl_.find_link(s.tun_name);
  if (!tun)
    throw std::runtime_error("netops: TUN " + s.tun_name +
                             " does not exist: create_tun must come before install_nat");
  auto egress_link = [&](const auto& addr, const std::string& override_name) {
    constexpr bool is4 = std::is_same_v<std::decay_t<decltype(addr)>, ip::address_v4>;
    const auto l = rtnl_.link_of_address(addr);
    if (!l)
      throw std::runtime_error("netops: egress address " + addr.to_string() +
                               " is not assigned to any interface of this host; add it (e.g. "
                               "`ip addr add " +
                               addr.to_string() + (is4 ? "/32" : "/128") +
                               " dev eth0`) or fix egress.address");
    detail::link_info chosen = *l;
    if (!override_name.empty()) {
      check_ifname(override_name, "egress interface");
      const auto o = rtnl_.find_link(override_name);
      if (!o)
        throw std::runtime_error("netops: egress interface " + override_name + " does not exist");
      chosen = *o;
    } else if (l->loopback) {
      // Replies arrive on the uplink, not on lo: forwarding on lo would not carry them.
      throw std::runtime_error(
          "netops: egress address " + addr.to_string() + " is on the loopback interface " +
          l->name + "; IPv" + (is4 ? "4" : "6") +
          " forwarding must be turned on where replies arrive: name the uplink interface "
          "(nat_spec.egress_interface" +
          (is4 ? "4" : "6") + ") or put the address on the uplink");
    }
    if (chosen.ifindex == tun->ifindex)
      throw std::runtime_error("netops: egress address " + addr.to_string() +
                               " would leave through the TUN " + s.tun_name +
                               "; it must be on the uplink interface");
    check_ifname(chosen.name, "egress interface name");
    return chosen;
  };
  const auto e4 = egress_link(s.egress4, s.egress_interface4);
  std::optional<detail::link_info> e6;
  if (s.pool6) e6 = egress_link(*s.egress6, s.egress_interface6);

  recover_stale_table(false);  // replaced atomically below
  detail::ruleset_params p;
  auto plan = plan_forwarding(s, e4, e6, p);
  std::vector<sysctl_change> record;  // the TUN goes away with us: nothing to restore there
  for (const auto& c : plan)
    if (c.path.find("/conf/" + s.tun_name + "/") == std::string::npos) record.push_back(c);
  p.comment = detail::encode_restore(record);

  // The table first, so the filter is in place before forwarding is on.
  nft_.run(detail::ruleset(s, p), "installing table inet tunnelgate");
  table_installed_ = true;
  mapped_pool_ = s.mapped_pool4.canonical();
  map_.clear();
  try {
    for (const auto& c : plan) {
      if (c.previous != c.value) detail::write_sysctl(c.path, c.value);
      changes_.push_back(c);
    }
  } catch (...) {
    detail::restore_sysctls(changes_);
    changes_.clear();
    nft_.try_run(detail::delete_table_script());
    table_installed_ = false;
    throw;
  }
}

std::vector<sysctl_change> system_netops::sysctl_changes() const {
  std::lock_guard lock(mu_);
  return changes_;
}

void system_netops::map_add(const ip::address_v4& mapped, const ip::address_v4& real) {
  std::lock_guard lock(mu_);
  if (!table_installed_) throw std::logic_error("netops: map_add before install_nat");
  if (!contains(mapped_pool_, mapped))
    throw std::invalid_argument("netops: map_add: " + mapped.to_string() +
                                " is outside the mapped pool " + mapped_pool_.to_string());
  const auto it = map_.find(mapped);
  if (it != map_.end() && it->second == real) return;
  const std::string what = "mapping " + mapped.to_string() + " to " + real.to_string();
  if (it != map_.end())
    nft_.run(detail::map_replace_script(mapped, it->second, real), what);
  else
    nft_.run(detail::map_add_script(mapped, real), what);
  map_[mapped] = real;
}

bool system_netops::map_remove(const ip::address_v4& mapped) {
  std::lock_guard lock(mu_);
  if (!table_installed_) return false;
  const auto it = map_.find(mapped);
  if (it == map_.end()) return false;
  nft_.run(detail::map_remove_script(mapped), "unmapping " + mapped.to_string());
  map_.erase(it);
  return true;
}

std::vector<std::string> system_netops::teardown() noexcept {
  std::vector<std::string> problems;
  try {
    std::lock_guard lock(mu_);
    // Forwarding off first, so no moment exists with forwarding on and the filter gone.
    auto p = detail::restore_sysctls(changes_);
    problems.insert(problems.end(), p.begin(), p.end());
    changes_.clear();
    if (tun_ifindex_ != 0) {
      try {
        // Only the device we made: if it is gone (its descriptor was closed) and the name was
        // reused since, the index differs.
        const auto l = rtnl_.find_link(tun_ifindex_);
        if (l && l->name == tun_name_) rtnl_.delete_link(tun_ifindex_, tun_name_);
      } catch (const std::exception& e) {
        problems.emplace_back(e.what());
      }
      tun_ifindex_ = 0;
      tun_name_.clear();
    }
    if (table_installed_) {
      std::string err;
      if (!nft_.try_run(detail::delete_table_script(), &err))
        problems.push_back("netops: deleting table inet tunnelgate: " + err);
      table_installed_ = false;
      map_.clear();
    }
  } catch (const std::exception& e) {
    problems.emplace_back(e.what());
  } catch (...) {
    problems.emplace_back("netops: teardown: unknown exception");
  }
  return problems;
}

}  // namespace

std::unique_ptr<netops> make_system_netops() {
  return std::make_unique<system_netops>();
}

}  // namespace tunnelgate::netops
