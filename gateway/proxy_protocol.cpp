#include "gateway/proxy_protocol.hpp"

#include <algorithm>
#include <array>

namespace tunnelgate::gateway {

namespace {

constexpr std::array<std::uint8_t, 12> signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

constexpr std::uint8_t family_unspec = 0x00;
constexpr std::uint8_t family_tcp4 = 0x11;
constexpr std::uint8_t family_tcp6 = 0x21;
constexpr std::size_t tcp4_block = 12;  // two IPv4 addresses, two ports
constexpr std::size_t tcp6_block = 36;  // two IPv6 addresses, two ports

proxy_header refuse(proxy_refusal r, std::string_view detail) {
  proxy_header h;
  h.state = proxy_header::status::refused;
  h.refusal = r;
  h.detail = detail;
  h.needed = 0;
  return h;
}

proxy_header need(std::size_t n) {
  proxy_header h;
  h.needed = n;
  return h;
}

std::uint16_t be16(std::span<const std::uint8_t> in, std::size_t at) {
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}

/// The first bytes of a version 1 header ("PROXY "), to name the mistake in the log.
bool looks_like_v1(std::span<const std::uint8_t> in) {
  constexpr std::string_view v1 = "PROXY ";
  const std::size_t n = std::min(in.size(), v1.size());
  return n >= 2 && std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n), v1.begin());
}

}  // namespace

std::string_view to_string(proxy_refusal r) noexcept {
  switch (r) {
    case proxy_refusal::bad_signature:
      return "bad-signature";
    case proxy_refusal::bad_version:
      return "bad-version";
    case proxy_refusal::unsupported_command:
      return "unsupported-command";
    case proxy_refusal::unsupported_family:
      return "unsupported-family";
    case proxy_refusal::too_long:
      return "too-long";
    case proxy_refusal::truncated:
      return "truncated";
  }
  return "unknown";
}

proxy_header parse_proxy_v2(std::span<const std::uint8_t> in) noexcept {
  // The signature, byte by byte as far as the input goes: a TLS ClientHello (0x16) or a v1
  // text header is refused at its first byte instead of waiting for 16.
  const std::size_t sig = std::min(in.size(), signature.size());
  if (!std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(sig), signature.begin())) {
    if (looks_like_v1(in)) {
      return refuse(proxy_refusal::bad_signature,
                    "a PROXY protocol version 1 (text) header: this listener takes version 2 "
                    "only; configure the load balancer to send version 2");
    }
    return refuse(proxy_refusal::bad_signature,
                  "no PROXY protocol v2 signature: the connection did not come through a "
                  "balancer sending PROXY protocol v2 (or proxy_protocol is set on the wrong "
                  "listener)");
  }
  if (in.size() > 12) {
    const std::uint8_t ver = in[12] >> 4;
    const std::uint8_t cmd = in[12] & 0x0F;
    if (ver != 2) return refuse(proxy_refusal::bad_version, "the PROXY header's version is not 2");
    if (cmd > 1) {
      return refuse(proxy_refusal::unsupported_command,
                    "the PROXY header's command is neither LOCAL nor PROXY");
    }
  }
  // The family matters for PROXY only: for LOCAL the specification says receivers ignore it.
  const bool local = in.size() > 12 && (in[12] & 0x0F) == 0;
  if (in.size() > 13 && !local && in[13] != family_unspec && in[13] != family_tcp4 &&
      in[13] != family_tcp6) {
    return refuse(proxy_refusal::unsupported_family,
                  "the PROXY header carries neither TCP/IPv4, TCP/IPv6 nor UNSPEC (UDP and "
                  "UNIX-socket senders are not supported)");
  }
  if (in.size() < proxy_v2_fixed) return need(proxy_v2_fixed);

  const std::size_t total = proxy_v2_fixed + be16(in, 14);
  if (total > proxy_v2_max_header) {
    return refuse(proxy_refusal::too_long,
                  "the PROXY header is longer than 536 bytes (too many or too large TLVs)");
  }
  const std::uint8_t family = in[13];
  std::size_t block = 0;
  if (!local && family == family_tcp4) block = tcp4_block;
  if (!local && family == family_tcp6) block = tcp6_block;
  if (total - proxy_v2_fixed < block) {
    return refuse(proxy_refusal::truncated,
                  "the PROXY header's length is shorter than its address family needs");
  }
  if (in.size() < total) return need(total);

  // TLVs: type (1 byte), length (2 bytes), value; skipped, but each must end within the header.
  // LOCAL: the whole block is discarded unread (the specification: receivers ignore it).
  for (std::size_t at = proxy_v2_fixed + block; !local && at < total;) {
    if (total - at < 3 || total - at - 3 < be16(in, at + 1)) {
      return refuse(proxy_refusal::truncated,
                    "a TLV of the PROXY header runs past the header's length");
    }
    at += 3 + be16(in, at + 1);
  }

  proxy_header h;
  h.state = proxy_header::status::ok;
  h.needed = total;
  h.consumed = total;
  h.cmd = local ? proxy_header::command::local : proxy_header::command::proxy;
  const std::size_t a = proxy_v2_fixed;
  if (block == tcp4_block) {
    const auto v4 = [&](std::size_t at) {
      return net::ip::address_v4((std::uint32_t{in[at]} << 24) | (std::uint32_t{in[at + 1]} << 16) |
                                 (std::uint32_t{in[at + 2]} << 8) | std::uint32_t{in[at + 3]});
    };
    h.source = tcp::endpoint(v4(a), be16(in, a + 8));
    h.destination = tcp::endpoint(v4(a + 4), be16(in, a + 10));
  } else if (block == tcp6_block) {
    const auto v6 = [&](std::size_t at) {
      net::ip::address_v6::bytes_type b{};
      std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), b.size(), b.begin());
      return net::ip::address_v6(b);
    };
    h.source = tcp::endpoint(v6(a), be16(in, a + 32));
    h.destination = tcp::endpoint(v6(a + 16), be16(in, a + 34));
  }
  return h;
}

}  // namespace tunnelgate::gateway
