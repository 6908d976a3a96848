// Internal: why a device's request is refused. One enum, one spelling per value (the
// X-Tunnel-Reason header, the `reason` field of `request_refused` log lines and the `outcome`
// label of tunnelgate_requests_total), one HTTP status and one sentence for the device.
//
// A refusal is *decided* where the enum value is produced (the target parser, the request-head
// reader, the rules, the egress policy, dial) and *answered* in exactly one place:
// connection::refuse() in session.cpp, which logs it once, counts it once and writes it.
// Admission refusals (noncompliant, unknown_device, ...) are the UEM's reasons, not these.
#pragma once

#include <cstdint>
#include <string_view>

namespace tunnelgate::gateway {

enum class refusal : std::uint8_t {
  none = 0,
  // ---- the request head (400 unless noted) ----
  bad_request,       ///< Beast could not parse the head
  bad_line_ending,   ///< a bare CR or LF: heads use CRLF only (request smuggling shape)
  obs_fold,          ///< a header line continued on the next line (obsolete folding)
  header_too_large,  ///< 431: the head exceeds limits.header_limit
  too_many_headers,  ///< 431: more than limits.max_headers fields
  target_too_long,   ///< 414: the request target exceeds limits.target_limit
  body_not_allowed,  ///< any Transfer-Encoding, or a Content-Length other than 0
  duplicate_host,    ///< Host given twice
  host_mismatch,     ///< CONNECT whose Host names another authority than the target
  // ---- what was asked ----
  use_connect,         ///< an absolute-form request: this gateway only tunnels
  method_not_allowed,  ///< 405
  not_found,           ///< 404: a GET for something we do not serve
  missing_port,        ///< CONNECT target without :port
  bad_port,            ///< port not 1-65535
  bad_host,            ///< not a host name or IP literal
  bad_app,             ///< X-Tunnel-App too long
  // ---- the rules (403) ----
  no_rule_set,  ///< no rule set applies to the device's platform and app
  bypass,       ///< the rules say: go direct, not through the tunnel
  blocked,      ///< the rules block the destination
  // ---- egress ----
  forbidden_destination,  ///< 403: every address of the destination failed the egress policy
  resolve_failed,         ///< 502
  resolve_timeout,        ///< 504
  no_egress_family,       ///< 502: only addresses of a family without an egress address
  connect_failed,         ///< 502
  connect_timeout,        ///< 504
  proxy_failed,           ///< 502: the upstream proxy refused or broke the protocol
  proxy_timeout,          ///< 504
  // ---- the session ----
  session_limit,  ///< 429: the device has limits.max_sessions_per_device sessions open
  // ---- the full-device VPN ----
  vpn_not_configured,  ///< 404: CONNECT /CSCOSSLC/tunnel without a `vpn:` section (a POST
                       ///< without one is method_not_allowed)
  vpn_bad_request,     ///< 400: an auth body or X-CSTP-* header that is not valid
  vpn_full,            ///< 503: no client address left (vpn.pool, vpn.max_sessions)
  vpn_device_limit,    ///< 429: the device has vpn.max_tunnels_per_device tunnels open
  // ---- the gateway itself ----
  gateway_overloaded,  ///< 503: the gateway is out of descriptors (or another local resource)
                       ///< for the tunnel's egress socket: never blamed on the destination
};

/// The spelling (X-Tunnel-Reason, logs, metrics). "ok" for none.
std::string_view to_string(refusal r) noexcept;
/// The HTTP status of the answer.
unsigned http_status(refusal r) noexcept;
/// One sentence for the device's response body: what happened and what to do. Never carries
/// network detail (the log has it), so the gateway is no port-scanning oracle.
std::string_view device_text(refusal r) noexcept;

}  // namespace tunnelgate::gateway
