#pragma once
// Matching "FILE:LINE:COL: MESSAGE" without std::regex (GCC 12 warns inside <regex> under the
// sanitizer build's -Werror).

#include <cctype>
#include <optional>
#include <string_view>

namespace tunnelgate::testing {

// True when `at` begins with "FILE:LINE:COL: MESSAGE" (LINE any number when not given) and, if
// `whole`, nothing follows the message.
inline bool located_at(std::string_view at, std::string_view file, std::optional<int> line,
                       std::string_view message, bool whole) {
  if (!at.starts_with(file) || at.size() <= file.size() || at[file.size()] != ':') return false;
  at.remove_prefix(file.size() + 1);
  auto number = [&at]() -> std::optional<int> {
    std::size_t n = 0;
    int value = 0;
    while (n < at.size() && std::isdigit(static_cast<unsigned char>(at[n])) != 0 && n < 9) {
      value = value * 10 + (at[n] - '0');
      ++n;
    }
    if (n == 0 || n >= at.size() || at[n] != ':') return std::nullopt;
    at.remove_prefix(n + 1);
    return value;
  };
  const auto l = number();
  if (!l || (line && *l != *line) || !number()) return false;
  if (!at.starts_with(" ")) return false;
  at.remove_prefix(1);
  return whole ? at == message : at.starts_with(message);
}

// The whole of `text` is one located error.
inline bool is_located(std::string_view text, std::string_view file, std::optional<int> line,
                       std::string_view message) {
  return located_at(text, file, line, message, true);
}

// Somewhere in `text` there is a located error with this message.
inline bool contains_located(std::string_view text, std::string_view file, std::optional<int> line,
                             std::string_view message) {
  for (auto pos = text.find(file); pos != std::string_view::npos; pos = text.find(file, pos + 1))
    if (located_at(text.substr(pos), file, line, message, false)) return true;
  return false;
}

}  // namespace tunnelgate::testing
