// okta-sim — serves the subset of the Okta API that tunnelgate's idp client uses (network
// zones, the org authorization server's client-credentials grant with private_key_jwt, SSWS
// tokens), a login check that honours the zones, and /ip; for posture_sync (issue 15) also
// devices and their lifecycle, users, user sessions with OAuth refresh tokens, and an SSF
// receiver for CAEP SETs. See docs/okta-sim.md. It must NOT link our libraries, so the
// production client is never tested against itself.
#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>

#include "okta-sim/jwt.hpp"
#include "okta-sim/ssf.hpp"
#include "sim-common/sim_common.hpp"

namespace {

namespace po = boost::program_options;
namespace http = sim::http;
using sim::json;
using sim::response;

constexpr long token_ttl = 3600;
constexpr long rate_limit = 600;  // per minute, as reported in X-Rate-Limit-Limit
constexpr std::size_t zone_limit = 150, blocklist_limit = 1000;
constexpr auto jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
constexpr long page_max = 200;           // devices and users: default and largest page
constexpr std::size_t history_max = 64;  // device status snapshots kept for --search-lag-ms
const std::set<std::string> granted_scopes{"okta.networkZones.manage", "okta.networkZones.read",
                                           "okta.policies.manage",     "okta.policies.read",
                                           "okta.devices.read",        "okta.devices.manage",
                                           "okta.users.read",          "okta.users.manage"};
const std::set<std::string> device_statuses{"CREATED", "ACTIVE", "SUSPENDED", "DEACTIVATED"};
const std::set<std::string> platforms{"IOS", "ANDROID", "WINDOWS", "MACOS"};
const std::set<std::string> user_statuses{"STAGED",    "PROVISIONED",      "ACTIVE",
                                          "RECOVERY",  "PASSWORD_EXPIRED", "LOCKED_OUT",
                                          "SUSPENDED", "DEPROVISIONED"};

struct options {
  std::string listen = "127.0.0.1:0", port_file, cert, key, state, issuer, client_id;
  std::vector<std::string> token_files, public_keys;
  okta::ssf_options ssf;
  long search_lag_ms = 0;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Percent-encoding for a query value (RFC 3986 unreserved characters kept).
std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// A JSON string member, or "" when absent or not a string.
std::string str(const json& j, const char* k) {
  const auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// The value of a dotted path ("profile.udid") as a string; "" when absent.
std::string field_value(const json& obj, const std::string& path) {
  const json* cur = &obj;
  std::size_t start = 0;
  for (;;) {
    const auto dot = path.find('.', start);
    const auto key = path.substr(start, dot - start);
    if (!cur->is_object() || !cur->contains(key)) return {};
    cur = &(*cur)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur->is_string() ? cur->get<std::string>() : std::string();
}

/// One Okta user access token issued by the refresh_token grant.
struct user_access_token {
  std::string user_id, refresh_token;
  std::int64_t expires = 0;
  bool active = true;
};

struct access_token {
  std::set<std::string> scopes;
  std::int64_t expires = 0;  // epoch seconds
};

std::vector<std::string> split_spaces(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char c : s) {
    if (c == ' ') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

/// One clause of an Okta filter or search expression: `FIELD eq "VALUE"`.
struct clause {
  std::string field, value;
};
using expression = std::vector<std::vector<clause>>;  // OR of AND groups

/// `A or B and C ...` (each `FIELD eq "VALUE"` with FIELD in `fields`) as OR of AND groups;
/// nullopt when not understood. By hand rather than with std::regex, whose GCC 12 code trips
/// -Wmaybe-uninitialized in the sanitizer build.
std::optional<expression> parse_filter(const std::string& f, const std::set<std::string>& fields) {
  struct token {
    bool quoted;
    std::string text;
  };
  std::vector<token> toks;
  for (std::size_t i = 0; i < f.size();) {
    if (f[i] == ' ' || f[i] == '\t') {
      ++i;
    } else if (f[i] == '"') {
      const auto end = f.find('"', i + 1);
      if (end == std::string::npos) return std::nullopt;
      toks.push_back({true, f.substr(i + 1, end - i - 1)});
      i = end + 1;
    } else {
      auto end = f.find_first_of(" \t\"", i);
      if (end == std::string::npos) end = f.size();
      toks.push_back({false, f.substr(i, end - i)});
      i = end;
    }
  }
  std::vector<std::vector<clause>> out(1);
  for (std::size_t k = 0;;) {
    if (k + 3 > toks.size()) return std::nullopt;
    const auto &field = toks[k], &op = toks[k + 1], &value = toks[k + 2];
    if (field.quoted || !fields.count(field.text) || op.quoted || op.text != "eq" ||
        !value.quoted) {
      return std::nullopt;
    }
    out.back().push_back({field.text, value.text});
    k += 3;
    if (k == toks.size()) return out;
    if (toks[k].quoted || (toks[k].text != "or" && toks[k].text != "and")) return std::nullopt;
    if (toks[k].text == "or") out.emplace_back();
    ++k;
  }
}

/// Whether `obj` satisfies `e`; fields in `folded` compare case-insensitively.
bool matches(const json& obj, const expression& e, const std::set<std::string>& folded = {}) {
  for (const auto& group : e) {
    bool all = true;
    for (const auto& c : group) {
      const auto v = field_value(obj, c.field);
      all = all && (folded.count(c.field) ? lower(v) == lower(c.value) : v == c.value);
    }
    if (all) return true;
  }
  return false;
}

class okta_sim {
 public:
  explicit okta_sim(options o)
      : opt_(std::move(o)),
        server_({"okta-sim", opt_.listen, opt_.cert, opt_.key, opt_.port_file},
                {[this](const sim::exchange& x) { return api(x); },
                 [](const sim::exchange& x) { return x.path != "/ip"; },
                 [this](const sim::exchange& x, const sim::fault& f) { return fault_reply(x, f); },
                 [this](const sim::exchange& x) { return admin(x); }}) {
    issuer_ = opt_.issuer.empty() ? server_.base_url() : opt_.issuer;
    while (!issuer_.empty() && issuer_.back() == '/')
      issuer_.pop_back();
    for (const auto& f : opt_.token_files) {
      std::istringstream in(sim::read_file(f));
      for (std::string line; std::getline(in, line);) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
          line.pop_back();
        if (!line.empty()) api_tokens_.insert(line);
      }
    }
    for (const auto& k : opt_.public_keys)
      keys_.push_back(okta::load_public_key(k));
    if (!keys_.empty() && opt_.client_id.empty()) {
      throw std::runtime_error("--client-public-key needs --client-id");
    }
    if (opt_.search_lag_ms < 0) throw std::runtime_error("--search-lag-ms must be >= 0");
    ssf_.emplace(opt_.ssf, issuer_);
    user_type_ = "oty" + sim::random_alnum(17);
    load_state();
  }

  void run() { server_.run(); }

 private:
  // ---- answers -----------------------------------------------------------------------------

  response okta_error(unsigned status, const std::string& code, const std::string& summary,
                      json causes = json::array()) const {
    return server_.json_reply(status, {{"errorCode", code},
                                       {"errorSummary", summary},
                                       {"errorLink", code},
                                       {"errorId", "oae" + sim::random_alnum(22)},
                                       {"errorCauses", std::move(causes)}});
  }

  response validation_error(const std::string& field, const std::string& cause) const {
    return okta_error(400, "E0000001", "Api validation failed: " + field,
                      json::array({{{"errorSummary", cause}}}));
  }

  response not_found(const std::string& id, const std::string& kind = "NetworkZone") const {
    return okta_error(404, "E0000007", "Not found: Resource not found: " + id + " (" + kind + ")");
  }

  response no_content() const {
    response res{http::status::no_content, 11};
    res.set(http::field::server, "okta-sim");
    return res;
  }

  response bad_method() const {
    return okta_error(405, "E0000022", "The endpoint does not support the provided HTTP method");
  }

  response oauth_error(unsigned status, const std::string& error, const std::string& desc) const {
    return server_.json_reply(status, {{"error", error}, {"error_description", desc}});
  }

  void rate_headers(response& res) {
    const auto now = sim::epoch_now();
    if (now / 60 != window_) {
      window_ = now / 60;
      window_count_ = 0;
    }
    ++window_count_;
    res.set("X-Rate-Limit-Limit", std::to_string(rate_limit));
    res.set("X-Rate-Limit-Remaining", std::to_string(std::max(0L, rate_limit - window_count_)));
    res.set("X-Rate-Limit-Reset", std::to_string((window_ + 1) * 60));
  }

  response fault_reply(const sim::exchange&, const sim::fault& f) {
    if (f.kind == "rate_limit") {
      auto res =
          okta_error(429, "E0000047", "API call exceeded rate limit due to too many requests.");
      res.set("X-Rate-Limit-Limit", std::to_string(rate_limit));
      res.set("X-Rate-Limit-Remaining", "0");
      res.set("X-Rate-Limit-Reset", std::to_string(sim::epoch_now() + f.reset_in));
      return res;
    }
    auto res = okta_error(f.status, "E0000009", "Internal Server Error");
    rate_headers(res);
    return res;
  }

  response api(const sim::exchange& x) {
    auto res = route(x);
    if (x.path != "/ip") rate_headers(res);
    return res;
  }

  response route(const sim::exchange& x) {
    if (x.path == "/ip") return ip(x);
    if (x.path == "/login") {
      if (x.method != "GET")
        return okta_error(405, "E0000022",
                          "The endpoint does not support the provided HTTP method");
      return login(x);
    }
    if (x.path == "/oauth2/v1/token") {
      if (x.method != "POST")
        return okta_error(405, "E0000022",
                          "The endpoint does not support the provided HTTP method");
      return token(x);
    }
    if (x.path == "/oauth2/v1/introspect") {
      if (x.method != "POST") return bad_method();
      return introspect(x);
    }
    if (x.path == "/api/v1/zones" || x.path.rfind("/api/v1/zones/", 0) == 0) return zones(x);
    if (x.path == "/api/v1/devices" || x.path.rfind("/api/v1/devices/", 0) == 0) return devices(x);
    if (x.path == "/api/v1/users" || x.path.rfind("/api/v1/users/", 0) == 0) return users(x);
    if (x.path == "/security/api/v1/security-events") {
      if (x.method != "POST") return bad_method();
      return security_event(x);
    }
    return okta_error(404, "E0000007", "Not found: Resource not found: " + x.path + " (Endpoint)");
  }

  response ip(const sim::exchange& x) const {
    const auto accept = x.req.find(http::field::accept);
    if (accept != x.req.end() && accept->value().find("application/json") != std::string::npos) {
      return server_.json_reply(200, {{"ip", x.peer}});
    }
    return server_.text_reply(200, x.peer + "\n");
  }

  // ---- login check ------------------------------------------------------------------------

  static bool in_gateways(const json& zone, const std::string& addr) {
    const auto it = zone.find("gateways");
    if (it == zone.end() || !it->is_array()) return false;
    for (const auto& g : *it) {
      const auto type = g.value("type", std::string());
      const auto value = g.value("value", std::string());
      const auto block = type == "CIDR" ? sim::parse_cidr(value) : sim::parse_range(value);
      if (block && sim::contains(*block, addr)) return true;
    }
    return false;
  }

  response login(const sim::exchange& x) {
    bool allowed = false;
    for (const auto& z : zones_) {
      if (z.value("status", "") != "ACTIVE" || !in_gateways(z, x.peer)) continue;
      if (z.value("usage", "") == "BLOCKLIST") {  // applies org-wide, before any policy
        allowed = false;
        break;
      }
      if (z.value("usage", "") == "POLICY") allowed = true;
    }
    if (!allowed) {
      return okta_error(403, "E0000006",
                        "You do not have permission to perform the requested action");
    }
    return server_.json_reply(200, {{"status", "SUCCESS"}, {"ip", x.peer}});
  }

  // ---- OAuth: client credentials with private_key_jwt -------------------------------------

  response token(const sim::exchange& x) {
    auto form = sim::parse_form(x.req.body());
    if (form["grant_type"] == "refresh_token") return refresh_grant(form);
    if (form["grant_type"] != "client_credentials") {
      return oauth_error(400, "unsupported_grant_type",
                         "The authorization grant type is not supported by the authorization "
                         "server. Configured grant types: [client_credentials, refresh_token].");
    }
    if (opt_.client_id.empty() || keys_.empty()) {
      return oauth_error(401, "invalid_client", "No service app is configured (--client-id).");
    }
    if (form["client_assertion_type"] != jwt_bearer || form["client_assertion"].empty()) {
      return oauth_error(401, "invalid_client",
                         "Client authentication failed: client_assertion_type must be " +
                             std::string(jwt_bearer) + " with a client_assertion.");
    }
    if (form.count("client_id") && form["client_id"] != opt_.client_id) {
      return oauth_error(401, "invalid_client", "The client_id is not known.");
    }
    json c;
    if (const auto bad = okta::verify_jws(form["client_assertion"], keys_, c); !bad.empty()) {
      return oauth_error(401, "invalid_client", bad);
    }
    const auto str = [&](const char* k) {
      return c.contains(k) && c[k].is_string() ? c[k].get<std::string>() : std::string();
    };
    if (str("iss") != opt_.client_id || str("sub") != opt_.client_id) {
      return oauth_error(401, "invalid_client",
                         "The client_assertion token's iss and sub must be the client_id.");
    }
    const auto want_aud = issuer_ + "/oauth2/v1/token";
    bool aud_ok = false;
    if (c.contains("aud") && c["aud"].is_string()) aud_ok = c["aud"] == want_aud;
    if (c.contains("aud") && c["aud"].is_array()) {
      for (const auto& a : c["aud"])
        aud_ok = aud_ok || a == want_aud;
    }
    if (!aud_ok) {
      return oauth_error(401, "invalid_client",
                         "The audience [" + (c.contains("aud") ? c["aud"].dump() : "") +
                             "] for the client_assertion token is invalid. Expected " + want_aud +
                             ".");
    }
    if (!c.contains("exp") || !c["exp"].is_number() || !c.contains("iat") ||
        !c["iat"].is_number()) {
      return oauth_error(401, "invalid_client", "The client_assertion token needs exp and iat.");
    }
    const auto exp = c["exp"].get<double>(), iat = c["iat"].get<double>();
    if (exp <= static_cast<double>(sim::epoch_now())) {
      return oauth_error(401, "invalid_client", "The client_assertion token is expired.");
    }
    if (exp - iat > 3600) {
      return oauth_error(401, "invalid_client",
                         "The client_assertion token has an expiration too far into the future.");
    }
    const auto jti = str("jti");
    if (jti.empty()) {
      return oauth_error(401, "invalid_client", "The client_assertion token needs a jti.");
    }
    if (!seen_jti_.insert(jti).second) {
      return oauth_error(401, "invalid_client",
                         "The client_assertion token has already been used (jti replay).");
    }
    const auto scopes = split_spaces(form["scope"]);
    if (scopes.empty()) {
      return oauth_error(400, "invalid_scope",
                         "The authorization server resource does not have any configured default "
                         "scopes, 'scope' must be provided.");
    }
    access_token t{{}, sim::epoch_now() + token_ttl};
    std::string scope_text;
    for (const auto& s : scopes) {
      if (!granted_scopes.count(s)) {
        return oauth_error(400, "invalid_scope",
                           "One or more scopes are not configured for the authorization server "
                           "resource: " +
                               s);
      }
      t.scopes.insert(s);
      scope_text += (scope_text.empty() ? "" : " ") + s;
    }
    const auto value = "oks." + sim::random_alnum(40);
    tokens_[value] = t;
    return server_.json_reply(200, {{"token_type", "Bearer"},
                                    {"expires_in", token_ttl},
                                    {"access_token", value},
                                    {"scope", scope_text}});
  }

  /// nullopt when the caller may go on (an SSWS token, or a bearer token holding one of
  /// `scopes`); else the 401/403 answer.
  std::optional<response> authorize(const sim::exchange& x,
                                    std::initializer_list<const char*> scopes) const {
    const auto a = x.req.find(http::field::authorization);
    const std::string v = a == x.req.end() ? std::string() : std::string(a->value());
    const auto invalid = [&] { return okta_error(401, "E0000011", "Invalid token provided"); };
    if (v.rfind("SSWS ", 0) == 0) {
      if (api_tokens_.count(v.substr(5))) return std::nullopt;
      return invalid();
    }
    if (v.rfind("Bearer ", 0) != 0) return invalid();
    const auto it = tokens_.find(v.substr(7));
    if (it == tokens_.end() || it->second.expires <= sim::epoch_now()) return invalid();
    for (const char* s : scopes) {
      if (it->second.scopes.count(s)) return std::nullopt;
    }
    return okta_error(403, "E0000006",
                      "You do not have permission to perform the requested action");
  }

  // ---- zones -------------------------------------------------------------------------------

  json* find_zone(const std::string& id) {
    for (auto& z : zones_) {
      if (z.value("id", "") == id) return &z;
    }
    return nullptr;
  }

  void set_links(json& z) const {
    const auto self = issuer_ + "/api/v1/zones/" + z.value("id", "");
    const bool active = z.value("status", "") == "ACTIVE";
    z["_links"] = {{"self", {{"href", self}, {"hints", {{"allow", {"GET", "PUT", "DELETE"}}}}}},
                   {active ? "deactivate" : "activate",
                    {{"href", self + "/lifecycle/" + (active ? "deactivate" : "activate")},
                     {"hints", {{"allow", {"POST"}}}}}}};
  }

  /// Checks a zone as sent by POST or PUT; nullopt when valid (defaults filled in).
  std::optional<response> validate(json& z) const {
    if (z.value("type", json()) != "IP") {
      return validation_error("type", "type: okta-sim supports zones of type IP only");
    }
    if (!z.contains("name") || !z["name"].is_string() || z["name"].get<std::string>().empty()) {
      return validation_error("name", "name: The field cannot be left blank");
    }
    if (!z.contains("usage") || z["usage"].is_null()) z["usage"] = "POLICY";
    if (z["usage"] != "POLICY" && z["usage"] != "BLOCKLIST") {
      return validation_error("usage", "usage: must be POLICY or BLOCKLIST");
    }
    std::size_t entries = 0;
    for (const char* list : {"gateways", "proxies"}) {
      if (!z.contains(list) || z[list].is_null()) {
        z[list] = nullptr;
        continue;
      }
      if (!z[list].is_array()) {
        return validation_error(list, std::string(list) + ": must be an array or null");
      }
      for (const auto& e : z[list]) {
        const auto type = e.is_object() ? e.value("type", json()) : json();
        const auto value = e.is_object() ? e.value("value", json()) : json();
        const bool ok =
            value.is_string() && ((type == "CIDR" && sim::parse_cidr(value.get<std::string>())) ||
                                  (type == "RANGE" && sim::parse_range(value.get<std::string>())));
        if (!ok) {
          return validation_error(list, std::string(list) + ": invalid entry " + e.dump() +
                                            " (type CIDR or RANGE with a valid value)");
        }
        ++entries;
      }
    }
    if (entries == 0) {
      return validation_error("gateways", "gateways: gateways or proxies are required");
    }
    const auto limit = z["usage"] == "BLOCKLIST" ? blocklist_limit : zone_limit;
    if (entries > limit) {
      return validation_error("gateways", "gateways: a " + z["usage"].get<std::string>() +
                                              " zone holds at most " + std::to_string(limit) +
                                              " entries in gateways and proxies, got " +
                                              std::to_string(entries));
    }
    return std::nullopt;
  }

  response zones(const sim::exchange& x) {
    const bool write = x.method != "GET";
    if (auto denied = write
                          ? authorize(x, {"okta.networkZones.manage"})
                          : authorize(x, {"okta.networkZones.manage", "okta.networkZones.read"})) {
      return std::move(*denied);
    }
    const auto rest = x.path.size() > 14 ? x.path.substr(14) : std::string();  // after /zones/
    const auto slash = rest.find('/');
    const auto id = rest.substr(0, slash);
    const auto action = slash == std::string::npos ? std::string() : rest.substr(slash);
    json body;
    if (x.method == "POST" || x.method == "PUT") {
      if (!x.req.body().empty()) body = json::parse(x.req.body(), nullptr, false);
      if (action.empty() && !body.is_object()) {
        return okta_error(400, "E0000003", "The request body was not well-formed.");
      }
    }
    if (id.empty()) {
      if (x.method == "GET") return list(x);
      if (x.method == "POST") return create(std::move(body));
      return okta_error(405, "E0000022", "The endpoint does not support the provided HTTP method");
    }
    json* z = find_zone(id);
    if (z == nullptr) return not_found(id);
    if (action == "/lifecycle/activate" || action == "/lifecycle/deactivate") {
      if (x.method != "POST") {
        return okta_error(405, "E0000022",
                          "The endpoint does not support the provided HTTP method");
      }
      (*z)["status"] = action == "/lifecycle/activate" ? "ACTIVE" : "INACTIVE";
      (*z)["lastUpdated"] = sim::iso_now(3);
      set_links(*z);
      const auto out = *z;
      save_state();
      return server_.json_reply(200, out);
    }
    if (!action.empty()) return not_found(id);
    if (x.method == "GET") return server_.json_reply(200, *z);
    if (x.method == "DELETE") {
      if (z->value("status", "") == "ACTIVE") {
        return validation_error("status", "status: deactivate the zone before deleting it");
      }
      zones_.erase(zones_.begin() + (z - zones_.data()));
      save_state();
      response res{http::status::no_content, 11};
      res.set(http::field::server, "okta-sim");
      return res;
    }
    if (x.method == "PUT") {
      // Full replace: what is not sent is gone, what the sim does not know is kept as sent.
      if (body.value("type", json()) != (*z)["type"]) {
        return validation_error("type", "type: the type of a zone cannot be changed");
      }
      if (auto bad = validate(body)) return std::move(*bad);
      body["id"] = id;
      body["status"] = (*z)["status"];  // changed only through lifecycle operations
      body["created"] = (*z)["created"];
      body["lastUpdated"] = sim::iso_now(3);
      body["system"] = false;
      set_links(body);
      *z = body;
      save_state();
      return server_.json_reply(200, body);
    }
    return okta_error(405, "E0000022", "The endpoint does not support the provided HTTP method");
  }

  response create(json z) {
    if (auto bad = validate(z)) return std::move(*bad);
    if (!z.contains("status") || z["status"].is_null()) z["status"] = "ACTIVE";
    if (z["status"] != "ACTIVE" && z["status"] != "INACTIVE") {
      return validation_error("status", "status: must be ACTIVE or INACTIVE");
    }
    z["id"] = "nzo" + sim::random_alnum(17);
    z["created"] = z["lastUpdated"] = sim::iso_now(3);
    z["system"] = false;
    set_links(z);
    zones_.push_back(z);
    save_state();
    return server_.json_reply(200, z);
  }

  response list(const sim::exchange& x) {
    auto q = sim::parse_form(x.query);
    std::optional<expression> filter;
    if (!q["filter"].empty()) {
      filter = parse_filter(q["filter"], {"id", "usage"});
      if (!filter) return okta_error(400, "E0000031", "Invalid search criteria.");
    }
    std::vector<const json*> found;
    for (const auto& z : zones_) {
      if (!filter || matches(z, *filter)) found.push_back(&z);
    }
    return page(x, found, -1, [this](const std::string& id) {
      for (std::size_t i = 0; i < zones_.size(); ++i) {
        if (zones_[i].value("id", "") == id) return static_cast<long>(i);
      }
      return -1L;
    });
  }

  /// One page of `found` (in store order) with Okta's pagination: `limit` (default
  /// `default_limit`, -1 = all) items after the `after` cursor (the id of the last item of the
  /// previous page; `position` maps an id to its store index), a `Link: <…>; rel="self"` header
  /// and, when more follow, a second, separate `Link: <…>; rel="next"` header, as Okta sends them.
  response page(const sim::exchange& x, const std::vector<const json*>& found, long default_limit,
                const std::function<long(const std::string&)>& position) const {
    auto q = sim::parse_form(x.query);
    long limit = default_limit;
    if (q.count("limit") && !q["limit"].empty()) {
      try {
        std::size_t used = 0;
        limit = std::stol(q["limit"], &used);
        if (used != q["limit"].size() || limit < 1) throw std::invalid_argument("limit");
      } catch (const std::exception&) {
        return validation_error("limit", "limit: must be a positive number");
      }
      if (default_limit > 0) limit = std::min(limit, page_max);
    }
    long start_after = -1;
    if (q.count("after") && !q["after"].empty()) {
      start_after = position(q["after"]);
      if (start_after < 0) {
        return validation_error("after", "after: unknown cursor " + q["after"] +
                                             " (take it from the Link rel=\"next\" header)");
      }
    }
    json out = json::array();
    const json* last = nullptr;
    bool more = false;
    for (const auto* item : found) {
      if (start_after >= 0 && position((*item).value("id", "")) <= start_after) continue;
      if (limit >= 0 && static_cast<long>(out.size()) >= limit) {
        more = true;
        break;
      }
      out.push_back(*item);
      last = item;
    }
    auto res = server_.json_reply(200, out);
    res.insert(http::field::link,
               "<" + issuer_ + x.path + (x.query.empty() ? "" : "?" + x.query) + ">; rel=\"self\"");
    if (more && last != nullptr) {
      q["after"] = last->value("id", "");
      q["limit"] = std::to_string(limit);
      std::string query;
      for (const auto& [k, v] : q) {
        if (!v.empty() || k == "after")
          query += (query.empty() ? "" : "&") + k + "=" + url_encode(v);
      }
      res.insert(http::field::link, "<" + issuer_ + x.path + "?" + query + ">; rel=\"next\"");
    }
    return res;
  }

  // ---- devices ------------------------------------------------------------------------------

  /// A device and the status snapshots the search index still shows (--search-lag-ms).
  struct device {
    json obj = json::object();  // current, as GET /api/v1/devices/{id} shows it
    std::vector<std::pair<std::int64_t, json>> history;  // (epoch ms it became current, object)
  };

  void set_device_links(json& d) const {
    const auto self = issuer_ + "/api/v1/devices/" + d.value("id", "");
    const auto status = d.value("status", "");
    const auto post = [&](const char* op) {
      return json{{"href", self + "/lifecycle/" + op}, {"hints", {{"allow", {"POST"}}}}};
    };
    json links{{"self", {{"href", self}, {"hints", {{"allow", {"GET", "PATCH", "PUT"}}}}}},
               {"users", {{"href", self + "/users"}, {"hints", {{"allow", {"GET"}}}}}}};
    if (status == "ACTIVE") {
      links["suspend"] = post("suspend");
      links["deactivate"] = post("deactivate");
    } else if (status == "SUSPENDED") {
      links["unsuspend"] = post("unsuspend");
      links["deactivate"] = post("deactivate");
    } else {
      links["activate"] = post("activate");
    }
    d["_links"] = std::move(links);
  }

  device* find_device(const std::string& id) {
    for (auto& d : devices_) {
      if (d.obj.value("id", "") == id) return &d;
    }
    return nullptr;
  }

  long device_position(const std::string& id) const {
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i].obj.value("id", "") == id) return static_cast<long>(i);
    }
    return -1;
  }

