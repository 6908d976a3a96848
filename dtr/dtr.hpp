// dtr — Device Traffic Rules: parse, validate, compile and decide.
//
// This is the library's one public header. The library is pure logic: it reads no files and
// opens no sockets; callers hand it YAML text and flows. A compiled `policy` is immutable and
// safe to share between threads (hold it as std::shared_ptr<const policy>).
//
// Semantics (DESIGN.md §3):
//   * A flow selects a rule set by platform and app: the first `per-app` set of its platform that
//     lists the app, else the platform's first `full-device` set, else it is refused with reason
//     `no-rule-set`.
//   * Inside the set the first matching rule (by rank) wins, else the set's default applies.
//   * Destinations: `host`, `*suffix` (plain string suffix, Workspace ONE compatible), `*.suffix`
//     (subdomains only), `*` (every host name), IPv4/IPv6 literals and CIDRs, each with an
//     optional `:port` or `:lo-hi` (IPv6 with a port in brackets: `[2001:db8::/32]:443`).
//     Host names are compared case-insensitively, without a trailing dot, in IDNA A-label form.
//     A flow whose host is an IP literal is matched only by IP/CIDR destinations.
//   * IPv4 inside IPv6: a flow to an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible
//     (`::a.b.c.d`, i.e. ::/96 except `::` and `::1`) address is decided as the IPv4 address
//     a.b.c.d, by the IPv4 rules only; a destination written in those forms is stored as the
//     IPv4 address or network (see normalize_mapped and parse_destination).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/outcome/std_result.hpp>

namespace tunnelgate::dtr {

namespace outcome = boost::outcome_v2;
template <class T>
using result = outcome::std_result<T>;

// ---------------------------------------------------------------------------------------------
// Vocabulary

enum class action : std::uint8_t { tunnel, proxy, bypass, block };
enum class platform : std::uint8_t { ios, android, macos, windows, linux };
enum class mode : std::uint8_t { per_app, full_device };

inline constexpr std::array all_platforms{platform::ios, platform::android, platform::macos,
                                          platform::windows, platform::linux};

std::string_view to_string(action a) noexcept;
std::string_view to_string(platform p) noexcept;
std::string_view to_string(mode m) noexcept;
std::optional<action> parse_action(std::string_view s) noexcept;
std::optional<platform> parse_platform(std::string_view s) noexcept;
std::optional<mode> parse_mode(std::string_view s) noexcept;

/// Errors of the small parsers below. Each value's message says what was expected.
enum class errc {
  empty_destination = 1,  ///< an empty string where a destination was expected
  bad_host,               ///< not a valid host name (characters, label length, total length)
  bad_idn,                ///< an internationalised name libidn2 refuses to convert
  bad_wildcard,           ///< `*` anywhere but at the start, or `*.` with nothing after it
  bad_ip,                 ///< not a valid IPv4 or IPv6 literal
  bad_cidr,               ///< prefix length missing, out of range, or host bits set
  bad_port,               ///< port is not a number, or a range is reversed
  port_out_of_range,      ///< port outside 1..65535
  bad_proxy_url,          ///< not `http://host:port` or `https://host:port`
  mixed_ipv4_compatible,  ///< an IPv6 network in ::/96 holding `::`/`::1` and IPv4-compatible
                          ///< addresses (::/96 ... ::/126): write the IPv4 network instead
  idn_string_suffix,      ///< a `*suffix` whose first (partial) label is non-ASCII or starts
                          ///< with `xn--`: it would never match the longer label's A-label
};
const std::error_category& dtr_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// ---------------------------------------------------------------------------------------------
// Destinations

/// Inclusive port range. A destination without a port covers 0..65535.
struct port_range {
  std::uint16_t lo = 0;
  std::uint16_t hi = 65535;
  bool contains(std::uint16_t p) const noexcept { return lo <= p && p <= hi; }
  bool contains(const port_range& o) const noexcept { return lo <= o.lo && o.hi <= hi; }
  bool all() const noexcept { return lo == 0 && hi == 65535; }
  friend bool operator==(const port_range&, const port_range&) = default;
};

/// An IP address in network byte order; IPv4 uses the first 4 bytes.
struct ip_address {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
  unsigned bits() const noexcept { return v6 ? 128U : 32U; }
  friend bool operator==(const ip_address&, const ip_address&) = default;
};

/// Parses an IPv4 dotted quad or an IPv6 literal (brackets allowed), nothing else. The address
/// is returned as written: `::ffff:10.0.0.1` stays IPv6 (pass it through normalize_mapped to get
/// the address policy::evaluate decides on).
std::optional<ip_address> parse_ip(std::string_view s) noexcept;

/// The IPv4 address an IPv6 address stands for, if any: an IPv4-mapped address
/// (::ffff:a.b.c.d, ::ffff:0:0/96) or an IPv4-compatible one (::a.b.c.d, ::/96 except the
/// unspecified `::` and the loopback `::1`) becomes the IPv4 address a.b.c.d; every other
/// address, IPv4 included, is returned unchanged. policy::evaluate decides an IP flow on
/// normalize_mapped(*parse_ip(host)); a caller that connects to the address should use the same
/// form, so that the decision and the connection concern the same IPv4 host.
ip_address normalize_mapped(const ip_address& a) noexcept;

struct destination {
  enum class kind : std::uint8_t {
    exact,          ///< `host`: value is the normalised host
    string_suffix,  ///< `*suffix`: value is the suffix (host ends with it)
    label_suffix,   ///< `*.suffix`: value is `.suffix` (host ends with it and is longer)
    any_host,       ///< `*`: every host name (not IP literals)
    cidr,           ///< IP literal (/32 or /128) or CIDR: network + prefix
  };
  kind k = kind::exact;
  std::string value;  ///< normalised host text for the host kinds, empty for cidr
  /// For cidr: never an IPv4-mapped or IPv4-compatible IPv6 network of prefix >= 96 (those are
  /// stored as the IPv4 network, prefix - 96). A shorter IPv6 network (`::/0`) stays IPv6 and
  /// does not match mapped flows, which are decided as IPv4.
  ip_address network;
  unsigned prefix = 0;
  port_range ports;

