// Internal: the CONNECT request target (authority form, RFC 9110 §9.3.6), parsed without I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace tunnelgate::gateway {

struct connect_target {
  std::string host;  ///< A-label lower-case name, or an IP literal without brackets
  bool is_ip = false;
  std::uint16_t port = 0;
  /// host:port as it would be written back (IPv6 in brackets).
  std::string authority() const;
};

enum class target_error {
  ok = 0,
  missing_port,  ///< CONNECT needs host:port
  bad_port,      ///< not 1-65535
  bad_host,      ///< not a host name or IP literal (includes numeric-looking names)
};

std::string_view to_string(target_error e) noexcept;

/// Parses "host:port", "[v6]:port" or "a.b.c.d:port". Names are normalised like DTR names.
target_error parse_connect_target(std::string_view authority, connect_target& out);

}  // namespace tunnelgate::gateway
