#include "gateway/vpn/tunnel.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "gateway/vpn/text.hpp"

namespace tunnelgate::gateway::vpn::tunnel {

namespace {

constexpr std::size_t max_value = 255;
constexpr std::size_t max_encodings = 8;

bool parse_number(std::string_view s, std::uint32_t max, std::uint32_t& out) noexcept {
  s = detail::trim(s);
  if (s.empty() || s.size() > 10) return false;
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return false;
  out = v;
  return true;
}

// Calls f(token) for each comma-separated, trimmed, non-empty token of `s`.
template <typename F>
void for_each_token(std::string_view s, F&& f) {
  while (!s.empty()) {
    const auto comma = s.find(',');
    const std::string_view token = detail::trim(s.substr(0, comma));
    s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    if (!token.empty()) f(token);
  }
}

std::string seconds_or_none(const std::optional<std::chrono::seconds>& s) {
  return s ? std::to_string(s->count()) : std::string("none");
}

}  // namespace

std::string_view to_string(request_error e) noexcept {
  switch (e) {
    case request_error::none:
      return "ok";
    case request_error::bad_number:
      return "bad_number";
    case request_error::bad_address:
      return "bad_address";
    case request_error::bad_value:
      return "bad_value";
  }
  return "unknown";
}

request_error apply_header(client_request& req, std::string_view name, std::string_view value) {
  using detail::iequals;
  value = detail::trim(value);
  if (iequals(name, "X-CSTP-MTU") || iequals(name, "X-CSTP-Base-MTU")) {
    std::uint32_t v = 0;
    if (!parse_number(value, 0xffff, v)) return request_error::bad_number;
    (iequals(name, "X-CSTP-MTU") ? req.mtu : req.base_mtu) = v;
  } else if (iequals(name, "X-CSTP-Version")) {
    std::uint32_t v = 0;
    if (!parse_number(value, 1000, v)) return request_error::bad_number;
    req.version = static_cast<int>(v);
  } else if (iequals(name, "X-CSTP-Hostname")) {
    if (value.size() > max_value || !detail::no_controls(value)) return request_error::bad_value;
    req.hostname.assign(value);
  } else if (iequals(name, "X-CSTP-Address-Type")) {
    if (value.size() > 64 || !detail::no_controls(value)) return request_error::bad_value;
    bool v4 = false, v6 = false;
    for_each_token(value, [&](std::string_view t) {
      v4 = v4 || iequals(t, "IPv4");
      v6 = v6 || iequals(t, "IPv6");
    });
    req.wants_ipv4 = v4;
    req.wants_ipv6 = v6;
  } else if (iequals(name, "X-CSTP-Full-IPv6-Capability")) {
    req.full_ipv6 = iequals(value, "true");
  } else if (iequals(name, "X-CSTP-Accept-Encoding")) {
    if (value.size() > max_value || !detail::no_controls(value)) return request_error::bad_value;
    std::vector<std::string> list;
    for_each_token(value, [&](std::string_view t) {
      if (list.size() < max_encodings) list.emplace_back(t);
    });
    req.accept_encoding = std::move(list);
  } else if (iequals(name, "X-CSTP-Address")) {
    boost::system::error_code ec;
    const auto a = boost::asio::ip::make_address(std::string(value.substr(0, 64)), ec);
    if (ec || value.size() > 64) return request_error::bad_address;
    if (a.is_v4()) {
      req.previous_v4 = a.to_v4();
    } else {
      if (a.to_v6().scope_id() != 0) return request_error::bad_address;
      req.previous_v6 = a.to_v6();
    }
  } else if (iequals(name, "X-DTLS-Master-Secret")) {
    req.dtls_offered = true;
  }
  return request_error::none;
}

mtu_result negotiate_mtu(std::uint32_t our_mtu, std::uint32_t our_base_mtu,
                         const client_request& req, bool want_ipv6) noexcept {
  mtu_result r;
  r.ipv6 = want_ipv6 && req.wants_ipv6 && req.full_ipv6 && our_mtu >= min_mtu_v6;
  r.mtu = req.mtu > 0 ? std::min(our_mtu, req.mtu) : our_mtu;
  const std::uint32_t floor = r.ipv6 ? min_mtu_v6 : min_mtu_v4;
  r.mtu = std::max(r.mtu, std::min(floor, our_mtu));
  r.base_mtu = req.base_mtu > 0 ? std::min(our_base_mtu, req.base_mtu) : our_base_mtu;
  return r;
}

bool valid_domain(std::string_view name) noexcept {
  return detail::is_domain(name);
}

std::vector<header> response_headers(const settings& cfg) {
  for (const auto& d : cfg.split_dns) {
    if (!valid_domain(d)) throw std::invalid_argument("split DNS domain is not a DNS name: " + d);
  }
  if (!cfg.default_domain.empty() && !valid_domain(cfg.default_domain)) {
    throw std::invalid_argument("default domain is not a DNS name: " + cfg.default_domain);
  }

  std::vector<header> h;
  h.reserve(16 + cfg.dns.size() + cfg.split_dns.size() + cfg.split_include_v4.size() +
            cfg.split_include_v6.size());
  h.emplace_back("X-CSTP-Version", "1");
  h.emplace_back("X-CSTP-Address", cfg.ipv4.address().to_string());
  h.emplace_back("X-CSTP-Netmask", cfg.ipv4.netmask().to_string());
  if (cfg.ipv6) {
    // openconnect takes the value of X-CSTP-Address-IP6 as "address/prefix" (its netmask6)
    // and derives the address from it.
    h.emplace_back("X-CSTP-Address-IP6", cfg.ipv6->address().to_string() + "/" +
                                             std::to_string(cfg.ipv6->prefix_length()));
  }
  h.emplace_back("X-CSTP-MTU", std::to_string(cfg.mtu));
  h.emplace_back("X-CSTP-Base-MTU", std::to_string(cfg.base_mtu));
  if (cfg.dpd.count() > 0) h.emplace_back("X-CSTP-DPD", std::to_string(cfg.dpd.count()));
  if (cfg.keepalive.count() > 0) {
    h.emplace_back("X-CSTP-Keepalive", std::to_string(cfg.keepalive.count()));
  }
  h.emplace_back("X-CSTP-Idle-Timeout", seconds_or_none(cfg.idle_timeout));
  h.emplace_back("X-CSTP-Session-Timeout", seconds_or_none(cfg.session_timeout));
  h.emplace_back("X-CSTP-Rekey-Method", "none");
  for (const auto& d : cfg.dns) {
    if (d.is_v6() && !cfg.ipv6) continue;
    h.emplace_back("X-CSTP-DNS", d.to_string());
  }
  if (!cfg.default_domain.empty()) h.emplace_back("X-CSTP-Default-Domain", cfg.default_domain);
  for (const auto& d : cfg.split_dns)
    h.emplace_back("X-CSTP-Split-DNS", d);
  for (const auto& n : cfg.split_include_v4) {
    h.emplace_back("X-CSTP-Split-Include", n.network().to_string() + "/" + n.netmask().to_string());
  }
  if (cfg.ipv6) {
    for (const auto& n : cfg.split_include_v6) {
      h.emplace_back("X-CSTP-Split-Include-IP6",
                     n.network().to_string() + "/" + std::to_string(n.prefix_length()));
    }
  }
  return h;
}

}  // namespace tunnelgate::gateway::vpn::tunnel
