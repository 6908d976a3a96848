// The `uem:` YAML section -> config. Every problem is collected with file:line:column and the
// key path; unknown keys and inline secrets are errors, never defaults.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <set>
#include <tuple>

#include "support/yaml.hpp"
#include "uem/internal.hpp"

namespace tunnelgate::uem {

std::string config_error::to_string() const {
  if (file.empty()) return message;  // the message names the file itself
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  return s + ": " + message;
}

namespace {

std::string join(std::initializer_list<std::string_view> items) {
  std::string s;
  for (auto i : items)
    s += (s.empty() ? "" : ", ") + std::string(i);
  return s;
}

/// "30s", "5m", "1h", "250ms" -> milliseconds.
std::optional<duration> parse_duration(std::string_view s) {
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  long long n = 0;
  std::from_chars(s.data(), s.data() + digits, n);
  const auto unit = s.substr(digits);
  if (unit == "ms") return duration(n);
  if (unit == "s") return std::chrono::seconds(n);
  if (unit == "m") return std::chrono::minutes(n);
  if (unit == "h") return std::chrono::hours(n);
  return std::nullopt;
}

class loader {
 public:
  loader(std::string origin, std::filesystem::path base)
      : origin_(std::move(origin)), base_(std::move(base)) {}

  config_result run(std::string_view text) {
    // Bounded (support/yaml.hpp): the gateway's whole configuration file comes here, within
    // the same limits as the gateway's own loader, which reports the same error.
    auto doc = support::read_yaml(text, origin_, "configuration file", support::config_yaml_limits);
    if (!doc) {
      errors_.push_back({doc.error->file, doc.error->line, doc.error->column, doc.error->message});
      return fail();
    }
    YAML::Node root = doc.root;  // not const: yaml-cpp only copies a missing root["key"] then
    const auto uem = root.IsMap() ? root["uem"] : YAML::Node();
    if (!uem) {
      errors_.push_back({origin_, 0, 0,
                         "uem: missing; add a `uem:` section, e.g. `uem: {source: file, file: "
                         "devices.json}`"});
      return fail();
    }
    if (!uem.IsMap()) {
      error(uem, "uem", "expected a mapping with `source:` and its settings");
      return fail();
    }
    check_keys(uem, "uem",
               {"source", "file", "ws1", "cache", "posture", "webhook", "poll_interval"});
    const auto src = uem["source"];
    if (!src) {
      error(uem, "uem.source", "missing; expected `file` or `ws1`");
    } else if (!src.IsScalar() || (src.Scalar() != "file" && src.Scalar() != "ws1")) {
      error(src, "uem.source", "expected `file` or `ws1`");
    } else {
      cfg_.source = src.Scalar() == "file" ? source_kind::file : source_kind::ws1;
      if (cfg_.source == source_kind::file) {
        if (auto f = uem["file"]) {
          path(f, "uem.file", cfg_.file);
        } else {
          error(uem, "uem.file", "missing: `source: file` needs `file: PATH` (the inventory)");
        }
        if (auto w = uem["ws1"]) error(w, "uem.ws1", "given, but `source` is `file`");
      } else {
        if (auto w = uem["ws1"]) {
          load_ws1(w);
        } else {
          error(uem, "uem.ws1", "missing: `source: ws1` needs a `ws1:` section");
        }
        if (auto f = uem["file"]) error(f, "uem.file", "given, but `source` is `ws1`");
      }
    }
    if (auto c = uem["cache"]) load_cache(c);
    if (auto p = uem["posture"]) load_posture(p);
    if (auto w = uem["webhook"]) load_webhook(w);
    if (auto p = uem["poll_interval"]) {
      dur(p, "uem.poll_interval", cfg_.poll_interval);
      if (cfg_.poll_interval < duration(50)) {
        error(p, "uem.poll_interval", "must be at least 50ms");
      }
    }
    if (!errors_.empty()) return fail();
    config_result r;
    r.value = std::move(cfg_);
    r.warnings = std::move(warnings_);
    return r;
  }

