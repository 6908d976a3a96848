// IP packet parsing on the VPN data path: valid IPv4/IPv6 TCP/UDP/ICMP, every truncation,
// lying length fields, fragments, IPv6 extension headers, and the flow key.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_set>
#include <vector>

#include "gateway/vpn/packet.hpp"

namespace packet = tunnelgate::gateway::vpn::packet;
using bytes = std::vector<std::uint8_t>;
using boost::asio::ip::make_address;

namespace {

// resize() + copy rather than insert(): GCC 12 warns wrongly (-Warray-bounds) on insert() at
// the end of a small vector.
void append(bytes& b, const bytes& more) {
  const auto at = b.size();
  b.resize(at + more.size());
  std::copy(more.begin(), more.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
}

void put16(bytes& b, std::size_t at, std::size_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v & 0xff);
}

bytes tcp(std::uint16_t sport, std::uint16_t dport, std::size_t data = 0, std::size_t opts = 0) {
  bytes t(20 + opts + data, 0);
  put16(t, 0, sport);
  put16(t, 2, dport);
  t[12] = static_cast<std::uint8_t>(((20 + opts) / 4) << 4);
  t[13] = 0x02;  // SYN
  return t;
}

bytes udp(std::uint16_t sport, std::uint16_t dport, std::size_t data = 0) {
  bytes u(8 + data, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, 8 + data);
  return u;
}

bytes icmp_echo() {
  return {8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
}

struct v4_opts {
  std::uint8_t proto = packet::proto::tcp;
  std::size_t options = 0;  // bytes of IPv4 options (multiple of 4)
  bool more_fragments = false;
  std::uint16_t offset = 0;  // in 8-byte units
};

bytes ipv4(const bytes& payload, v4_opts o = {}) {
  const std::size_t ihl = 20 + o.options;
  bytes b(ihl, 0);
  b[0] = static_cast<std::uint8_t>(0x40 | (ihl / 4));
  put16(b, 2, ihl + payload.size());
  put16(b, 6, (o.more_fragments ? 0x2000 : 0) | o.offset);
  b[8] = 64;
  b[9] = o.proto;
  const std::uint8_t src[] = {10, 8, 0, 7}, dst[] = {100, 64, 0, 9};
  std::copy(std::begin(src), std::end(src), b.begin() + 12);
  std::copy(std::begin(dst), std::end(dst), b.begin() + 16);
  for (std::size_t i = 20; i < ihl; ++i)
    b[i] = 1;  // NOP options
  append(b, payload);
  return b;
}

// An IPv6 packet with an extension chain: `chain` lists (header type, extension bytes) in order;
// the last next-header is `proto`.
struct ext {
  std::uint8_t type;
  bytes body;  // the whole extension header, its first byte is overwritten with next-header
};

bytes ext_hdr(std::uint8_t type, std::size_t units = 0) {
  if (type == 44) return bytes(8, 0);
  if (type == 51) {  // AH: length in 4-byte units minus 2
    bytes b((units + 2) * 4, 0);
    b[1] = static_cast<std::uint8_t>(units);
    return b;
  }
  bytes b((units + 1) * 8, 0);
  b[1] = static_cast<std::uint8_t>(units);
  return b;
}

bytes ipv6(std::uint8_t proto, const bytes& payload, const std::vector<ext>& chain = {}) {
  bytes b(40, 0);
  b[0] = 0x60;
  b[7] = 63;
  const auto src = make_address("fd00::7").to_v6().to_bytes();
  const auto dst = make_address("2001:db8::9").to_v6().to_bytes();
  std::copy(src.begin(), src.end(), b.begin() + 8);
  std::copy(dst.begin(), dst.end(), b.begin() + 24);
  std::size_t next_at = 6;
  for (const auto& e : chain) {
    b[next_at] = e.type;
    next_at = b.size();
    append(b, e.body);
  }
  b[next_at] = proto;
  append(b, payload);
  put16(b, 4, b.size() - 40);
  return b;
}

packet::error parse(const bytes& b, packet::info& i) {
  return packet::parse(b, i);
}

}  // namespace

TEST(PacketParse, Ipv4Tcp) {
  packet::info i;
  ASSERT_EQ(parse(ipv4(tcp(40000, 443, 10)), i), packet::error::none);
  EXPECT_EQ(i.version, 4);
  EXPECT_EQ(i.src, make_address("10.8.0.7"));
  EXPECT_EQ(i.dst, make_address("100.64.0.9"));
  EXPECT_EQ(i.protocol, packet::proto::tcp);
  EXPECT_EQ(i.ttl, 64);
  EXPECT_TRUE(i.has_ports);
  EXPECT_EQ(i.src_port, 40000);
  EXPECT_EQ(i.dst_port, 443);
  EXPECT_EQ(i.transport_offset, 20u);
  EXPECT_EQ(i.length, 50u);
  EXPECT_FALSE(i.fragment);
}

TEST(PacketParse, Ipv4WithOptionsUdpAndIcmp) {
  packet::info i;
  ASSERT_EQ(parse(ipv4(udp(5353, 53, 30), {.proto = packet::proto::udp, .options = 8}), i),
            packet::error::none);
  EXPECT_EQ(i.transport_offset, 28u);
  EXPECT_EQ(i.protocol, packet::proto::udp);
  EXPECT_EQ(i.dst_port, 53);
  ASSERT_EQ(parse(ipv4(icmp_echo(), {.proto = packet::proto::icmp}), i), packet::error::none);
  EXPECT_EQ(i.protocol, packet::proto::icmp);
  EXPECT_FALSE(i.has_ports);
  // Other protocols pass without a transport check (GRE here).
  ASSERT_EQ(parse(ipv4({1, 2}, {.proto = 47}), i), packet::error::none);
  EXPECT_EQ(i.protocol, 47);
}

TEST(PacketParse, Ipv6TcpUdpIcmpv6) {
  packet::info i;
  ASSERT_EQ(parse(ipv6(packet::proto::tcp, tcp(1234, 80, 5, 12)), i), packet::error::none);
  EXPECT_EQ(i.version, 6);
  EXPECT_EQ(i.src, make_address("fd00::7"));
  EXPECT_EQ(i.dst, make_address("2001:db8::9"));
  EXPECT_EQ(i.ttl, 63);
  EXPECT_EQ(i.dst_port, 80);
  ASSERT_EQ(parse(ipv6(packet::proto::udp, udp(1, 2, 3)), i), packet::error::none);
  EXPECT_EQ(i.src_port, 1);
  ASSERT_EQ(parse(ipv6(packet::proto::icmpv6, icmp_echo()), i), packet::error::none);
  EXPECT_EQ(i.protocol, packet::proto::icmpv6);
  EXPECT_FALSE(i.has_ports);
}

TEST(PacketParse, TruncatedAtEveryByteIsRefused) {
  const std::vector<bytes> valid{
      ipv4(tcp(1, 2, 3)),
      ipv4(udp(1, 2, 3), {.proto = packet::proto::udp, .options = 4}),
      ipv4(icmp_echo(), {.proto = packet::proto::icmp}),
      ipv6(packet::proto::tcp, tcp(1, 2)),
      ipv6(packet::proto::udp, udp(1, 2, 9), {{0, ext_hdr(0)}, {60, ext_hdr(60, 1)}}),
  };
  for (const auto& p : valid) {
    packet::info i;
    ASSERT_EQ(parse(p, i), packet::error::none);
    for (std::size_t n = 0; n < p.size(); ++n) {
      const bytes cut(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
      const auto e = parse(cut, i);
      EXPECT_NE(e, packet::error::none) << "size " << p.size() << " cut at " << n;
      if (n == 0) {
        EXPECT_EQ(e, packet::error::empty);
      }
      // The header still claims the full length, so a cut past the fixed header is a length
      // mismatch, and one inside it a truncated header.
      const std::size_t fixed = (p[0] >> 4) == 4 ? 20 : 40;
      if (n > 0 && n < fixed) {
        EXPECT_EQ(e, packet::error::truncated_header) << n;
      }
      if (n >= fixed && (p[0] >> 4) == 6) {
        EXPECT_EQ(e, packet::error::bad_total_length) << n;
      }
    }
  }
}

TEST(PacketParse, TruncatedTransportWithConsistentLengths) {
  // Lengths agree with the bytes, but the TCP/UDP/ICMP header itself is cut short.
  packet::info i;
  EXPECT_EQ(parse(ipv4(bytes(19, 0)), i), packet::error::truncated_transport);
  EXPECT_EQ(parse(ipv4(bytes(7, 0), {.proto = packet::proto::udp}), i),
            packet::error::truncated_transport);
  EXPECT_EQ(parse(ipv4(bytes(7, 0), {.proto = packet::proto::icmp}), i),
            packet::error::truncated_transport);
  EXPECT_EQ(parse(ipv6(packet::proto::tcp, bytes(19, 0)), i), packet::error::truncated_transport);
  EXPECT_EQ(parse(ipv6(packet::proto::icmpv6, bytes(4, 0)), i), packet::error::truncated_transport);
}

TEST(PacketParse, LyingIpv4Lengths) {
  packet::info i;
  auto p = ipv4(tcp(1, 2, 10));
  auto longer = p;
  put16(longer, 2, p.size() + 1);
  EXPECT_EQ(parse(longer, i), packet::error::bad_total_length);
  auto shorter = p;
  put16(shorter, 2, p.size() - 1);  // trailing bytes are refused, not ignored
  EXPECT_EQ(parse(shorter, i), packet::error::bad_total_length);
  auto zero = p;
  put16(zero, 2, 0);
  EXPECT_EQ(parse(zero, i), packet::error::bad_total_length);
  for (std::uint8_t ihl = 0; ihl < 5; ++ihl) {
    auto bad = p;
    bad[0] = static_cast<std::uint8_t>(0x40 | ihl);
    EXPECT_EQ(parse(bad, i), packet::error::bad_header_length) << +ihl;
  }
  auto past = ipv4(bytes{});  // 20 bytes, IHL says 60
  past[0] = 0x4f;
  EXPECT_EQ(parse(past, i), packet::error::bad_header_length);
}

TEST(PacketParse, LyingIpv6Lengths) {
  packet::info i;
  auto p = ipv6(packet::proto::udp, udp(1, 2, 4));
  auto longer = p;
  put16(longer, 4, p.size() - 40 + 1);
  EXPECT_EQ(parse(longer, i), packet::error::bad_total_length);
  auto shorter = p;
  put16(shorter, 4, p.size() - 40 - 1);
  EXPECT_EQ(parse(shorter, i), packet::error::bad_total_length);
  auto jumbo = p;
  put16(jumbo, 4, 0);
  EXPECT_EQ(parse(jumbo, i), packet::error::bad_total_length);
}

TEST(PacketParse, LyingTransportLengths) {
  packet::info i;
  auto t = tcp(1, 2, 8);
  t[12] = 0x40;  // data offset 4 words
  EXPECT_EQ(parse(ipv4(t), i), packet::error::bad_transport_length);
  t[12] = 0xf0;  // 60 bytes of header in a 28-byte segment
  EXPECT_EQ(parse(ipv4(t), i), packet::error::bad_transport_length);
  auto u = udp(1, 2, 8);
  put16(u, 4, 17);
  EXPECT_EQ(parse(ipv4(u, {.proto = packet::proto::udp}), i), packet::error::bad_transport_length);
  put16(u, 4, 15);
  EXPECT_EQ(parse(ipv4(u, {.proto = packet::proto::udp}), i), packet::error::bad_transport_length);
  put16(u, 4, 7);
  EXPECT_EQ(parse(ipv6(packet::proto::udp, u), i), packet::error::bad_transport_length);
}

TEST(PacketParse, BadVersion) {
  packet::info i;
  for (const std::uint8_t v : {0, 1, 5, 7, 15}) {
    auto p = ipv4(tcp(1, 2));
    p[0] = static_cast<std::uint8_t>((v << 4) | 5);
    EXPECT_EQ(parse(p, i), packet::error::bad_version) << +v;
  }
}

TEST(PacketParse, Ipv4Fragments) {
  packet::info i;
  // First fragment: ports present, the datagram continues.
  auto u = udp(1000, 53, 100);
  bytes first_part(u.begin(), u.begin() + 48);
  ASSERT_EQ(parse(ipv4(first_part, {.proto = packet::proto::udp, .more_fragments = true}), i),
            packet::error::none);
  EXPECT_TRUE(i.fragment);
  EXPECT_TRUE(i.first_fragment);
  EXPECT_TRUE(i.has_ports);
  EXPECT_EQ(i.dst_port, 53);
  // A later fragment has no ports, whatever its bytes look like.
  ASSERT_EQ(parse(ipv4(bytes(60, 0xff), {.proto = packet::proto::udp, .offset = 6}), i),
            packet::error::none);
  EXPECT_TRUE(i.fragment);
  EXPECT_FALSE(i.first_fragment);
  EXPECT_FALSE(i.has_ports);
  // The last fragment (no MF) of TCP at a later offset, too.
  ASSERT_EQ(parse(ipv4(bytes(3, 0), {.proto = packet::proto::tcp, .offset = 100}), i),
            packet::error::none);
  EXPECT_FALSE(i.has_ports);
  // TCP at offset 8 bytes overlaps the first fragment's TCP flags (RFC 1858).
  EXPECT_EQ(parse(ipv4(bytes(16, 0), {.proto = packet::proto::tcp, .offset = 1}), i),
            packet::error::tiny_fragment);
  // A first TCP fragment must hold the whole TCP header.
  EXPECT_EQ(parse(ipv4(bytes(8, 0), {.proto = packet::proto::tcp, .more_fragments = true}), i),
            packet::error::truncated_transport);
}

TEST(PacketParse, Ipv6Fragments) {
  packet::info i;
  auto first = ext_hdr(44);
  first[3] = 0x01;  // offset 0, M
  auto u = udp(7, 53, 100);
  bytes part(u.begin(), u.begin() + 40);
  ASSERT_EQ(parse(ipv6(packet::proto::udp, part, {{44, first}}), i), packet::error::none);
  EXPECT_TRUE(i.fragment);
  EXPECT_TRUE(i.first_fragment);
  EXPECT_EQ(i.dst_port, 53);
  EXPECT_EQ(i.transport_offset, 48u);

  auto later = ext_hdr(44);
  put16(later, 2, (5 << 3) | 1);  // offset 40 bytes, M
  ASSERT_EQ(parse(ipv6(packet::proto::tcp, bytes(16, 0xff), {{44, later}}), i),
            packet::error::none);
  EXPECT_FALSE(i.first_fragment);
  EXPECT_FALSE(i.has_ports);
  EXPECT_EQ(i.protocol, packet::proto::tcp);

  auto atomic = ext_hdr(44);  // offset 0, no M: a whole datagram (RFC 6946)
  ASSERT_EQ(parse(ipv6(packet::proto::tcp, tcp(5, 6), {{44, atomic}}), i), packet::error::none);
  EXPECT_FALSE(i.fragment);
  EXPECT_EQ(i.dst_port, 6);
}

TEST(PacketParse, Ipv6ExtensionHeaders) {
  packet::info i;
  ASSERT_EQ(
      parse(
          ipv6(packet::proto::tcp, tcp(9, 443),
               {{0, ext_hdr(0)}, {60, ext_hdr(60, 2)}, {43, ext_hdr(43, 1)}, {51, ext_hdr(51, 4)}}),
          i),
      packet::error::none);
  EXPECT_EQ(i.dst_port, 443);
  EXPECT_EQ(i.transport_offset, 40u + 8 + 24 + 16 + 24);
  // Hop-by-hop is allowed first only.
  EXPECT_EQ(parse(ipv6(packet::proto::tcp, tcp(1, 2), {{60, ext_hdr(60)}, {0, ext_hdr(0)}}), i),
            packet::error::bad_extension);
  // Eight extension headers pass; nine do not.
  std::vector<ext> chain(8, ext{60, ext_hdr(60)});
  EXPECT_EQ(parse(ipv6(packet::proto::udp, udp(1, 2), chain), i), packet::error::none);
  chain.push_back({60, ext_hdr(60)});
  EXPECT_EQ(parse(ipv6(packet::proto::udp, udp(1, 2), chain), i),
            packet::error::too_many_extensions);
  // An extension whose length runs past the packet.
  auto p = ipv6(packet::proto::udp, udp(1, 2), {{60, ext_hdr(60)}});
  p[41] = 5;
  EXPECT_EQ(parse(p, i), packet::error::bad_extension);
  // ESP and "no next header" end the walk: no ports.
  ASSERT_EQ(parse(ipv6(50, bytes(24, 0xaa)), i), packet::error::none);
  EXPECT_EQ(i.protocol, 50);
  EXPECT_FALSE(i.has_ports);
  ASSERT_EQ(parse(ipv6(59, {}, {{60, ext_hdr(60)}}), i), packet::error::none);
  EXPECT_EQ(i.protocol, 59);
}

TEST(PacketParse, ExtensionChainCutAtEveryByteIsRefused) {
  const auto p = ipv6(packet::proto::tcp, tcp(1, 2),
                      {{0, ext_hdr(0, 1)}, {44, ext_hdr(44)}, {51, ext_hdr(51, 2)}});
  packet::info i;
  ASSERT_EQ(parse(p, i), packet::error::none);
  // Keep the payload length consistent with the cut, so only the chain itself is short.
  for (std::size_t n = 40; n < p.size(); ++n) {
    bytes cut(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
    put16(cut, 4, n - 40);
    EXPECT_NE(parse(cut, i), packet::error::none) << n;
  }
}

TEST(PacketParse, MutatedPacketsKeepTheInvariants) {
  // Random byte changes to valid packets (fixed seed): never a read outside the bytes (the
  // sanitizer build checks that), and whatever is accepted is self-consistent.
  const std::vector<bytes> seeds{
      ipv4(tcp(1, 2, 3), {.options = 8}),
      ipv4(udp(1, 2, 30), {.proto = packet::proto::udp, .more_fragments = true}),
      ipv6(packet::proto::tcp, tcp(1, 2),
           {{0, ext_hdr(0, 1)}, {44, ext_hdr(44)}, {51, ext_hdr(51, 2)}, {60, ext_hdr(60)}}),
      ipv6(packet::proto::icmpv6, icmp_echo()),
  };
  std::mt19937 rng(20240611);
  for (int round = 0; round < 20000; ++round) {
    auto p = seeds[static_cast<std::size_t>(round) % seeds.size()];
    const int changes = 1 + static_cast<int>(rng() % 4);
    for (int c = 0; c < changes; ++c) {
      p[rng() % p.size()] = static_cast<std::uint8_t>(rng());
    }
    if (rng() % 4 == 0) p.resize(rng() % (p.size() + 1));
    packet::info i;
    if (packet::parse(p, i) != packet::error::none) continue;
    ASSERT_EQ(i.length, p.size());
    ASSERT_LE(i.transport_offset, p.size());
    ASSERT_TRUE(i.version == 4 || i.version == 6);
    if (i.has_ports) {
      ASSERT_TRUE(i.protocol == packet::proto::tcp || i.protocol == packet::proto::udp);
      ASSERT_TRUE(i.first_fragment);
      ASSERT_LE(i.transport_offset + 8, p.size());
    }
  }
}

TEST(PacketFlow, KeyReverseAndHash) {
  packet::info i;
  ASSERT_EQ(parse(ipv4(tcp(40000, 443)), i), packet::error::none);
  const auto k = packet::key_of(i);
  EXPECT_EQ(k.src, make_address("10.8.0.7"));
  EXPECT_EQ(k.dst_port, 443);
  const auto r = k.reversed();
  EXPECT_EQ(r.src, k.dst);
  EXPECT_EQ(r.src_port, 443);
  EXPECT_EQ(r.reversed(), k);
  EXPECT_NE(r, k);
  packet::flow_key_hash h;
  EXPECT_EQ(h(k), h(packet::key_of(i)));

  ASSERT_EQ(parse(ipv4(icmp_echo(), {.proto = packet::proto::icmp}), i), packet::error::none);
  EXPECT_EQ(packet::key_of(i).src_port, 0);

  std::unordered_set<packet::flow_key, packet::flow_key_hash> set;
  for (std::uint16_t port = 1; port <= 2000; ++port) {
    set.insert({make_address("10.8.0.7"), make_address("2001:db8::1"), 6, port, 443});
  }
  EXPECT_EQ(set.size(), 2000u);
  std::unordered_set<std::size_t> hashes;
  for (const auto& key : set)
    hashes.insert(h(key));
  EXPECT_GT(hashes.size(), 1990u);
}

TEST(PacketNames, EachErrorHasOneSpelling) {
  using e = packet::error;
  const std::vector<std::pair<e, std::string_view>> names{
      {e::none, "ok"},
      {e::empty, "empty"},
      {e::bad_version, "bad_version"},
      {e::truncated_header, "truncated_header"},
      {e::bad_header_length, "bad_header_length"},
      {e::bad_total_length, "bad_total_length"},
      {e::bad_extension, "bad_extension"},
      {e::too_many_extensions, "too_many_extensions"},
      {e::truncated_transport, "truncated_transport"},
      {e::bad_transport_length, "bad_transport_length"},
      {e::tiny_fragment, "tiny_fragment"},
  };
  for (const auto& [err, name] : names)
    EXPECT_EQ(packet::to_string(err), name);
}
