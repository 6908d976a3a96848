#include "gateway/vpn/packet.hpp"

#include <array>
#include <random>

namespace tunnelgate::gateway::vpn::packet {

namespace {

using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

constexpr std::size_t ipv4_min_header = 20;
constexpr std::size_t ipv6_header = 40;

std::uint16_t be16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

address_v4 v4_at(const std::uint8_t* p) noexcept {
  return address_v4(address_v4::bytes_type{p[0], p[1], p[2], p[3]});
}

address_v6 v6_at(const std::uint8_t* p) noexcept {
  address_v6::bytes_type b;
  for (std::size_t i = 0; i < b.size(); ++i)
    b[i] = p[i];
  return address_v6(b);
}

// The upper-layer header of an unfragmented packet or a first fragment. `whole` is false for a
// first fragment, whose datagram continues in later fragments.
error transport(std::span<const std::uint8_t> seg, bool whole, info& out) noexcept {
  switch (out.protocol) {
    case proto::tcp: {
      if (seg.size() < 20) return error::truncated_transport;
      const std::size_t data_offset = static_cast<std::size_t>(seg[12] >> 4) * 4;
      // The whole TCP header (options included) must be in the first fragment: a header split
      // across fragments is how filters get evaded (RFC 1858, RFC 7112 for IPv6).
      if (data_offset < 20 || data_offset > seg.size()) return error::bad_transport_length;
      out.has_ports = true;
      out.src_port = be16(seg.data());
      out.dst_port = be16(seg.data() + 2);
      return error::none;
    }
    case proto::udp: {
      if (seg.size() < 8) return error::truncated_transport;
      const std::size_t length = be16(seg.data() + 4);
      if (length < 8 || (whole && length != seg.size()) || (!whole && length <= seg.size())) {
        return error::bad_transport_length;
      }
      out.has_ports = true;
      out.src_port = be16(seg.data());
      out.dst_port = be16(seg.data() + 2);
      return error::none;
    }
    case proto::icmp:
    case proto::icmpv6:
      // Type, code, checksum and the 4 bytes every ICMP message has (identifier, MTU, ...).
      return seg.size() < 8 ? error::truncated_transport : error::none;
    default:
      return error::none;
  }
}

error parse_v4(std::span<const std::uint8_t> b, info& out) noexcept {
  if (b.size() < ipv4_min_header) return error::truncated_header;
  const std::size_t ihl = static_cast<std::size_t>(b[0] & 0x0fu) * 4;
  if (ihl < ipv4_min_header || ihl > b.size()) return error::bad_header_length;
  if (be16(b.data() + 2) != b.size()) return error::bad_total_length;
  const std::uint16_t frag = be16(b.data() + 6);
  const bool more_fragments = (frag & 0x2000) != 0;
  const std::uint16_t offset = frag & 0x1fff;  // in units of 8 bytes

  out.version = 4;
  out.ttl = b[8];
  out.protocol = b[9];
  out.src = v4_at(b.data() + 12);
  out.dst = v4_at(b.data() + 16);
  out.transport_offset = ihl;
  out.length = b.size();
  out.fragment = more_fragments || offset != 0;
  out.first_fragment = offset == 0;
  // A TCP fragment at offset 8 rewrites the flags of the first fragment's header (RFC 1858).
  if (offset == 1 && out.protocol == proto::tcp) return error::tiny_fragment;
  if (!out.first_fragment) return error::none;
  return transport(b.subspan(ihl), !out.fragment, out);
}

bool is_extension(std::uint8_t next) noexcept {
  // RFC 7045's list of extension headers (ESP, 50, ends the walk: it encrypts what follows).
  switch (next) {
    case 0:    // hop-by-hop options
    case 43:   // routing
    case 44:   // fragment
    case 51:   // authentication header
    case 60:   // destination options
    case 135:  // mobility
    case 139:  // HIP
    case 140:  // shim6
    case 253:  // experimental
    case 254:  // experimental
      return true;
    default:
      return false;
  }
}

error parse_v6(std::span<const std::uint8_t> b, info& out) noexcept {
  if (b.size() < ipv6_header) return error::truncated_header;
  // A zero payload length announces a jumbogram (RFC 2675), which no tunnel MTU carries.
  const std::size_t payload = be16(b.data() + 4);
  if (payload == 0 || ipv6_header + payload != b.size()) return error::bad_total_length;

  out.version = 6;
  out.ttl = b[7];
  out.src = v6_at(b.data() + 8);
  out.dst = v6_at(b.data() + 24);
  out.length = b.size();
  out.fragment = false;
  out.first_fragment = true;

  std::uint8_t next = b[6];
  std::size_t off = ipv6_header;
  int count = 0;
  while (is_extension(next)) {
    if (++count > max_extension_headers) return error::too_many_extensions;
    if (next == 0 && count != 1) return error::bad_extension;  // RFC 8200 §4.3: first only
    if (off + 8 > b.size()) return error::bad_extension;       // every one is 8 bytes or more
    std::size_t length = 0;
    if (next == 44) {
      const std::uint16_t frag = be16(b.data() + off + 2);
      const bool more = (frag & 1) != 0;
      const std::uint16_t offset = frag >> 3;
      // An atomic fragment (offset 0, no more) is a whole datagram (RFC 6946).
      out.fragment = out.fragment || more || offset != 0;
      if (offset != 0) {
        out.first_fragment = false;
        out.protocol = b[off];
        out.transport_offset = off + 8;
        return error::none;
      }
      length = 8;
    } else if (next == 51) {
      length = (std::size_t{b[off + 1]} + 2) * 4;
    } else {
      length = (std::size_t{b[off + 1]} + 1) * 8;
    }
    if (off + length > b.size()) return error::bad_extension;
    next = b[off];
    off += length;
  }
  out.protocol = next;
  out.transport_offset = off;
  return transport(b.subspan(off), !out.fragment, out);
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  // splitmix64's finaliser over the running value: cheap, and every input bit reaches every
  // output bit.
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

std::uint64_t mix_address(std::uint64_t h, const boost::asio::ip::address& a) noexcept {
  if (a.is_v4()) return mix(h, a.to_v4().to_uint());
  const auto bytes = a.to_v6().to_bytes();
  std::uint64_t hi = 0, lo = 0;
  for (std::size_t i = 0; i < 8; ++i)
    hi = (hi << 8) | bytes[i];
  for (std::size_t i = 8; i < 16; ++i)
    lo = (lo << 8) | bytes[i];
  return mix(mix(h, hi), lo);
}

std::uint64_t process_seed() {
  static const std::uint64_t seed = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
  }();
  return seed;
}

}  // namespace

std::string_view to_string(error e) noexcept {
  switch (e) {
    case error::none:
      return "ok";
    case error::empty:
      return "empty";
    case error::bad_version:
      return "bad_version";
    case error::truncated_header:
      return "truncated_header";
    case error::bad_header_length:
      return "bad_header_length";
    case error::bad_total_length:
      return "bad_total_length";
    case error::bad_extension:
      return "bad_extension";
    case error::too_many_extensions:
      return "too_many_extensions";
    case error::truncated_transport:
      return "truncated_transport";
    case error::bad_transport_length:
      return "bad_transport_length";
    case error::tiny_fragment:
      return "tiny_fragment";
  }
  return "unknown";
}

error parse(std::span<const std::uint8_t> bytes, info& out) noexcept {
  out = info{};
  if (bytes.empty()) return error::empty;
  switch (bytes[0] >> 4) {
    case 4:
      return parse_v4(bytes, out);
    case 6:
      return parse_v6(bytes, out);
    default:
      return error::bad_version;
  }
}

flow_key key_of(const info& p) noexcept {
  return {p.src, p.dst, p.protocol, p.has_ports ? p.src_port : std::uint16_t{0},
          p.has_ports ? p.dst_port : std::uint16_t{0}};
}

std::size_t flow_key_hash::operator()(const flow_key& k) const noexcept {
  static const std::uint64_t seed = process_seed();
  std::uint64_t h = mix_address(seed, k.src);
  h = mix_address(h, k.dst);
  h = mix(h, (std::uint64_t{k.protocol} << 32) | (std::uint64_t{k.src_port} << 16) | k.dst_port);
  return static_cast<std::size_t>(h);
}

}  // namespace tunnelgate::gateway::vpn::packet