  /// What the (eventually consistent) search index shows of `d`: the newest snapshot at least
  /// --search-lag-ms old. Snapshots older than that one are dropped.
  const json& indexed(device& d, std::int64_t now) const {
    const auto horizon = now - opt_.search_lag_ms;
    while (d.history.size() > 1 && d.history[1].first <= horizon)
      d.history.erase(d.history.begin());
    return d.history.front().first <= horizon ? d.history.front().second : d.obj;
  }

  void set_device_status(device& d, const std::string& status) {
    d.obj["status"] = status;
    d.obj["lastUpdated"] = sim::iso_now(3);
    set_device_links(d.obj);
    d.history.emplace_back(now_ms(), d.obj);
    if (d.history.size() > history_max) d.history.erase(d.history.begin());
  }

  response devices(const sim::exchange& x) {
    const bool read = x.method == "GET";
    if (auto denied = read ? authorize(x, {"okta.devices.read", "okta.devices.manage"})
                           : authorize(x, {"okta.devices.manage"})) {
      return std::move(*denied);
    }
    const std::string base = "/api/v1/devices";
    if (x.path == base) {
      if (!read) return bad_method();
      return list_devices(x);
    }
    const auto rest = x.path.substr(base.size() + 1);
    const auto slash = rest.find('/');
    const auto id = rest.substr(0, slash);
    const auto action = slash == std::string::npos ? std::string() : rest.substr(slash);
    device* d = find_device(id);
    if (d == nullptr) return not_found(id, "Device");
    if (action.empty()) {
      if (x.method == "GET") return server_.json_reply(200, d->obj);
      if (x.method != "DELETE") return bad_method();
      if (d->obj["status"] != "DEACTIVATED") {
        return validation_error("status",
                                "status: only a DEACTIVATED device can be deleted; it is " +
                                    d->obj["status"].get<std::string>());
      }
      devices_.erase(devices_.begin() + (d - devices_.data()));
      return no_content();
    }
    // lifecycle operation -> (statuses it may start from, status it leads to)
    static const std::map<std::string, std::pair<std::set<std::string>, std::string>> ops{
        {"/lifecycle/suspend", {{"ACTIVE"}, "SUSPENDED"}},
        {"/lifecycle/unsuspend", {{"SUSPENDED"}, "ACTIVE"}},
        {"/lifecycle/deactivate", {{"ACTIVE", "SUSPENDED"}, "DEACTIVATED"}},
        {"/lifecycle/activate", {{"CREATED", "DEACTIVATED"}, "ACTIVE"}}};
    const auto op = ops.find(action);
    if (op == ops.end()) return not_found(x.path, "Endpoint");
    if (x.method != "POST") return bad_method();
    const auto status = d->obj["status"].get<std::string>();
    if (!op->second.first.count(status)) {
      std::string need;
      for (const auto& st : op->second.first)
        need += (need.empty() ? "" : " or ") + st;
      return validation_error("status", "status: the device is " + status + "; " +
                                            action.substr(11) + " needs a device that is " + need);
    }
    set_device_status(*d, op->second.second);
    return no_content();
  }

