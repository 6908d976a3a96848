#include "gateway/egress_policy.hpp"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace tunnelgate::gateway {

namespace {

using bytes16 = net::ip::address_v6::bytes_type;

/// The first `prefix` bits of `a` and `b` (each `len` bytes) agree.
bool same_prefix(const unsigned char* a, const unsigned char* b, std::size_t len, unsigned prefix) {
  const std::size_t full = std::min<std::size_t>(prefix / 8, len);
  if (std::memcmp(a, b, full) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0 || full >= len) return true;
  const auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

bool in4(const net::ip::address_v4& a, std::uint32_t net, unsigned prefix) {
  const std::uint32_t v = a.to_uint();
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (v & mask) == (net & mask);
}

bool in6(const net::ip::address_v6& a, std::initializer_list<unsigned char> head, unsigned prefix) {
  bytes16 want{};
  std::copy(head.begin(), head.end(), want.begin());
  const auto have = a.to_bytes();
  return same_prefix(have.data(), want.data(), 16, prefix);
}

constexpr std::uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

bool is_private(const net::ip::address& a) {
  if (a.is_v4()) {
    const auto v = a.to_v4();
    return in4(v, ip4(10, 0, 0, 0), 8) || in4(v, ip4(172, 16, 0, 0), 12) ||
           in4(v, ip4(192, 168, 0, 0), 16) || in4(v, ip4(100, 64, 0, 0), 10);
  }
  const auto v = a.to_v6();
  return in6(v, {0xfc}, 7) || in6(v, {0xfe, 0xc0}, 10);  // ULA, deprecated site-local
}

/// The special ranges that only egress.allow opens (not own endpoints, not private).
egress_block special(const net::ip::address& a, const host_addresses* host) {
  if (a.is_v4()) {
    const auto v = a.to_v4();
    if (in4(v, ip4(127, 0, 0, 0), 8)) return egress_block::loopback;
    if (in4(v, ip4(0, 0, 0, 0), 8)) return egress_block::unspecified;  // "this network"
    if (in4(v, ip4(169, 254, 0, 0), 16)) return egress_block::link_local;
    if (in4(v, ip4(224, 0, 0, 0), 4)) return egress_block::multicast;
    if (v == net::ip::address_v4::broadcast()) return egress_block::broadcast;
  } else {
    const auto v = a.to_v6();
    if (v.is_loopback()) return egress_block::loopback;
    if (v.is_unspecified()) return egress_block::unspecified;
    if (in6(v, {0xfe, 0x80}, 10)) return egress_block::link_local;
    if (v.is_multicast()) return egress_block::multicast;
  }
  if (host != nullptr) {
    if (host->is_broadcast(a)) return egress_block::broadcast;
    if (host->is_local(a)) return egress_block::host_address;
  }
  return egress_block::none;
}

/// 64:ff9b::/96 (RFC 6052): a NAT64 gateway would carry the flow to the IPv4 address inside.
std::optional<net::ip::address> nat64_embedded(const net::ip::address& a) {
  if (!a.is_v6()) return std::nullopt;
  const auto b = a.to_v6().to_bytes();
  static constexpr unsigned char wkp[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b.data(), wkp, 12) != 0) return std::nullopt;
  return net::ip::address_v4(net::ip::address_v4::bytes_type{b[12], b[13], b[14], b[15]});
}

bool any_contains(const std::vector<cidr>& list, const net::ip::address& a) {
  return std::any_of(list.begin(), list.end(), [&](const cidr& c) { return c.contains(a); });
}

}  // namespace

// ---- cidr ------------------------------------------------------------------------------------

bool cidr::contains(const net::ip::address& a) const noexcept {
  if (a.is_v4() != network.is_v4()) return false;
  if (a.is_v4()) {
    const auto x = a.to_v4().to_bytes();
    const auto n = network.to_v4().to_bytes();
    return same_prefix(x.data(), n.data(), 4, prefix);
  }
  const auto x = a.to_v6().to_bytes();
  const auto n = network.to_v6().to_bytes();
  return same_prefix(x.data(), n.data(), 16, prefix);
}

std::string cidr::text() const {
  return network.to_string() + "/" + std::to_string(prefix);
}