  /// Canonical text: lower case, A-labels, CIDR with prefix, port suffix when not all ports.
  std::string text() const;
  friend bool operator==(const destination&, const destination&) = default;
};

/// Parses one destination as written in a rules file. `::ffff:10.0.0.0/104` and
/// `::10.0.0.0/104` become `10.0.0.0/8` (and `[::ffff:192.0.2.1]:443` becomes
/// `192.0.2.1:443`); `::/96` to `::/126` fail with mixed_ipv4_compatible. A `*suffix` whose
/// first label is non-ASCII or starts with `xn--` fails with idn_string_suffix: the suffix is
/// compared with the host's A-label, and the A-label of `bücher` does not end with that of
/// `ücher`.
result<destination> parse_destination(std::string_view text);

/// Normalises a host name for matching: ASCII lower case, trailing dot removed, non-ASCII
/// converted to IDNA A-labels (UTS #46 non-transitional). Fails for anything that is not a host
/// name, including all-numeric names that resolvers would read as IPv4 (`127.1`, `0x7f.1`).
result<std::string> normalize_host(std::string_view host);

// ---------------------------------------------------------------------------------------------
// The rules model (what a rules file says, after validation)

/// A place in the rules file (1-based; 0 when the item was not read from a file).
struct position {
  int line = 0;
  int column = 0;
};

struct proxy_def {
  std::string name;
  std::string url;   ///< as written (validated, no credentials)
  bool tls = false;  ///< https:// upstream
  std::string host;
  std::uint16_t port = 0;
  position pos;
};

/// Parameters of the `okta-entra-login` preset.
struct okta_entra_params {
  std::string okta_tenant;         ///< `acme` for acme.okta.com (required)
  std::string okta_custom_domain;  ///< e.g. `login.acme.com` (optional)
  std::string ip_echo_host;        ///< a "what is my IP" host to check the egress (optional)
};

/// The destinations the preset expands to (shared/docs/domain.md §6), in the order listed.
/// Throws std::invalid_argument when the tenant or a host is not a valid name.
std::vector<std::string> okta_entra_login_destinations(const okta_entra_params& p);

struct rule {
  int rank = 0;  ///< 1-based position inside its rule set
  action act = action::block;
  std::string proxy;  ///< proxy name when act == proxy
  std::vector<destination> destinations;
  std::string preset;                     ///< name of the preset the rule used, if any
  position pos;                           ///< the rule itself
  position proxy_pos;                     ///< its `proxy:` value
  std::vector<position> destination_pos;  ///< one per destination
};

struct rule_set {
  /// Loaded and compiled only without control characters, U+2028/U+2029, bidirectional
  /// formatting characters or invalid UTF-8 (the same holds for apps and proxy names).
  std::string name;
  std::vector<platform> platforms;
  mode m = mode::full_device;
  std::vector<std::string> apps;  ///< per-app only
  action default_action = action::block;
  std::vector<rule> rules;
  position pos;                   ///< the set itself
  position default_pos;           ///< its `default:` value
  std::vector<position> app_pos;  ///< one per app
  bool applies_to(platform p) const noexcept;
};

struct policy_spec {
  std::string origin;  ///< file name (or "<text>") used in diagnostics
  std::vector<proxy_def> proxies;
  std::vector<rule_set> rule_sets;
};

/// One problem in a rules file, as `file:line:column: message`.
struct diagnostic {
  std::string file;
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based; 0 when unknown
  std::string message;
  std::string to_string() const;
};

// ---------------------------------------------------------------------------------------------
// Flows and decisions

struct flow {
  std::string_view host;  ///< host name or IP literal, as the client sent it
  std::uint16_t port = 443;
  platform plat = platform::ios;
  std::string_view app;  ///< app id; empty for a full-device flow
};

struct decision {
  action act = action::block;
  /// Why the flow was refused before any rule applied: "no-rule-set", "bad-host"; else empty.
  /// A refused flow has act == block.
  std::string_view refusal;
  const rule_set* set = nullptr;         ///< the rule set that decided (null when refused)
  int rank = 0;                          ///< rank of the matching rule; 0 = the set default
  int line = 0;                          ///< source line of the rule, or of the set's `default:`
  const proxy_def* proxy = nullptr;      ///< upstream when act == proxy
  const destination* matched = nullptr;  ///< the destination that matched (null for default)
  bool refused() const noexcept { return !refusal.empty(); }
};

class policy;
struct load_result {
  std::shared_ptr<const policy> value;  ///< set iff errors is empty
  std::vector<diagnostic> errors;
  explicit operator bool() const noexcept { return value != nullptr; }
};

/// An immutable, compiled rules policy. The cost of evaluate() does not grow with the number of
/// rules: host names go through a suffix trie, addresses through a prefix trie, per rule set.
class policy {
 public:
  ~policy();
  policy(const policy&) = delete;
  policy& operator=(const policy&) = delete;

