#include <algorithm>
#include <charconv>

#include "support/support.hpp"

namespace tunnelgate::support {

namespace {

[[noreturn]] void bad(std::string_view what, std::string_view text, std::string_view problem) {
  throw error(errc::bad_url, std::string(what) + " '" + std::string(text) + "': " +
                                 std::string(problem) + "; expected https://HOST[:PORT][/PATH]");
}

}  // namespace

https_url parse_https_url(std::string_view text, std::string_view what) {
  constexpr std::string_view scheme = "https://";
  while (!text.empty() && text.back() == '/')
    text.remove_suffix(1);
  // Shown in messages: keep them one line of printable text whatever was given.
  if (std::any_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f;
      })) {
    throw error(errc::bad_url, std::string(what) +
                                   ": blanks, control or non-ASCII characters in the URL; expected "
                                   "https://HOST[:PORT][/PATH]");
  }
  if (text.substr(0, scheme.size()) != scheme) {
    throw error(errc::bad_url, std::string(what) + " '" + std::string(text) +
                                   "' is not an https:// URL; expected https://HOST[:PORT][/PATH]");
  }
  https_url u;
  u.text = std::string(text);
  const auto rest = text.substr(scheme.size());
  const auto slash = rest.find_first_of("/?#");
  const auto authority = rest.substr(0, slash);
  u.path = slash == std::string_view::npos ? std::string() : std::string(rest.substr(slash));
  u.host_header = std::string(authority);
  if (authority.find('@') != std::string_view::npos) {
    bad(what, text, "user information in the URL (credentials never go in a URL)");
  }
  if (u.path.find('#') != std::string::npos) bad(what, text, "a fragment ('#') in the URL");
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad(what, text, "unclosed '['");
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') bad(what, text, "bad authority after ']'");
      port = authority.substr(close + 2);
      has_port = true;
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
    has_port = true;
  } else {
    u.host = std::string(authority);
  }
  if (u.host.empty()) bad(what, text, "no host");
  if (has_port) {
    unsigned p = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || port.size() > 5 || ec != std::errc() || end != port.data() + port.size() ||
        p == 0 || p > 65535) {
      bad(what, text, "the port is not a number from 1 to 65535");
    }
    u.port = std::string(port);
  }
  return u;
}

}  // namespace tunnelgate::support