  response list_devices(const sim::exchange& x) {
    auto q = sim::parse_form(x.query);
    std::optional<expression> search;
    if (q.count("search")) {
      search = parse_filter(q["search"], {"id", "status", "profile.udid", "profile.serialNumber",
                                          "profile.displayName", "profile.platform"});
      if (!search) return okta_error(400, "E0000031", "Invalid search criteria.");
    }
    // A search reads the lagging index; a plain list reads the current objects.
    const auto now = now_ms();
    std::vector<const json*> found;
    for (auto& d : devices_) {
      const json& view = search ? indexed(d, now) : d.obj;
      if (!search || matches(view, *search)) found.push_back(&view);
    }
    return page(x, found, page_max, [this](const std::string& id) { return device_position(id); });
  }

  /// POST /_sim/devices: seeds devices as Okta Verify enrollment would create them.
  response seed_devices(const sim::exchange& x) {
    const auto body = json::parse(x.req.body(), nullptr, false);
    if (!body.is_array()) return server_.json_reply(400, {{"error", "expected a JSON array"}});
    std::vector<device> made;
    for (const auto& in : body) {
      if (!in.is_object()) return server_.json_reply(400, {{"error", "each device is an object"}});
      const auto status = in.contains("status") ? str(in, "status") : std::string("ACTIVE");
      if (!device_statuses.count(status)) {
        return server_.json_reply(
            400, {{"error", "status must be CREATED, ACTIVE, SUSPENDED or DEACTIVATED"}});
      }
      if (!platforms.count(str(in, "platform")) || str(in, "displayName").empty()) {
        return server_.json_reply(400,
                                  {{"error",
                                    "each device needs a displayName and a platform (IOS, ANDROID, "
                                    "WINDOWS or MACOS): " +
                                        in.dump()}});
      }
      const auto id = "guo" + sim::random_alnum(17);
      json profile{{"displayName", str(in, "displayName")}, {"platform", str(in, "platform")}};
      // Okta leaves out the optional profile properties a device did not report.
      for (const char* k :
           {"manufacturer", "model", "osVersion", "serialNumber", "udid", "sid", "imei", "meid"}) {
        if (!in.contains(k)) continue;
        if (!in[k].is_string()) {
          return server_.json_reply(400, {{"error", std::string(k) + " must be a string"}});
        }
        profile[k] = in[k];
      }
      profile["registered"] = true;
      profile["secureHardwarePresent"] = false;
      device d;
      d.obj = {{"id", id},
               {"status", status},
               {"created", sim::iso_now(3)},
               {"lastUpdated", sim::iso_now(3)},
               {"profile", profile},
               {"resourceId", id},
               {"resourceDisplayName", {{"value", profile["displayName"]}, {"sensitive", false}}},
               {"resourceType", "UDDevice"},
               {"resourceAlternateId", nullptr}};
      set_device_links(d.obj);
      // Seeded devices were enrolled "long ago": the index already shows them.
      d.history.emplace_back(std::numeric_limits<std::int64_t>::min(), d.obj);
      made.push_back(std::move(d));
    }
    json out = json::array();
    for (auto& d : made) {
      out.push_back(d.obj);
      devices_.push_back(std::move(d));
    }
    return server_.json_reply(200, out);
  }