std::optional<cidr> cidr::parse(std::string_view text, std::string& error) {
  const auto slash = text.find('/');
  const std::string addr_text(text.substr(0, slash));
  if (addr_text.find('%') != std::string::npos) {
    // Asio drops a zone it cannot resolve (fe80::1%nosuchif), so refuse the text itself.
    error = "'" + std::string(text) + "': no zone index (%...) in a range";
    return std::nullopt;
  }
  boost::system::error_code ec;
  auto a = net::ip::make_address(addr_text, ec);
  if (ec) {
    error = "'" + std::string(text) + "' is not an address or CIDR (e.g. 10.0.0.0/8, fd00::/8)";
    return std::nullopt;
  }
  if (a.is_v6() && a.to_v6().scope_id() != 0) {
    error = "'" + std::string(text) + "': no zone index (%...) in a range";
    return std::nullopt;
  }
  a = egress_policy::normalize(a);
  const unsigned max = a.is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    auto [end, perr] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    // A mapped IPv6 range such as ::ffff:10.0.0.0/104 counts its prefix in IPv6 bits.
    if (!p.empty() && perr == std::errc() && end == p.data() + p.size() &&
        addr_text.find(':') != std::string::npos && a.is_v4()) {
      if (prefix < 96) {
        error = "'" + std::string(text) + "': an IPv4-mapped range needs a prefix of 96 or more";
        return std::nullopt;
      }
      prefix -= 96;
    }
    if (p.empty() || perr != std::errc() || end != p.data() + p.size() || prefix > max) {
      error = "'" + std::string(text) + "': the prefix length must be 0-" + std::to_string(max);
      return std::nullopt;
    }
  }
  // Host bits must be zero: 10.0.0.1/8 is a typo for 10.0.0.0/8 or 10.0.0.1/32.
  net::ip::address masked;
  if (a.is_v4()) {
    const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
    masked = net::ip::address_v4(a.to_v4().to_uint() & mask);
  } else {
    auto b = a.to_v6().to_bytes();
    for (unsigned i = prefix; i < 128; ++i)
      b[i / 8] = static_cast<unsigned char>(b[i / 8] & ~(0x80U >> (i % 8)));
    masked = net::ip::address_v6(b);
  }
  if (masked != a) {
    error = "'" + std::string(text) + "' has host bits set; did you mean " + masked.to_string() +
            "/" + std::to_string(prefix) + "?";
    return std::nullopt;
  }
  return cidr{a, prefix};
}

// ---- host_addresses --------------------------------------------------------------------------

host_addresses::host_addresses(std::vector<net::ip::address> addresses,
                               std::vector<net::ip::address> broadcasts) {
  snapshot s{std::move(addresses), std::move(broadcasts)};
  for (auto* v : {&s.addresses, &s.broadcasts})
    std::sort(v->begin(), v->end());
  snap_ = std::make_shared<const snapshot>(std::move(s));
}

bool host_addresses::refresh() {
  snapshot s;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;  // keep what we had
  const auto to_address = [](const sockaddr* sa) -> std::optional<net::ip::address> {
    if (sa == nullptr) return std::nullopt;
    if (sa->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
      net::ip::address_v4::bytes_type b;
      std::memcpy(b.data(), &sin->sin_addr, 4);
      return net::ip::address_v4(b);
    }
    if (sa->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
      bytes16 b;
      std::memcpy(b.data(), &sin6->sin6_addr, 16);
      return net::ip::address_v6(b);  // without the scope: we compare addresses
    }
    return std::nullopt;
  };
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (auto a = to_address(i->ifa_addr)) s.addresses.push_back(*a);
    if ((i->ifa_flags & IFF_BROADCAST) != 0) {
      if (auto b = to_address(i->ifa_broadaddr); b && b->is_v4()) s.broadcasts.push_back(*b);
    }
  }
  freeifaddrs(list);
  for (auto* v : {&s.addresses, &s.broadcasts}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  std::lock_guard lock(mutex_);
  if (*snap_ == s) return false;
  snap_ = std::make_shared<const snapshot>(std::move(s));
  return true;
}

std::shared_ptr<const host_addresses::snapshot> host_addresses::get() const {
  std::lock_guard lock(mutex_);
  return snap_;
}

bool host_addresses::is_local(const net::ip::address& a) const {
  const auto s = get();
  return std::binary_search(s->addresses.begin(), s->addresses.end(), a);
}

bool host_addresses::is_broadcast(const net::ip::address& a) const {
  const auto s = get();
  return std::binary_search(s->broadcasts.begin(), s->broadcasts.end(), a);
}

std::vector<net::ip::address> host_addresses::addresses() const {
  return get()->addresses;
}

// ---- egress_policy ---------------------------------------------------------------------------

