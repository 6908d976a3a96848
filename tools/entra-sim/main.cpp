// entra-sim — serves the subset of Microsoft Entra ID that tunnelgate's idp client uses: the v2.0
// token endpoint (client credentials; ROPC as a login check subject to Conditional Access on
// trusted named locations; refresh tokens) and Microsoft Graph's IP named locations, users and
// revokeSignInSessions (posture_sync, issue 15), plus /ip. One HTTPS port stands for both
// login.microsoftonline.com and graph.microsoft.com. See docs/entra-sim.md. It must NOT link
// our libraries, so the production client is never tested against itself.
#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>

#include "sim-common/sim_common.hpp"

namespace {

namespace po = boost::program_options;
namespace http = sim::http;
using sim::json;
using sim::response;

constexpr long token_ttl = 3599;
constexpr std::size_t range_limit = 2000;
constexpr auto graph_scope = "https://graph.microsoft.com/.default";
constexpr auto locations_path = "/v1.0/identity/conditionalAccess/namedLocations";
constexpr auto ip_location = "#microsoft.graph.ipNamedLocation";
constexpr auto v4_range = "#microsoft.graph.iPv4CidrRange";
constexpr auto v6_range = "#microsoft.graph.iPv6CidrRange";
constexpr auto graph_json =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8";
const std::string context_url =
    "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/namedLocations";
/// The application permissions (app roles) granted when no --app-permission is given: what the
/// named-location sync needs, plus reading users and revoking their sessions.
const std::vector<std::string> default_roles{"Policy.Read.All",
                                             "Policy.ReadWrite.ConditionalAccess", "User.Read.All",
                                             "User.RevokeSessions.All"};

struct options {
  std::string listen = "127.0.0.1:0", port_file, cert, key, state, tenant, client_id, client_secret;
  std::vector<std::string> users, user_password_files, roles;
  std::map<std::string, std::string> passwords;  // UPN (lowercase) -> password
};

/// Nanoseconds since the epoch: revocation compares issue times below the second.
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Epoch nanoseconds as ISO-8601 UTC with seconds, "2024-05-01T10:00:00Z", as Graph shows
/// signInSessionsValidFromDateTime.
std::string iso_seconds(std::int64_t ns) {
  const std::time_t secs = ns / 1000000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) buf[0] = '\0';
  return buf;
}

/// A directory user.
struct user {
  std::string id, upn, mail, display_name;
  std::int64_t valid_from_ns = 0;  // signInSessionsValidFromDateTime, kept to the nanosecond
};

/// A refresh token: whose, when the sign-in it descends from happened, and its scope.
struct refresh_grant {
  std::string user_id, scope;
  std::int64_t auth_ns = 0;
};

/// A client-credentials (app) token for Graph.
struct app_token {
  std::int64_t expires = 0;  // epoch seconds
  std::set<std::string> roles;
};

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// `displayName eq 'X'` ('' stands for a quote) -> X; nullopt for anything else. By hand rather
/// than with std::regex, whose GCC 12 code trips -Wmaybe-uninitialized in the sanitizer build.
std::optional<std::string> parse_name_filter(std::string_view f) {
  const auto skip_spaces = [&] {
    while (!f.empty() && f.front() == ' ')
      f.remove_prefix(1);
  };
  const auto word = [&](std::string_view w) {
    skip_spaces();
    if (f.substr(0, w.size()) != w) return false;
    f.remove_prefix(w.size());
    return true;
  };
  if (!word("displayName") || f.empty() || f.front() != ' ' || !word("eq") || !word("'")) {
    return std::nullopt;
  }
  std::string out;
  for (;;) {
    if (f.empty()) return std::nullopt;
    const char c = f.front();
    f.remove_prefix(1);
    if (c != '\'') {
      out += c;
    } else if (!f.empty() && f.front() == '\'') {
      out += c;
      f.remove_prefix(1);
    } else {
      break;
    }
  }
  skip_spaces();
  if (!f.empty()) return std::nullopt;
  return out;
}

