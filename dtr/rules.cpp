// YAML rules file -> policy_spec. Structural checks (types, keys, values, destination syntax)
// live here because only here do we know where each item stands in the file; consistency
// checks (proxy references, modes) live in compile(). Every error is collected, none is fatal.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>
#include <set>

#include "dtr/dtr.hpp"
#include "dtr/text.hpp"
#include "support/yaml.hpp"

namespace tunnelgate::dtr {

namespace {

position pos_of(const YAML::Node& n) {
  const auto p = support::position_of(n);
  return {p.line, p.column};
}

std::string join(std::initializer_list<std::string_view> items) {
  std::string s;
  for (auto i : items)
    s += (s.empty() ? "" : ", ") + std::string(i);
  return s;
}

class loader {
 public:
  explicit loader(std::string origin) { spec_.origin = std::move(origin); }

  load_result run(std::string_view text) {
    // Bounded: aliases, nodes, depth and size are limited before the walk below follows any
    // alias (support/yaml.hpp), so a small file cannot expand into 10^9 destinations.
    auto doc = support::read_yaml(text, spec_.origin, "rules file", support::config_yaml_limits);
    if (!doc) {
      errors_.push_back({doc.error->file, doc.error->line, doc.error->column, doc.error->message});
      return fail();
    }
    YAML::Node root = doc.root;  // not const: yaml-cpp only copies a missing root["key"] then
    if (!root.IsMap()) {
      error(root, "", "a rules file is a mapping with `proxies:` and `rule_sets:`");
      return fail();
    }
    check_keys(root, "", {"version", "proxies", "rule_sets"});
    if (auto v = root["version"]) {
      if (!v.IsScalar() || v.Scalar() != "1") error(v, "version", "only version 1 is known");
    }
    if (auto p = root["proxies"]) load_proxies(p);
    if (auto sets = root["rule_sets"]; !sets) {
      error(root, "rule_sets", "missing: a rules file needs `rule_sets:` with at least one set");
    } else if (!sets.IsSequence()) {
      error(sets, "rule_sets", "expected a list of rule sets");
    } else {
      for (std::size_t i = 0; i < sets.size(); ++i) {
        load_set(sets[i], "rule_sets[" + std::to_string(i) + "]");
      }
    }
    if (!errors_.empty()) return fail();
    return compile(std::move(spec_));
  }

 private:
  load_result fail() {
    load_result r;
    r.errors = std::move(errors_);
    return r;
  }

  void error(const YAML::Node& n, const std::string& path, const std::string& message) {
    error_at(pos_of(n), path, message);
  }
  void error_at(position p, const std::string& path, const std::string& message) {
    errors_.push_back(
        {spec_.origin, p.line, p.column, path.empty() ? message : path + ": " + message});
  }

  static std::string child(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  /// Unknown and repeated keys are errors: a typo must never fall back to a default.
  void check_keys(const YAML::Node& map, const std::string& path,
                  std::initializer_list<std::string_view> known) {
    std::set<std::string, std::less<>> seen;
    for (const auto& kv : map) {
      const auto key = kv.first.IsScalar() ? detail::shown(kv.first.Scalar()) : std::string();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        error(kv.first, child(path, key), "unknown key; expected one of: " + join(known));
      } else if (!seen.insert(key).second) {
        error(kv.first, child(path, key), "key given twice");
      }
    }
  }

  void check_text(const YAML::Node& n, const std::string& path, std::string_view what,
                  const std::string& text) {
    if (auto problem = detail::name_problem(what, text); !problem.empty()) error(n, path, problem);
  }

  bool scalar(const YAML::Node& n, const std::string& path, std::string& out,
              std::string_view what) {
    if (!n.IsScalar() || n.Scalar().empty()) {
      error(n, path, "expected " + std::string(what));
      return false;
    }
    out = n.Scalar();
    return true;
  }

