// Vocabulary, error category, host normalisation and destination parsing.
#include <arpa/inet.h>
#include <idn2.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "dtr/dtr.hpp"
#include "dtr/host.hpp"

namespace tunnelgate::dtr {

// ---------------------------------------------------------------------------------------------
// Vocabulary

std::string_view to_string(action a) noexcept {
  switch (a) {
    case action::tunnel:
      return "tunnel";
    case action::proxy:
      return "proxy";
    case action::bypass:
      return "bypass";
    case action::block:
      return "block";
  }
  return "?";
}

std::string_view to_string(platform p) noexcept {
  switch (p) {
    case platform::ios:
      return "ios";
    case platform::android:
      return "android";
    case platform::macos:
      return "macos";
    case platform::windows:
      return "windows";
    case platform::linux:
      return "linux";
  }
  return "?";
}

std::string_view to_string(mode m) noexcept {
  return m == mode::per_app ? "per-app" : "full-device";
}

std::optional<action> parse_action(std::string_view s) noexcept {
  for (auto a : {action::tunnel, action::proxy, action::bypass, action::block}) {
    if (to_string(a) == s) return a;
  }
  return std::nullopt;
}

std::optional<platform> parse_platform(std::string_view s) noexcept {
  for (auto p : all_platforms) {
    if (to_string(p) == s) return p;
  }
  return std::nullopt;
}

std::optional<mode> parse_mode(std::string_view s) noexcept {
  if (s == "per-app") return mode::per_app;
  if (s == "full-device") return mode::full_device;
  return std::nullopt;
}

bool rule_set::applies_to(platform p) const noexcept {
  for (auto q : platforms) {
    if (q == p) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Error category

namespace {

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dtr"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::empty_destination:
        return "empty destination";
      case errc::bad_host:
        return "not a valid host name (letters, digits, '-', '_' and '.'; labels of 1-63 "
               "characters; at most 253 in all; not all-numeric)";
      case errc::bad_idn:
        return "internationalised name cannot be converted to IDNA A-labels";
      case errc::bad_wildcard:
        return "bad wildcard: '*' may only start a destination ('*', '*suffix' or '*.suffix')";
      case errc::bad_ip:
        return "not a valid IPv4 or IPv6 address";
      case errc::bad_cidr:
        return "bad CIDR: expected ADDRESS/PREFIX with prefix 0-32 (IPv4) or 0-128 (IPv6) "
               "and no host bits set";
      case errc::bad_port:
        return "bad port: expected PORT or LOW-HIGH with LOW <= HIGH";
      case errc::port_out_of_range:
        return "port out of range: ports are 1-65535";
      case errc::bad_proxy_url:
        return "bad proxy URL: expected http://HOST:PORT or https://HOST:PORT without "
               "credentials or path";
      case errc::mixed_ipv4_compatible:
        return "ambiguous IPv6 network: it holds :: or ::1 and also IPv4-compatible addresses "
               "(::a.b.c.d), which are decided as their IPv4 address; write the IPv4 network "
               "(::/96 is 0.0.0.0/0, ::/104 is 0.0.0.0/8) and ::/127 separately";
      case errc::idn_string_suffix:
        return "a '*suffix' wildcard cannot start with a non-ASCII or 'xn--' label: hosts are "
               "compared in IDNA A-label form, and the A-label of a longer label (bücher -> "
               "xn--bcher-kva) does not end with the A-label of its tail (ücher -> "
               "xn--cher-zra); write whole labels, e.g. '*.bücher.de' for the subdomains and "
               "'bücher.de' for the name itself";
    }
    return "unknown dtr error";
  }
};

}  // namespace

const std::error_category& dtr_category() noexcept {
  static const category_impl c;
  return c;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), dtr_category()};
}

// ---------------------------------------------------------------------------------------------
// Addresses

std::optional<ip_address> parse_ip(std::string_view s) noexcept {
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  // INET6_ADDRSTRLEN is 46; anything longer is not an address.
  if (s.empty() || s.size() >= 64) return std::nullopt;
  char buf[64];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  ip_address a;
  if (s.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
    a.v6 = true;
    return a;
  }
  if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
  return a;
}

ip_address normalize_mapped(const ip_address& a) noexcept {
  if (!a.v6) return a;
  for (std::size_t i = 0; i < 10; ++i) {
    if (a.bytes[i] != 0) return a;
  }
  const bool mapped = a.bytes[10] == 0xff && a.bytes[11] == 0xff;
  // IPv4-compatible (RFC 4291 2.5.5.1, deprecated but still routed by some stacks): ::/96 less
  // the unspecified and loopback addresses, which are IPv6 in their own right.
  const bool compatible =
      a.bytes[10] == 0 && a.bytes[11] == 0 &&
      !(a.bytes[12] == 0 && a.bytes[13] == 0 && a.bytes[14] == 0 && a.bytes[15] <= 1);
  if (!mapped && !compatible) return a;
  ip_address v4;
  for (std::size_t i = 0; i < 4; ++i)
    v4.bytes[i] = a.bytes[12 + i];
  return v4;
}