class entra_sim {
 public:
  explicit entra_sim(options o)
      : opt_(std::move(o)),
        server_({"entra-sim", opt_.listen, opt_.cert, opt_.key, opt_.port_file},
                {[this](const sim::exchange& x) { return api(x); },
                 [](const sim::exchange& x) { return x.path != "/ip"; },
                 [this](const sim::exchange& x, const sim::fault& f) { return fault_reply(x, f); },
                 [this](const sim::exchange& x) { return admin(x); }}) {
    if (opt_.roles.empty()) opt_.roles = default_roles;
    for (const auto& upn : opt_.users)
      add_user(upn, "", "");
    load_state();
  }

  void run() { server_.run(); }

 private:
  // ---- answers -----------------------------------------------------------------------------

  /// The token endpoint's error shape (AADSTS code, trace and correlation ids).
  response aad_error(unsigned status, const std::string& error, long code,
                     const std::string& message) const {
    const auto trace = sim::random_guid(), correlation = sim::random_guid();
    auto ts = sim::iso_now(0);
    ts[10] = ' ';  // "2024-05-01 10:00:00Z", as the endpoint writes it
    const auto desc = "AADSTS" + std::to_string(code) + ": " + message + " Trace ID: " + trace +
                      " Correlation ID: " + correlation + " Timestamp: " + ts;
    return server_.json_reply(
        status,
        {{"error", error},
         {"error_description", desc},
         {"error_codes", {code}},
         {"timestamp", ts},
         {"trace_id", trace},
         {"correlation_id", correlation},
         {"error_uri", "https://login.microsoftonline.com/error?code=" + std::to_string(code)}},
        "application/json; charset=utf-8");
  }

  /// Microsoft Graph's error shape.
  response graph_error(const sim::exchange& x, unsigned status, const std::string& code,
                       const std::string& message) const {
    const auto crid = x.req.find("client-request-id");
    const auto request_id = sim::random_guid();
    return server_.json_reply(
        status,
        {{"error",
          {{"code", code},
           {"message", message},
           {"innerError",
            {{"date", sim::iso_now(0)},
             {"request-id", request_id},
             {"client-request-id",
              crid == x.req.end() ? request_id : std::string(crid->value())}}}}}},
        graph_json);
  }

  response fault_reply(const sim::exchange& x, const sim::fault& f) const {
    if (f.kind == "rate_limit") {
      auto res = graph_error(x, 429, "TooManyRequests", "Too many requests.");
      res.set(http::field::retry_after, std::to_string(f.reset_in));
      return res;
    }
    static const std::map<unsigned, std::string> codes{{500, "InternalServerError"},
                                                       {502, "BadGateway"},
                                                       {503, "ServiceUnavailable"},
                                                       {504, "GatewayTimeout"}};
    const auto it = codes.find(f.status);
    return graph_error(x, f.status, it == codes.end() ? "UnknownError" : it->second,
                       "Injected fault.");
  }

  response api(const sim::exchange& x) {
    if (x.path == "/ip") return ip(x);
    if (x.path == locations_path || x.path.rfind(std::string(locations_path) + "/", 0) == 0) {
      return locations(x);
    }
    if (x.path.rfind("/v1.0/users/", 0) == 0) return users(x);
    const auto slash = x.path.find('/', 1);
    if (slash != std::string::npos && x.path.substr(slash) == "/oauth2/v2.0/token") {
      if (x.method != "POST") {
        return aad_error(405, "invalid_request", 900561,
                         "The endpoint only accepts POST requests.");
      }
      return token(x, x.path.substr(1, slash - 1));
    }
    return graph_error(x, 404, "BadRequest",
                       "Resource not found for the segment '" + x.path.substr(1) + "'.");
  }

  response ip(const sim::exchange& x) const {
    const auto accept = x.req.find(http::field::accept);
    if (accept != x.req.end() && accept->value().find("application/json") != std::string::npos) {
      return server_.json_reply(200, {{"ip", x.peer}});
    }
    return server_.text_reply(200, x.peer + "\n");
  }

  // ---- token endpoint ----------------------------------------------------------------------

  response unknown_app(const std::string& id) const {
    return aad_error(400, "unauthorized_client", 700016,
                     "Application with identifier '" + id + "' was not found in the directory '" +
                         opt_.tenant +
                         "'. This can happen if the application has not been installed by the "
                         "administrator of the tenant or consented to by any user in the tenant. "
                         "You may have sent your authentication request to the wrong tenant.");
  }

