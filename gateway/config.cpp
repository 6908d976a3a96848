#include "gateway/config.hpp"

#include "gateway/vpn/tunnel.hpp"
#include "support/support.hpp"
#include "support/yaml.hpp"

#include <openssl/ssl.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace tunnelgate::gateway {

std::optional<milliseconds> parse_duration(std::string_view s) {
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  std::uint64_t n = 0;
  std::from_chars(s.data(), s.data() + digits, n);
  const auto unit = s.substr(digits);
  if (unit == "ms") return milliseconds(n);
  if (unit == "s") return milliseconds(n * 1000);
  if (unit == "m") return milliseconds(n * 60'000);
  if (unit == "h") return milliseconds(n * 3'600'000);
  return std::nullopt;
}

namespace {

std::string read_secret(const std::filesystem::path& p, std::string& error) {
  try {
    return support::read_secret(p, "secret file");
  } catch (const std::system_error& e) {
    error = e.what();
    return {};
  }
}

std::optional<tcp::endpoint> parse_endpoint(std::string_view s) {
  std::string_view host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return std::nullopt;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;
  }
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p > 65535)
    return std::nullopt;
  boost::system::error_code aec;
  auto a = net::ip::make_address(std::string(host == "localhost" ? "127.0.0.1" : host), aec);
  if (aec) return std::nullopt;
  return tcp::endpoint(a, static_cast<unsigned short>(p));
}

class loader {
 public:
  explicit loader(std::filesystem::path file, load_scope scope = load_scope::gateway)
      : file_(std::move(file)), scope_(scope) {
    cfg_ = std::make_shared<config>();
    cfg_->file = file_;
    base_ = file_.parent_path();
  }

  config_result run() {
    // Bounded (support/yaml.hpp): size, alias expansion, nodes and depth are limited before
    // anything below walks the tree.
    auto doc = support::read_yaml_file(file_, "configuration file", support::config_yaml_limits);
    if (!doc) {
      errors_.push_back(doc.error->to_string());
      return fail();
    }
    YAML::Node root = doc.root;  // not const: yaml-cpp only copies a missing root["key"] then
    root_ = root;
    if (!root.IsMap()) {
      error(root, "",
            "the configuration is a mapping of sections (listen, tls, uem, dtr, egress, ...)");
      return fail();
    }
    keys(root, "",
         {"listen", "tls", "identity", "uem", "dtr", "egress", "admin", "limits", "log", "threads",
          "upstream_credentials", "idp_sync", "vpn", "posture_sync"});
    if (scope_ == load_scope::posture_sync) {
      // A separate posture-sync host: the gateway's other sections may be in the file (the
      // same file serves both) but are not needed here.
      log(root["log"]);
      if (!root["posture_sync"]) {
        error(root, "posture_sync", "missing: this command needs a posture_sync section");
      }
      posture_sync(root["posture_sync"]);
      if (!errors_.empty()) return fail();
      config_result r;
      r.value = cfg_;
      return r;
    }
    listen(root["listen"]);
    tls(root["tls"]);
    identity(root["identity"]);
    rules(root["dtr"]);
    egress(root["egress"]);
    admin(root["admin"]);
    limits(root["limits"]);
    log(root["log"]);
    if (auto t = root["threads"]) {
      auto n = number(t, "threads", 0, 256);
      if (n) cfg_->threads = static_cast<unsigned>(*n);
    }
    credentials(root["upstream_credentials"]);
    idp_sync(root["idp_sync"]);
    vpn(root["vpn"]);
    posture_sync(root["posture_sync"]);
    uem_node_ = root["uem"];
    if (!errors_.empty()) return fail();
    config_result r;
    r.value = cfg_;
    return r;
  }

  const YAML::Node& uem_node() const { return uem_node_; }

 private:
  config_result fail() {
    config_result r;
    r.errors = std::move(errors_);
    return r;
  }

  void error(const YAML::Node& n, const std::string& path, const std::string& msg) {
    errors_.push_back(support::located(file_.string(), n, path.empty() ? msg : path + ": " + msg));
  }