namespace {

std::string format_ip(const ip_address& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.bytes.data(), buf, sizeof buf);
  return buf;
}

bool host_bits_clear(const ip_address& a, unsigned prefix) {
  for (unsigned bit = prefix; bit < a.bits(); ++bit) {
    if ((a.bytes[bit / 8] >> (7 - bit % 8)) & 1U) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Host names

host_status normalize_ascii_host(std::string_view in, host_buffer& out) noexcept {
  if (!in.empty() && in.back() == '.') in.remove_suffix(1);
  if (in.empty() || in.size() > max_host_length) return host_status::bad;
  std::size_t label_start = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c >= 0x80) return host_status::non_ascii;
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
    out.data[i] = static_cast<char>(c);
    if (c == '.') {
      if (i == label_start) return host_status::bad;  // empty label
      label_start = i + 1;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || i - label_start >= 63) return host_status::bad;
  }
  if (label_start == in.size()) return host_status::bad;
  // A name whose last label is a number ("127.1", "0x7f.1") is an address to getaddrinfo,
  // never a host name: refuse it so it cannot slip past IP rules.
  const std::string_view last(out.data.data() + label_start, in.size() - label_start);
  const bool decimal = last.find_first_not_of("0123456789") == std::string_view::npos;
  const bool hex = last.starts_with("0x") &&
                   last.find_first_not_of("0123456789abcdef", 2) == std::string_view::npos;
  if (decimal || hex) return host_status::bad;
  out.size = in.size();
  return host_status::ok;
}

result<std::string> normalize_host(std::string_view host) {
  host_buffer buf;
  switch (normalize_ascii_host(host, buf)) {
    case host_status::ok:
      return std::string(buf.view());
    case host_status::bad:
      return errc::bad_host;
    case host_status::non_ascii:
      break;
  }
  // Non-ASCII: convert with libidn2 (UTS #46 mapping lower-cases and normalises), then validate
  // the A-label form like any other name.
  std::string input(host);
  char* converted = nullptr;
  const int rc = idn2_to_ascii_8z(input.c_str(), &converted, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc != IDN2_OK || converted == nullptr) {
    idn2_free(converted);
    return errc::bad_idn;
  }
  std::string ascii(converted);
  idn2_free(converted);
  if (normalize_ascii_host(ascii, buf) != host_status::ok) return errc::bad_idn;
  return std::string(buf.view());
}

// ---------------------------------------------------------------------------------------------
// Destinations

namespace {

result<port_range> parse_ports(std::string_view s) {
  auto number = [](std::string_view t) -> result<std::uint16_t> {
    if (t.empty() || t.size() > 5) {
      if (t.size() > 5 && t.find_first_not_of("0123456789") == std::string_view::npos) {
        return errc::port_out_of_range;
      }
      return errc::bad_port;
    }
    unsigned v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size()) return errc::bad_port;
    if (v < 1 || v > 65535) return errc::port_out_of_range;
    return static_cast<std::uint16_t>(v);
  };
  port_range r;
  const auto dash = s.find('-');
  auto lo = number(s.substr(0, dash));
  if (!lo) return lo.error();
  r.lo = r.hi = lo.value();
  if (dash != std::string_view::npos) {
    auto hi = number(s.substr(dash + 1));
    if (!hi) return hi.error();
    r.hi = hi.value();
    if (r.hi < r.lo) return errc::bad_port;
  }
  return r;
}

result<destination> parse_address(std::string_view s, bool must_be_v6) {
  destination d;
  d.k = destination::kind::cidr;
  const auto slash = s.find('/');
  auto addr = parse_ip(s.substr(0, slash));
  if (!addr || (must_be_v6 && !addr->v6)) {
    return slash == std::string_view::npos ? errc::bad_ip : errc::bad_cidr;
  }
  d.network = *addr;
  d.prefix = addr->bits();
  if (slash != std::string_view::npos) {
    const auto len = s.substr(slash + 1);
    unsigned prefix = 0;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    if (len.empty() || ec != std::errc() || end != len.data() + len.size() ||
        prefix > addr->bits() || !host_bits_clear(*addr, prefix)) {
      return errc::bad_cidr;
    }
    d.prefix = prefix;
  }
  // A network of mapped or compatible addresses is stored as the IPv4 network, so it matches the
  // flows evaluate() decides as IPv4 (and lint sees `::ffff:10.0.0.0/104` duplicate 10.0.0.0/8).
  // Shorter networks (::/0, ::/64) stay IPv6: they cannot be split into one destination.
  if (d.network.v6 && d.prefix >= 96) {
    const auto v4 = normalize_mapped(d.network);
    if (!v4.v6) {
      d.network = v4;
      d.prefix -= 96;
    } else if (d.prefix <= 126 && d.network == ip_address{true, {}}) {
      return errc::mixed_ipv4_compatible;  // ::/96 .. ::/126: `::`, `::1` and IPv4-compatible
    }
  }
  return d;
}