  /// A JWT-shaped access token (header.claims.signature) whose claims a client may read, as it
  /// may read Entra's: `roles` lists an app token's application permissions. The signature is
  /// random: nothing outside the sim can verify it, and the sim looks tokens up instead.
  std::string make_token(json claims) const {
    const auto now = sim::epoch_now();
    claims["aud"] = "https://graph.microsoft.com";
    claims["iss"] = "https://sts.windows.net/" + opt_.tenant + "/";
    claims["iat"] = claims["nbf"] = now;
    claims["exp"] = now + token_ttl;
    claims["tid"] = opt_.tenant;
    claims["appid"] = opt_.client_id;
    claims["uti"] = sim::random_alnum(22);
    const auto b64 = [](const std::string& s) {
      auto t = sim::base64(s);
      for (auto& c : t)
        c = c == '+' ? '-' : c == '/' ? '_' : c;
      while (!t.empty() && t.back() == '=')
        t.pop_back();
      return t;
    };
    return b64(R"({"typ":"JWT","alg":"RS256","kid":"entra-sim"})") + "." + b64(claims.dump()) +
           "." + sim::random_alnum(86);
  }

  response issue(std::string_view scope, bool for_graph, const std::string& refresh = {}) {
    std::string value;
    if (for_graph) {
      value = make_token({{"roles", opt_.roles}, {"sub", opt_.client_id}});
      graph_tokens_[value] = {sim::epoch_now() + token_ttl, {opt_.roles.begin(), opt_.roles.end()}};
    } else {
      value = make_token({{"scp", std::string(scope)}});
    }
    json out{{"token_type", "Bearer"},
             {"expires_in", token_ttl},
             {"ext_expires_in", token_ttl},
             {"access_token", value}};
    if (!for_graph) out["scope"] = scope;
    if (!refresh.empty()) out["refresh_token"] = refresh;
    return server_.json_reply(200, out, "application/json; charset=utf-8");
  }

  /// A new refresh token for `u` descending from a sign-in at `auth_ns`.
  std::string new_refresh(const user& u, const std::string& scope, std::int64_t auth_ns) {
    auto value = "0.AX" + sim::random_alnum(120);
    refresh_grants_[value] = {u.id, scope, auth_ns};
    return value;
  }

  static bool has_scope(const std::string& scope, std::string_view want) {
    std::size_t start = 0;
    while (start <= scope.size()) {
      const auto end = std::min(scope.find(' ', start), scope.size());
      if (scope.compare(start, end - start, want) == 0) return true;
      start = end + 1;
    }
    return false;
  }

  response token(const sim::exchange& x, const std::string& tenant) {
    if (tenant != opt_.tenant) {
      return aad_error(400, "invalid_request", 90002,
                       "Tenant '" + tenant +
                           "' not found. Check to make sure you have the correct tenant ID and "
                           "are signing into the correct cloud.");
    }
    auto form = sim::parse_form(x.req.body());
    const auto grant = form["grant_type"];
    if (grant != "client_credentials" && grant != "password" && grant != "refresh_token") {
      return aad_error(400, "unsupported_grant_type", 70003,
                       "The app requested an unsupported grant type '" + grant + "'.");
    }
    if (form["client_id"] != opt_.client_id) return unknown_app(form["client_id"]);
    if (grant == "password") return password_grant(x, form);
    if (grant == "refresh_token") return refresh_token_grant(form);
    if (!form.count("client_secret")) {
      return aad_error(401, "invalid_client", 7000218,
                       "The request body must contain the following parameter: "
                       "'client_assertion' or 'client_secret'.");
    }
    if (form["client_secret"] != opt_.client_secret) {
      return aad_error(401, "invalid_client", 7000215,
                       "Invalid client secret provided. Ensure the secret being sent in the "
                       "request is the client secret value, not the client secret ID, for a "
                       "secret added to app '" +
                           opt_.client_id + "'.");
    }
    if (form["scope"] != graph_scope) {
      return aad_error(400, "invalid_scope", 1002012,
                       "The provided value for scope " + form["scope"] +
                           " is not valid. Client credential flows must have a scope value with "
                           "/.default suffixed to the resource identifier (application ID URI).");
    }
    return issue(graph_scope, true);
  }