  void load_proxies(const YAML::Node& proxies) {
    if (!proxies.IsMap()) {
      error(proxies, "proxies",
            "expected a mapping of proxy names to URLs, e.g. corp: https://proxy.example.com:3128");
      return;
    }
    for (const auto& kv : proxies) {
      proxy_def p;
      p.name = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      p.pos = pos_of(kv.second);
      const auto path = "proxies." + detail::shown(p.name);
      if (p.name.empty() ||
          p.name.find_first_not_of(
              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
              std::string::npos) {
        error(kv.first, path, "proxy names use letters, digits, '_', '.' and '-'");
        continue;
      }
      if (!scalar(kv.second, path, p.url, "a proxy URL such as https://proxy.example.com:3128")) {
        continue;
      }
      if (!parse_proxy_url(p)) {
        error(kv.second, path,
              "bad proxy URL '" + detail::shown(p.url) +
                  "': " + make_error_code(errc::bad_proxy_url).message() +
                  (p.url.find('@') != std::string::npos ? "; credentials never go in the rules file"
                                                        : ""));
        continue;
      }
      spec_.proxies.push_back(std::move(p));
    }
  }

  static bool parse_proxy_url(proxy_def& p) {
    std::string_view u = p.url;
    if (u.starts_with("https://")) {
      p.tls = true;
      u.remove_prefix(8);
    } else if (u.starts_with("http://")) {
      u.remove_prefix(7);
    } else {
      return false;
    }
    if (!u.empty() && u.back() == '/') u.remove_suffix(1);
    if (u.find_first_of("/@?#") != std::string_view::npos) return false;
    // parse_destination trims blanks; a URL kept "as written" must not carry any.
    if (std::any_of(u.begin(), u.end(), [](char c) {
          return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) == 0x7f;
        })) {
      return false;
    }
    auto d = parse_destination(u);
    if (!d) return false;
    const auto& v = d.value();
    const bool host = v.k == destination::kind::exact || v.k == destination::kind::cidr;
    if (!host || (v.k == destination::kind::cidr && v.prefix != v.network.bits())) return false;
    if (v.ports.all()) {
      p.port = p.tls ? 443 : 80;
    } else if (v.ports.lo == v.ports.hi) {
      p.port = v.ports.lo;
    } else {
      return false;
    }
    destination bare = v;
    bare.ports = {};
    p.host = bare.text();
    return true;
  }

  void load_set(const YAML::Node& n, const std::string& path) {
    if (!n.IsMap()) {
      error(n, path, "expected a rule set (a mapping with name, platforms, mode, default, rules)");
      return;
    }
    check_keys(n, path, {"name", "platforms", "mode", "apps", "default", "rules"});
    rule_set s;
    s.pos = pos_of(n);
    if (auto v = n["name"]) {
      // The name lands in PAC comments, profiles and logs: a line break there would end a
      // JavaScript comment and let the rules file add code to the PAC (export.cpp escapes too).
      if (scalar(v, child(path, "name"), s.name, "a name"))
        check_text(v, child(path, "name"), "name", s.name);
    } else {
      error(n, child(path, "name"), "missing: every rule set needs a name");
    }
    if (auto v = n["platforms"]; !v) {
      error(n, child(path, "platforms"), "missing: list the platforms, e.g. [ios, android]");
    } else if (!v.IsSequence()) {
      error(v, child(path, "platforms"), "expected a list, e.g. [ios, android]");
    } else {
      for (std::size_t i = 0; i < v.size(); ++i) {
        const auto p = v[i].IsScalar() ? parse_platform(v[i].Scalar()) : std::nullopt;
        if (!p) {
          error(v[i], child(path, "platforms") + "[" + std::to_string(i) + "]",
                "unknown platform '" +
                    (v[i].IsScalar() ? detail::shown(v[i].Scalar()) : std::string()) +
                    "'; expected " + join({"ios", "android", "macos", "windows", "linux"}));
        } else if (std::find(s.platforms.begin(), s.platforms.end(), *p) != s.platforms.end()) {
          error(v[i], child(path, "platforms"), "platform listed twice");
        } else {
          s.platforms.push_back(*p);
        }
      }
    }
    if (auto v = n["mode"]; !v) {
      error(n, child(path, "mode"), "missing: mode is per-app or full-device");
    } else if (auto m = v.IsScalar() ? parse_mode(v.Scalar()) : std::nullopt; !m) {
      error(v, child(path, "mode"), "unknown mode; expected per-app or full-device");
    } else {
      s.m = *m;
    }
    if (auto v = n["apps"]) {
      if (!v.IsSequence()) {
        error(v, child(path, "apps"),
              "expected a list of app ids (bundle ids, package names, paths)");
      } else {
        for (std::size_t i = 0; i < v.size(); ++i) {
          std::string app;
          const auto ipath = child(path, "apps") + "[" + std::to_string(i) + "]";
          if (scalar(v[i], ipath, app, "an app id")) {
            check_text(v[i], ipath, "app id", app);
            s.apps.push_back(app);
            s.app_pos.push_back(pos_of(v[i]));
          }
        }
      }
    }
    if (auto v = n["default"]; !v) {
      error(n, child(path, "default"), "missing: the default action is tunnel, bypass or block");
    } else if (auto a = v.IsScalar() ? parse_action(v.Scalar()) : std::nullopt; !a) {
      error(v, child(path, "default"), "unknown action; expected tunnel, bypass or block");
    } else {
      s.default_action = *a;
      s.default_pos = pos_of(v);
    }
    if (auto v = n["rules"]) {
      if (!v.IsSequence()) {
        error(v, child(path, "rules"), "expected a list of rules");
      } else {
        for (std::size_t i = 0; i < v.size(); ++i) {
          load_rule(v[i], child(path, "rules") + "[" + std::to_string(i) + "]", s);
        }
      }
    }
    spec_.rule_sets.push_back(std::move(s));
  }