  /// Decides one flow. Never throws, never allocates for ASCII host names.
  decision evaluate(const flow& f) const noexcept;

  /// The rule set a flow of this platform and app would use, or null (refused: no-rule-set).
  const rule_set* select(platform p, std::string_view app) const noexcept;

  const policy_spec& spec() const noexcept;
  const proxy_def* find_proxy(std::string_view name) const noexcept;

  /// For lint: every destination of `set_index` (ranks < before_rank) that matches everything
  /// `d` matches, as (rule index, destination index) pairs.
  std::vector<std::pair<std::size_t, std::size_t>> covering(std::size_t set_index,
                                                            const destination& d,
                                                            int before_rank) const;

 private:
  struct impl;
  explicit policy(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
  friend load_result compile(policy_spec spec);
};

/// Validates a parsed model (proxies defined, actions legal, ...) and compiles it. Every problem
/// is reported; the result never half-succeeds.
load_result compile(policy_spec spec);

/// Parses a rules file's YAML text, then compiles it. `origin` names the file in diagnostics.
/// The text is read within support::config_yaml_limits (4 MiB, alias expansion, nodes, depth):
/// past a limit it is refused with one located diagnostic and nothing is compiled.
load_result load_rules(std::string_view yaml_text, std::string origin);

// ---------------------------------------------------------------------------------------------
// Lint

struct finding {
  enum class severity : std::uint8_t { warning, error };
  severity sev = severity::warning;
  std::string code;  ///< shadowed-rule, shadowed-destination, duplicate-destination,
                     ///< string-suffix, unused-proxy, app-in-two-sets, empty-set
  diagnostic where;
};

/// Findings for a compiled policy, in source order.
std::vector<finding> lint(const policy& p);

// ---------------------------------------------------------------------------------------------
// Exports

/// Is `gateway` usable as the gateway of a PAC file: HOST or HOST:PORT, where HOST is an ASCII
/// host name, an IPv4 address or a bracketed IPv6 address and PORT is 1-65535? Nothing else
/// (no spaces, `;`, quotes, control characters) so that a hostile Host header can neither
/// change the PAC's JavaScript nor add a fallback such as `; DIRECT` to its answer.
bool valid_pac_gateway(std::string_view gateway) noexcept;

/// A PAC file for browsers of `plat` (using the per-app set of `app` when given). `gateway` is
/// `host:port` of the gateway's TLS listener; it may come from a client's Host header and is
/// treated as hostile. Its JavaScript never calls DNS functions, decides IPv4-mapped and
/// IPv4-compatible IPv6 hosts as their IPv4 address (like policy::evaluate), and holds only
/// printable ASCII: every text from the rules file or the caller (origin, set and proxy names,
/// hosts, gateway) is escaped as a JavaScript string, in comments too.
/// Returns an empty string when no rule set applies or when !valid_pac_gateway(gateway).
std::string to_pac(const policy& p, platform plat, std::string_view gateway,
                   std::string_view app = {});

/// The JSON profile a client downloads: the rule sets that apply to `plat`, in order, with the
/// proxies they use. Printable ASCII only (other characters as \uXXXX escapes, invalid UTF-8 as
/// U+FFFD), so it is also safe to embed in JavaScript.
std::string to_profile_json(const policy& p, platform plat);

/// The decision `d` for flow `f` as one JSON object, the shape of `tunnelctl dtr eval --json`
/// and the admin API's /api/v1/dtr/eval: action ("refused" with a reason), proxy and proxy_url,
/// set, rank ("default" for the set's default), line, destination (the pattern that matched),
/// host, port, platform, app. Invalid UTF-8 (in a refused host) is replaced by U+FFFD.
std::string decision_json(const decision& d, const flow& f);

}  // namespace tunnelgate::dtr

template <>
struct std::is_error_code_enum<tunnelgate::dtr::errc> : std::true_type {};
