// okta-sim — serves the subset of the Okta API that tunnelgate's idp client uses (network
// zones, the org authorization server's client-credentials grant with private_key_jwt, SSWS
// tokens), a login check that honours the zones, and /ip. See docs/okta-sim.md. It must NOT
// link our libraries, so the production client is never tested against itself.
#include <boost/program_options.hpp>
#include <iostream>

#include "okta-sim/jwt.hpp"
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
const std::set<std::string> granted_scopes{"okta.networkZones.manage", "okta.networkZones.read",
                                           "okta.policies.manage", "okta.policies.read"};

struct options {
  std::string listen = "127.0.0.1:0", port_file, cert, key, state, issuer, client_id;
  std::vector<std::string> token_files, public_keys;
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

/// One clause of Okta's zone filter: `id eq "..."` or `usage eq "..."`.
struct clause {
  std::string field, value;
};

/// `A or B and C ...` as OR of AND groups; nullopt when not understood. By hand rather than
/// with std::regex, whose GCC 12 code trips -Wmaybe-uninitialized in the sanitizer build.
std::optional<std::vector<std::vector<clause>>> parse_filter(const std::string& f) {
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
    if (field.quoted || (field.text != "id" && field.text != "usage") || op.quoted ||
        op.text != "eq" || !value.quoted) {
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

  response not_found(const std::string& id) const {
    return okta_error(404, "E0000007", "Not found: Resource not found: " + id + " (NetworkZone)");
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
    if (x.path == "/api/v1/zones" || x.path.rfind("/api/v1/zones/", 0) == 0) return zones(x);
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
    if (form["grant_type"] != "client_credentials") {
      return oauth_error(400, "unsupported_grant_type",
                         "The authorization grant type is not supported by the authorization "
                         "server. Configured grant types: [client_credentials].");
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

  /// nullopt when the caller may go on; else the 401/403 answer.
  std::optional<response> authorize(const sim::exchange& x, bool write) const {
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
    const auto& s = it->second.scopes;
    if (s.count("okta.networkZones.manage") || (!write && s.count("okta.networkZones.read"))) {
      return std::nullopt;
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
    if (auto denied = authorize(x, write)) return std::move(*denied);
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
    std::optional<std::vector<std::vector<clause>>> filter;
    if (!q["filter"].empty()) {
      filter = parse_filter(q["filter"]);
      if (!filter) return okta_error(400, "E0000031", "Invalid search criteria.");
    }
    long limit = -1;
    if (!q["limit"].empty()) {
      try {
        limit = std::stol(q["limit"]);
      } catch (const std::exception&) {
        return validation_error("limit", "limit: not a number");
      }
    }
    json out = json::array();
    for (const auto& z : zones_) {
      bool match = !filter;
      for (const auto& group : filter ? *filter : std::vector<std::vector<clause>>{}) {
        bool all = true;
        for (const auto& c : group)
          all = all && z.value(c.field, "") == c.value;
        match = match || all;
      }
      if (match && (limit < 0 || static_cast<long>(out.size()) < limit)) out.push_back(z);
    }
    auto res = server_.json_reply(200, out);
    res.set(http::field::link,
            "<" + issuer_ + x.path + (x.query.empty() ? "" : "?" + x.query) + ">; rel=\"self\"");
    return res;
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
    return std::nullopt;
  }

  options opt_;
  sim::server server_;
  std::string issuer_;  // no trailing '/'
  std::set<std::string> api_tokens_;
  std::vector<okta::key_ptr> keys_;
  std::map<std::string, access_token> tokens_;
  std::set<std::string> seen_jti_;
  std::vector<json> zones_;  // in creation order
  std::int64_t window_ = 0;  // current rate-limit minute
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
      "org URL; JWT audience is ISSUER/oauth2/v1/token "
      "(default https://LISTEN-ADDRESS:PORT)");
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