  void keys(const YAML::Node& map, const std::string& path,
            std::initializer_list<std::string_view> known) {
    std::set<std::string, std::less<>> seen;
    for (const auto& kv : map) {
      const auto key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      const auto full = path.empty() ? key : path + "." + key;
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (auto k : known)
          list += (list.empty() ? "" : ", ") + std::string(k);
        error(kv.first, full, "unknown key; expected one of: " + list);
      } else if (!seen.insert(key).second) {
        error(kv.first, full, "key given twice");
      }
    }
  }

  bool map(const YAML::Node& n, const std::string& path) {
    if (n.IsMap()) return true;
    error(n, path, "expected a mapping");
    return false;
  }

  std::optional<std::string> text(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar() || n.Scalar().empty()) {
      error(n, path, "expected a non-empty value");
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<std::filesystem::path> file(const YAML::Node& n, const std::string& path,
                                            bool must_exist = true) {
    auto t = text(n, path);
    if (!t) return std::nullopt;
    std::filesystem::path p = *t;
    if (p.is_relative()) p = base_ / p;
    std::error_code ec;
    if (must_exist && !std::filesystem::is_regular_file(p, ec)) {
      error(n, path, "file " + p.string() + " does not exist or is not a regular file");
      return std::nullopt;
    }
    return p;
  }

  std::optional<long long> number(const YAML::Node& n, const std::string& path, long long lo,
                                  long long hi) {
    long long v = 0;
    const auto s = n.IsScalar() ? n.Scalar() : std::string();
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
      error(n, path,
            "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
      return std::nullopt;
    }
    return v;
  }

  void duration(const YAML::Node& n, const std::string& path, milliseconds& out) {
    if (!n) return;
    auto d = n.IsScalar() ? parse_duration(n.Scalar()) : std::nullopt;
    if (!d || d->count() == 0) {
      error(n, path, "expected a duration such as 250ms, 10s, 5m or 1h (greater than zero)");
      return;
    }
    out = *d;
  }

  void listen(const YAML::Node& n) {
    if (!n) {
      error(root_, "listen", "missing: the device-facing TLS listeners, e.g. [\"0.0.0.0:8443\"]");
      return;
    }
    if (!n.IsSequence() || n.size() == 0) {
      error(n, "listen", "expected a non-empty list of ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto path = "listen[" + std::to_string(i) + "]";
      listener_options options;
      // Not assigned after construction: assigning a YAML::Node writes into the node it refers to.
      const YAML::Node address = n[i].IsMap() ? n[i]["address"] : n[i];
      if (n[i].IsMap()) {
        keys(n[i], path, {"address", "proxy_protocol"});
        if (!address) {
          error(n[i], path + ".address", "missing: ADDRESS:PORT such as 0.0.0.0:443");
          continue;
        }
        if (auto pp = n[i]["proxy_protocol"]) options.proxy_protocol = proxy_protocol(pp, path);
      }
      auto ep = address.IsScalar() ? parse_endpoint(address.Scalar()) : std::nullopt;
      if (!ep) {
        error(address, n[i].IsMap() ? path + ".address" : path,
              "expected ADDRESS:PORT such as 127.0.0.1:8443 or [::1]:8443, or a mapping with "
              "address and proxy_protocol");
        continue;
      }
      cfg_->listen.push_back(*ep);
      cfg_->listen_options.push_back(std::move(options));
    }
  }

  /// listen[i].proxy_protocol: {senders: [CIDR, ...]}, senders required and non-empty (a
  /// listener that believed any peer's header would let anyone claim any address).
  proxy_protocol_config proxy_protocol(const YAML::Node& n, const std::string& listener) {
    const auto path = listener + ".proxy_protocol";
    proxy_protocol_config pp;
    if (!map(n, path)) return pp;
    keys(n, path, {"senders"});
    const auto senders = n["senders"];
    if (!senders || !senders.IsSequence() || senders.size() == 0) {
      error(senders ? senders : n, path + ".senders",
            "expected a non-empty list of the load balancers' addresses or CIDRs (e.g. "
            "[\"10.0.0.0/24\"]): only they may send a PROXY header");
      return pp;
    }
    for (std::size_t j = 0; j < senders.size(); ++j) {
      const auto at = path + ".senders[" + std::to_string(j) + "]";
      std::string why;
      auto c = senders[j].IsScalar() ? cidr::parse(senders[j].Scalar(), why) : std::nullopt;
      if (!c) {
        error(senders[j], at,
              why.empty() ? "expected an address or CIDR such as 10.0.0.0/24" : why);
        continue;
      }
      pp.senders.push_back(*c);
    }
    return pp;
  }

  void tls(const YAML::Node& n) {
    if (!n) {
      error(root_, "tls", "missing: tls needs cert, key and client_ca");
      return;
    }
    if (!map(n, "tls")) return;
    keys(n, "tls",
         {"cert", "key", "client_ca", "crl", "min_version", "clock_skew", "stale_crl",
          "crl_required", "session_tickets", "session_lifetime", "session_cache_size",
          "verify_cache_ttl", "verify_cache_size"});
    auto& t = cfg_->tls;
    for (auto [key, out] :
         {std::pair{"cert", &t.cert}, {"key", &t.key}, {"client_ca", &t.client_ca}}) {
      if (!n[key]) {
        error(n, std::string("tls.") + key, "missing");
        continue;
      }
      if (auto p = file(n[key], std::string("tls.") + key)) *out = *p;
    }
    if (auto c = n["crl"]) {
      if (c.IsScalar()) {
        if (auto p = file(c, "tls.crl")) t.crl.push_back(*p);
      } else if (c.IsSequence()) {
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (auto p = file(c[i], "tls.crl[" + std::to_string(i) + "]")) t.crl.push_back(*p);
        }
      } else {
        error(c, "tls.crl", "expected a file or a list of files");
      }
    }
    t.min_version = TLS1_2_VERSION;
    if (auto v = n["min_version"]) {
      const auto s = v.IsScalar() ? v.Scalar() : std::string();
      if (s == "1.2") {
        t.min_version = TLS1_2_VERSION;
      } else if (s == "1.3") {
        t.min_version = TLS1_3_VERSION;
      } else {
        error(v, "tls.min_version", "expected \"1.2\" or \"1.3\" (older versions are not offered)");
      }
    }
    if (auto v = n["clock_skew"]) {
      milliseconds d{0};
      duration(v, "tls.clock_skew", d);
      t.clock_skew = std::chrono::duration_cast<std::chrono::seconds>(d);
    }
    if (auto v = n["crl_required"]) {
      t.crl_required = flag(v, "tls.crl_required", true);
      if (*t.crl_required && t.crl.empty()) {
        error(v, "tls.crl_required",
              "true without any tls.crl would refuse every device: add the CA's CRL files, or "
              "set it to false to accept devices without a revocation check");
      }
    }
    if (auto v = n["session_tickets"]) {
      if (auto x = number(v, "tls.session_tickets", 0, 10)) {
        t.session_tickets = static_cast<unsigned>(*x);
      }
    }
    if (auto v = n["session_lifetime"]) {
      milliseconds d{0};
      duration(v, "tls.session_lifetime", d);
      if (d > std::chrono::hours(24 * 7)) {
        error(v, "tls.session_lifetime",
              "at most 168h (RFC 8446 limits a TLS 1.3 ticket's lifetime to 7 days)");
      } else if (d.count() != 0) {
        t.session_lifetime = std::chrono::duration_cast<std::chrono::seconds>(d);
        if (t.session_lifetime.count() == 0) {
          error(v, "tls.session_lifetime", "at least 1s");
        }
      }
    }
    if (auto v = n["session_cache_size"]) {
      if (auto x = number(v, "tls.session_cache_size", 1, 10000000)) {
        t.session_cache_size = static_cast<std::size_t>(*x);
      }
    }
    if (auto v = n["verify_cache_ttl"]) {
      // 0 turns the cache off: accepted here as "0s" or 0 (duration() wants more than zero).
      if (v.IsScalar() && (v.Scalar() == "0" || v.Scalar() == "0s")) {
        t.verify_cache_ttl = std::chrono::seconds(0);
      } else {
        milliseconds d{0};
        duration(v, "tls.verify_cache_ttl", d);
        if (d > std::chrono::hours(24)) {
          error(v, "tls.verify_cache_ttl", "at most 24h (0 turns the cache off)");
        } else if (d.count() != 0) {
          t.verify_cache_ttl = std::chrono::duration_cast<std::chrono::seconds>(d);
        }
      }
    }
    if (auto v = n["verify_cache_size"]) {
      if (auto x = number(v, "tls.verify_cache_size", 0, 10000000)) {
        t.verify_cache_size = static_cast<std::size_t>(*x);
      }
    }
    if (auto v = n["stale_crl"]) {
      const auto s = v.IsScalar() ? v.Scalar() : std::string();
      if (s == "refuse") {
        t.stale_crl = certauth::stale_crl_policy::refuse;
      } else if (s == "warn") {
        t.stale_crl = certauth::stale_crl_policy::warn;
      } else {
        error(v, "tls.stale_crl", "expected refuse (fail closed) or warn");
      }
    }
  }

  void identity(const YAML::Node& n) {
    if (!n) return;  // defaults: subject.CN, san.email, subject.serialNumber
    if (!map(n, "identity")) return;
    keys(n, "identity", {"udid", "user", "serial"});
    auto field = [&](const char* key, certauth::field_mapping& out) {
      const auto v = n[key];
      if (!v) return;
      const std::string path = std::string("identity.") + key;
      if (v.IsScalar()) {
        out = {v.Scalar(), ""};
      } else if (v.IsMap()) {
        keys(v, path, {"source", "prefix"});
        if (auto s = v["source"]) {
          if (auto t = text(s, path + ".source")) out.source = *t;
        } else {
          error(v, path + ".source", "missing");
        }
        out.prefix = v["prefix"] && v["prefix"].IsScalar() ? v["prefix"].Scalar() : std::string();
      } else {
        error(v, path,
              "expected a source such as subject.CN or {source: san.uri, prefix: \"urn:udid:\"}");
      }
    };
    field("udid", cfg_->identity.udid);
    field("user", cfg_->identity.user);
    field("serial", cfg_->identity.serial);
  }

  void rules(const YAML::Node& n) {
    if (!n) {
      error(root_, "dtr", "missing: the Device Traffic Rules file, e.g. dtr: rules.yaml");
      return;
    }
    auto p = file(n, "dtr");
    if (!p) return;
    cfg_->dtr_file = *p;
    std::string text;
    try {
      text = support::read_file(*p, "rules file", support::config_yaml_limits.max_bytes);
    } catch (const std::system_error& e) {
      error(n, "dtr", e.what());
      return;
    }
    auto r = dtr::load_rules(text, p->string());
    if (!r) {
      for (const auto& e : r.errors)
        errors_.push_back(e.to_string());
      return;
    }
    cfg_->rules = r.value;
  }

  void egress(const YAML::Node& n) {
    if (!n) {
      error(root_, "egress", "missing: egress.address, the address tunnelled traffic leaves from");
      return;
    }
    if (!map(n, "egress")) return;
    keys(n, "egress",
         {"address", "resolve_timeout", "connect_timeout", "proxy_ca", "resolver", "check_url",
          "check_ca", "allow", "deny"});
    if (auto rs = n["resolver"]) resolver(rs);
    ranges(n["deny"], "egress.deny", cfg_->egress.deny, nullptr);
    ranges(n["allow"], "egress.allow", cfg_->egress.allow, &cfg_->egress.deny);
    if (auto u = n["check_url"]) {
      if (auto t = text(u, "egress.check_url")) {
        if (t->rfind("https://", 0) != 0 && t->rfind("http://", 0) != 0) {
          error(u, "egress.check_url",
                "expected an http:// or https:// URL of a service that answers the caller's "
                "address (e.g. the okta-sim's /ip)");
        } else {
          cfg_->egress.check_url = *t;
        }
      }
    }
    if (auto c = n["check_ca"]) {
      if (auto p = file(c, "egress.check_ca")) cfg_->egress.check_ca = *p;
    }
    if (auto c = n["proxy_ca"]) {
      if (auto p = file(c, "egress.proxy_ca")) cfg_->egress.proxy_ca = *p;
    }
    auto a = n["address"];
    if (!a) {
      error(n, "egress.address",
            "missing: one address, or a list of one IPv4 and one IPv6 address");
    } else {
      std::vector<YAML::Node> items;
      if (a.IsSequence()) {
        for (std::size_t i = 0; i < a.size(); ++i)
          items.push_back(a[i]);
      } else {
        items.push_back(a);
      }
      for (const auto& item : items) {
        boost::system::error_code ec;
        const auto addr =
            net::ip::make_address(item.IsScalar() ? item.Scalar() : std::string(), ec);
        if (ec || addr.is_unspecified() || addr.is_multicast()) {
          error(item, "egress.address", "expected an IPv4 or IPv6 unicast address");
          continue;
        }
        auto& slot = addr.is_v4() ? cfg_->egress.v4 : cfg_->egress.v6;
        if (slot) {
          error(item, "egress.address",
                std::string("a second ") + (addr.is_v4() ? "IPv4" : "IPv6") +
                    " address; give at most one per family");
          continue;
        }
        slot = addr;
      }
    }
    duration(n["resolve_timeout"], "egress.resolve_timeout", cfg_->egress.resolve_timeout);
    duration(n["connect_timeout"], "egress.connect_timeout", cfg_->egress.connect_timeout);
  }

  // egress.allow / egress.deny: lists of addresses or CIDRs. An allow entry wholly inside a
  // deny entry (`deny` given) opens nothing, since deny wins: an error rather than a surprise.
  void ranges(const YAML::Node& n, const std::string& path, std::vector<cidr>& out,
              const std::vector<cidr>* deny) {
    if (!n) return;
    if (!n.IsSequence()) {
      error(n, path,
            "expected a list of addresses or CIDRs, e.g. [\"10.20.0.0/16\", \"fd00::/8\"]");
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto item = n[i];
      const auto item_path = path + "[" + std::to_string(i) + "]";
      std::string why;
      auto c = item.IsScalar() ? cidr::parse(item.Scalar(), why) : std::nullopt;
      if (!c) {
        error(item, item_path,
              why.empty() ? "expected an address or CIDR such as 10.20.0.0/16" : why);
        continue;
      }
      if (std::find(out.begin(), out.end(), *c) != out.end()) {
        error(item, item_path, c->text() + " is listed twice");
        continue;
      }
      for (const auto& d : deny != nullptr ? *deny : std::vector<cidr>{}) {
        if (d.contains(c->network) && d.prefix <= c->prefix) {
          error(item, item_path,
                c->text() + " lies inside egress.deny " + d.text() +
                    ", and deny wins: remove one of them");
        }
      }
      out.push_back(*c);
    }
  }

  // egress.resolver: name servers as IP or IP:PORT ([IPv6]:PORT); port 53 by default.
  void resolver(const YAML::Node& rs) {
    if (!rs.IsSequence() || rs.size() == 0) {
      error(rs, "egress.resolver",
            "expected a list of name server addresses, e.g. [\"127.0.0.53\", \"[::1]:53\"]; "
            "leave it out to use the system resolver");
      return;
    }
    for (std::size_t i = 0; i < rs.size(); ++i) {
      const auto item = rs[i];
      const std::string text = item.IsScalar() ? item.Scalar() : std::string();
      std::string host = text;
      std::string port = "53";
      if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        host = close == std::string::npos ? std::string() : text.substr(1, close - 1);
        if (close != std::string::npos && close + 1 < text.size()) {
          if (text[close + 1] != ':') host.clear();
          port = text.substr(close + 2);
        }
      } else if (std::count(text.begin(), text.end(), ':') == 1) {
        host = text.substr(0, text.find(':'));
        port = text.substr(text.find(':') + 1);
      }
      boost::system::error_code ec;
      const auto addr = net::ip::make_address(host, ec);
      unsigned p = 0;
      const auto [end, perr] = std::from_chars(port.data(), port.data() + port.size(), p);
      if (ec || addr.is_unspecified() || addr.is_multicast() || perr != std::errc() ||
          end != port.data() + port.size() || p == 0 || p > 65535) {
        error(item, "egress.resolver",
              "'" + text +
                  "' is not a name server address: expected IP or IP:PORT ([IPv6]:PORT), "
                  "an address and never a name");
        continue;
      }
      cfg_->egress.resolver.emplace_back(addr, static_cast<unsigned short>(p));
    }
  }

  void admin(const YAML::Node& n) {
    if (!n) return;
    if (!map(n, "admin")) return;
    keys(n, "admin", {"listen", "token_file", "tls"});
    if (auto l = n["listen"]) {
      auto ep = l.IsScalar() ? parse_endpoint(l.Scalar()) : std::nullopt;
      if (!ep) {
        error(l, "admin.listen", "expected ADDRESS:PORT such as 127.0.0.1:9443");
      } else {
        cfg_->admin.listen = ep;
      }
    }
    if (auto t = n["token_file"]) {
      if (auto p = file(t, "admin.token_file")) {
        std::string err;
        cfg_->admin.token = read_secret(*p, err);
        if (!err.empty()) error(t, "admin.token_file", err);
        cfg_->admin.token_file = *p;
      }
    }
    if (auto t = n["tls"]) {
      if (map(t, "admin.tls")) {
        keys(t, "admin.tls", {"cert", "key"});
        if (!t["cert"] || !t["key"]) {
          error(t, "admin.tls", "needs both cert and key (PEM files)");
        } else {
          if (auto p = file(t["cert"], "admin.tls.cert")) cfg_->admin.tls_cert = *p;
          if (auto p = file(t["key"], "admin.tls.key")) cfg_->admin.tls_key = *p;
        }
      }
    }
    if (cfg_->admin.listen && !cfg_->admin.listen->address().is_loopback()) {
      if (cfg_->admin.token.empty()) {
        error(n["listen"], "admin.listen",
              "a non-loopback admin listener needs admin.token_file (a bearer token in a file)");
      }
      if (!n["tls"]) {
        error(n["listen"], "admin.listen",
              "a non-loopback admin listener needs admin.tls {cert, key}: the bearer token must "
              "not cross the network in clear");
      }
    }
  }

  void limits(const YAML::Node& n) {
    if (!n) return;
    if (!map(n, "limits")) return;
    keys(n, "limits",
         {"max_sessions_per_device", "max_connections", "header_limit", "target_limit",
          "max_headers", "max_handshakes_per_thread", "max_pending_per_source",
          "handshake_rate_per_source", "handshake_burst_per_source", "first_byte_timeout",
          "handshake_timeout", "header_timeout", "idle_timeout", "upstream_timeout",
          "shutdown_grace"});
    auto& l = cfg_->limits;
    auto size = [&](const char* key, std::size_t& out, long long lo, long long hi) {
      if (auto v = n[key]) {
        if (auto x = number(v, std::string("limits.") + key, lo, hi))
          out = static_cast<std::size_t>(*x);
      }
    };
    size("max_sessions_per_device", l.max_sessions_per_device, 1, 100000);
    size("max_connections", l.max_connections, 1, 1000000);
    size("header_limit", l.header_limit, 512, 1024 * 1024);
    size("target_limit", l.target_limit, 300, 8192);
    size("max_headers", l.max_headers, 4, 1000);
    size("max_handshakes_per_thread", l.max_handshakes_per_thread, 1, 1000000);
    size("max_pending_per_source", l.max_pending_per_source, 0, 1000000);
    std::size_t rate = 0;
    std::size_t burst = 0;
    if (n["handshake_rate_per_source"]) {
      size("handshake_rate_per_source", rate, 0, 1000000);
      l.handshake_rate_per_source = static_cast<double>(rate);
      l.handshake_burst_per_source = static_cast<double>(2 * rate);
    }
    if (n["handshake_burst_per_source"]) {
      size("handshake_burst_per_source", burst, 1, 1000000);
      l.handshake_burst_per_source = static_cast<double>(burst);
    }
    duration(n["first_byte_timeout"], "limits.first_byte_timeout", l.first_byte_timeout);
    duration(n["handshake_timeout"], "limits.handshake_timeout", l.handshake_timeout);
    if (l.first_byte_timeout > l.handshake_timeout) {
      if (n["first_byte_timeout"]) {
        error(n["first_byte_timeout"], "limits.first_byte_timeout",
              "must not exceed limits.handshake_timeout (the whole handshake's deadline, "
              "counted from the same moment)");
      } else {
        l.first_byte_timeout = l.handshake_timeout;  // the default, within a shorter handshake
      }
    }
    duration(n["header_timeout"], "limits.header_timeout", l.header_timeout);
    duration(n["idle_timeout"], "limits.idle_timeout", l.idle_timeout);
    duration(n["upstream_timeout"], "limits.upstream_timeout", l.upstream_timeout);
    duration(n["shutdown_grace"], "limits.shutdown_grace", l.shutdown_grace);
  }

  void log(const YAML::Node& n) {
    if (!n) return;
    if (!map(n, "log")) return;
    keys(n, "log", {"format", "level", "access_log"});
    if (auto f = n["format"]) {
      const auto s = f.IsScalar() ? f.Scalar() : std::string();
      if (s != "text" && s != "json") error(f, "log.format", "expected text or json");
      cfg_->log.format = s;
    }
    if (auto l = n["level"]) {
      const auto s = l.IsScalar() ? l.Scalar() : std::string();
      static const std::set<std::string> levels{"trace", "debug",    "info", "warn",
                                                "error", "critical", "off"};
      if (!levels.contains(s))
        error(l, "log.level", "expected trace, debug, info, warn, error, critical or off");
      cfg_->log.level = s;
    }
    if (auto a = n["access_log"]) {
      if (auto p = file(a, "log.access_log", false)) cfg_->log.access_log = *p;
    }
  }

  bool flag(const YAML::Node& n, const std::string& path, bool fallback) {
    if (!n) return fallback;
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false"))
      return n.Scalar() == "true";
    error(n, path, "expected true or false");
    return fallback;
  }

  std::optional<idp::secret> secret_from(const YAML::Node& n, const std::string& path) {
    auto p = file(n, path);
    if (!p) return std::nullopt;
    try {
      return idp::read_secret_file(*p, path);
    } catch (const idp::error& e) {
      error(n, path, e.what());
      return std::nullopt;
    }
  }

  void http_settings(const YAML::Node& n, const std::string& path, idp::http_settings& h) {
    if (auto c = n["ca_file"]) {
      if (auto p = file(c, path + ".ca_file")) h.ca_file = *p;
    }
    duration(n["timeout"], path + ".timeout", h.timeout);
    duration(n["max_rate_limit_wait"], path + ".max_rate_limit_wait", h.max_rate_limit_wait);
  }

  /// A required text key `key` of map `n` at `path`; a located error when missing.
  void required_text(const YAML::Node& n, const std::string& path, const char* key,
                     std::string& out, const char* what) {
    const std::string full = path + "." + key;
    if (auto v = n[key]) {
      if (auto t = text(v, full)) out = *t;
    } else {
      error(n, full, std::string("missing: ") + what);
    }
  }

  /// Okta authentication under `path`: token_file (SSWS) or oauth {client_id, private_key,
  /// key_id, scopes}; `scopes` is the default scope list.
  std::optional<idp::okta_auth> okta_auth(const YAML::Node& o, const std::string& path,
                                          const std::string& scopes) {
    const auto tf = o["token_file"];
    const auto oa = o["oauth"];
    if (tf && oa) {
      error(oa, path + ".oauth", "give either token_file (SSWS) or oauth, not both");
    } else if (tf) {
      if (auto sec = secret_from(tf, path + ".token_file")) return idp::okta_ssws{*sec};
    } else if (oa && map(oa, path + ".oauth")) {
      keys(oa, path + ".oauth", {"client_id", "private_key", "key_id", "scopes"});
      idp::okta_oauth a;
      a.scopes = scopes;
      required_text(oa, path + ".oauth", "client_id", a.client_id,
                    "the API service app's client id");
      if (auto v = oa["private_key"]) {
        if (auto p = file(v, path + ".oauth.private_key")) a.private_key = *p;
      } else {
        error(oa, path + ".oauth.private_key",
              "missing: the PEM private key registered with the service app");
      }
      if (auto v = oa["key_id"]) {
        if (auto t = text(v, path + ".oauth.key_id")) a.key_id = *t;
      }
      if (auto v = oa["scopes"]) {
        if (auto t = text(v, path + ".oauth.scopes")) a.scopes = *t;
      }
      return a;
    } else if (!oa) {
      error(o, path, "missing: token_file (an API token, SSWS) or oauth (client_id, private_key)");
    }
    return std::nullopt;
  }

  /// Entra app credentials under `path`: client_id, client_secret_file, login_url, graph_url.
  void entra_credentials(const YAML::Node& e, const std::string& path, std::string& client_id,
                         idp::secret& client_secret, std::string& login_url,
                         std::string& graph_url) {
    required_text(e, path, "client_id", client_id, "the app registration's client id");
    if (auto v = e["client_secret_file"]) {
      if (auto sec = secret_from(v, path + ".client_secret_file")) client_secret = *sec;
    } else {
      error(e, path + ".client_secret_file", "missing: a file holding the client secret");
    }
    if (auto v = e["login_url"]) {
      if (auto t = text(v, path + ".login_url")) login_url = *t;
    }
    if (auto v = e["graph_url"]) {
      if (auto t = text(v, path + ".graph_url")) graph_url = *t;
    }
  }

  // idp_sync: publish/verify the egress addresses in Okta and/or Entra (docs/gateway.md).
  void idp_sync(const YAML::Node& n) {
    if (!n) return;
    if (!map(n, "idp_sync")) return;
    keys(n, "idp_sync", {"interval", "publish", "exclusive", "create", "okta", "entra"});
    idp_sync_config c;
    duration(n["interval"], "idp_sync.interval", c.interval);
    if (c.interval < milliseconds(1000))
      error(n["interval"], "idp_sync.interval", "must be at least 1s");
    c.publish = flag(n["publish"], "idp_sync.publish", true);
    c.options.exclusive = flag(n["exclusive"], "idp_sync.exclusive", false);
    c.options.create = flag(n["create"], "idp_sync.create", false);
    if (auto o = n["okta"]; o && map(o, "idp_sync.okta")) {
      keys(o, "idp_sync.okta",
           {"org_url", "zone", "token_file", "oauth", "ca_file", "timeout", "max_rate_limit_wait"});
      idp::okta_settings s;
      if (auto u = o["org_url"]) {
        if (auto t = text(u, "idp_sync.okta.org_url")) s.org_url = *t;
      } else {
        error(o, "idp_sync.okta.org_url", "missing: the Okta org URL, e.g. https://acme.okta.com");
      }
      if (auto z = o["zone"]) {
        if (auto t = text(z, "idp_sync.okta.zone")) s.zone = *t;
      } else {
        error(o, "idp_sync.okta.zone", "missing: the network zone's id or name");
      }
      if (auto a = okta_auth(o, "idp_sync.okta", "okta.networkZones.manage")) s.auth = *a;
      http_settings(o, "idp_sync.okta", s.http);
      c.okta = std::move(s);
    }
    if (auto e = n["entra"]; e && map(e, "idp_sync.entra")) {
      keys(e, "idp_sync.entra",
           {"tenant", "location", "client_id", "client_secret_file", "login_url", "graph_url",
            "ca_file", "timeout", "max_rate_limit_wait"});
      idp::entra_settings s;
      required_text(e, "idp_sync.entra", "tenant", s.tenant, "the tenant id or domain");
      required_text(e, "idp_sync.entra", "location", s.location,
                    "the named location's id or display name");
      entra_credentials(e, "idp_sync.entra", s.client_id, s.client_secret, s.login_url,
                        s.graph_url);
      http_settings(e, "idp_sync.entra", s.http);
      c.entra = std::move(s);
    }
    if (!n["okta"] && !n["entra"])
      error(n, "idp_sync", "give okta, entra or both (or leave idp_sync out)");
    // The clients check URLs and the rest of their settings themselves; do it now so that a
    // bad value is a configuration error, not a failure at the first sync.
    try {
      if (c.okta) idp::okta_client check(*c.okta);
      if (c.entra) idp::entra_client check(*c.entra);
    } catch (const idp::error& ex) {
      error(n, "idp_sync", ex.what());
    }
    cfg_->idp_sync = std::move(c);
  }

  // posture_sync: IdP actions on UEM compliance changes (docs/posture-sync.md).
  void posture_sync(const YAML::Node& n) {
    if (!n) return;
    if (!map(n, "posture_sync")) return;
    keys(n, "posture_sync", {"okta", "entra", "caep", "workers", "retry", "restore"});
    const auto errors_before = errors_.size();
    posture_sync_config c;
    if (auto w = n["workers"]) {
      if (auto x = number(w, "posture_sync.workers", 1, 64)) c.workers = static_cast<unsigned>(*x);
    }
    if (auto r = n["retry"]; r && map(r, "posture_sync.retry")) {
      keys(r, "posture_sync.retry", {"initial", "max"});
      duration(r["initial"], "posture_sync.retry.initial", c.retry_initial);
      duration(r["max"], "posture_sync.retry.max", c.retry_max);
      if (c.retry_initial < milliseconds(100)) {
        error(r["initial"], "posture_sync.retry.initial", "must be at least 100ms");
      }
      if (c.retry_max < c.retry_initial) {
        error(r["max"], "posture_sync.retry.max", "must not be shorter than retry.initial");
      }
    }
    c.restore = flag(n["restore"], "posture_sync.restore", true);
    if (auto o = n["okta"]; o && map(o, "posture_sync.okta")) {
      keys(o, "posture_sync.okta",
           {"org_url", "token_file", "oauth", "suspend_devices", "clear_sessions", "ca_file",
            "timeout", "max_rate_limit_wait"});
      posture_sync_config::okta_part k;
      required_text(o, "posture_sync.okta", "org_url", k.settings.org_url,
                    "the Okta org URL, e.g. https://acme.okta.com");
      if (auto a = okta_auth(o, "posture_sync.okta",
                             "okta.devices.manage okta.users.read okta.users.manage")) {
        k.settings.auth = *a;
      }
      http_settings(o, "posture_sync.okta", k.settings.http);
      k.suspend_devices = flag(o["suspend_devices"], "posture_sync.okta.suspend_devices", true);
      k.clear_sessions = flag(o["clear_sessions"], "posture_sync.okta.clear_sessions", true);
      if (!k.suspend_devices && !k.clear_sessions) {
        error(o, "posture_sync.okta",
              "suspend_devices and clear_sessions are both false: leave okta out instead");
      }
      c.okta = std::move(k);
    }
    if (auto e = n["entra"]; e && map(e, "posture_sync.entra")) {
      keys(e, "posture_sync.entra",
           {"tenant", "client_id", "client_secret_file", "login_url", "graph_url", "user",
            "ca_file", "timeout", "max_rate_limit_wait"});
      posture_sync_config::entra_part k;
      required_text(e, "posture_sync.entra", "tenant", k.settings.tenant,
                    "the tenant id or domain");
      entra_credentials(e, "posture_sync.entra", k.settings.client_id, k.settings.client_secret,
                        k.settings.login_url, k.settings.graph_url);
      http_settings(e, "posture_sync.entra", k.settings.http);
      if (auto u = e["user"]) {
        const auto t = text(u, "posture_sync.entra.user");
        if (t == "email") {
          k.user = posture_sync_config::entra_user::email;
        } else if (t == "user_name") {
          k.user = posture_sync_config::entra_user::user_name;
        } else if (t) {
          error(u, "posture_sync.entra.user",
                "expected email (the UEM's enrollment e-mail is the user principal name) or "
                "user_name");
        }
      }
      c.entra = std::move(k);
    }
    if (auto v = n["caep"]; v && map(v, "posture_sync.caep")) {
      keys(v, "posture_sync.caep",
           {"receiver_url", "issuer", "audience", "private_key", "key_id", "subject_format",
            "ca_file", "timeout", "max_rate_limit_wait"});
      idp::caep_settings k;
      required_text(v, "posture_sync.caep", "receiver_url", k.receiver_url,
                    "the SSF receiver, e.g. https://acme.okta.com/security/api/v1/security-events");
      required_text(v, "posture_sync.caep", "issuer", k.issuer,
                    "the issuer the receiver knows this gateway by (iss)");
      required_text(v, "posture_sync.caep", "audience", k.audience,
                    "the receiver's identifier (aud), e.g. https://acme.okta.com");
      required_text(v, "posture_sync.caep", "key_id", k.key_id,
                    "the kid of the signing key, published in the JWKS");
      if (auto pk = v["private_key"]) {
        if (auto p = file(pk, "posture_sync.caep.private_key")) k.private_key = *p;
      } else {
        error(v, "posture_sync.caep.private_key",
              "missing: the PEM signing key (RSA >= 2048 bits or EC P-256)");
      }
      if (auto f = v["subject_format"]) {
        if (auto t = text(f, "posture_sync.caep.subject_format")) {
          if (auto sf = idp::caep_subject_format_from_string(*t)) {
            k.subject_format = *sf;
          } else {
            error(f, "posture_sync.caep.subject_format",
                  "expected okta (the subject inside the event, as Okta documents) or caep-final "
                  "(a top-level sub_id)");
          }
        }
      }
      http_settings(v, "posture_sync.caep", k.http);
      c.caep = std::move(k);
    }
    if (!c.okta && !c.entra && !c.caep) {
      error(n, "posture_sync", "give okta, entra, caep or several (or leave posture_sync out)");
    }
    // The clients check their settings (URLs, keys) themselves: a bad value is a configuration
    // error now, not a failure at the first compliance change. Only when the keys themselves
    // were fine: a missing secret is reported once, not again as "needs a client secret".
    try {
      if (errors_.size() != errors_before) return;
      if (c.okta) idp::okta_directory check(c.okta->settings);
      if (c.entra) idp::entra_directory check(c.entra->settings);
      if (c.caep) idp::caep_client check(*c.caep);
    } catch (const idp::error& ex) {
      error(n, "posture_sync", ex.what());
    }
    cfg_->posture_sync = std::move(c);
  }

  std::optional<cidr> range(const YAML::Node& n, const std::string& path) {
    std::string why;
    auto c = n.IsScalar() ? cidr::parse(n.Scalar(), why) : std::nullopt;
    if (!c) error(n, path, why.empty() ? "expected a CIDR such as 10.77.0.0/24" : why);
    return c;
  }

  // vpn: the full-device VPN (docs/vpn.md).
  void vpn(const YAML::Node& n) {
    if (!n) return;
    if (!map(n, "vpn")) return;
    keys(n, "vpn",
         {"tun", "pool", "mapped_pool", "mtu", "dns", "default_domain", "dpd", "keepalive",
          "idle_timeout", "cookie_ttl", "max_sessions", "max_tunnels_per_device",
          "egress_interface"});
    vpn_config v;
    v.pool = {net::ip::make_address("10.77.0.0"), 24};
    v.mapped_pool = {net::ip::make_address("100.64.0.0"), 16};
    if (auto t = n["tun"]) {
      if (auto name = text(t, "vpn.tun")) {
        const bool ok = name->size() < 16 && std::all_of(name->begin(), name->end(), [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' ||
                                 c == '_' || c == '.';
                        });
        if (!ok) {
          error(t, "vpn.tun",
                "an interface name: at most 15 letters, digits, '-', '_' or '.' (e.g. "
                "tunnelgate0)");
        } else {
          v.tun = *name;
        }
      }
    }
    if (auto p = n["pool"]) {
      std::vector<YAML::Node> items;
      if (p.IsSequence()) {
        for (std::size_t i = 0; i < p.size(); ++i)
          items.push_back(p[i]);
      } else {
        items.push_back(p);
      }
      bool have4 = false;
      for (std::size_t i = 0; i < items.size(); ++i) {
        auto c = range(items[i], "vpn.pool");
        if (!c) continue;
        if (c->network.is_v4()) {
          if (have4) error(items[i], "vpn.pool", "a second IPv4 pool; give one per family");
          if (c->prefix > 29) {
            error(items[i], "vpn.pool",
                  c->text() +
                      " is too small: the gateway takes the first address; use /29 or "
                      "larger");
          }
          v.pool = *c;
          have4 = true;
        } else {
          // Refused rather than half-done: the data path forwards IPv4 only so far.
          error(items[i], "vpn.pool",
                c->text() +
                    ": IPv6 client pools are not carried by the VPN yet (docs/vpn.md); "
                    "give an IPv4 pool only");
        }
      }
      if (!have4 && p) {
        error(p, "vpn.pool", "an IPv4 pool is required (e.g. 10.77.0.0/24), IPv6 is optional");
      }
    }
    if (auto m = n["mapped_pool"]) {
      if (auto c = range(m, "vpn.mapped_pool")) {
        if (!c->network.is_v4()) {
          error(m, "vpn.mapped_pool", "an IPv4 range (e.g. 100.64.0.0/16)");
        } else if (c->prefix > 28) {
          error(m, "vpn.mapped_pool", c->text() + " is too small: use /28 or larger");
        } else {
          v.mapped_pool = *c;
        }
      }
    }
    const auto overlaps = [](const cidr& a, const cidr& b) {
      return a.contains(b.network) || b.contains(a.network);
    };
    if (overlaps(v.pool, v.mapped_pool)) {
      error(n["mapped_pool"] ? n["mapped_pool"] : n, "vpn.mapped_pool",
            v.mapped_pool.text() + " overlaps the client pool " + v.pool.text());
    }
    // The pools are routed to the TUN: an address of this host inside one would be cut off.
    host_addresses host;
    host.refresh();
    for (const auto& a : host.addresses()) {
      if (a == net::ip::address(v.tunnel_address())) continue;  // ours, on the TUN (SIGHUP)
      for (const auto* c : {&v.pool, &v.mapped_pool}) {
        if (c->contains(a)) {
          error(n, "vpn",
                c->text() + " holds " + a.to_string() +
                    ", an address of this host: choose a range not used on it");
        }
      }
      if (v.pool6 && v.pool6->contains(a)) {
        error(n, "vpn", v.pool6->text() + " holds " + a.to_string() + ", an address of this host");
      }
    }
    for (const auto* c : {&v.pool, &v.mapped_pool}) {
      for (const auto& d : cfg_->egress.allow) {
        if (overlaps(*c, d)) {
          error(n, "vpn",
                c->text() + " overlaps egress.allow " + d.text() +
                    ": the VPN's own ranges are never destinations");
        }
      }
    }
    if (auto m = n["mtu"]) {
      if (auto x = number(m, "vpn.mtu", 576, 9000)) v.mtu = static_cast<unsigned>(*x);
    }
    if (auto e = n["egress_interface"]) {
      if (auto t = text(e, "vpn.egress_interface")) v.egress_interface = *t;
    }
    v.dns = flag(n["dns"], "vpn.dns", true);
    if (auto d = n["default_domain"]) {
      if (auto t = text(d, "vpn.default_domain")) {
        auto name = dtr::normalize_host(*t);
        if (!name || !vpn::tunnel::valid_domain(name.value())) {
          error(d, "vpn.default_domain",
                "expected a domain name such as corp.example (letters, digits, '-' and dots)");
        } else {
          v.default_domain = name.value();
        }
      }
    }
    duration(n["dpd"], "vpn.dpd", v.dpd);
    duration(n["keepalive"], "vpn.keepalive", v.keepalive);
    duration(n["idle_timeout"], "vpn.idle_timeout", v.idle_timeout);
    duration(n["cookie_ttl"], "vpn.cookie_ttl", v.cookie_ttl);
    if (auto m = n["max_sessions"]) {
      if (auto x = number(m, "vpn.max_sessions", 1, 1'000'000))
        v.max_sessions = static_cast<std::size_t>(*x);
    }
    if (auto m = n["max_tunnels_per_device"]) {
      if (auto x = number(m, "vpn.max_tunnels_per_device", 1, 64))
        v.max_tunnels_per_device = static_cast<std::size_t>(*x);
    }
    if (v.dpd < std::chrono::seconds(1) || v.keepalive < std::chrono::seconds(1)) {
      // The protocol counts them in whole seconds.
      error(n, "vpn", "dpd and keepalive must be at least 1s");
    }
    // Network, broadcast and the gateway's own address are never handed out.
    const auto capacity =
        static_cast<std::size_t>((std::uint64_t{1} << (32 - std::min(v.pool.prefix, 32U))) - 3);
    if (v.max_sessions > capacity) {
      if (n["max_sessions"]) {
        error(n["max_sessions"], "vpn.max_sessions",
              std::to_string(v.max_sessions) + " is more than the pool " + v.pool.text() +
                  " holds (" + std::to_string(capacity) + "): enlarge vpn.pool or lower it");
      }
      v.max_sessions = capacity;  // the default: as many as the pool holds
    }
    if (!cfg_->egress.v4) {
      error(n, "vpn", "the VPN forwards IPv4: egress.address needs an IPv4 address");
    }
    if (v.pool6 && !cfg_->egress.v6) {
      error(n, "vpn", "an IPv6 pool needs an IPv6 egress.address to leave from");
    }
    cfg_->vpn = std::move(v);
  }

  void credentials(const YAML::Node& n) {
    if (!n) return;
    if (!map(n, "upstream_credentials")) return;
    for (const auto& kv : n) {
      const auto name = kv.first.Scalar();
      const auto path = "upstream_credentials." + name;
      if (!cfg_->rules || !cfg_->rules->find_proxy(name)) {
        error(kv.first, path, "no proxy of that name in the rules file");
        continue;
      }
      if (!map(kv.second, path)) continue;
      keys(kv.second, path, {"file"});
      auto f = kv.second["file"];
      if (!f) {
        error(kv.second, path + ".file", "missing: a file holding user:password");
        continue;
      }
      if (auto p = file(f, path + ".file")) {
        std::string err;
        auto secret = read_secret(*p, err);
        if (err.empty() && secret.find(':') == std::string::npos)
          err = p->string() + " must hold user:password";
        if (!err.empty()) {
          error(f, path + ".file", err);
          continue;
        }
        cfg_->proxy_credentials[name] = secret;
      }
    }
  }

  std::filesystem::path file_;
  load_scope scope_ = load_scope::gateway;
  std::filesystem::path base_;
  std::shared_ptr<config> cfg_;
  std::vector<std::string> errors_;
  YAML::Node uem_node_;
  YAML::Node root_;
};

}  // namespace

net::ip::address_v4 vpn_config::tunnel_address() const {
  return net::ip::address_v4(pool.network.to_v4().to_uint() + 1);
}

config_result load_config(const std::filesystem::path& file, load_scope scope) {
  return loader(file, scope).run();
}

}  // namespace tunnelgate::gateway