  // ---- users and their sessions ---------------------------------------------------------------

  json* find_user(const std::string& id_or_login) {
    const auto folded = lower(id_or_login);
    for (auto& u : users_) {
      if (u.value("id", "") == id_or_login || lower(field_value(u, "profile.login")) == folded) {
        return &u;
      }
    }
    return nullptr;
  }

  long user_position(const std::string& id) const {
    for (std::size_t i = 0; i < users_.size(); ++i) {
      if (users_[i].value("id", "") == id) return static_cast<long>(i);
    }
    return -1;
  }

  response users(const sim::exchange& x) {
    const std::string base = "/api/v1/users";
    const auto rest = x.path.size() > base.size() + 1 ? x.path.substr(base.size() + 1) : "";
    const auto slash = rest.find('/');
    const auto id = rest.substr(0, slash);
    const auto sub = slash == std::string::npos ? std::string() : rest.substr(slash);
    if (sub == "/sessions") {
      if (auto denied = authorize(x, {"okta.users.manage"})) return std::move(*denied);
      if (x.method != "DELETE") return bad_method();
      return clear_sessions(x, id);
    }
    if (auto denied = authorize(x, {"okta.users.read", "okta.users.manage"})) {
      return std::move(*denied);
    }
    if (x.method != "GET") return bad_method();
    if (id.empty()) return list_users(x);
    if (!sub.empty()) return not_found(x.path, "Endpoint");
    const json* u = find_user(id);
    if (u == nullptr) return not_found(id, "User");
    return server_.json_reply(200, *u);
  }

