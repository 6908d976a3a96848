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

inline bool in_network(const ip_address& a, const destination& d) {
  if (a.v6 != d.network.v6) return false;
  for (unsigned bit = 0; bit < d.prefix; ++bit) {
    const auto x = (a.bytes[bit / 8] >> (7 - bit % 8)) & 1U;
    const auto y = (d.network.bytes[bit / 8] >> (7 - bit % 8)) & 1U;
    if (x != y) return false;
  }
  return true;
}

/// Does `d` match the flow? `host` must already be normalised (lower case, A-labels, no dot)
/// unless `ip` is set.
inline bool linear_matches(const destination& d, std::string_view host, const ip_address* ip,
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

struct linear_result {
  int rank = 0;  ///< 0 = default
  action act = action::block;
};

/// First matching rule of `s` for an already-normalised host (or IP), else the default.
inline linear_result linear_decide(const rule_set& s, std::string_view host, const ip_address* ip,
                                   std::uint16_t port) {
  for (std::size_t ri = 0; ri < s.rules.size(); ++ri) {
    for (const auto& d : s.rules[ri].destinations) {
      if (linear_matches(d, host, ip, port)) return {static_cast<int>(ri + 1), s.rules[ri].act};
    }
  }
  return {0, s.default_action};
}

}  // namespace tunnelgate::dtr::testing
