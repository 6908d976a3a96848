// Internal: the PROXY protocol version 2 header an L4 load balancer writes before the device's
// bytes (HAProxy's "The PROXY protocol", section 2.2), so that the gateway learns the device's
// address. A pure parser: no socket, no state; the caller reads and feeds bytes
// (gateway/proxy_accept.cpp).
//
// Accepted: the 12-byte signature, version 2, command LOCAL (the balancer's own health check:
// no addresses) or PROXY with family UNSPEC (no addresses), TCP over IPv4 or TCP over IPv6.
// TLVs after the addresses are checked for shape and skipped. Version 1 (the text form
// "PROXY TCP4 ...") is refused: configure the balancer to send version 2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "gateway/net.hpp"

namespace tunnelgate::gateway {

/// Why a header was refused. One spelling each (logs, tests).
enum class proxy_refusal : std::uint8_t {
  bad_signature,        ///< not the v2 signature (a v1 text header, TLS, anything else)
  bad_version,          ///< the version nibble is not 2
  unsupported_command,  ///< neither LOCAL (0x20) nor PROXY (0x21)
  unsupported_family,   ///< PROXY for UDP, UNIX sockets or an undefined family
  too_long,             ///< the header would exceed proxy_v2_max_header bytes
  truncated,            ///< the address block or a TLV is shorter than its type requires
};

/// "bad-signature", "bad-version", "unsupported-command", "unsupported-family", "too-long",
/// "truncated".
std::string_view to_string(proxy_refusal r) noexcept;

/// The header's signature, then ver_cmd, family and a 2-byte length: the fixed part.
inline constexpr std::size_t proxy_v2_fixed = 16;

/// The largest header accepted, fixed part included. The biggest address block (two UNIX paths)
/// is 216 bytes, and the TLVs balancers add (AWS VPC endpoint id, Azure link id, a unique id of
/// at most 128 bytes, SSL details) fit with room to spare; 536 is the size the specification
/// tells receivers they can always read in one segment (the IPv4 minimum MSS). A bound keeps a
/// sender from making the gateway hold up to 64 KiB per connection before the TLS handshake.
inline constexpr std::size_t proxy_v2_max_header = 536;

struct proxy_header {
  enum class status : std::uint8_t { need_more, ok, refused };
  enum class command : std::uint8_t { local, proxy };

  status state = status::need_more;
  /// need_more: the total number of bytes the input must hold before the parser can say more
  /// (16 until the fixed part is in, then the whole header); never more than
  /// proxy_v2_max_header. ok: the header's length, to drop before the TLS bytes.
  std::size_t needed = proxy_v2_fixed;
  std::size_t consumed = 0;  ///< ok: the header's length (the bytes after it are the device's)
  proxy_refusal refusal = proxy_refusal::bad_signature;  ///< refused only
  std::string_view detail;                               ///< refused: a sentence for the log
  command cmd = command::proxy;                          ///< ok only
  /// ok with PROXY over TCP/IPv4 or TCP/IPv6: the device's address and the address it
  /// connected to (the balancer's front end); nullopt for LOCAL and UNSPEC.
  std::optional<tcp::endpoint> source;
  std::optional<tcp::endpoint> destination;

  bool ok() const noexcept { return state == status::ok; }
  bool refused() const noexcept { return state == status::refused; }
};

/// Parses the start of a connection's bytes. Reads nothing past the header: on ok `consumed`
/// bytes are the header and the rest belong to the device. On need_more, call again with at
/// least `needed` bytes (the same prefix, more appended); the result never depends on bytes
/// past the header. Refuses as soon as the bytes present show the header is bad.
proxy_header parse_proxy_v2(std::span<const std::uint8_t> in) noexcept;

}  // namespace tunnelgate::gateway