  void load_rule(const YAML::Node& n, const std::string& path, rule_set& s) {
    if (!n.IsMap()) {
      error(n, path, "expected a rule (a mapping with action and destinations)");
      return;
    }
    check_keys(n, path, {"action", "proxy", "destinations", "preset"});
    rule r;
    r.pos = pos_of(n);
    if (auto v = n["action"]; !v) {
      error(n, child(path, "action"), "missing: action is tunnel, proxy, bypass or block");
    } else if (auto a = v.IsScalar() ? parse_action(v.Scalar()) : std::nullopt; !a) {
      error(v, child(path, "action"),
            "unknown action '" + (v.IsScalar() ? detail::shown(v.Scalar()) : std::string()) +
                "'; expected tunnel, proxy, bypass or block");
    } else {
      r.act = *a;
    }
    if (auto v = n["proxy"]) {
      if (scalar(v, child(path, "proxy"), r.proxy, "a proxy name")) r.proxy_pos = pos_of(v);
    }
    if (auto v = n["destinations"]) load_destinations(v, child(path, "destinations"), r);
    if (auto v = n["preset"]) load_preset(v, child(path, "preset"), r);
    if (!n["destinations"] && !n["preset"]) {
      error(n, path, "a rule needs `destinations:` or a `preset:`");
    }
    s.rules.push_back(std::move(r));
  }

  void add_destination(const std::string& text, position p, const std::string& path, rule& r) {
    auto d = parse_destination(text);
    if (!d) {
      error_at(p, path, "'" + detail::shown(text) + "': " + d.error().message());
      return;
    }
    r.destinations.push_back(std::move(d).value());
    r.destination_pos.push_back(p);
  }

  void load_destinations(const YAML::Node& v, const std::string& path, rule& r) {
    if (v.IsSequence()) {
      for (std::size_t i = 0; i < v.size(); ++i) {
        const auto ipath = path + "[" + std::to_string(i) + "]";
        if (!v[i].IsScalar() || v[i].Scalar().empty()) {
          error(v[i], ipath, "expected a destination such as *.example.com:443 or 10.0.0.0/8");
          continue;
        }
        add_destination(v[i].Scalar(), pos_of(v[i]), ipath, r);
      }
      if (v.size() == 0) error(v, path, "the destination list is empty");
      return;
    }
    if (v.IsScalar() && !v.Scalar().empty()) {
      // The Workspace ONE console's form: one comma-separated line.
      const std::string& line = v.Scalar();
      const position base = pos_of(v);
      std::size_t start = 0;
      for (;;) {
        const auto comma = line.find(',', start);
        const auto item =
            line.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        add_destination(item, {base.line, base.column + static_cast<int>(start)}, path, r);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return;
    }
    error(v, path, "expected a list of destinations (or one comma-separated line)");
  }

  void load_preset(const YAML::Node& v, const std::string& path, rule& r) {
    if (!v.IsMap()) {
      error(v, path, "expected a mapping such as {name: okta-entra-login, okta_tenant: acme}");
      return;
    }
    check_keys(v, path, {"name", "okta_tenant", "okta_custom_domain", "ip_echo"});
    const auto name = v["name"];
    if (!name || !name.IsScalar() || name.Scalar() != "okta-entra-login") {
      error(name ? name : v, child(path, "name"), "unknown preset; the preset is okta-entra-login");
      return;
    }
    okta_entra_params params;
    if (auto t = v["okta_tenant"]; !t) {
      error(v, child(path, "okta_tenant"), "missing: the Okta tenant, e.g. acme for acme.okta.com");
      return;
    } else if (!scalar(t, child(path, "okta_tenant"), params.okta_tenant, "a tenant name")) {
      return;
    }
    if (auto c = v["okta_custom_domain"]) {
      if (!scalar(c, child(path, "okta_custom_domain"), params.okta_custom_domain, "a host name"))
        return;
    }
    if (auto c = v["ip_echo"]) {
      if (!scalar(c, child(path, "ip_echo"), params.ip_echo_host, "a host name")) return;
    }
    std::vector<std::string> hosts;
    try {
      hosts = okta_entra_login_destinations(params);
    } catch (const std::invalid_argument& e) {
      error(v, path, e.what());
      return;
    }
    r.preset = "okta-entra-login";
    for (const auto& h : hosts)
      add_destination(h, pos_of(v), path, r);
  }

  policy_spec spec_;
  std::vector<diagnostic> errors_;
};

}  // namespace

load_result load_rules(std::string_view yaml_text, std::string origin) {
  return loader(std::move(origin)).run(yaml_text);
}

}  // namespace tunnelgate::dtr
