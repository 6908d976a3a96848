// Internal: small text checks shared by the auth and connect code of gateway/vpn.
#pragma once

#include <string_view>

namespace tunnelgate::gateway::vpn::detail {

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

inline bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

/// No ASCII control characters (C0 and DEL): what a log line or header value may carry.
/// Bytes >= 0x80 (UTF-8, validated by the XML parser where it applies) pass.
inline bool no_controls(std::string_view s) noexcept {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

/// A DNS name in LDH form (A-labels for other scripts), for the X-CSTP-Split-DNS and
/// X-CSTP-Default-Domain values: labels of 1-63 letters, digits and hyphens, 253 bytes at most,
/// no trailing dot.
inline bool is_domain(std::string_view s) noexcept {
  if (s.empty() || s.size() > 253) return false;
  std::size_t label = 0;
  for (const char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) return false;
  }
  return label != 0;
}

}  // namespace tunnelgate::gateway::vpn::detail
