#include "dtr/text.hpp"

#include <cstdint>

namespace tunnelgate::dtr::detail {

namespace {

constexpr char32_t invalid = 0xFFFFFFFF;

/// Decodes the UTF-8 sequence at s[i] and advances i past it. Strict: overlong forms,
/// surrogates and values above U+10FFFF are invalid; an invalid sequence consumes one byte.
char32_t next_code_point(std::string_view s, std::size_t& i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1FU;
    min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0FU;
    min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07U;
    min = 0x10000;
  } else {
    ++i;
    return invalid;
  }
  if (s.size() - i < len) {
    ++i;
    return invalid;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0U) != 0x80U) {
      ++i;
      return invalid;
    }
    cp = (cp << 6) | (b & 0x3FU);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return invalid;
  }
  i += len;
  return cp;
}

/// `cp` as `digits` upper-case hex digits (more when it needs them).
std::string hex(char32_t cp, int digits) {
  std::string out;
  for (int shift = 20; shift >= 0; shift -= 4) {
    const auto nibble = static_cast<unsigned>(cp >> shift) & 0xFU;
    if (nibble == 0 && out.empty() && shift >= 4 * digits) continue;
    out += "0123456789ABCDEF"[nibble];
  }
  return out;
}

const char* unsafe_kind(char32_t cp) noexcept {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return "a control character";
  if (cp == 0x2028) return "a line separator";
  if (cp == 0x2029) return "a paragraph separator";
  if (cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
      (cp >= 0x2066 && cp <= 0x2069)) {
    return "a bidirectional formatting character";
  }
  return nullptr;
}

}  // namespace

std::string unsafe_name_char(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t at = i;
    const char32_t cp = next_code_point(s, i);
    if (cp == invalid) {
      return "the byte 0x" + hex(static_cast<unsigned char>(s[at]), 2) + " (invalid UTF-8)";
    }
    if (const char* kind = unsafe_kind(cp)) return "U+" + hex(cp, 4) + " (" + kind + ")";
  }
  return {};
}

std::string name_problem(std::string_view what, std::string_view text) {
  const auto bad = unsafe_name_char(text);
  if (bad.empty()) return {};
  return "the " + std::string(what) + " '" + js_escape(text) + "' contains " + bad +
         "; names and app ids may not contain control characters, line or paragraph separators "
         "(U+2028, U+2029), bidirectional formatting characters or invalid UTF-8";
}

std::string shown(std::string_view text) {
  return unsafe_name_char(text).empty() ? std::string(text) : js_escape(text);
}

std::string js_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto unit = [&out](char32_t u) { out += "\\u" + hex(u, 4); };
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = next_code_point(s, i);
    if (cp == invalid) cp = 0xFFFD;
    if (cp == '"' || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp >= 0x20 && cp < 0x7F) {
      out += static_cast<char>(cp);
    } else if (cp < 0x10000) {
      unit(cp);
    } else {
      const char32_t v = cp - 0x10000;
      unit(0xD800 + (v >> 10));
      unit(0xDC00 + (v & 0x3FF));
    }
  }
  return out;
}

}  // namespace tunnelgate::dtr::detail
