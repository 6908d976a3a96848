// rtnetlink through libnl-route-3: links, addresses and routes of the TUN; finding the
// interface that holds the egress address.
#include <net/if.h>  // before the linux/ headers, so their if.h copy steps aside
//
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

#include "gateway/netops/detail.hpp"

namespace tunnelgate::netops::detail {

namespace {

struct link_put {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct addr_put {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct route_put {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct nladdr_put {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct cache_free {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using link_ptr = std::unique_ptr<rtnl_link, link_put>;
using addr_ptr = std::unique_ptr<rtnl_addr, addr_put>;
using route_ptr = std::unique_ptr<rtnl_route, route_put>;
using nladdr_ptr = std::unique_ptr<nl_addr, nladdr_put>;
using cache_ptr = std::unique_ptr<nl_cache, cache_free>;

/// "netops: <what>: <libnl reason>" plus the fix for the causes an operator can act on.
[[noreturn]] void fail(const std::string& what, int err) {
  std::string msg = "netops: " + what + ": " + nl_geterror(err);
  switch (-err) {
    case NLE_PERM:
    case NLE_NOACCESS:
      msg +=
          " (CAP_NET_ADMIN missing: run as root or grant the capability, e.g. "
          "AmbientCapabilities=CAP_NET_ADMIN in the systemd unit)";
      break;
    case NLE_EXIST:
      msg +=
          " (it already exists: another interface or route uses it; check the vpn pools "
          "against `ip addr` and `ip route`)";
      break;
    default:
      break;
  }
  throw std::runtime_error(msg);
}

template <class Bytes>
nladdr_ptr build(int family, const Bytes& bytes, int prefix) {
  nladdr_ptr a(nl_addr_build(family, bytes.data(), bytes.size()));
  if (!a) throw std::bad_alloc();
  nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

link_info info_of(rtnl_link* l) {
  link_info i;
  i.ifindex = rtnl_link_get_ifindex(l);
  if (const char* n = rtnl_link_get_name(l)) i.name = n;
  if (const char* k = rtnl_link_get_type(l)) i.kind = k;
  i.loopback = (rtnl_link_get_flags(l) & IFF_LOOPBACK) != 0;
  return i;
}

void add_address(nl_sock* sk, int ifindex, const std::string& name, int family,
                 const nladdr_ptr& local, const std::string& text) {
  addr_ptr a(rtnl_addr_alloc());
  if (!a) throw std::bad_alloc();
  rtnl_addr_set_ifindex(a.get(), ifindex);
  rtnl_addr_set_family(a.get(), family);
  if (int err = rtnl_addr_set_local(a.get(), local.get()); err < 0)
    fail("address " + text + " for " + name, err);
  rtnl_addr_set_prefixlen(a.get(), nl_addr_get_prefixlen(local.get()));
  // A TUN is NOARP, so the kernel skips duplicate address detection anyway; NODAD says so and
  // makes the address usable at once on any kernel.
  if (family == AF_INET6) rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
  if (int err = rtnl_addr_add(sk, a.get(), NLM_F_EXCL); err < 0)
    fail("adding address " + text + " to " + name, err);
}

void add_route(nl_sock* sk, int ifindex, const std::string& name, int family, const nladdr_ptr& dst,
               const std::string& text) {
  route_ptr r(rtnl_route_alloc());
  if (!r) throw std::bad_alloc();
  rtnl_route_set_family(r.get(), static_cast<std::uint8_t>(family));
  if (int err = rtnl_route_set_dst(r.get(), dst.get()); err < 0)
    fail("route " + text + " via " + name, err);
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(r.get(), RT_SCOPE_LINK);
  rtnl_route_set_protocol(r.get(), RTPROT_STATIC);
  rtnl_route_set_type(r.get(), RTN_UNICAST);
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (!nh) throw std::bad_alloc();
  rtnl_route_nh_set_ifindex(nh, ifindex);
  rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh from here on
  if (int err = rtnl_route_add(sk, r.get(), NLM_F_EXCL); err < 0)
    fail("adding route " + text + " dev " + name, err);
}

}  // namespace

bool valid_ifname(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

rtnl::rtnl() {
  sk_ = nl_socket_alloc();
  if (!sk_) throw std::bad_alloc();
  if (int err = nl_connect(sk_, NETLINK_ROUTE); err < 0) {
    nl_socket_free(sk_);
    sk_ = nullptr;
    fail("opening a NETLINK_ROUTE socket", err);
  }
}

rtnl::~rtnl() {
  if (sk_) nl_socket_free(sk_);  // closes the socket too
}

std::optional<link_info> rtnl::find_link(const std::string& name) {
  rtnl_link* raw = nullptr;
  const int err = rtnl_link_get_kernel(sk_, 0, name.c_str(), &raw);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return std::nullopt;
  if (err < 0) fail("looking up interface " + name, err);
  link_ptr l(raw);
  return info_of(l.get());
}

std::optional<link_info> rtnl::find_link(int ifindex) {
  rtnl_link* raw = nullptr;
  const int err = rtnl_link_get_kernel(sk_, ifindex, nullptr, &raw);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return std::nullopt;
  if (err < 0) fail("looking up interface index " + std::to_string(ifindex), err);
  link_ptr l(raw);
  return info_of(l.get());
}

bool rtnl::delete_link(int ifindex, const std::string& name_for_errors) {
  link_ptr l(rtnl_link_alloc());
  if (!l) throw std::bad_alloc();
  rtnl_link_set_ifindex(l.get(), ifindex);
  const int err = rtnl_link_delete(sk_, l.get());
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return false;
  if (err < 0) fail("deleting interface " + name_for_errors, err);
  return true;
}

void rtnl::set_mtu_and_up(int ifindex, const std::string& name, unsigned mtu, unsigned txqueuelen) {
  link_ptr orig(rtnl_link_alloc());
  link_ptr change(rtnl_link_alloc());
  if (!orig || !change) throw std::bad_alloc();
  rtnl_link_set_ifindex(orig.get(), ifindex);
  rtnl_link_set_mtu(change.get(), mtu);
  if (txqueuelen > 0) rtnl_link_set_txqlen(change.get(), txqueuelen);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(sk_, orig.get(), change.get(), 0); err < 0)
    fail("setting MTU " + std::to_string(mtu) + " and link up on " + name, err);
}

void rtnl::add_address(int ifindex, const std::string& name, const ip::network_v4& a) {
  detail::add_address(sk_, ifindex, name, AF_INET,
                      build(AF_INET, a.address().to_bytes(), a.prefix_length()), a.to_string());
}

void rtnl::add_address(int ifindex, const std::string& name, const ip::network_v6& a) {
  detail::add_address(sk_, ifindex, name, AF_INET6,
                      build(AF_INET6, a.address().to_bytes(), a.prefix_length()), a.to_string());
}

void rtnl::add_route(int ifindex, const std::string& name, const ip::network_v4& dst) {
  const auto n = dst.canonical();
  detail::add_route(sk_, ifindex, name, AF_INET,
                    build(AF_INET, n.address().to_bytes(), n.prefix_length()), n.to_string());
}

void rtnl::add_route(int ifindex, const std::string& name, const ip::network_v6& dst) {
  const auto n = dst.canonical();
  detail::add_route(sk_, ifindex, name, AF_INET6,
                    build(AF_INET6, n.address().to_bytes(), n.prefix_length()), n.to_string());
}

std::optional<link_info> rtnl::link_of_address(const ip::address_v4& a) {
  const auto b = a.to_bytes();
  return link_of_address(AF_INET, b.data(), static_cast<int>(b.size()));
}

std::optional<link_info> rtnl::link_of_address(const ip::address_v6& a) {
  const auto b = a.to_bytes();
  return link_of_address(AF_INET6, b.data(), static_cast<int>(b.size()));
}

std::optional<link_info> rtnl::link_of_address(int family, const unsigned char* bytes, int len) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sk_, &raw); err < 0) fail("listing addresses", err);
  cache_ptr cache(raw);
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != family) continue;
    const nl_addr* local = rtnl_addr_get_local(a);
    if (!local || static_cast<int>(nl_addr_get_len(local)) != len) continue;
    if (std::memcmp(nl_addr_get_binary_addr(local), bytes, static_cast<std::size_t>(len)) != 0)
      continue;
    return find_link(rtnl_addr_get_ifindex(a));
  }
  return std::nullopt;
}

}  // namespace tunnelgate::netops::detail