  response list_users(const sim::exchange& x) {
    auto q = sim::parse_form(x.query);
    const std::set<std::string> fields{
        "id", "status", "profile.login", "profile.email", "profile.firstName", "profile.lastName"};
    const std::set<std::string> folded{"profile.login", "profile.email", "profile.firstName",
                                       "profile.lastName"};
    std::vector<expression> exprs;
    for (const char* p : {"search", "filter"}) {
      if (!q.count(p)) continue;
      auto e = parse_filter(q[p], fields);
      if (!e) return okta_error(400, "E0000031", "Invalid search criteria.");
      exprs.push_back(std::move(*e));
    }
    const auto prefix = lower(q.count("q") ? q["q"] : std::string());
    std::vector<const json*> found;
    for (const auto& u : users_) {
      bool ok = true;
      for (const auto& e : exprs)
        ok = ok && matches(u, e, folded);
      if (q.count("q")) {  // startsWith on firstName, lastName or email
        bool any = false;
        for (const char* f : {"profile.firstName", "profile.lastName", "profile.email"})
          any = any || lower(field_value(u, f)).rfind(prefix, 0) == 0;
        ok = ok && any;
      }
      if (ok) found.push_back(&u);
    }
    return page(x, found, q.count("q") ? 10 : page_max,
                [this](const std::string& id) { return user_position(id); });
  }