 private:
  config_result fail() {
    config_result r;
    std::stable_sort(errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    r.errors = std::move(errors_);
    r.warnings = std::move(warnings_);
    return r;
  }

  void error(const YAML::Node& n, const std::string& key, const std::string& message) {
    const auto m = n.Mark();
    errors_.push_back({origin_, m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1,
                       key + ": " + message});
  }

  void warning(const YAML::Node& n, const std::string& key, const std::string& message) {
    const auto m = n.Mark();
    warnings_.push_back({origin_, m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1,
                         key + ": " + message});
  }

  bool is_map(const YAML::Node& n, const std::string& key) {
    if (n.IsMap()) return true;
    error(n, key, "expected a mapping");
    return false;
  }

  /// Unknown and repeated keys are errors: a typo must never fall back to a default.
  void check_keys(const YAML::Node& map, const std::string& path,
                  std::initializer_list<std::string_view> known) {
    std::set<std::string, std::less<>> seen;
    for (const auto& kv : map) {
      const auto key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      const auto where = path + "." + key;
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        if (key == "password" || key == "client_secret" || key == "tenant_code" ||
            key == "api_key" || key == "token") {
          error(kv.first, where,
                "secrets never go in the configuration: put it in a file readable only by the "
                "gateway and name it with `" +
                    (key == "api_key" ? std::string("tenant_code") : key) + "_file`");
        } else {
          error(kv.first, where, "unknown key; expected one of: " + join(known));
        }
      } else if (!seen.insert(key).second) {
        error(kv.first, where, "key given twice");
      }
    }
  }

  bool scalar(const YAML::Node& n, const std::string& key, std::string& out,
              std::string_view what) {
    if (!n.IsScalar() || n.Scalar().empty()) {
      error(n, key, "expected " + std::string(what));
      return false;
    }
    out = n.Scalar();
    return true;
  }

  void path(const YAML::Node& n, const std::string& key, std::filesystem::path& out) {
    std::string s;
    if (!scalar(n, key, s, "a file path")) return;
    std::filesystem::path p(s);
    out = p.is_absolute() ? p : base_ / p;
  }

  void dur(const YAML::Node& n, const std::string& key, duration& out) {
    std::optional<duration> d;
    if (n.IsScalar()) d = parse_duration(n.Scalar());
    if (!d) {
      error(n, key, "expected a duration such as 250ms, 30s, 5m or 1h");
      return;
    }
    out = *d;
  }

  void boolean(const YAML::Node& n, const std::string& key, bool& out) {
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) {
      out = n.Scalar() == "true";
    } else {
      error(n, key, "expected true or false");
    }
  }

  void integer(const YAML::Node& n, const std::string& key, long long lo, long long hi,
               long long& out) {
    long long v = 0;
    const auto& s = n.IsScalar() ? n.Scalar() : std::string();
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
      error(n, key, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
      return;
    }
    out = v;
  }

  /// Reads a secret file now, so a missing file fails the configuration, not the first
  /// request. Trailing whitespace (the newline editors add) is not part of the secret.
  void secret_file(const YAML::Node& n, const std::string& key, secret& out) {
    std::filesystem::path p;
    path(n, key, p);
    if (p.empty()) return;
    try {
      auto v = detail::read_file(p, "secret file", support::max_secret_bytes);
      while (!v.empty() &&
             (v.back() == '\n' || v.back() == '\r' || v.back() == ' ' || v.back() == '\t')) {
        v.pop_back();
      }
      if (v.empty()) {
        error(n, key, "the file " + p.string() + " is empty; write the secret into it");
        return;
      }
      if (v.find_first_of("\r\n") != std::string::npos) {
        error(n, key, "the file " + p.string() + " holds more than one line; keep only the secret");
        return;
      }
      out = secret(std::move(v));
    } catch (const std::system_error& e) {
      error(n, key, e.what());
    }
  }