  /// ROPC: first factor, then Conditional Access on the caller's address (users are subject
  /// to it, service principals are not).
  response password_grant(const sim::exchange& x, std::map<std::string, std::string>& form) {
    const auto it = opt_.passwords.find(lower(form["username"]));
    if (it == opt_.passwords.end()) {
      return aad_error(400, "invalid_grant", 50034,
                       "The user account {EUII Hidden} does not exist in the " + opt_.tenant +
                           " directory. To sign into this application, the account must be "
                           "added to the directory.");
    }
    if (form["password"] != it->second) {
      return aad_error(400, "invalid_grant", 50126,
                       "Error validating credentials due to invalid username or password.");
    }
    if (!trusted(x.peer)) {
      return aad_error(400, "invalid_grant", 53003,
                       "Access has been blocked by Conditional Access policies. The access "
                       "policy does not allow token issuance.");
    }
    const auto scope = form["scope"].empty() ? std::string("openid") : form["scope"];
    const user* u = find_user(form["username"]);
    const auto refresh = u != nullptr && has_scope(scope, "offline_access")
                             ? new_refresh(*u, scope, now_ns())
                             : std::string();
    return issue(scope, false, refresh);
  }

  /// grant_type=refresh_token: valid while the sign-in it descends from is newer than the
  /// user's signInSessionsValidFromDateTime (revokeSignInSessions moves that to now). A
  /// redeemed token keeps working, and the new one descends from the same sign-in.
  response refresh_token_grant(std::map<std::string, std::string>& form) {
    const auto it = refresh_grants_.find(form["refresh_token"]);
    const user* u = it == refresh_grants_.end() ? nullptr : find_user(it->second.user_id);
    if (u == nullptr) {
      return aad_error(400, "invalid_grant", 9002313,
                       "Invalid request. Request is malformed or invalid.");
    }
    if (it->second.auth_ns <= u->valid_from_ns) {
      return aad_error(400, "invalid_grant", 50173,
                       "The provided grant has expired due to it being revoked, a fresh auth "
                       "token is needed. The user might have changed or reset their password. "
                       "The grant was issued on '" +
                           iso_seconds(it->second.auth_ns) +
                           "' and the TokensValidFrom date (before which tokens are not valid) "
                           "for this user is '" +
                           iso_seconds(u->valid_from_ns) + "'.");
    }
    const auto grant = it->second;  // new_refresh may rehash the map
    const auto refresh = new_refresh(*u, grant.scope, grant.auth_ns);
    return issue(grant.scope, false, refresh);
  }

  bool trusted(const std::string& addr) const {
    for (const auto& loc : locations_) {
      if (loc.value("isTrusted", json(false)) != true) continue;
      for (const auto& r : loc.value("ipRanges", json::array())) {
        const auto block = sim::parse_cidr(r.value("cidrAddress", ""));
        if (block && sim::contains(*block, addr)) return true;
      }
    }
    return false;
  }

  // ---- Graph: named locations ---------------------------------------------------------------