  response seed_users(const sim::exchange& x) {
    const auto body = json::parse(x.req.body(), nullptr, false);
    if (!body.is_array()) return server_.json_reply(400, {{"error", "expected a JSON array"}});
    std::vector<json> made;
    std::set<std::string> logins;
    for (const auto& in : body) {
      const auto login = in.is_object() ? str(in, "login") : std::string();
      if (login.empty()) return server_.json_reply(400, {{"error", "each user needs a login"}});
      if (find_user(login) != nullptr || !logins.insert(lower(login)).second) {
        return server_.json_reply(409, {{"error", "a user with login " + login + " exists"}});
      }
      const auto status = in.contains("status") ? str(in, "status") : std::string("ACTIVE");
      if (!user_statuses.count(status)) {
        return server_.json_reply(400, {{"error", "unknown user status " + in["status"].dump()}});
      }
      const auto id = "00u" + sim::random_alnum(17);
      const auto now = sim::iso_now(3);
      const auto self = issuer_ + "/api/v1/users/" + id;
      const auto opt = [&](const char* k) {
        return in.contains(k) && in[k].is_string() ? in[k] : json();
      };
      made.push_back({{"id", id},
                      {"status", status},
                      {"created", now},
                      {"activated", status == "ACTIVE" ? json(now) : json()},
                      {"statusChanged", now},
                      {"lastLogin", nullptr},
                      {"lastUpdated", now},
                      {"passwordChanged", nullptr},
                      {"type", {{"id", user_type_}}},
                      {"profile",
                       {{"firstName", opt("firstName")},
                        {"lastName", opt("lastName")},
                        {"login", login},
                        {"email", in.contains("email") ? opt("email") : json(login)}}},
                      {"_links",
                       {{"self", {{"href", self}}},
                        {"type", {{"href", issuer_ + "/api/v1/meta/types/user/" + user_type_}}}}}});
    }
    users_.insert(users_.end(), made.begin(), made.end());
    return server_.json_reply(200, made);
  }