  /// https://host[:port][/prefix]
  bool https_url(const YAML::Node& n, const std::string& key, std::string& out) {
    std::string s;
    if (!scalar(n, key, s, "an https:// URL")) return false;
    if (s.rfind("https://", 0) != 0 || s.size() <= 8 || s[8] == '/' ||
        s.find_first_of(" @?#") != std::string::npos) {
      error(n, key,
            "expected an https:// URL without credentials or query, e.g. "
            "https://as1234.awmdm.com (the UEM is only spoken to over TLS)");
      return false;
    }
    while (s.size() > 8 && s.back() == '/')
      s.pop_back();
    out = s;
    return true;
  }

  void load_ws1(const YAML::Node& w) {
    if (!is_map(w, "uem.ws1")) return;
    auto& c = cfg_.ws1;
    check_keys(w, "uem.ws1",
               {"base_url", "tenant_code_file", "api_version", "auth", "ca_file", "tls_verify",
                "connect_timeout", "request_timeout", "max_connections"});
    if (auto n = w["base_url"]) {
      https_url(n, "uem.ws1.base_url", c.base_url);
    } else {
      error(w, "uem.ws1.base_url", "missing: the UEM API URL, e.g. https://as1234.awmdm.com");
    }
    if (auto n = w["tenant_code_file"]) {
      secret_file(n, "uem.ws1.tenant_code_file", c.tenant_code);
    } else {
      error(w, "uem.ws1.tenant_code_file",
            "missing: a file holding the REST API key (aw-tenant-code) from the UEM console");
    }
    if (auto n = w["api_version"]) {
      long long v = c.api_version;
      integer(n, "uem.ws1.api_version", 1, 4, v);
      c.api_version = static_cast<int>(v);
    }
    if (auto n = w["max_connections"]) {
      long long v = c.max_connections;
      integer(n, "uem.ws1.max_connections", 1, 64, v);
      c.max_connections = static_cast<int>(v);
    }
    if (auto n = w["ca_file"]) path(n, "uem.ws1.ca_file", c.ca_file);
    if (auto n = w["tls_verify"]) boolean(n, "uem.ws1.tls_verify", c.tls_verify);
    if (auto n = w["connect_timeout"]) dur(n, "uem.ws1.connect_timeout", c.connect_timeout);
    if (auto n = w["request_timeout"]) dur(n, "uem.ws1.request_timeout", c.request_timeout);
    for (auto* d : {&c.connect_timeout, &c.request_timeout}) {
      if (d->count() <= 0) error(w, "uem.ws1", "timeouts must be greater than zero");
    }
    const auto auth = w["auth"];
    if (!auth) {
      error(w, "uem.ws1.auth",
            "missing: `auth: {basic: {username, password_file}}` or "
            "`auth: {oauth: {token_url, client_id, client_secret_file}}`");
      return;
    }
    if (!is_map(auth, "uem.ws1.auth")) return;
    check_keys(auth, "uem.ws1.auth", {"basic", "oauth"});
    if (auth["basic"] && auth["oauth"]) {
      error(auth, "uem.ws1.auth", "give either `basic` or `oauth`, not both");
      return;
    }
    if (auto b = auth["basic"]) {
      c.auth = auth_kind::basic;
      if (!is_map(b, "uem.ws1.auth.basic")) return;
      check_keys(b, "uem.ws1.auth.basic", {"username", "password_file"});
      if (auto n = b["username"]) {
        scalar(n, "uem.ws1.auth.basic.username", c.username, "the API user name");
      } else {
        error(b, "uem.ws1.auth.basic.username", "missing");
      }
      if (auto n = b["password_file"]) {
        secret_file(n, "uem.ws1.auth.basic.password_file", c.password);
      } else {
        error(b, "uem.ws1.auth.basic.password_file", "missing: a file holding the password");
      }
    } else if (auto o = auth["oauth"]) {
      c.auth = auth_kind::oauth;
      if (!is_map(o, "uem.ws1.auth.oauth")) return;
      check_keys(o, "uem.ws1.auth.oauth", {"token_url", "client_id", "client_secret_file"});
      if (auto n = o["token_url"]) {
        https_url(n, "uem.ws1.auth.oauth.token_url", c.token_url);
      } else {
        error(o, "uem.ws1.auth.oauth.token_url",
              "missing, e.g. https://na.uemauth.workspaceone.com/connect/token");
      }
      if (auto n = o["client_id"]) {
        scalar(n, "uem.ws1.auth.oauth.client_id", c.client_id, "the OAuth client ID");
      } else {
        error(o, "uem.ws1.auth.oauth.client_id", "missing");
      }
      if (auto n = o["client_secret_file"]) {
        secret_file(n, "uem.ws1.auth.oauth.client_secret_file", c.client_secret);
      } else {
        error(o, "uem.ws1.auth.oauth.client_secret_file",
              "missing: a file holding the OAuth client secret");
      }
    } else {
      error(auth, "uem.ws1.auth", "expected `basic:` or `oauth:`");
    }
  }

