// Addresses, CIDRs and ranges: parsing with inet_pton, containment, the owned host entries.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "idp/internal.hpp"

namespace tunnelgate::idp {

namespace detail {

std::optional<ip> parse_ip(std::string_view text) {
  // inet_pton needs a NUL-terminated string; anything longer than an IPv6 text is not one.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  ip out;
  if (text.find(':') == std::string_view::npos) {
    if (::inet_pton(AF_INET, buf, out.bytes.data()) != 1) return std::nullopt;
    out.family = 4;
  } else {
    if (::inet_pton(AF_INET6, buf, out.bytes.data()) != 1) return std::nullopt;
    out.family = 6;
  }
  return out;
}

std::optional<cidr> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  auto a = parse_ip(text.substr(0, slash));
  if (!a) return std::nullopt;
  const int max = a->family == 4 ? 32 : 128;
  cidr out{*a, max};
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    int n = -1;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (p.empty() || p.size() > 3 || ec != std::errc() || end != p.data() + p.size() || n < 0 ||
        n > max) {
      return std::nullopt;
    }
    out.prefix = n;
  }
  return out;
}

bool is_host_entry(std::string_view entry, const ip& address) {
  const auto c = parse_cidr(entry);
  return c && c->addr == address && c->prefix == (address.family == 4 ? 32 : 128);
}

std::vector<std::string> normalize_all(const std::vector<std::string>& addresses) {
  std::vector<std::string> out;
  for (const auto& a : addresses) {
    auto n = normalize_address(a);
    if (!n) {
      throw error(errc::bad_argument, "'" + a + "' is not an IPv4 or IPv6 address");
    }
    if (std::find(out.begin(), out.end(), *n) == out.end()) out.push_back(std::move(*n));
  }
  if (out.empty()) throw error(errc::bad_argument, "no egress address given");
  return out;
}

}  // namespace detail

std::optional<std::string> normalize_address(std::string_view text) {
  const auto a = detail::parse_ip(text);
  if (!a) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes.data(), buf, sizeof buf) ==
      nullptr) {
    return std::nullopt;
  }
  return std::string(buf);
}

std::string host_cidr(std::string_view address) {
  return std::string(address) + (address.find(':') == std::string_view::npos ? "/32" : "/128");
}

bool contains(std::string_view entry, std::string_view address) {
  const auto a = detail::parse_ip(address);
  if (!a) return false;
  if (const auto dash = entry.find('-'); dash != std::string_view::npos) {
    const auto lo = detail::parse_ip(entry.substr(0, dash));
    const auto hi = detail::parse_ip(entry.substr(dash + 1));
    if (!lo || !hi || lo->family != hi->family || lo->family != a->family) return false;
    const auto n = a->size();
    const auto b = [n](const detail::ip& x) {
      return std::string_view(reinterpret_cast<const char*>(x.bytes.data()), n);
    };
    // Network byte order: lexicographic comparison of unsigned bytes is numeric order.
    const auto cmp = [](std::string_view x, std::string_view y) {
      return std::lexicographical_compare(
          x.begin(), x.end(), y.begin(), y.end(), [](char p, char q) {
            return static_cast<unsigned char>(p) < static_cast<unsigned char>(q);
          });
    };
    if (cmp(b(*hi), b(*lo))) return false;  // low > high: malformed
    return !cmp(b(*a), b(*lo)) && !cmp(b(*hi), b(*a));
  }
  const auto c = detail::parse_cidr(entry);
  if (!c || c->addr.family != a->family) return false;
  int bits = c->prefix;
  for (std::size_t i = 0; bits > 0; ++i, bits -= 8) {
    const auto mask = static_cast<std::uint8_t>(bits >= 8 ? 0xff : 0xff << (8 - bits));
    if ((c->addr.bytes[i] & mask) != (a->bytes[i] & mask)) return false;
  }
  return true;
}

}  // namespace tunnelgate::idp
