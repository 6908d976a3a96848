// IPv4/IPv6 packet headers on the VPN data path, without I/O or allocation.
//
// parse() validates what the gateway relies on before it forwards a packet from a device
// (version, header and total lengths against the bytes received, the IPv6 extension header
// chain) and extracts the flow: addresses, upper-layer protocol, and ports when the packet
// carries them. Bytes come from the device and are untrusted; nothing here reads past `bytes`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace tunnelgate::gateway::vpn::packet {

/// Upper-layer protocol numbers (IANA) the gateway treats specially.
namespace proto {
inline constexpr std::uint8_t icmp = 1;
inline constexpr std::uint8_t tcp = 6;
inline constexpr std::uint8_t udp = 17;
inline constexpr std::uint8_t icmpv6 = 58;
}  // namespace proto

/// At most this many IPv6 extension headers are walked; a longer chain is refused (RFC 8200
/// sets no limit, real traffic has one or two, and a long chain only serves to hide ports).
inline constexpr int max_extension_headers = 8;

/// Why a packet is malformed. A malformed packet is dropped and counted under this spelling.
enum class error : std::uint8_t {
  none = 0,
  empty,                 ///< no bytes at all
  bad_version,           ///< the version nibble is neither 4 nor 6
  truncated_header,      ///< fewer bytes than the fixed IP header (20 / 40)
  bad_header_length,     ///< IPv4 IHL below 5, or beyond the packet
  bad_total_length,      ///< IPv4 total length / IPv6 payload length disagrees with the bytes
  bad_extension,         ///< an IPv6 extension header runs past the packet, or hop-by-hop not first
  too_many_extensions,   ///< more than max_extension_headers IPv6 extension headers
  truncated_transport,   ///< a first fragment too short for its TCP/UDP/ICMP header
  bad_transport_length,  ///< TCP data offset below 5 or past the packet; UDP length inconsistent
  tiny_fragment,         ///< IPv4 TCP fragment at offset 8 bytes (RFC 1858 overlap attack)
};

/// The spelling in logs and the `reason` label of the dropped-packets counter: "ok", "empty",
/// "bad_version", "truncated_header", "bad_header_length", "bad_total_length", "bad_extension",
/// "too_many_extensions", "truncated_transport", "bad_transport_length", "tiny_fragment".
std::string_view to_string(error e) noexcept;

/// What parse() found. Addresses are boost::asio::ip::address (no allocation).
struct info {
  std::uint8_t version = 0;  ///< 4 or 6
  boost::asio::ip::address src, dst;
  /// The upper-layer protocol: after the IPv6 extension headers (ESP, 50, and "no next
  /// header", 59, end the walk and are reported as such).
  std::uint8_t protocol = 0;
  std::uint8_t ttl = 0;  ///< IPv4 TTL / IPv6 hop limit
  /// Offset of the upper-layer header in the packet (after IPv4 options / IPv6 extensions).
  std::size_t transport_offset = 0;
  std::size_t length = 0;      ///< the whole packet: equals the bytes given to parse()
  bool fragment = false;       ///< part of a fragmented datagram (first or later)
  bool first_fragment = true;  ///< false for later fragments, which carry no upper-layer header
  /// True when src_port/dst_port are set: TCP or UDP in an unfragmented packet or a first
  /// fragment. ICMP and later fragments have none.
  bool has_ports = false;
  std::uint16_t src_port = 0, dst_port = 0;
};

/// Parses the packet that is exactly `bytes` (one CSTP DATA payload, or one read from the TUN
/// device). The header's own length must equal bytes.size(): trailing bytes are refused as a
/// length mismatch, so what is counted and forwarded is what the header says. Returns
/// error::none and fills `out`, or the first fault found (then `out` is unspecified).
error parse(std::span<const std::uint8_t> bytes, info& out) noexcept;

/// A connection's identity: the 5-tuple. Ports are 0 when the packet has none.
struct flow_key {
  boost::asio::ip::address src, dst;
  std::uint8_t protocol = 0;
  std::uint16_t src_port = 0, dst_port = 0;

  /// The key of the answering direction.
  flow_key reversed() const noexcept { return {dst, src, protocol, dst_port, src_port}; }
  friend bool operator==(const flow_key&, const flow_key&) = default;
};

/// The key of a parsed packet.
flow_key key_of(const info& p) noexcept;

/// A hash for unordered containers keyed by flow_key, mixed with a seed drawn once per process
/// so that a device cannot choose ports and addresses that collide in the gateway's tables.
struct flow_key_hash {
  std::size_t operator()(const flow_key& k) const noexcept;
};

}  // namespace tunnelgate::gateway::vpn::packet