  /// nullopt when the caller holds a live app token with one of `roles`; else 401 or 403.
  std::optional<response> authorize(const sim::exchange& x,
                                    std::initializer_list<const char*> roles) const {
    const auto a = x.req.find(http::field::authorization);
    const std::string v = a == x.req.end() ? std::string() : std::string(a->value());
    std::string why;
    if (v.rfind("Bearer ", 0) != 0 || v.size() == 7) {
      why = "Access token is empty.";
    } else if (const auto it = graph_tokens_.find(v.substr(7));
               it == graph_tokens_.end() || it->second.expires <= sim::epoch_now()) {
      why = "Access token validation failure. Invalid or expired token.";
    } else {
      for (const char* r : roles) {
        if (it->second.roles.count(r)) return std::nullopt;
      }
      return graph_error(x, 403, "Authorization_RequestDenied",
                         "Insufficient privileges to complete the operation.");
    }
    auto res = graph_error(x, 401, "InvalidAuthenticationToken", why);
    res.set(http::field::www_authenticate,
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/"
            "oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"");
    return res;
  }

  json* find_location(const std::string& id) {
    for (auto& l : locations_) {
      if (l.value("id", "") == id) return &l;
    }
    return nullptr;
  }

  /// Checks a POST (create) or PATCH body; the empty string when valid, else the message.
  static std::string validate(const json& b, bool create) {
    if (!b.contains("@odata.type")) {
      return "The @odata.type property is required: \"" + std::string(ip_location) + "\".";
    }
    if (b["@odata.type"] != ip_location) {
      return "entra-sim supports named locations of @odata.type " + std::string(ip_location) +
             " only.";
    }
    if ((create || b.contains("displayName")) && (!b.value("displayName", json()).is_string() ||
                                                  b["displayName"].get<std::string>().empty())) {
      return "displayName is required and must be a non-empty string.";
    }
    if (b.contains("isTrusted") && !b["isTrusted"].is_boolean()) {
      return "isTrusted must be a boolean.";
    }
    if (!create && !b.contains("ipRanges")) return {};
    const auto ranges = b.value("ipRanges", json());
    if (!ranges.is_array() || ranges.empty()) {
      return "ipRanges is required and must be a non-empty array.";
    }
    if (ranges.size() > range_limit) {
      return "An IP named location holds at most " + std::to_string(range_limit) +
             " ipRanges, got " + std::to_string(ranges.size()) + ".";
    }
    for (const auto& r : ranges) {
      const auto type = r.is_object() ? r.value("@odata.type", json()) : json();
      const auto cidr = r.is_object() ? r.value("cidrAddress", json()) : json();
      const auto block = cidr.is_string() ? sim::parse_cidr(cidr.get<std::string>()) : std::nullopt;
      const bool ok =
          block && ((type == v4_range && !block->v6) || (type == v6_range && block->v6));
      if (!ok) {
        return "Invalid IP range " + r.dump() + ": expected @odata.type " + v4_range + " or " +
               v6_range + " with a cidrAddress of that family.";
      }
    }
    return {};
  }

  response locations(const sim::exchange& x) {
    if (auto denied = x.method == "GET"
                          ? authorize(x, {"Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"})
                          : authorize(x, {"Policy.ReadWrite.ConditionalAccess"})) {
      return std::move(*denied);
    }
    const std::string base(locations_path);
    const auto id = x.path.size() > base.size() + 1 ? x.path.substr(base.size() + 1) : "";
    json body;
    if (x.method == "POST" || x.method == "PATCH") {
      body = json::parse(x.req.body(), nullptr, false);
      if (!body.is_object()) {
        return graph_error(x, 400, "BadRequest",
                           "Unable to read JSON request payload. Please ensure Content-Type "
                           "header is set and payload is of valid JSON format.");
      }
    }
    if (id.empty()) {
      if (x.method == "GET") return list(x);
      if (x.method != "POST") return graph_error(x, 405, "MethodNotAllowed", "Method not allowed.");
      if (const auto bad = validate(body, true); !bad.empty()) {
        return graph_error(x, 400, "BadRequest", bad);
      }
      if (!body.contains("isTrusted")) body["isTrusted"] = false;
      body["id"] = sim::random_guid();
      body["createdDateTime"] = body["modifiedDateTime"] = sim::iso_now(7);
      locations_.push_back(body);
      save_state();
      body["@odata.context"] = context_url + "/$entity";
      auto res = server_.json_reply(201, body, graph_json);
      res.set(http::field::location,
              "https://graph.microsoft.com" + base + "/" + body["id"].get<std::string>());
      return res;
    }
    json* loc = find_location(id);
    if (loc == nullptr) {
      return graph_error(x, 404, "ResourceNotFound",
                         "The named location '" + id + "' does not exist.");
    }
    if (x.method == "GET") {
      auto out = *loc;
      out["@odata.context"] = context_url + "/$entity";
      return server_.json_reply(200, out, graph_json);
    }
    if (x.method == "PATCH") {
      if (const auto bad = validate(body, false); !bad.empty()) {
        return graph_error(x, 400, "BadRequest", bad);
      }
      for (const auto& [k, v] : body.items()) {
        if (k != "id" && k != "createdDateTime" && k != "modifiedDateTime") (*loc)[k] = v;
      }
      (*loc)["modifiedDateTime"] = sim::iso_now(7);
      save_state();
      return no_content();
    }
    if (x.method == "DELETE") {
      locations_.erase(locations_.begin() + (loc - locations_.data()));
      save_state();
      return no_content();
    }
    return graph_error(x, 405, "MethodNotAllowed", "Method not allowed.");
  }

  response no_content() const {
    response res{http::status::no_content, 11};
    res.set(http::field::server, "entra-sim");
    return res;
  }

  response list(const sim::exchange& x) {
    auto q = sim::parse_form(x.query);
    std::optional<std::string> name;
    if (q.count("$filter")) {
      name = parse_name_filter(q["$filter"]);
      if (!name) {
        return graph_error(x, 400, "BadRequest",
                           "Invalid filter clause: entra-sim understands displayName eq 'X'.");
      }
    }
    json value = json::array();
    for (const auto& l : locations_) {
      if (!name || l.value("displayName", "") == *name) value.push_back(l);
    }
    return server_.json_reply(200, {{"@odata.context", context_url}, {"value", value}}, graph_json);
  }

  // ---- Graph: users and revokeSignInSessions ------------------------------------------------

  user* find_user(const std::string& id_or_upn) {
    const auto folded = lower(id_or_upn);
    for (auto& u : users_) {
      if (u.id == folded || lower(u.upn) == folded) return &u;
    }
    return nullptr;
  }

  /// Adds a user (created now: sign-ins from now on are valid); "" when added, else why not.
  std::string add_user(const std::string& upn, const std::string& mail,
                       const std::string& display_name) {
    if (upn.empty() || upn.find('@') == std::string::npos) {
      return "userPrincipalName must look like name@domain, got \"" + upn + "\"";
    }
    if (find_user(upn) != nullptr) return "a user " + upn + " exists already";
    users_.push_back({sim::random_guid(), upn, mail, display_name, now_ns()});
    return {};
  }

  static json user_json(const user& u) {
    const auto opt = [](const std::string& s) { return s.empty() ? json() : json(s); };
    return {{"id", u.id},
            {"userPrincipalName", u.upn},
            {"mail", opt(u.mail)},
            {"displayName", opt(u.display_name)},
            {"signInSessionsValidFromDateTime", iso_seconds(u.valid_from_ns)}};
  }

  response users(const sim::exchange& x) {
    const std::string base = "/v1.0/users/";
    auto rest = x.path.substr(base.size());
    const auto slash = rest.find('/');
    const auto action = slash == std::string::npos ? std::string() : rest.substr(slash);
    auto key = rest.substr(0, slash);
    // A path segment: '+' is a literal plus (it may appear in a UPN), not a space.
    std::string protected_key;
    for (const char c : key)
      protected_key += c == '+' ? std::string("%2B") : std::string(1, c);
    key = sim::url_decode(protected_key);
    if (action == "/revokeSignInSessions") {
      if (x.method != "POST") return graph_error(x, 405, "MethodNotAllowed", "Method not allowed.");
      if (auto denied = authorize(
              x, {"User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"})) {
        return std::move(*denied);
      }
    } else if (action.empty()) {
      if (x.method != "GET") return graph_error(x, 405, "MethodNotAllowed", "Method not allowed.");
      if (auto denied = authorize(x, {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
                                      "Directory.ReadWrite.All"})) {
        return std::move(*denied);
      }
    } else {
      return graph_error(x, 400, "BadRequest",
                         "Resource not found for the segment '" + action.substr(1) + "'.");
    }
    user* u = find_user(key);
    if (u == nullptr) {
      return graph_error(x, 404, "Request_ResourceNotFound",
                         "Resource '" + key +
                             "' does not exist or one of its queried reference-property objects "
                             "are not present.");
    }
    if (!action.empty()) {
      u->valid_from_ns = now_ns();
      return server_.json_reply(
          200,
          {{"@odata.context", "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean"},
           {"value", true}},
          graph_json);
    }
    auto out = user_json(*u);
    auto q = sim::parse_form(x.query);
    if (q.count("$select")) {  // only the properties asked for (id always)
      json picked{{"id", u->id}};
      std::size_t start = 0;
      const auto& sel = q["$select"];
      while (start <= sel.size()) {
        const auto end = std::min(sel.find(',', start), sel.size());
        const auto name = sel.substr(start, end - start);
        if (out.contains(name)) picked[name] = out[name];
        start = end + 1;
      }
      out = std::move(picked);
    }
    out["@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#users/$entity";
    return server_.json_reply(200, out, graph_json);
  }

  response seed_users(const sim::exchange& x) {
    const auto body = json::parse(x.req.body(), nullptr, false);
    if (!body.is_array()) return server_.json_reply(400, {{"error", "expected a JSON array"}});
    json out = json::array();
    for (const auto& in : body) {
      const auto get = [&](const char* k) {
        return in.is_object() && in.contains(k) && in[k].is_string() ? in[k].get<std::string>()
                                                                     : std::string();
      };
      if (auto bad = add_user(get("userPrincipalName"), get("mail"), get("displayName"));
          !bad.empty()) {
        return server_.json_reply(400, {{"error", bad}, {"created", out}});
      }
      out.push_back(user_json(users_.back()));
    }
    return server_.json_reply(200, out);
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
    if (!j.is_array()) {
      throw std::runtime_error(opt_.state + ": expected a JSON array of named locations");
    }
    locations_ = j.get<std::vector<json>>();
  }

  void save_state() const {
    if (!opt_.state.empty()) sim::write_file_atomic(opt_.state, json(locations_).dump(2) + "\n");
  }

  std::optional<response> admin(const sim::exchange& x) {
    if (x.path == "/_sim/tokens/revoke" && x.method == "POST") {
      const auto n = graph_tokens_.size();
      graph_tokens_.clear();
      return server_.json_reply(200, {{"revoked", n}});
    }
    if (x.path == "/_sim/locations" && x.method == "GET") {
      return server_.json_reply(200, locations_);
    }
    if (x.path == "/_sim/users") {
      if (x.method == "POST") return seed_users(x);
      json out = json::array();
      for (const auto& u : users_)
        out.push_back(user_json(u));
      return server_.json_reply(200, out);
    }
    if (x.path == "/_sim/sessions" && x.method == "POST") {
      // A sign-in that left a refresh token, without going through ROPC.
      const auto body = json::parse(x.req.body(), nullptr, false);
      const auto upn = body.is_object() && body.contains("upn") && body["upn"].is_string()
                           ? body["upn"].get<std::string>()
                           : std::string();
      const user* u = find_user(upn);
      if (u == nullptr) {
        return server_.json_reply(
            404, {{"error", "no user \"" + upn + "\" (--user or POST /_sim/users)"}});
      }
      return server_.json_reply(
          200, {{"refresh_token", new_refresh(*u, "openid offline_access", now_ns())},
                {"userId", u->id}});
    }
    return std::nullopt;
  }

  options opt_;
  sim::server server_;
  std::map<std::string, app_token> graph_tokens_;
  std::vector<json> locations_;  // in creation order
  std::vector<user> users_;      // in creation order
  std::map<std::string, refresh_grant> refresh_grants_;
};

}  // namespace

int main(int argc, char** argv) {
  options o;
  std::string secret_file;
  po::options_description desc(
      "entra-sim — Microsoft Entra ID and Graph simulator (see docs/entra-sim.md)\noptions");
  desc.add_options()("help,h", "show this help")("cert", po::value(&o.cert)->required(),
                                                 "server certificate chain (PEM)")(
      "key", po::value(&o.key)->required(), "server private key (PEM)")(
      "listen", po::value(&o.listen)->default_value(o.listen), "IP:PORT (port 0 = any free)")(
      "port-file", po::value(&o.port_file), "write the bound port here once listening")(
      "state", po::value(&o.state), "named locations are loaded from and saved to this file")(
      "tenant", po::value(&o.tenant)->required(), "the tenant id in token URLs")(
      "client-id", po::value(&o.client_id)->required(), "the app registration's client_id")(
      "client-secret-file", po::value(&secret_file)->required(), "its client secret (file)")(
      "user", po::value(&o.users)->composing(), "a user (UPN) for the login check (repeatable)")(
      "user-password-file", po::value(&o.user_password_files)->composing(),
      "the password of the --user at the same position (file)")(
      "app-permission", po::value(&o.roles)->composing(),
      "an application permission (app role) of the app's Graph tokens (repeatable; default "
      "Policy.Read.All Policy.ReadWrite.ConditionalAccess User.Read.All "
      "User.RevokeSessions.All)");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    o.client_secret = sim::read_secret(secret_file);
    if (o.users.size() != o.user_password_files.size()) {
      throw std::runtime_error("each --user needs one --user-password-file");
    }
    for (std::size_t i = 0; i < o.users.size(); ++i) {
      o.passwords[lower(o.users[i])] = sim::read_secret(o.user_password_files[i]);
    }
    entra_sim sim(o);
    sim.run();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "entra-sim: " << e.what() << "\n";
    return 2;
  }
}