  void load_cache(const YAML::Node& c) {
    if (!is_map(c, "uem.cache")) return;
    check_keys(c, "uem.cache", {"positive_ttl", "negative_ttl", "stale_grace"});
    auto& k = cfg_.cache;
    if (auto n = c["positive_ttl"]) {
      dur(n, "uem.cache.positive_ttl", k.positive_ttl);
      if (k.positive_ttl.count() <= 0) error(n, "uem.cache.positive_ttl", "must be above zero");
    }
    if (auto n = c["negative_ttl"]) dur(n, "uem.cache.negative_ttl", k.negative_ttl);
    if (auto n = c["stale_grace"]) dur(n, "uem.cache.stale_grace", k.stale_grace);
  }

  void load_posture(const YAML::Node& p) {
    if (!is_map(p, "uem.posture")) return;
    check_keys(p, "uem.posture",
               {"require_enrolled", "require_compliant", "require_not_compromised"});
    auto& k = cfg_.posture;
    if (auto n = p["require_enrolled"])
      boolean(n, "uem.posture.require_enrolled", k.require_enrolled);
    if (auto n = p["require_compliant"]) {
      boolean(n, "uem.posture.require_compliant", k.require_compliant);
    }
    if (auto n = p["require_not_compromised"]) {
      boolean(n, "uem.posture.require_not_compromised", k.require_not_compromised);
    }
  }

  void load_webhook(const YAML::Node& w) {
    if (!is_map(w, "uem.webhook")) return;
    auto& k = cfg_.webhook;
    k.enabled = true;
    check_keys(w, "uem.webhook",
               {"listen", "username", "password_file", "tls", "max_body", "allow_plain_http",
                "max_connections", "request_timeout"});
    bool listen_ok = false;
    if (auto n = w["listen"]) {
      std::string s;
      if (scalar(n, "uem.webhook.listen", s, "ADDRESS:PORT")) listen_ok = listen(n, s);
    } else {
      error(w, "uem.webhook.listen", "missing, e.g. `listen: 127.0.0.1:9443`");
    }
    if (auto n = w["username"]) {
      scalar(n, "uem.webhook.username", k.username, "the Basic auth user set in the UEM console");
    } else {
      error(w, "uem.webhook.username",
            "missing: the UEM console's Event Notification user name (Basic auth is required)");
    }
    if (auto n = w["password_file"]) {
      secret_file(n, "uem.webhook.password_file", k.password);
    } else {
      error(w, "uem.webhook.password_file", "missing: a file holding the Basic auth password");
    }
    if (auto n = w["max_body"]) {
      long long v = static_cast<long long>(k.max_body);
      integer(n, "uem.webhook.max_body", 1024, 16LL * 1024 * 1024, v);
      k.max_body = static_cast<std::size_t>(v);
    }
    if (auto n = w["max_connections"]) {
      long long v = static_cast<long long>(k.max_connections);
      integer(n, "uem.webhook.max_connections", 1, 1024, v);
      k.max_connections = static_cast<std::size_t>(v);
    }
    if (auto n = w["request_timeout"]) {
      dur(n, "uem.webhook.request_timeout", k.request_timeout);
      if (k.request_timeout < duration(100) || k.request_timeout > std::chrono::minutes(5)) {
        error(n, "uem.webhook.request_timeout", "must be from 100ms to 5m");
      }
    }
    if (auto n = w["allow_plain_http"]) {
      boolean(n, "uem.webhook.allow_plain_http", k.allow_plain_http);
    }
    const auto t = w["tls"];
    if (t) {
      if (!is_map(t, "uem.webhook.tls")) return;
      check_keys(t, "uem.webhook.tls", {"cert", "key"});
      if (auto n = t["cert"]) path(n, "uem.webhook.tls.cert", k.tls_cert);
      if (auto n = t["key"]) path(n, "uem.webhook.tls.key", k.tls_key);
      if (!t["cert"] || !t["key"]) {
        error(t, "uem.webhook.tls", "needs both `cert` and `key` (PEM files)");
      }
    } else if (listen_ok && !loopback(k.listen.address())) {
      plain_http(w, k);
    }
  }

