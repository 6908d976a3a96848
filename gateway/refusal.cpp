#include "gateway/refusal.hpp"

namespace tunnelgate::gateway {

namespace {

struct refusal_info {
  std::string_view name;
  unsigned status;
  std::string_view text;
};

// Indexed by the enum; the static_assert below keeps the table and the enum in step.
constexpr refusal_info table[] = {
    {"ok", 200, "ok"},
    {"bad-request", 400, "malformed request"},
    {"bad-line-ending", 400, "request lines must end with CRLF"},
    {"obs-fold", 400, "header lines must not be folded onto the next line"},
    {"header-too-large", 431, "the request head exceeds the header limit"},
    {"too-many-headers", 431, "the request has too many header fields"},
    {"target-too-long", 414, "the request target is too long"},
    {"body-not-allowed", 400,
     "requests to the gateway carry no body (no Transfer-Encoding, no Content-Length but 0)"},
    {"duplicate-host", 400, "the request has more than one Host header"},
    {"host-mismatch", 400, "the Host header names another destination than the CONNECT target"},
    {"use-connect", 400, "this gateway only tunnels: send CONNECT host:port (curl: --proxytunnel)"},
    {"method-not-allowed", 405, "only CONNECT and GET are served here"},
    {"not-found", 404, "this gateway serves CONNECT, /dtr/profile and /proxy.pac"},
    {"missing-port", 400, "CONNECT needs HOST:PORT with a valid host and a port 1-65535"},
    {"bad-port", 400, "CONNECT needs HOST:PORT with a valid host and a port 1-65535"},
    {"bad-host", 400, "CONNECT needs HOST:PORT with a valid host and a port 1-65535"},
    {"bad-app", 400, "X-Tunnel-App is too long"},
    {"no-rule-set", 403, "no traffic rule set applies to this app on this platform"},
    {"bypass", 403, "connect to this destination directly, not through the tunnel"},
    {"blocked", 403, "this destination is blocked by the traffic rules"},
    {"forbidden-destination", 403, "the gateway does not connect to this destination's address"},
    {"resolve-failed", 502, "the destination name cannot be resolved"},
    {"resolve-timeout", 504, "resolving the destination name took too long"},
    {"no-egress-family", 502,
     "the destination has no address in a family the gateway can leave from"},
    {"connect-failed", 502, "the destination cannot be reached"},
    {"connect-timeout", 504, "the destination did not answer in time"},
    {"proxy-failed", 502, "the upstream proxy refused or failed the connection"},
    {"proxy-timeout", 504, "the upstream proxy did not answer in time"},
    {"session-limit", 429, "this device has too many open sessions"},
    {"vpn-not-configured", 404, "this gateway offers no full-device VPN"},
    {"vpn-bad-request", 400,
     "the VPN request is not valid (an auth body or X-CSTP header openconnect would not "
     "send); use a current openconnect client"},
    {"vpn-full", 503, "no VPN address is free; try again later"},
    {"vpn-device-limit", 429,
     "this device has too many VPN tunnels open; disconnect one and retry"},
    {"gateway-overloaded", 503, "the gateway is at capacity; try again later"},
};
static_assert(std::size(table) == static_cast<std::size_t>(refusal::gateway_overloaded) + 1,
              "one table row per refusal, in enum order");

const refusal_info& info(refusal r) noexcept {
  const auto i = static_cast<std::size_t>(r);
  return i < std::size(table) ? table[i] : table[static_cast<std::size_t>(refusal::bad_request)];
}

}  // namespace

std::string_view to_string(refusal r) noexcept {
  return info(r).name;
}

unsigned http_status(refusal r) noexcept {
  return info(r).status;
}

std::string_view device_text(refusal r) noexcept {
  return info(r).text;
}

}  // namespace tunnelgate::gateway
