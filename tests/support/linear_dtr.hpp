// A straightforward linear-scan DTR matcher: the reference the compiled matcher is checked
// against (tests/dtr/differential_test.cpp) and the baseline it is measured against
// (tests/bench/bench_dtr.cpp). Deliberately simple: rules in rank order, every destination
// tested in turn, the first match wins.
#pragma once

#include <cctype>
#include <string>

#include "dtr/dtr.hpp"

namespace tunnelgate::dtr::testing {

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::/96 but :: and ::1) addresses are decided
/// as IPv4. Written out here on purpose rather than calling dtr::normalize_mapped, so that the
/// reference does not share the code it checks.
inline ip_address linear_flow_address(const ip_address& a) {
  if (!a.v6) return a;
  unsigned long long high = 0;  // the first 80 bits must be zero
  for (int i = 0; i < 10; ++i)
    high |= a.bytes[static_cast<std::size_t>(i)];
  const unsigned mid = (unsigned{a.bytes[10]} << 8) | a.bytes[11];
  const unsigned long low = (static_cast<unsigned long>(a.bytes[12]) << 24) |
                            (static_cast<unsigned long>(a.bytes[13]) << 16) |
                            (static_cast<unsigned long>(a.bytes[14]) << 8) | a.bytes[15];
  if (high != 0 || !(mid == 0xffff || (mid == 0 && low > 1))) return a;
  ip_address v4;
  for (int i = 0; i < 4; ++i)
    v4.bytes[static_cast<std::size_t>(i)] = a.bytes[static_cast<std::size_t>(12 + i)];
  return v4;
}

inline bool in_network(const ip_address& a, const destination& d) {
  if (a.v6 != d.network.v6) return false;
  for (unsigned bit = 0; bit < d.prefix; ++bit) {
    const auto x = (a.bytes[bit / 8] >> (7 - bit % 8)) & 1U;
    const auto y = (d.network.bytes[bit / 8] >> (7 - bit % 8)) & 1U;
    if (x != y) return false;
  }
  return true;
}

/// linear_matches for an address already passed through linear_flow_address.
inline bool linear_matches_flow(const destination& d, std::string_view host, const ip_address* ip,
                                std::uint16_t port) {
  if (!d.ports.contains(port)) return false;
  if (ip != nullptr) return d.k == destination::kind::cidr && in_network(*ip, d);
  switch (d.k) {
    case destination::kind::exact:
      return host == d.value;
    case destination::kind::string_suffix:
      return ends_with(host, d.value);
    case destination::kind::label_suffix:
      return host.size() > d.value.size() && ends_with(host, d.value);
    case destination::kind::any_host:
      return true;
    case destination::kind::cidr:
      return false;
  }
  return false;
}

/// Does `d` match the flow? `host` must already be normalised (lower case, A-labels, no dot)
/// unless `ip` is set (as parse_ip returns it: mapped addresses are converted here).
inline bool linear_matches(const destination& d, std::string_view host, const ip_address* ip,
                           std::uint16_t port) {
  if (ip == nullptr) return linear_matches_flow(d, host, nullptr, port);
  const auto a = linear_flow_address(*ip);
  return linear_matches_flow(d, host, &a, port);
}

struct linear_result {
  int rank = 0;  ///< 0 = default
  action act = action::block;
};

/// First matching rule of `s` for an already-normalised host (or IP as parse_ip returns it),
/// else the default.
inline linear_result linear_decide(const rule_set& s, std::string_view host, const ip_address* ip,
                                   std::uint16_t port) {
  ip_address a;
  if (ip != nullptr) a = linear_flow_address(*ip);
  const ip_address* flow_ip = ip != nullptr ? &a : nullptr;
  for (std::size_t ri = 0; ri < s.rules.size(); ++ri) {
    for (const auto& d : s.rules[ri].destinations) {
      if (linear_matches_flow(d, host, flow_ip, port)) {
        return {static_cast<int>(ri + 1), s.rules[ri].act};
      }
    }
  }
  return {0, s.default_action};
}

}  // namespace tunnelgate::dtr::testing
