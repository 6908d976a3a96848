// Internal: the CONNECT request target (authority form, RFC 9110 §9.3.6), parsed without I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/refusal.hpp"

namespace tunnelgate::gateway {

struct connect_target {
  std::string host;  ///< A-label lower-case name, or an IP literal without brackets
  bool is_ip = false;
  std::uint16_t port = 0;
  /// host:port as it would be written back (IPv6 in brackets).
  std::string authority() const;
};

/// Parses "host:port", "[v6]:port" or "a.b.c.d:port". Names are normalised like DTR names.
/// Returns refusal::none, or missing_port, bad_port or bad_host (which includes
/// numeric-looking names such as `127.1` that resolvers would read as IPv4).
refusal parse_connect_target(std::string_view authority, connect_target& out);

}  // namespace tunnelgate::gateway
