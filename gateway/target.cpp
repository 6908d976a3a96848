#include "gateway/target.hpp"

#include <charconv>

#include "dtr/dtr.hpp"

namespace tunnelgate::gateway {

std::string connect_target::authority() const {
  const bool v6 = is_ip && host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

refusal parse_connect_target(std::string_view a, connect_target& out) {
  std::string_view host;
  std::string_view port;
  if (!a.empty() && a.front() == '[') {
    const auto close = a.find(']');
    if (close == std::string_view::npos) return refusal::bad_host;
    host = a.substr(1, close - 1);
    const auto rest = a.substr(close + 1);
    if (rest.empty()) return refusal::missing_port;
    if (rest.front() != ':') return refusal::bad_host;
    port = rest.substr(1);
    if (host.find(':') == std::string_view::npos) return refusal::bad_host;  // [v4] is not a form
  } else {
    const auto colon = a.rfind(':');
    if (colon == std::string_view::npos) return refusal::missing_port;
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return refusal::bad_host;  // bare IPv6
  }
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || port.size() > 5 || ec != std::errc() || end != port.data() + port.size() ||
      p < 1 || p > 65535) {
    return refusal::bad_port;
  }
  out.port = static_cast<std::uint16_t>(p);
  if (auto ip = dtr::parse_ip(host)) {
    out.is_ip = true;
    out.host = dtr::destination{dtr::destination::kind::cidr, {}, *ip, ip->bits(), {}}.text();
    return refusal::none;
  }
  auto name = dtr::normalize_host(host);
  if (!name) return refusal::bad_host;
  out.is_ip = false;
  out.host = std::move(name).value();
  return refusal::none;
}

}  // namespace tunnelgate::gateway