  /// Basic credentials (always required) over plain HTTP are readable by anyone on the path:
  /// only loopback, or an explicit opt-in (a TLS-terminating proxy in front).
  void plain_http(const YAML::Node& w, const webhook_config& k) {
    const auto where = endpoint_text(k.listen);
    if (!k.allow_plain_http) {
      error(w["listen"], "uem.webhook.listen",
            "plain HTTP on " + where +
                ", which is not a loopback address, would carry the Basic credentials in clear "
                "text; configure `uem.webhook.tls: {cert: FILE, key: FILE}`, or set "
                "`uem.webhook.allow_plain_http: true` if a TLS-terminating proxy on a trusted "
                "network fronts the listener");
      return;
    }
    warning(w["allow_plain_http"], "uem.webhook.allow_plain_http",
            "the webhook on " + where +
                " accepts Basic credentials over plain HTTP; anyone on the path between the "
                "UEM (or your proxy) and the gateway can read them. Configure `tls` unless a "
                "TLS-terminating proxy on a trusted network fronts it");
  }

  static bool loopback(const net::ip::address& a) {
    if (a.is_loopback()) return true;
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
      return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).is_loopback();
    }
    return false;
  }

  static std::string endpoint_text(const net::ip::tcp::endpoint& ep) {
    const auto a = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(ep.port());
  }

  bool listen(const YAML::Node& n, const std::string& s) {
    // ADDRESS:PORT with an IP literal; IPv6 as [addr]:port. No names: nothing to resolve.
    std::string host;
    std::string port;
    if (!s.empty() && s.front() == '[') {
      const auto close = s.find("]:");
      if (close != std::string::npos) {
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
      }
    } else if (const auto colon = s.rfind(':');
               colon != std::string::npos && s.find(':') == colon) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
    }
    boost::system::error_code ec;
    const auto addr = net::ip::make_address(host, ec);
    unsigned p = 0;
    const auto [end, pec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (host.empty() || ec || port.empty() || pec != std::errc() ||
        end != port.data() + port.size() || p > 65535) {
      error(n, "uem.webhook.listen",
            "expected IP:PORT such as 127.0.0.1:9443 or [::1]:9443 (an address, not a name)");
      return false;
    }
    cfg_.webhook.listen = net::ip::tcp::endpoint(addr, static_cast<unsigned short>(p));
    return true;
  }

  std::string origin_;
  std::filesystem::path base_;
  config cfg_;
  std::vector<config_error> errors_;
  std::vector<config_error> warnings_;
};

}  // namespace

config_result load_config(std::string_view yaml_text, std::string_view origin,
                          const std::filesystem::path& base_dir) {
  return loader(std::string(origin), base_dir).run(yaml_text);
}

config_result load_config_file(const std::filesystem::path& path) {
  std::string text;
  try {
    text = support::read_file(path, "configuration file", support::config_yaml_limits.max_bytes);
  } catch (const support::error& e) {
    // Worded as the gateway's loader words it (support::read_yaml_file), so the daemon, which
    // runs both on the same file, reports it once.
    config_result r;
    r.errors.push_back({{}, 0, 0, e.message()});
    return r;
  }
  auto base = path.parent_path();
  if (base.empty()) base = ".";
  return load_config(text, path.string(), base);
}

}  // namespace tunnelgate::uem