result<destination> parse_host_pattern(std::string_view s) {
  destination d;
  if (s == "*") {
    d.k = destination::kind::any_host;
    return d;
  }
  std::string_view name = s;
  std::string prefix;
  if (s.starts_with("*.")) {
    d.k = destination::kind::label_suffix;
    name = s.substr(2);
    prefix = ".";
  } else if (s.starts_with('*')) {
    d.k = destination::kind::string_suffix;
    name = s.substr(1);
  }
  if (name.empty() || name.find('*') != std::string_view::npos) return errc::bad_wildcard;
  if (d.k == destination::kind::string_suffix && name.front() == '.') return errc::bad_wildcard;
  // A suffix may end in a numeric label ("*.10" is silly but harmless); validate it as a name,
  // but don't apply the all-numeric rule.
  auto suffix = [](std::string_view n) -> result<std::string> {
    auto r = normalize_host(n);
    if (r || r.error() != errc::bad_host) return r;
    std::string padded = std::string(n) + ".x";
    auto p = normalize_host(padded);
    if (!p) return p.error();
    return p.value().substr(0, p.value().size() - 2);
  };
  result<std::string> norm = errc::bad_host;
  if (d.k == destination::kind::exact) {
    norm = normalize_host(name);
  } else if (d.k == destination::kind::label_suffix) {
    norm = suffix(name);
  } else {
    // `*suffix` may start in the middle of a label. That partial label is compared as plain text
    // with the end of a host label, so it must be what any host label ending in it would contain
    // after IDNA: plain ASCII, never converted. A non-ASCII one would turn into the punycode of
    // the fragment ("ücher" -> "xn--cher-zra"), which no host's A-label ends with; an `xn--` one
    // is the A-label of a whole label, which longer labels do not end with either. The complete
    // labels after it go through IDNA on their own, so that the partial label never does (IDNA
    // would refuse "-admin" or "ab--c", which are fine as the tail of a label).
    const auto dot = name.find('.');
    const auto first = name.substr(0, dot);
    if (std::any_of(first.begin(), first.end(),
                    [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
      return errc::idn_string_suffix;
    }
    std::string ascii(first);
    std::transform(ascii.begin(), ascii.end(), ascii.begin(), [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    if (ascii.starts_with("xn--")) return errc::idn_string_suffix;
    if (dot != std::string_view::npos && dot + 1 < name.size()) {  // not just a trailing dot
      auto rest = suffix(name.substr(dot + 1));
      if (!rest) return rest.error();
      ascii += "." + rest.value();
    }
    norm = suffix(ascii);  // ASCII now: checks characters, label and total lengths
  }
  if (!norm) return norm.error();
  d.value = prefix + norm.value();
  return d;
}

}  // namespace

result<destination> parse_destination(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  if (text.empty()) return errc::empty_destination;

  std::string_view target = text;
  std::string_view ports;
  bool bracketed = false;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return errc::bad_ip;
    target = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || rest.size() == 1) return errc::bad_port;
      ports = rest.substr(1);
    }
    bracketed = true;
  } else {
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons == 1) {
      const auto c = text.find(':');
      target = text.substr(0, c);
      ports = text.substr(c + 1);
      if (ports.empty()) return errc::bad_port;
    }
    // Two or more colons: a bare IPv6 literal or CIDR, which cannot carry a port.
  }

  result<destination> d = errc::empty_destination;
  if (target.empty()) return errc::empty_destination;
  const bool looks_like_address = bracketed || target.find(':') != std::string_view::npos ||
                                  target.find('/') != std::string_view::npos ||
                                  parse_ip(target).has_value();
  d = looks_like_address ? parse_address(target, bracketed) : parse_host_pattern(target);
  if (!d) return d;
  if (!ports.empty()) {
    auto p = parse_ports(ports);
    if (!p) return p.error();
    d.value().ports = p.value();
  }
  return d;
}

std::string destination::text() const {
  std::string s;
  const bool with_port = !ports.all();
  switch (k) {
    case kind::exact:
      s = value;
      break;
    case kind::string_suffix:
    case kind::label_suffix:
      s = "*" + value;
      break;
    case kind::any_host:
      s = "*";
      break;
    case kind::cidr: {
      s = format_ip(network);
      if (prefix != network.bits()) s += "/" + std::to_string(prefix);
      if (network.v6 && with_port) s = "[" + s + "]";
      break;
    }
  }
  if (with_port) {
    s += ":" + std::to_string(ports.lo);
    if (ports.hi != ports.lo) s += "-" + std::to_string(ports.hi);
  }
  return s;
}

}  // namespace tunnelgate::dtr