  response clear_sessions(const sim::exchange& x, const std::string& user_id) {
    auto q = sim::parse_form(x.query);
    for (const char* p : {"oauthTokens", "forgetDevices"}) {
      if (q.count(p) && q[p] != "true" && q[p] != "false") {
        return validation_error(p, std::string(p) + ": must be true or false");
      }
    }
    if (user_position(user_id) < 0) return not_found(user_id, "User");
    for (auto& s : sessions_) {
      if (s.user_id == user_id) s.active = false;
    }
    if (q["oauthTokens"] == "true") {  // Okta's default for this API is false
      for (auto& [value, r] : refresh_tokens_) {
        if (r.user_id == user_id) r.active = false;
      }
      for (auto& [value, a] : user_tokens_) {
        if (a.user_id == user_id) a.active = false;
      }
    }
    return no_content();
  }

  /// grant_type=refresh_token (no client authentication in the sim).
  response refresh_grant(std::map<std::string, std::string>& form) {
    const auto it = refresh_tokens_.find(form["refresh_token"]);
    if (it == refresh_tokens_.end() || !it->second.active) {
      return oauth_error(400, "invalid_grant", "The refresh token is invalid or expired.");
    }
    const auto value = "oat." + sim::random_alnum(40);
    user_tokens_[value] = {it->second.user_id, it->first, sim::epoch_now() + token_ttl, true};
    return server_.json_reply(200, {{"token_type", "Bearer"},
                                    {"expires_in", token_ttl},
                                    {"access_token", value},
                                    {"refresh_token", it->first},
                                    {"scope", "offline_access openid"}});
  }

  /// POST /oauth2/v1/introspect (RFC 7662; no client authentication in the sim).
  response introspect(const sim::exchange& x) {
    auto form = sim::parse_form(x.req.body());
    const auto token = form["token"];
    const json* user = nullptr;
    json out{{"active", false}};
    if (const auto a = user_tokens_.find(token); a != user_tokens_.end()) {
      if (a->second.active && a->second.expires > sim::epoch_now()) {
        user = find_user(a->second.user_id);
        out = {{"active", true}, {"token_type", "Bearer"}, {"exp", a->second.expires}};
      }
    } else if (const auto r = refresh_tokens_.find(token); r != refresh_tokens_.end()) {
      if (r->second.active) {
        user = find_user(r->second.user_id);
        out = {{"active", true}, {"token_type", "refresh_token"}};
      }
    }
    if (user != nullptr) {
      out["scope"] = "offline_access openid";
      out["username"] = field_value(*user, "profile.login");
      out["uid"] = (*user)["id"];
      out["sub"] = field_value(*user, "profile.login");
    }
    return server_.json_reply(200, out);
  }

  /// POST /_sim/sessions {"login"}: a sign-in that leaves an Okta session and a refresh token.
  response new_session(const sim::exchange& x) {
    const auto body = json::parse(x.req.body(), nullptr, false);
    const auto login = body.is_object() ? str(body, "login") : std::string();
    const json* u = find_user(login);
    if (u == nullptr) {
      return server_.json_reply(
          404, {{"error", "no user with login \"" + login + "\" (seed it with POST /_sim/users)"}});
    }
    const auto user_id = (*u)["id"].get<std::string>();
    const auto session = "102" + sim::random_alnum(22);
    const auto refresh = sim::random_alnum(43);
    sessions_.push_back({session, user_id, true});
    refresh_tokens_[refresh] = {user_id, true, refresh_order_++};
    return server_.json_reply(
        200, {{"userId", user_id}, {"sessionId", session}, {"refresh_token", refresh}});
  }

