// Exports of a policy: a PAC file for browsers and the JSON profile for clients. Both are
// conveniences for the device; the gateway decides every flow again itself.
#include <nlohmann/json.hpp>

#include <charconv>
#include <sstream>

#include "dtr/dtr.hpp"
#include "dtr/host.hpp"
#include "dtr/text.hpp"

namespace tunnelgate::dtr {

namespace {

using ojson = nlohmann::ordered_json;

// Every text that reaches the PAC goes through js() (string literals) or note() (comments).
// Both emit printable ASCII only: nothing a rules file or a Host header holds can end a comment
// or a string (\n, \r, U+2028, U+2029 are all line terminators to JavaScript), and the output
// does not depend on the engine's source encoding. Names are also refused at load (rules.cpp):
// this is the second line, and the only one for the gateway and for programmatic specs.

/// A JavaScript string literal.
std::string js(std::string_view s) {
  return "\"" + detail::js_escape(s) + "\"";
}

/// Text for a `//` comment.
std::string note(std::string_view s) {
  return detail::js_escape(s);
}

std::string host_port(const proxy_def& p) {
  const bool v6 = p.host.find(':') != std::string::npos;
  return (v6 ? "[" + p.host + "]" : p.host) + ":" + std::to_string(p.port);
}

std::uint32_t v4_value(const ip_address& a) {
  return (std::uint32_t{a.bytes[0]} << 24) | (std::uint32_t{a.bytes[1]} << 16) |
         (std::uint32_t{a.bytes[2]} << 8) | a.bytes[3];
}

std::string pac_condition(const destination& d) {
  std::string c;
  switch (d.k) {
    case destination::kind::exact:
      c = "n && h === " + js(d.value);
      break;
    case destination::kind::string_suffix:
      c = "n && tgSfx(h, " + js(d.value) + ")";
      break;
    case destination::kind::label_suffix:
      c = "n && h.length > " + std::to_string(d.value.size()) + " && tgSfx(h, " + js(d.value) + ")";
      break;
    case destination::kind::any_host:
      c = "n";
      break;
    case destination::kind::cidr:
      if (!d.network.v6) {
        c = "v4 !== null && tgIn4(v4, " + std::to_string(v4_value(d.network)) + ", " +
            std::to_string(d.prefix) + ")";
      } else {
        c = "v6 !== null && tgIn6(v6, [";
        for (std::size_t i = 0; i < 8; ++i) {
          const unsigned group =
              (unsigned{d.network.bytes[2 * i]} << 8) | d.network.bytes[2 * i + 1];
          c += (i ? ", " : "") + std::to_string(group);
        }
        c += "], " + std::to_string(d.prefix) + ")";
      }
      break;
  }
  if (!d.ports.all()) {
    c += " && p >= " + std::to_string(d.ports.lo) + " && p <= " + std::to_string(d.ports.hi);
  }
  return "(" + c + ")";
}

std::string pac_result(const policy& p, action a, const std::string& proxy_name,
                       std::string_view gateway) {
  switch (a) {
    case action::tunnel:
      return "HTTPS " + std::string(gateway);
    case action::proxy: {
      const auto* px = p.find_proxy(proxy_name);
      return (px->tls ? "HTTPS " : "PROXY ") + host_port(*px);
    }
    case action::bypass:
      return "DIRECT";
    case action::block:
      return "PROXY 127.0.0.1:9";  // discard port: nothing listens, fails fast
  }
  return "PROXY 127.0.0.1:9";
}

// Helpers the generated function calls. Pure string and number work: no DNS (isInNet,
// dnsResolve) so a PAC decision never leaks the name to a resolver.
constexpr const char* pac_helpers = R"JS(
function tgSfx(h, s) {
  return h.length >= s.length && h.substring(h.length - s.length) === s;
}
function tgPlain(url) {
  return /^(http|ws):/i.test(String(url));
}
function tgPort(url) {
  var m = /^([a-z][a-z0-9+.\-]*):\/\/(?:[^\/?#@]*@)?(\[[^\]]*\]|[^\/?#:]*)(?::(\d+))?/i.exec(url);
  if (m && m[3]) return parseInt(m[3], 10);
  var s = m ? m[1].toLowerCase() : "https";
  if (s === "http" || s === "ws") return 80;
  if (s === "ftp") return 21;
  return 443;
}
function tgParse4(h) {
  var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (!m) return null;
  var v = 0;
  for (var i = 1; i <= 4; i++) {
    var o = parseInt(m[i], 10);
    if (o > 255) return null;
    v = v * 256 + o;
  }
  return v;
}
function tgIn4(v, net, len) {
  var d = Math.pow(2, 32 - len);
  return Math.floor(v / d) === Math.floor(net / d);
}
function tgGroups(s) {
  if (s === "") return [];
  var parts = s.split(":"), out = [];
  for (var i = 0; i < parts.length; i++) {
    var q = parts[i];
    if (i === parts.length - 1 && q.indexOf(".") >= 0) {
      var v = tgParse4(q);
      if (v === null) return null;
      out.push(Math.floor(v / 65536), v % 65536);
      continue;
    }
    if (!/^[0-9a-f]{1,4}$/.test(q)) return null;
    out.push(parseInt(q, 16));
  }
  return out;
}
function tgParse6(h) {
  if (h.indexOf(":") < 0) return null;
  var halves = h.split("::");
  if (halves.length > 2) return null;
  var head = tgGroups(halves[0]);
  var tail = halves.length === 2 ? tgGroups(halves[1]) : [];
  if (head === null || tail === null) return null;
  var fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  var a = head.slice(0);
  for (var i = 0; i < fill; i++) a.push(0);
  return a.concat(tail);
}
function tgMapped4(a) {
  for (var i = 0; i < 5; i++) if (a[i] !== 0) return null;
  if (a[5] === 65535) return a[6] * 65536 + a[7];
  if (a[5] !== 0 || (a[6] === 0 && a[7] <= 1)) return null;
  return a[6] * 65536 + a[7];
}
function tgIn6(a, net, len) {
  for (var i = 0; i < 8; i++) {
    var bits = len - 16 * i;
    if (bits <= 0) return true;
    var d = Math.pow(2, 16 - Math.min(16, bits));
    if (Math.floor(a[i] / d) !== Math.floor(net[i] / d)) return false;
  }
  return true;
}
)JS";

}  // namespace

bool valid_pac_gateway(std::string_view gateway) noexcept {
  std::string_view host = gateway;
  std::string_view port;
  bool bracketed = false;
  if (!gateway.empty() && gateway.front() == '[') {
    const auto close = gateway.find(']');
    if (close == std::string_view::npos) return false;
    host = gateway.substr(1, close - 1);
    const auto rest = gateway.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    bracketed = true;
  } else if (const auto colon = gateway.find(':'); colon != std::string_view::npos) {
    host = gateway.substr(0, colon);
    port = gateway.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!port.empty()) {
    unsigned v = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (port.size() > 5 || ec != std::errc() || end != port.data() + port.size() || v < 1 ||
        v > 65535) {
      return false;
    }
  }
  if (host.empty()) return false;
  // parse_ip takes the address alone; a zone ("%eth0") or brackets inside brackets fail there.
  if (bracketed) {
    const auto ip = host.front() != '[' ? parse_ip(host) : std::nullopt;
    return ip && ip->v6;
  }
  if (const auto ip = parse_ip(host)) return !ip->v6;
  host_buffer buf;
  return normalize_ascii_host(host, buf) == host_status::ok;
}

std::string to_pac(const policy& p, platform plat, std::string_view gateway, std::string_view app) {
  const rule_set* s = p.select(plat, app);
  if (s == nullptr || !valid_pac_gateway(gateway)) return {};
  std::ostringstream o;
  o << "// PAC file generated by tunnelgate from " << note(p.spec().origin) << "\n"
    << "// platform " << to_string(plat) << ", rule set '" << note(s->name) << "' ("
    << to_string(s->m) << "), gateway " << note(gateway) << "\n"
    << "// http: and ws: URLs go DIRECT; for every other URL the first matching rule wins, then\n"
    << "// the default. The gateway enforces the same rules on every CONNECT; this file only\n"
    << "// steers the browser.\n"
    << "function FindProxyForURL(url, host) {\n"
    << "  // Plain HTTP and WebSocket (http:, ws:) always go DIRECT, before any rule: the gateway\n"
    << "  // tunnels only CONNECT and refuses absolute-form requests (GET http://host/path) with\n"
    << "  // 400 use-connect, and plain HTTP never carries the identity provider's logins.\n"
    << "  if (tgPlain(url)) return \"DIRECT\";\n"
    << "  var h = String(host).toLowerCase();\n"
    << "  if (h.charAt(0) === \"[\" && h.charAt(h.length - 1) === \"]\") h = h.substring(1, "
       "h.length - 1);\n"
    << "  if (h.charAt(h.length - 1) === \".\") h = h.substring(0, h.length - 1);\n"
    << "  var p = tgPort(url);\n"
    << "  var v4 = tgParse4(h);\n"
    << "  var v6 = v4 === null ? tgParse6(h) : null;\n"
    << "  // IPv4-mapped and IPv4-compatible IPv6 hosts are decided as their IPv4 address.\n"
    << "  var m4 = v6 !== null ? tgMapped4(v6) : null;\n"
    << "  if (m4 !== null) {\n"
    << "    v4 = m4;\n"
    << "    v6 = null;\n"
    << "  }\n"
    << "  var n = v4 === null && v6 === null;\n";
  for (const auto& r : s->rules) {
    o << "  // rule " << r.rank << " (line " << r.pos.line << "): " << to_string(r.act)
      << (r.act == action::proxy ? " via " + note(r.proxy) : std::string()) << "\n  if (";
    for (std::size_t i = 0; i < r.destinations.size(); ++i) {
      o << (i ? " ||\n      " : "") << pac_condition(r.destinations[i]);
    }
    o << ") return " << js(pac_result(p, r.act, r.proxy, gateway)) << ";\n";
  }
  o << "  // default (line " << s->default_pos.line << ")\n"
    << "  return " << js(pac_result(p, s->default_action, {}, gateway)) << ";\n}\n"
    << pac_helpers;
  return o.str();
}

std::string to_profile_json(const policy& p, platform plat) {
  ojson sets = ojson::array();
  ojson proxies = ojson::object();
  for (const auto& s : p.spec().rule_sets) {
    if (!s.applies_to(plat)) continue;
    ojson rules = ojson::array();
    for (const auto& r : s.rules) {
      ojson jr;
      jr["rank"] = r.rank;
      jr["action"] = to_string(r.act);
      if (r.act == action::proxy) {
        jr["proxy"] = r.proxy;
        const auto* px = p.find_proxy(r.proxy);
        proxies[px->name] =
            ojson{{"url", px->url}, {"tls", px->tls}, {"host", px->host}, {"port", px->port}};
      }
      ojson dests = ojson::array();
      for (const auto& d : r.destinations)
        dests.push_back(d.text());
      jr["destinations"] = std::move(dests);
      rules.push_back(std::move(jr));
    }
    ojson js_set;
    js_set["name"] = s.name;
    js_set["mode"] = to_string(s.m);
    if (s.m == mode::per_app) js_set["apps"] = s.apps;
    js_set["default"] = to_string(s.default_action);
    js_set["rules"] = std::move(rules);
    sets.push_back(std::move(js_set));
  }
  ojson out;
  out["format"] = "tunnelgate-dtr-profile";
  out["version"] = 1;
  out["platform"] = to_string(plat);
  out["proxies"] = std::move(proxies);
  out["rule_sets"] = std::move(sets);
  // ASCII only: a client may well embed the profile in JavaScript, where U+2028/U+2029 inside a
  // string literal are syntax errors for engines older than ES2019.
  return out.dump(2, ' ', true, ojson::error_handler_t::replace) + "\n";
}

std::string decision_json(const decision& d, const flow& f) {
  ojson j;
  j["action"] = d.refused() ? "refused" : std::string(to_string(d.act));
  if (d.refused()) j["reason"] = d.refusal;
  if (d.proxy) {
    j["proxy"] = d.proxy->name;
    j["proxy_url"] = d.proxy->url;
  }
  j["set"] = d.set ? ojson(d.set->name) : ojson(nullptr);
  j["rank"] = d.set == nullptr ? ojson(nullptr) : d.rank == 0 ? ojson("default") : ojson(d.rank);
  j["line"] = d.set ? ojson(d.line) : ojson(nullptr);
  j["destination"] = d.matched ? ojson(d.matched->text()) : ojson(nullptr);
  j["host"] = std::string(f.host);
  j["port"] = f.port;
  j["platform"] = std::string(to_string(f.plat));
  j["app"] = std::string(f.app);
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace tunnelgate::dtr