std::string_view to_string(egress_block b) noexcept {
  switch (b) {
    case egress_block::none:
      return "allowed";
    case egress_block::own_listener:
      return "own-listener";
    case egress_block::vpn_range:
      return "vpn-range";
    case egress_block::denied:
      return "egress-deny";
    case egress_block::loopback:
      return "loopback";
    case egress_block::unspecified:
      return "unspecified";
    case egress_block::link_local:
      return "link-local";
    case egress_block::multicast:
      return "multicast";
    case egress_block::broadcast:
      return "broadcast";
    case egress_block::host_address:
      return "host-address";
    case egress_block::rule_block:
      return "rule-block";
    case egress_block::rule_bypass:
      return "rule-bypass";
    case egress_block::private_range:
      return "private-range";
  }
  return "refused";
}

egress_policy::egress_policy(egress_policy_options o) : o_(std::move(o)) {
  for (auto& ep : o_.own_endpoints)
    ep.address(normalize(ep.address()));
}

net::ip::address egress_policy::normalize(const net::ip::address& a) {
  if (!a.is_v6()) return a;
  const auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, v6);
  const auto b = v6.to_bytes();
  // IPv4-compatible (::/96, deprecated by RFC 4291) except :: and ::1 themselves.
  if (std::all_of(b.begin(), b.begin() + 12, [](unsigned char c) { return c == 0; }) &&
      !v6.is_unspecified() && !v6.is_loopback()) {
    return net::ip::address_v4(net::ip::address_v4::bytes_type{b[12], b[13], b[14], b[15]});
  }
  return a;
}

egress_block egress_policy::common(const net::ip::address& a, std::uint16_t port,
                                   bool& allowed) const {
  allowed = false;
  // What the flow reaches: a NAT64 address carries its flow to the IPv4 address inside, so
  // that address is what the policy judges (the socket still connects to `a`).
  const auto reached = nat64_embedded(a).value_or(a);
  const auto is_own = [&](const net::ip::address& x) {
    for (const auto& own : o_.own_endpoints) {
      if (own.port() != port) continue;
      if (own.address() == x) return true;
      if (own.address().is_unspecified() && own.address().is_v4() == x.is_v4()) {
        // Bound to every address: any local address on that port is us.
        const auto s = special(x, o_.host.get());
        if (s == egress_block::loopback || s == egress_block::unspecified ||
            s == egress_block::host_address) {
          return true;
        }
      }
    }
    return false;
  };
  if (is_own(a) || is_own(reached)) return egress_block::own_listener;
  if (any_contains(o_.never, a) || any_contains(o_.never, reached)) return egress_block::vpn_range;
  if (any_contains(o_.deny, a) || any_contains(o_.deny, reached)) return egress_block::denied;
  allowed = any_contains(o_.allow, a) || any_contains(o_.allow, reached);
  if (allowed) return egress_block::none;
  if (const auto s = special(reached, o_.host.get()); s != egress_block::none) return s;
  return special(a, o_.host.get());
}

egress_verdict egress_policy::check(const tcp::endpoint& ep, const dtr::policy& rules,
                                    dtr::platform plat, std::string_view app) const {
  egress_verdict v;
  v.address = normalize(ep.address());
  bool allowed = false;
  v.block = common(v.address, ep.port(), allowed);
  if (v.block != egress_block::none) return v;
  // The rules again, on the address reached: a DNS answer cannot turn a blocked network into
  // a tunnelled one. Matching an address, only IP/CIDR destinations apply.
  const auto reached = nat64_embedded(v.address).value_or(v.address);
  const auto text = reached.to_string();
  const auto d = rules.evaluate({text, ep.port(), plat, app});
  const bool cidr_rule = !d.refused() && d.matched != nullptr;
  if (d.refused() || (cidr_rule && d.act == dtr::action::block)) {
    v.block = egress_block::rule_block;
  } else if (cidr_rule && d.act == dtr::action::bypass) {
    v.block = egress_block::rule_bypass;
  }
  if (v.block != egress_block::none) {
    v.set = d.set;
    v.rank = d.rank;
    v.line = d.line;
    return v;
  }
  if (!allowed && !cidr_rule && is_private(reached)) v.block = egress_block::private_range;
  return v;
}

egress_verdict egress_policy::check_upstream(const tcp::endpoint& ep) const {
  egress_verdict v;
  v.address = normalize(ep.address());
  bool allowed = false;
  v.block = common(v.address, ep.port(), allowed);
  return v;
}

}  // namespace tunnelgate::gateway
