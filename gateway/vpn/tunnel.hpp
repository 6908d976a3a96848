// The tunnel request of the AnyConnect protocol (`CONNECT /CSCOSSLC/tunnel`), without I/O:
// what the client's X-CSTP-* headers ask for, the MTU rule, and the X-CSTP-* headers of the
// `200` answer, in the order and spelling openconnect reads them (cstp.c,
// start_cstp_connection()).
//
// openconnect 9 requires, in the answer: the status line to start "HTTP/1.1 200 " exactly, an
// address (X-CSTP-Address, or X-CSTP-Address-IP6), and an MTU (X-CSTP-MTU); it aborts without
// either. It reads each header name case-sensitively after "X-CSTP-", skips one space after the
// colon, and keeps at most three DNS servers. On a reconnect (the TLS connection dropped, same
// cookie) it refuses an address different from the one it had.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

namespace tunnelgate::gateway::vpn::tunnel {

/// The smallest tunnel MTU offered: IPv4's minimum datagram (RFC 791), and IPv6's minimum link
/// MTU (RFC 8200) when the tunnel carries IPv6.
inline constexpr std::uint32_t min_mtu_v4 = 576;
inline constexpr std::uint32_t min_mtu_v6 = 1280;

/// What the client asked for in its CONNECT headers. All client-chosen.
struct client_request {
  int version = 0;             ///< X-CSTP-Version (openconnect: 1)
  std::string hostname;        ///< X-CSTP-Hostname: the device's own name, for logs only
  std::uint32_t base_mtu = 0;  ///< X-CSTP-Base-MTU: its link MTU to us; 0 when absent
  std::uint32_t mtu = 0;       ///< X-CSTP-MTU: the tunnel MTU it wants; 0 when absent
  /// X-CSTP-Address-Type ("IPv6,IPv4" from openconnect, "IPv4" with --disable-ipv6). Without
  /// the header both are allowed, as ocserv does.
  bool wants_ipv4 = true, wants_ipv6 = true;
  /// X-CSTP-Full-IPv6-Capability: true. Without it a client understands an IPv6 address but
  /// not X-CSTP-Address-IP6 (old AnyConnect); the gateway then offers no IPv6.
  bool full_ipv6 = false;
  /// X-CSTP-Accept-Encoding ("oc-lz4,lzs" by default). Never honoured: the answer has no
  /// X-CSTP-Content-Encoding, so the client sends no COMPRESSED frame.
  std::vector<std::string> accept_encoding;
  /// X-CSTP-Address: the addresses a reconnecting client had (it sends one of each family).
  std::optional<boost::asio::ip::address_v4> previous_v4;
  std::optional<boost::asio::ip::address_v6> previous_v6;
  /// X-DTLS-Master-Secret was sent: the client would use DTLS. We offer none (no X-DTLS-*
  /// answer headers), so it stays on TLS. The secret itself is not kept.
  bool dtls_offered = false;
};

enum class request_error : std::uint8_t {
  none = 0,
  bad_number,   ///< an MTU or version that is not a decimal number in range
  bad_address,  ///< X-CSTP-Address that is not an IP literal
  bad_value,    ///< too long, or control characters
};
/// "ok", "bad_number", "bad_address", "bad_value".
std::string_view to_string(request_error e) noexcept;

/// Applies one request header field to `req`; names compare case-insensitively; fields this
/// code does not know are ignored (none). A field given twice: the last one wins, except
/// X-CSTP-Address, which is kept per family. On error `req` is unchanged for that field.
request_error apply_header(client_request& req, std::string_view name, std::string_view value);

/// The MTU agreed for a tunnel.
struct mtu_result {
  std::uint32_t mtu = 0;       ///< X-CSTP-MTU: the tunnel (TUN) MTU on both ends
  std::uint32_t base_mtu = 0;  ///< X-CSTP-Base-MTU: the link MTU (used by clients for DTLS)
  bool ipv6 = false;           ///< whether the tunnel can carry IPv6 at that MTU
};

/// The MTU rule: the smaller of ours and the client's X-CSTP-MTU, raised to min_mtu_v4 (or
/// min_mtu_v6 when IPv6 is offered: `want_ipv6` and the client wants it with full
/// capability), but never above ours. Over TLS the tunnel MTU bounds only the packets, not the
/// TCP segments, so raising a small client request to the protocol minimum is safe. When our
/// own MTU is below min_mtu_v6, IPv6 is dropped, as ocserv does. The base MTU is the smaller of
/// ours and the client's.
mtu_result negotiate_mtu(std::uint32_t our_mtu, std::uint32_t our_base_mtu,
                         const client_request& req, bool want_ipv6) noexcept;

/// What the answer tells the client. The caller fills it from the session's lease and the
/// configuration, after negotiate_mtu().
struct settings {
  /// The device's IPv4 address with the pool's prefix (10.8.0.7/16): X-CSTP-Address and
  /// X-CSTP-Netmask.
  boost::asio::ip::network_v4 ipv4;
  /// The device's IPv6 address with its prefix: X-CSTP-Address-IP6 "fd00::7/64".
  std::optional<boost::asio::ip::network_v6> ipv6;
  std::uint32_t mtu = 1400;
  std::uint32_t base_mtu = 1500;
  std::chrono::seconds dpd{30};        ///< X-CSTP-DPD; 0 leaves it out (client's default)
  std::chrono::seconds keepalive{20};  ///< X-CSTP-Keepalive; 0 leaves it out
  std::optional<std::chrono::seconds> idle_timeout;     ///< X-CSTP-Idle-Timeout, else "none"
  std::optional<std::chrono::seconds> session_timeout;  ///< X-CSTP-Session-Timeout, else "none"
  /// X-CSTP-DNS, in order. openconnect keeps the first three. IPv6 servers are sent only
  /// with an IPv6 address.
  std::vector<boost::asio::ip::address> dns;
  /// X-CSTP-Split-Include, one header each, "10.0.0.0/255.0.0.0" (the form ocserv writes).
  /// Empty means the client routes everything into the tunnel (vpnc-script default route).
  std::vector<boost::asio::ip::network_v4> split_include_v4;
  /// X-CSTP-Split-Include-IP6, "2001:db8::/32"; sent only with an IPv6 address.
  std::vector<boost::asio::ip::network_v6> split_include_v6;
  /// X-CSTP-Split-DNS, one header each: the domains whose names the client asks our DNS.
  std::vector<std::string> split_dns;
  std::string default_domain;  ///< X-CSTP-Default-Domain when not empty
};

/// One header field of the answer, in sending order.
using header = std::pair<std::string, std::string>;

/// The X-CSTP-* fields of the `200` answer, in this order: Version, Address, Netmask,
/// Address-IP6, MTU, Base-MTU, DPD, Keepalive, Idle-Timeout, Session-Timeout, Rekey-Method
/// (none: the gateway never rekeys), DNS..., Default-Domain, Split-DNS..., Split-Include...,
/// Split-Include-IP6.... Nothing about DTLS and no Content-Encoding. Pure.
/// Throws std::invalid_argument when a domain is not an LDH DNS name (configuration is
/// validated before it gets here; this keeps a bad value out of a header).
std::vector<header> response_headers(const settings& cfg);

/// True for an LDH DNS name without a trailing dot: what split_dns and default_domain accept.
bool valid_domain(std::string_view name) noexcept;

}  // namespace tunnelgate::gateway::vpn::tunnel