  json sessions_report() const {
    json out = json::array();
    for (const auto& u : users_) {
      const auto id = u.value("id", "");
      json sessions = json::array(), refresh = json::array(), access = json::array();
      for (const auto& s : sessions_) {
        if (s.user_id == id) {
          sessions.push_back({{"id", s.id}, {"state", s.active ? "active" : "revoked"}});
        }
      }
      std::vector<std::pair<long, json>> ordered;
      for (const auto& [value, r] : refresh_tokens_) {
        if (r.user_id != id) continue;
        ordered.emplace_back(
            r.order, json{{"refresh_token", value}, {"state", r.active ? "active" : "revoked"}});
      }
      std::sort(ordered.begin(), ordered.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [order, j] : ordered)
        refresh.push_back(std::move(j));
      for (const auto& [value, a] : user_tokens_) {
        if (a.user_id != id) continue;
        access.push_back({{"access_token", value},
                          {"refresh_token", a.refresh_token},
                          {"state", a.active ? "active" : "revoked"}});
      }
      out.push_back({{"userId", id},
                     {"login", field_value(u, "profile.login")},
                     {"sessions", sessions},
                     {"refresh_tokens", refresh},
                     {"access_tokens", access}});
    }
    return out;
  }

  // ---- SSF receiver --------------------------------------------------------------------------

  response security_event(const sim::exchange& x) {
    const auto ct = x.req.find(http::field::content_type);
    const std::string type = ct == x.req.end() ? std::string() : std::string(ct->value());
    const auto a = ssf_->receive(type, x.req.body(), now_ms());
    if (a.status == 202) {
      response res{http::status::accepted, 11};
      res.set(http::field::server, "okta-sim");
      return res;
    }
    return server_.json_reply(a.status, a.body);
  }

  // ---- state and admin --------------------------------------------------------------------

  void load_state() {
    if (opt_.state.empty()) return;
    std::string text;
    try {
      text = sim::read_file(opt_.state);
    } catch (const std::exception&) {
      return;  // first start: the file appears with the first change
    }
    auto j = json::parse(text, nullptr, false);
    if (!j.is_array()) throw std::runtime_error(opt_.state + ": expected a JSON array of zones");
    zones_ = j.get<std::vector<json>>();
  }

  void save_state() const {
    if (!opt_.state.empty()) sim::write_file_atomic(opt_.state, json(zones_).dump(2) + "\n");
  }

  std::optional<response> admin(const sim::exchange& x) {
    if (x.path == "/_sim/tokens/revoke" && x.method == "POST") {
      const auto n = tokens_.size();
      tokens_.clear();
      return server_.json_reply(200, {{"revoked", n}});
    }
    if (x.path == "/_sim/zones" && x.method == "GET") return server_.json_reply(200, zones_);
    if (x.path == "/_sim/devices") {
      if (x.method == "POST") return seed_devices(x);
      json out = json::array();
      for (const auto& d : devices_)
        out.push_back(d.obj);
      return server_.json_reply(200, out);
    }
    if (x.path == "/_sim/users") {
      if (x.method == "POST") return seed_users(x);
      return server_.json_reply(200, users_);
    }
    if (x.path == "/_sim/sessions") {
      if (x.method == "POST") return new_session(x);
      return server_.json_reply(200, sessions_report());
    }
    if (x.path == "/_sim/security-events") {
      if (x.method == "DELETE") ssf_->clear();
      return server_.json_reply(200, ssf_->accepted());
    }
    if (x.path == "/_sim/security-events/rejected") {
      return server_.json_reply(200, ssf_->rejected());
    }
    return std::nullopt;
  }

  options opt_;
  sim::server server_;
  std::string issuer_;  // no trailing '/'
  std::set<std::string> api_tokens_;
  std::vector<okta::key_ptr> keys_;
  std::map<std::string, access_token> tokens_;
  std::set<std::string> seen_jti_;
  std::vector<json> zones_;      // in creation order
  std::vector<device> devices_;  // in creation order
  std::vector<json> users_;      // in creation order
  std::string user_type_;        // the one user type's id ("oty…")
  struct user_session {
    std::string id, user_id;
    bool active = true;
  };
  struct refresh_state {
    std::string user_id;
    bool active = true;
    long order = 0;  // issue order, for /_sim/sessions
  };
  std::vector<user_session> sessions_;
  std::map<std::string, refresh_state> refresh_tokens_;
  std::map<std::string, user_access_token> user_tokens_;  // from the refresh_token grant
  long refresh_order_ = 0;
  std::optional<okta::ssf_receiver> ssf_;  // set in the constructor (needs issuer_)
  std::int64_t window_ = 0;                // current rate-limit minute
  long window_count_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  options o;
  po::options_description desc("okta-sim — Okta API simulator (see docs/okta-sim.md)\noptions");
  desc.add_options()("help,h", "show this help")("cert", po::value(&o.cert)->required(),
                                                 "server certificate chain (PEM)")(
      "key", po::value(&o.key)->required(), "server private key (PEM)")(
      "listen", po::value(&o.listen)->default_value(o.listen), "IP:PORT (port 0 = any free)")(
      "port-file", po::value(&o.port_file), "write the bound port here once listening")(
      "state", po::value(&o.state), "zones are loaded from and saved to this JSON file")(
      "token-file", po::value(&o.token_files)->composing(),
      "SSWS API tokens, one per line (repeatable)")(
      "client-id", po::value(&o.client_id), "OAuth service app client_id (private_key_jwt)")(
      "client-public-key", po::value(&o.public_keys)->composing(),
      "its public key, PEM, RSA or EC P-256 (repeatable)")(
      "issuer", po::value(&o.issuer),
      "org URL; JWT audience is ISSUER/oauth2/v1/token, SET audience is ISSUER "
      "(default https://LISTEN-ADDRESS:PORT)")(
      "search-lag-ms", po::value(&o.search_lag_ms)->default_value(0),
      "device search results show each device as it was this many ms ago")(
      "ssf-issuer", po::value(&o.ssf.issuer), "enables the SSF receiver: the transmitter's iss")(
      "ssf-jwks-url", po::value(&o.ssf.jwks_url),
      "the transmitter's JWKS, http(s):// on 127.0.0.0/8, [::1] or localhost")(
      "ssf-jwks-file", po::value(&o.ssf.jwks_file),
      "the transmitter's JWKS as a file (instead of --ssf-jwks-url)")(
      "ssf-ca-file", po::value(&o.ssf.ca_file), "CA (PEM) that verifies an https --ssf-jwks-url");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    okta_sim sim(o);
    sim.run();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "okta-sim: " << e.what() << "\n";
    return 2;
  }
}
